"""How a Messages API reply is read (``wire.messages``): stop reasons, usage merged across
events, tool input whole or in pieces, signed thinking kept for the next turn, proxies'
oddities, and one JSON message instead of a stream.

Each reply is written out as a server sends it, served by ``SSEPeer`` on 127.0.0.1 and read
through ``step_magic.ask(api="messages")`` as a user would.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from step_magic import StepAPIError, ask
from step_magic.server import LocalServer
from step_magic.wire.messages import KeptThinking

from ..sse_peer import JSON_HEAD, SSEPeer


def event(payload: dict[str, Any], name: str | None = None) -> bytes:
    """One SSE event, named after its type unless ``name`` says otherwise ("" for none)."""
    name = payload.get("type", "") if name is None else name
    line = f"event: {name}\n" if name else ""
    return f"{line}data: {json.dumps(payload)}\n\n".encode()


def start(usage: dict[str, Any] | None = None, id: str = "msg_1") -> bytes:
    message = {"id": id, "type": "message", "role": "assistant", "content": [], "model": "m"}
    return event({"type": "message_start", "message": message | {"usage": usage or {}}})


def block(index: int, content: dict[str, Any]) -> bytes:
    return event({"type": "content_block_start", "index": index, "content_block": content})


def delta(index: int, content: dict[str, Any]) -> bytes:
    return event({"type": "content_block_delta", "index": index, "delta": content})


def stop(reason: str | None, usage: dict[str, Any] | None = None) -> bytes:
    payload: dict[str, Any] = {"type": "message_delta", "delta": {"stop_reason": reason}}
    return event(payload | ({"usage": usage} if usage else {}))


END = event({"type": "message_stop"})
FOUR = [block(0, {"type": "text", "text": ""}), delta(0, {"type": "text_delta", "text": "Four."})]


def streamed(pieces: list[bytes], **keywords: Any) -> Any:
    with SSEPeer(pieces) as peer:
        return ask(
            "2+2?", api="messages", base_url=peer.base_url, display=False, history=False, **keywords
        )


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("end_turn", "complete"),
        ("stop_sequence", "complete"),
        ("max_tokens", "truncated"),
        ("refusal", "filtered"),
        ("pause_turn", "complete"),  # a reason without a Chat Completions word passes unchanged
        (None, "incomplete"),
        ("", "incomplete"),
    ],
)
def test_each_stop_reason_ends_the_reply_as_the_chat_path_would(
    api_env: LocalServer, reason: str | None, status: str
) -> None:
    result = streamed([start(), *FOUR, stop(reason), END])
    assert (result.answer, result.status) == ("Four.", status)


def test_a_later_message_delta_without_a_stop_reason_keeps_the_earlier_one(
    api_env: LocalServer,
) -> None:
    result = streamed([start(), *FOUR, stop("max_tokens"), stop(None), END])
    assert result.status == "truncated"


def test_usage_of_message_start_and_message_delta_is_merged(api_env: LocalServer) -> None:
    first = {
        "input_tokens": 12,
        "cache_read_input_tokens": 4,
        "cache_creation_input_tokens": 2,
        "output_tokens": 1,
    }
    result = streamed(
        [start(first), *FOUR, stop("end_turn", {"output_tokens": 9, "input_tokens": "x"}), END]
    )
    assert result.usage is not None
    u = result.usage
    assert (u.prompt, u.completion, u.total, u.cached) == (18, 9, 27, 4)
    assert result.completion_id == "msg_1"


def test_usage_without_cache_reads_has_no_cached_count(api_env: LocalServer) -> None:
    result = streamed(
        [start({"input_tokens": 3}), *FOUR, stop("end_turn", {"output_tokens": 2}), END]
    )
    assert result.usage is not None
    assert (result.usage.prompt, result.usage.completion, result.usage.cached) == (3, 2, None)


def test_a_count_the_server_leaves_out_is_zero(api_env: LocalServer) -> None:
    """A proxy that reports only output tokens, or only input tokens: the other is 0."""
    only_output = streamed([start({}), *FOUR, stop("end_turn", {"output_tokens": 2}), END])
    only_input = streamed([start({"input_tokens": 3}), *FOUR, stop("end_turn"), END])
    assert only_output.usage is not None
    assert only_input.usage is not None
    assert (only_output.usage.prompt, only_output.usage.completion) == (0, 2)
    assert (only_input.usage.prompt, only_input.usage.completion) == (3, 0)


@pytest.mark.parametrize(
    ("tail", "completion"),
    [([], 1), ([stop(None, {"output_tokens": 9})], 9)],
    ids=["start", "delta"],
)
def test_a_reply_that_fails_half_way_keeps_the_usage_it_had_received(
    api_env: LocalServer, tail: list[bytes], completion: int
) -> None:
    """The tokens of a reply that failed half-way were billed: its usage is kept."""
    broken = b"event: content_block_delta\ndata: {not json\n\n"
    with pytest.raises(StepAPIError) as caught:
        streamed([start({"input_tokens": 12, "output_tokens": 1}), *FOUR, *tail, broken])
    partial = caught.value.result
    assert partial.answer == "Four."
    assert partial.usage is not None
    assert (partial.usage.prompt, partial.usage.completion) == (12, completion)


def test_a_reply_without_usage_has_none(api_env: LocalServer) -> None:
    message = {"id": "msg_2", "type": "message", "content": [], "usage": None}
    result = streamed(
        [event({"type": "message_start", "message": message}), *FOUR, stop("end_turn"), END]
    )
    assert result.usage is None
    assert result.completion_id == "msg_2"


def test_thinking_and_text_arrive_from_block_starts_and_deltas(api_env: LocalServer) -> None:
    pieces = [
        start(),
        block(0, {"type": "thinking", "thinking": "Two and", "signature": ""}),
        delta(0, {"type": "thinking_delta", "thinking": " two."}),
        delta(0, {"type": "text_delta", "thinking": "not text"}),  # a key of another type
        delta(0, {"type": "thinking_delta", "text": "not thinking"}),
        block(1, {"type": "text", "text": "Fo"}),
        delta(1, {"type": "text_delta", "text": "ur."}),
        delta(1, {"type": "text_delta", "text": 4}),
        stop("end_turn"),
        END,
    ]
    result = streamed(pieces)
    assert (result.reasoning, result.answer) == ("Two and two.", "Four.")


def test_a_proxys_done_marker_and_unnamed_events_are_read(api_env: LocalServer) -> None:
    """Some proxies send every event unnamed (the type is in the data) and end on ``[DONE]``."""
    pieces = [
        event(
            {"type": "message_start", "message": {"id": "msg_p", "usage": {"input_tokens": 2}}}, ""
        ),
        event(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Four."},
            },
            "",
        ),
        event({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}, ""),
        b"data: [1, 2]\n\n",  # not an object: skipped
        b"data: {}\n\n",  # no type, no error: a keep-alive, skipped
        b"data:  [DONE] \n\n",
        b"data: {not json\n\n",  # after the end: never read
    ]
    result = streamed(pieces)
    assert (result.answer, result.status, result.completion_id) == ("Four.", "complete", "msg_p")


def area(width: int, height: int) -> int:
    """The area of a rectangle."""
    return width * height


ANSWER = [start(), *FOUR, stop("end_turn"), END]


def test_events_named_only_in_their_event_line_are_read(api_env: LocalServer) -> None:
    """The event line names the type; a server may leave ``type`` out of the data."""
    pieces = [
        b'event: message_start\ndata: {"message": {"id": "msg_n"}}\n\n',
        b'event: content_block_delta\ndata: {"index": 0, "delta": {"type": "text_delta",'
        b' "text": "Four."}}\n\n',
        b'event: message_delta\ndata: {"delta": {"stop_reason": "end_turn"}}\n\n',
        b"event: message_stop\ndata: {}\n\n",
    ]
    result = streamed(pieces)
    assert (result.answer, result.status, result.completion_id) == ("Four.", "complete", "msg_n")


def test_a_stop_reason_that_is_not_text_is_ignored(api_env: LocalServer) -> None:
    result = streamed([start(), *FOUR, stop({"type": "end_turn"}), END])  # type: ignore[arg-type]
    assert (result.answer, result.status) == ("Four.", "incomplete")


def test_two_tool_use_blocks_of_a_whole_json_message_run_both(api_env: LocalServer) -> None:
    message = {
        "id": "msg_t",
        "type": "message",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "area",
                "input": {"width": 2, "height": 3},
            },
            {
                "type": "tool_use",
                "id": "toolu_2",
                "name": "area",
                "input": {"width": 4, "height": 5},
            },
        ],
        "stop_reason": "tool_use",
    }
    answer = {
        "id": "msg_a",
        "type": "message",
        "content": [{"type": "text", "text": "6 and 20."}],
        "stop_reason": "end_turn",
    }
    replies = [[json.dumps(message).encode()], [json.dumps(answer).encode()]]
    with SSEPeer(replies=replies, head=JSON_HEAD) as peer:
        result = ask(
            "How big?",
            api="messages",
            tools=[area],
            base_url=peer.base_url,
            display=False,
            history=False,
        )
        second = json.loads(peer.bodies[1])
    assert (result.status, result.answer) == ("complete", "6 and 20.")
    results = [(b["tool_use_id"], b["content"]) for b in second["messages"][-1]["content"]]
    assert results == [("toolu_1", "6"), ("toolu_2", "20")]


@pytest.mark.parametrize(
    "call",
    [
        [
            block(
                1,
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "area",
                    "input": {"width": 2, "height": 3},
                },
            )
        ],
        [
            block(1, {"type": "tool_use", "id": "toolu_1", "name": "area", "input": {}}),
            delta(1, {"type": "input_json_delta", "partial_json": '{"width": 2, '}),
            delta(1, {"type": "input_json_delta", "partial_json": '"height": 3}'}),
        ],
    ],
    ids=["whole input", "input in pieces"],
)
def test_a_tool_use_block_runs_the_tool_with_its_input(
    api_env: LocalServer, call: list[bytes]
) -> None:
    turn = [
        start(),
        block(0, {"type": "text", "text": "Let me see."}),
        *call,
        stop("tool_use"),
        END,
    ]
    with SSEPeer(replies=[turn, ANSWER]) as peer:
        result = ask(
            "How big?",
            api="messages",
            tools=[area],
            base_url=peer.base_url,
            display=False,
            history=False,
        )
        second = json.loads(peer.bodies[1])
    assert (result.status, result.answer) == ("complete", "Four.")
    assert [c.name for c in result.tool_calls] == ["area"]
    sent_back = second["messages"][-1]["content"][0]
    assert (sent_back["type"], sent_back["tool_use_id"], sent_back["content"]) == (
        "tool_result",
        "toolu_1",
        "6",
    )
    called = second["messages"][-2]["content"]
    assert called[-1] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "area",
        "input": {"width": 2, "height": 3},
    }


def test_kept_thinking_is_joined_per_block_and_only_when_signed() -> None:
    kept = KeptThinking()
    kept.feed(0, {"type": "signature_delta", "signature": "early"})  # before any block: nothing
    kept.feed(0, {"type": "thinking", "thinking": "Two", "signature": ""})
    kept.feed(0, {"type": "thinking_delta", "thinking": " and two."})
    kept.feed(None, {"type": "signature_delta", "signature": "c2"})  # no index: the last block
    kept.feed(0, {"type": "signature_delta", "signature": "ln"})
    kept.feed(0, {"type": "signature_delta", "signature": 7})  # not text: no piece
    kept.feed(1, {"type": "thinking", "thinking": "unsigned"})
    kept.feed(None, {"type": "redacted_thinking", "data": "ZW5j"})  # no index: the next place
    kept.feed(7, {"type": "thinking_delta", "thinking": "to no block"})
    kept.feed(0, {"type": "text", "text": "Four."})
    assert kept.blocks() == (
        {"type": "thinking", "thinking": "Two and two.", "signature": "c2ln"},
        {"type": "redacted_thinking", "data": "ZW5j"},
    )


def test_a_whole_json_message_is_read_as_one_reply(api_env: LocalServer) -> None:
    message = {
        "id": "msg_w",
        "type": "message",
        "content": [
            {"type": "thinking", "thinking": "Two and two.", "signature": "c2ln"},
            "junk",
            {"type": "text", "text": "Four."},
        ],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 5, "output_tokens": 2},
    }
    with SSEPeer([json.dumps(message).encode()], head=JSON_HEAD) as peer:
        result = ask("2+2?", api="messages", base_url=peer.base_url, display=False, history=False)
    assert (result.reasoning, result.answer, result.status) == (
        "Two and two.",
        "Four.",
        "truncated",
    )
    assert result.usage is not None
    assert (result.usage.prompt, result.usage.completion) == (5, 2)
    assert result.completion_id == "msg_w"


@pytest.mark.parametrize(
    "body",
    [
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        {"error": {"message": "Overloaded", "type": "server_error"}},
        {"type": "error", "message": "Overloaded"},  # a proxy's flat error object
    ],
    ids=["anthropic-shape", "stepfun-shape", "flat"],
)
def test_an_error_in_a_whole_json_reply_is_the_servers_message(
    api_env: LocalServer, body: dict[str, Any]
) -> None:
    with (
        SSEPeer([json.dumps(body).encode()], head=JSON_HEAD) as peer,
        pytest.raises(StepAPIError) as caught,
    ):
        ask(
            "2+2?",
            api="messages",
            base_url=peer.base_url,
            display=False,
            history=False,
            max_retries=0,
        )
    assert (
        str(caught.value)
        == f"API error from 127.0.0.1:{peer.port}: Overloaded (trace id sse-peer-trace)"
    )


def test_a_whole_json_message_without_content_is_an_empty_reply(api_env: LocalServer) -> None:
    message = {"id": "msg_e", "type": "message", "content": None, "stop_reason": "end_turn"}
    with (
        SSEPeer([json.dumps(message).encode()], head=JSON_HEAD) as peer,
        pytest.raises(StepAPIError) as caught,
    ):
        ask("2+2?", api="messages", base_url=peer.base_url, display=False, history=False)
    assert str(caught.value) == (
        f"API error from 127.0.0.1:{peer.port}: the server sent an empty reply"
        " (trace id sse-peer-trace)"
    )
