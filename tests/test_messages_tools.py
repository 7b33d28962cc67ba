"""Tools over the Messages API (``--api messages``): the body we send and the stream we read.

The conversation stays in Chat Completions shape everywhere else; these tests pin down its
translation into ``tool_use`` / ``tool_result`` blocks and back.
"""

from __future__ import annotations

import json
from typing import Any

from step_magic.core.events import Finished
from step_magic.core.request import ChatRequest
from step_magic.core.settings import Settings
from step_magic.core.toolrecords import ToolCall
from step_magic.wire.messages import MessagesStream
from step_magic.wire.messages_body import messages_body

from .sse_peer import SSEPeer

MODEL = "step-3.7-flash"
AREA = {
    "type": "function",
    "function": {
        "name": "area",
        "description": "Area of a rectangle.",
        "parameters": {
            "type": "object",
            "properties": {"width": {"type": "number"}, "height": {"type": "number"}},
            "required": ["width", "height"],
        },
    },
}
LOOP: list[dict[str, Any]] = [
    {"role": "user", "content": "How big?"},
    {
        "role": "assistant",
        "content": "Let me compute.",
        "tool_calls": [
            ToolCall("call_1", "area", '{"width": 2, "height": 3}').entry(),
            ToolCall("call_2", "area", "").entry(),
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "6"},
    {"role": "tool", "tool_call_id": "call_2", "content": "Error: missing width"},
    {"role": "assistant", "content": "It is 6."},
    {"role": "user", "content": "And twice as wide?"},
]


def test_tools_and_tool_turns_become_blocks_when_the_request_has_tools() -> None:
    body = messages_body(ChatRequest(MODEL, tuple(LOOP), tools=(AREA,)))
    assert body["tools"] == [
        {
            "name": "area",
            "description": "Area of a rectangle.",
            "input_schema": AREA["function"]["parameters"],
        }
    ]
    user, assistant, results, answer, question = body["messages"]
    assert user == {"role": "user", "content": "How big?"}
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me compute."},
            {
                "type": "tool_use",
                "id": "call_1",
                "name": "area",
                "input": {"width": 2, "height": 3},
            },
            {"type": "tool_use", "id": "call_2", "name": "area", "input": {}},
        ],
    }
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "6"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "Error: missing width"},
        ],
    }
    assert answer == {"role": "assistant", "content": "It is 6."}
    assert question == {"role": "user", "content": "And twice as wide?"}


def test_without_tools_the_same_turns_are_plain_text() -> None:
    body = messages_body(ChatRequest(MODEL, tuple(LOOP)))
    assert "tools" not in body
    roles = [message["role"] for message in body["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert not any(
        isinstance(block, dict) and block.get("type") in ("tool_use", "tool_result")
        for message in body["messages"]
        for block in (message["content"] if isinstance(message["content"], list) else ())
    )
    # Both results share one user turn (the API wants user and assistant turns in turn).
    first, second = body["messages"][2]["content"]
    assert first["text"] == "[result of tool call call_1]\n6"
    assert second["text"] == "[result of tool call call_2]\nError: missing width"


def anthropic_stream() -> bytes:
    """Thinking, then two tool_use blocks: one streamed in pieces, one whole at its start."""
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"message": {"id": "msg_1", "usage": {"input_tokens": 9}}}),
        (
            "content_block_start",
            {"index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        ),
        (
            "content_block_delta",
            {"index": 0, "delta": {"type": "thinking_delta", "thinking": "Hm."}},
        ),
        ("content_block_stop", {"index": 0}),
        (
            "content_block_start",
            {
                "index": 1,
                "content_block": {"type": "tool_use", "id": "toolu_a", "name": "area", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"width": 2, '}},
        ),
        (
            "content_block_delta",
            {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '"height": 3}'}},
        ),
        ("content_block_stop", {"index": 1}),
        (
            "content_block_start",
            {
                "index": 2,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_b",
                    "name": "area",
                    "input": {"width": 1, "height": 1},
                },
            },
        ),
        ("content_block_stop", {"index": 2}),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 20}}),
        ("message_stop", {}),
    ]
    return "".join(
        f"event: {name}\ndata: {json.dumps({'type': name, **payload})}\n\n"
        for name, payload in events
    ).encode()


def test_tool_use_blocks_arrive_as_tool_calls() -> None:
    with SSEPeer([anthropic_stream()]) as peer:
        settings = Settings(
            model=MODEL, base_url=peer.base_url, api_key="k", timeout=5, max_retries=0
        )
        request = ChatRequest(MODEL, ({"role": "user", "content": "How big?"},), tools=(AREA,))
        events = list(MessagesStream(settings, request))
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.finish_reason == "tool_calls"
    assert finished.tool_calls == (
        ToolCall("toolu_a", "area", '{"width": 2, "height": 3}'),
        ToolCall("toolu_b", "area", '{"width": 1, "height": 1}'),
    )
