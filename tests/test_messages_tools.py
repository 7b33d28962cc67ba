"""Tools over the Messages API (``--api messages``): the body we send and the stream we read.

The conversation stays in Chat Completions shape everywhere else; these tests pin down its
translation into ``tool_use`` / ``tool_result`` blocks and back, and the signed thinking a
tool loop must send back unchanged (Anthropic's protocol), replayed byte for byte.
"""

from __future__ import annotations

import json
from typing import Any

import step_magic
from step_magic.core.events import Finished
from step_magic.core.request import ChatRequest
from step_magic.core.settings import Settings
from step_magic.core.toolrecords import ToolCall
from step_magic.memory.conversation import remembered
from step_magic.server import LocalServer
from step_magic.wire.messages import MessagesStream
from step_magic.wire.messages_body import messages_body

from .sse_peer import JSON_HEAD, SSEPeer

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


def sse_events(*events: tuple[str, dict[str, Any]]) -> bytes:
    return "".join(
        f"event: {name}\ndata: {json.dumps({'type': name, **payload}, separators=(',', ':'))}\n\n"
        for name, payload in events
    ).encode()


SIGNATURE = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"
REDACTED = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpPSECRET"
# Anthropic's extended thinking with a tool: the thinking text, its signature streamed last,
# a redacted block, then the call (after Anthropic's "Extended thinking" and streaming docs).
SIGNED_TOOL_TURN = sse_events(
    (
        "message_start",
        {
            "message": {
                "id": "msg_01signed",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-sonnet-4-20250514",
                "stop_reason": None,
                "usage": {"input_tokens": 40, "output_tokens": 1},
            }
        },
    ),
    ("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": ""}}),
    (
        "content_block_delta",
        {"index": 0, "delta": {"type": "thinking_delta", "thinking": "I need the area, "}},
    ),
    (
        "content_block_delta",
        {"index": 0, "delta": {"type": "thinking_delta", "thinking": "so I call the tool."}},
    ),
    (
        "content_block_delta",
        {"index": 0, "delta": {"type": "signature_delta", "signature": SIGNATURE}},
    ),
    ("content_block_stop", {"index": 0}),
    (
        "content_block_start",
        {"index": 1, "content_block": {"type": "redacted_thinking", "data": REDACTED}},
    ),
    ("content_block_stop", {"index": 1}),
    (
        "content_block_start",
        {
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_01A", "name": "area", "input": {}},
        },
    ),
    (
        "content_block_delta",
        {
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"width": 2, "height": 3}'},
        },
    ),
    ("content_block_stop", {"index": 2}),
    ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 60}}),
    ("message_stop", {}),
)
ANSWER_TURN = sse_events(
    ("message_start", {"message": {"id": "msg_02answer", "usage": {"input_tokens": 90}}}),
    ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "It is 6."}}),
    ("content_block_stop", {"index": 0}),
    ("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}}),
    ("message_stop", {}),
)


def area(width: float, height: float) -> float:
    """Area of a rectangle."""
    return width * height


def test_signed_and_redacted_thinking_go_back_unchanged_ahead_of_the_call(
    api_env: LocalServer,
) -> None:
    with SSEPeer(replies=[[SIGNED_TOOL_TURN], [ANSWER_TURN]]) as peer:
        result = step_magic.ask(
            "How big?", api="messages", tools=[area], base_url=peer.base_url, display=False
        )
        bodies = [json.loads(body) for body in peer.bodies]
    assert (result.status, result.answer) == ("complete", "It is 6.")
    assert result.reasoning == "I need the area, so I call the tool."
    assert SIGNATURE not in result.reasoning
    assert "SECRET" not in result.reasoning + result.answer
    assert len(bodies) == 2
    assistant = bodies[1]["messages"][1]
    assert assistant == {
        "role": "assistant",
        "content": [
            {
                "type": "thinking",
                "thinking": "I need the area, so I call the tool.",
                "signature": SIGNATURE,
            },
            {"type": "redacted_thinking", "data": REDACTED},
            {
                "type": "tool_use",
                "id": "toolu_01A",
                "name": "area",
                "input": {"width": 2, "height": 3},
            },
        ],
    }
    assert bodies[1]["messages"][2]["content"][0]["tool_use_id"] == "toolu_01A"


def test_thinking_blocks_are_not_sent_to_chat_completions_nor_kept_in_the_thread(
    api_env: LocalServer,
) -> None:
    with SSEPeer(replies=[[SIGNED_TOOL_TURN], [ANSWER_TURN]]) as peer:
        first = step_magic.ask(
            "How big?", api="messages", tools=[area], base_url=peer.base_url, display=False
        )
    kept = [m for m in first.messages if "thinking_blocks" in m]
    assert len(kept) == 1  # the loop's own request had them
    chat = ChatRequest(MODEL, first.messages).body()
    assert not any("thinking_blocks" in message for message in chat["messages"])
    assert not any("thinking_blocks" in message for message in remembered(first.exchange))


def test_a_whole_json_message_keeps_its_signed_thinking_too() -> None:
    message = {
        "id": "msg_whole",
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Call it.", "signature": SIGNATURE},
            {"type": "redacted_thinking", "data": REDACTED},
            {"type": "tool_use", "id": "toolu_w", "name": "area", "input": {"width": 1}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 5, "output_tokens": 7},
    }
    with SSEPeer([json.dumps(message).encode()], head=JSON_HEAD) as peer:
        settings = Settings(
            model=MODEL, base_url=peer.base_url, api_key="k", timeout=5, max_retries=0
        )
        request = ChatRequest(MODEL, ({"role": "user", "content": "How big?"},), tools=(AREA,))
        events = list(MessagesStream(settings, request))
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.thinking_blocks == (
        {"type": "thinking", "thinking": "Call it.", "signature": SIGNATURE},
        {"type": "redacted_thinking", "data": REDACTED},
    )
    assert finished.tool_calls == (ToolCall("toolu_w", "area", '{"width": 1}'),)


def test_unsigned_thinking_is_not_sent_back() -> None:
    unsigned = SIGNED_TOOL_TURN.replace(SIGNATURE.encode(), b"").replace(REDACTED.encode(), b"")
    with SSEPeer([unsigned]) as peer:
        settings = Settings(
            model=MODEL, base_url=peer.base_url, api_key="k", timeout=5, max_retries=0
        )
        request = ChatRequest(MODEL, ({"role": "user", "content": "How big?"},), tools=(AREA,))
        finished = list(MessagesStream(settings, request))[-1]
    assert isinstance(finished, Finished)
    assert finished.thinking_blocks == ()


def test_a_call_of_a_tool_that_was_not_offered_is_a_one_line_note(api_env: LocalServer) -> None:
    with SSEPeer([SIGNED_TOOL_TURN]) as peer:
        result = step_magic.ask("How big?", api="messages", base_url=peer.base_url, display=False)
    assert result.notes == ("the model called area, but no tools were offered: not run",)
    assert peer.requests == 1

    def volume(side: float) -> float:
        """Volume of a cube."""
        return side**3

    with SSEPeer(replies=[[SIGNED_TOOL_TURN], [ANSWER_TURN]]) as peer:
        offered = step_magic.ask(
            "How big?", api="messages", tools=[volume], base_url=peer.base_url, display=False
        )
    assert offered.notes == ("the model called area, not among the tools offered: not run",)
    assert offered.tool_calls[0].status == "error"
