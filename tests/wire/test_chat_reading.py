"""How a Chat Completions reply is read (``wire.chat``): the fields a chunk may or may not
carry, the usage shapes of different servers, and replies that are not a stream at all.

Each reply is written out as a server sends it and served by ``SSEPeer`` on 127.0.0.1, then
read through ``step_magic.ask`` as a user would; ``ChunkReader`` and ``DetailCollector`` are
also driven directly where their contract (what is kept across chunks) is the point.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from step_magic import StepAPIError, ask
from step_magic.core.events import AnswerDelta, Finished, ReasoningDelta, Rethought
from step_magic.server import LocalServer
from step_magic.wire import sse
from step_magic.wire.chat import ChunkReader, DetailCollector, is_whole

from ..sse_peer import JSON_HEAD, SSEPeer

DONE = b"data: [DONE]\n\n"


def chunk(delta: dict[str, Any] | None = None, reason: str | None = None, **top: Any) -> bytes:
    """One ``data:`` line of a streamed completion; ``top`` adds or overrides top-level fields."""
    choice = {"index": 0, "delta": delta or {}, "finish_reason": reason}
    payload = {"id": "cmpl-1", "object": "chat.completion.chunk", "choices": [choice]} | top
    return f"data: {json.dumps(payload)}\n\n".encode()


def whole(message: dict[str, Any], reason: str | None = "stop", **top: Any) -> bytes:
    """One JSON completion, as a server that ignored ``stream: true`` sends it."""
    choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": reason}
    return json.dumps({"id": "cmpl-w", "object": "chat.completion", "choices": [choice]} | top)


def streamed(pieces: list[bytes]) -> Any:
    with SSEPeer(pieces) as peer:
        return ask("2+2?", base_url=peer.base_url, display=False, history=False)


def answered_whole(body: str | bytes, head: bytes = JSON_HEAD) -> Any:
    raw = body.encode() if isinstance(body, str) else body
    with SSEPeer([raw], head=head) as peer:
        return ask("2+2?", base_url=peer.base_url, display=False, history=False)


def said(error: BaseException) -> str:
    """What an error line says after its ``API error … from HOST:`` prefix."""
    return str(error).split(": ", 1)[1]


# What a chunk carries once is kept when later chunks leave it out.


def test_the_id_usage_and_finish_reason_of_earlier_chunks_are_kept(api_env: LocalServer) -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    result = streamed(
        [
            chunk({"content": "Fo"}, id="cmpl-first", usage=usage),
            chunk({"content": "ur."}, "stop", id=""),  # an empty id is no id
            chunk({}, None, id=None),  # a last chunk without a finish reason
            DONE,
        ]
    )
    assert (result.answer, result.status) == ("Four.", "complete")
    assert result.completion_id == "cmpl-first"
    assert result.usage is not None
    assert (result.usage.prompt, result.usage.completion, result.usage.total) == (5, 2, 7)


def test_usage_sent_on_every_chunk_counts_as_of_the_last_one(api_env: LocalServer) -> None:
    """StepFun sends the running usage on every chunk: the last one is the bill."""
    result = streamed(
        [
            chunk({"content": "Fo"}, usage={"prompt_tokens": 5, "completion_tokens": 1}),
            chunk({"content": "ur."}, "stop", usage={"prompt_tokens": 5, "completion_tokens": 3}),
            DONE,
        ]
    )
    assert result.usage is not None
    assert (result.usage.prompt, result.usage.completion, result.usage.total) == (5, 3, 8)


def test_a_chunk_reader_keeps_the_latest_id_usage_and_reason_across_chunks() -> None:
    reader = ChunkReader()
    first = {"id": "a", "usage": {"prompt_tokens": 1, "completion_tokens": 1}, "choices": []}
    events = list(reader.feed(first))
    events += reader.feed({"id": "", "choices": [{"delta": {"content": "x"}, "finish_reason": ""}]})
    events += reader.feed({"choices": [{"delta": None, "finish_reason": "length"}]})
    events += reader.feed({"id": "b", "choices": [{"delta": {}, "finish_reason": None}]})
    assert events == [AnswerDelta("x")]
    assert (reader.completion_id, reader.finish_reason) == ("b", "length")
    (finished,) = reader.end("trace-1", None)
    assert isinstance(finished, Finished)
    assert (finished.finish_reason, finished.trace_id, finished.completion_id) == (
        "length",
        "trace-1",
        "b",
    )
    assert finished.usage is not None
    assert finished.usage.total == 2
    (given,) = ChunkReader().end(None, "given-id")
    assert isinstance(given, Finished)
    assert given.completion_id == "given-id"
    (nothing,) = ChunkReader().end(None, None)  # a server that never said: None, not ""
    assert nothing == Finished(None, None, None, None)


# Usage as different servers write it.


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}, (10, 4, 14, None)),
        ({"prompt_tokens": 10, "completion_tokens": 4}, (10, 4, 14, None)),  # no total: the sum
        (  # a total as the server reports it, even when it is not the sum (hidden tokens)
            {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 20},
            (10, 4, 20, None),
        ),
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 4,
                "prompt_tokens_details": {"cached_tokens": 6},
            },
            (10, 4, 14, 6),
        ),
        ({"prompt_tokens": 10, "completion_tokens": 4, "cached_tokens": 3}, (10, 4, 14, 3)),
        ({"prompt_tokens": 10, "completion_tokens": 4, "cached_tokens": 0}, (10, 4, 14, None)),
        ({"prompt_tokens": "10", "completion_tokens": "4"}, (10, 4, 14, None)),  # strings
        ({"prompt_tokens": "many", "completion_tokens": [4]}, (0, 0, 0, None)),  # not numbers
        ({"prompt_tokens": 1e999, "completion_tokens": None}, (0, 0, 0, None)),  # infinite
    ],
    ids=[
        "openai",
        "no-total",
        "total-as-sent",
        "details-cached",
        "stepfun-cached",
        "cached-0",
        "strings",
        "junk",
        "inf",
    ],
)
def test_usage_is_read_in_every_shape_servers_send(
    api_env: LocalServer, usage: dict[str, Any], expected: tuple[int, int, int, int | None]
) -> None:
    result = streamed([chunk({"content": "Four."}, "stop", usage=usage), DONE])
    assert result.usage is not None
    u = result.usage
    assert (u.prompt, u.completion, u.total, u.cached) == expected
    whole_result = answered_whole(whole({"content": "Four."}, usage=usage))
    assert whole_result.usage == result.usage


# Reasoning and answer text in each field a server may use.


def test_reasoning_content_is_read_when_reasoning_is_empty(api_env: LocalServer) -> None:
    result = streamed(
        [
            chunk({"reasoning": "", "reasoning_content": "Two and two."}),
            chunk({"reasoning_content": " Four.", "content": ""}),
            chunk({"content": "Four."}, "stop"),
            DONE,
        ]
    )
    assert (result.reasoning, result.answer) == ("Two and two. Four.", "Four.")


def test_inline_think_tags_split_reasoning_from_the_answer(api_env: LocalServer) -> None:
    result = streamed(
        [
            chunk({"content": "<think>Two and"}),
            chunk({"content": " two.</think>Four."}, "stop"),
            DONE,
        ]
    )
    assert (result.reasoning, result.answer) == ("Two and two.", "Four.")


def test_a_closing_think_tag_alone_moves_the_text_before_it_to_the_reasoning(
    api_env: LocalServer,
) -> None:
    """R1-style templates put ``<think>`` in the prompt: the reply holds only ``</think>``."""
    result = streamed(
        [chunk({"content": "Two and two."}), chunk({"content": "</think>Four."}, "stop"), DONE]
    )
    assert (result.reasoning, result.answer) == ("Two and two.", "Four.")
    reader = ChunkReader()
    events = [*reader.feed({"choices": [{"delta": {"content": "Hm.</think>A"}}]})]
    events += reader.feed({"choices": [{"delta": {"content": "</think>B"}}]})
    assert events == [
        Rethought(),
        ReasoningDelta("Hm."),
        AnswerDelta("A"),
        AnswerDelta("</think>B"),
    ]


def test_odd_content_and_typed_parts_are_skipped_and_a_plain_thinking_string_read(
    api_env: LocalServer,
) -> None:
    parts = [
        "not a part",
        {"type": "thinking", "thinking": "Two and two."},
        {
            "type": "thinking",
            "thinking": [
                {"type": "text", "text": " Four."},
                {"type": "x", "text": "?"},
                "s",
                {"type": "text", "text": 4},
            ],
        },
        {"type": "thinking", "thinking": []},
        {"type": "image_url", "image_url": {"url": "https://example.org/a.png"}},
        {"type": "text", "text": 4},
        {"type": "text", "text": "Four."},
    ]
    odd = [chunk({"content": 42}), chunk({"content": {"type": "text", "text": "?"}})]
    result = streamed([*odd, chunk({"content": parts}, "stop"), DONE])
    assert (result.reasoning, result.answer) == ("Two and two. Four.", "Four.")


def test_reasoning_details_entries_that_are_not_text_are_not_shown(api_env: LocalServer) -> None:
    details = [
        "junk",
        {"type": "reasoning.text", "text": "Two and two."},
        {"type": "reasoning.summary", "summary": " Four."},
        {"type": "reasoning.text", "text": None},
        {"type": "reasoning.encrypted", "data": "U0VDUkVU", "text": "SECRET"},
        {"type": "unknown", "text": "SECRET"},
    ]
    result = streamed(
        [chunk({"reasoning_details": details}), chunk({"content": "Four."}, "stop"), DONE]
    )
    assert (result.reasoning, result.answer) == ("Two and two. Four.", "Four.")
    assert "SECRET" not in repr(result)


def test_reasoning_details_pieces_are_joined_per_index_and_kept_whole() -> None:
    kept = DetailCollector()
    kept.feed(["junk", {"type": "reasoning.text", "text": "I need ", "index": 0, "id": None}])
    kept.feed([{"text": "the area.", "signature": "c2", "index": 0, "format": "f1"}])
    kept.feed([{"signature": "ln", "index": 0}, {"type": "reasoning.encrypted", "data": "ZW5j"}])
    kept.feed([{"type": "reasoning.text", "text": "own"}])  # no index: an entry of its own
    assert kept.kept() == (
        {
            "type": "reasoning.text",
            "text": "I need the area.",
            "index": 0,
            "signature": "c2ln",
            "format": "f1",
        },
        {"type": "reasoning.encrypted", "data": "ZW5j"},
        {"type": "reasoning.text", "text": "own"},
    )


def test_reasoning_details_stop_being_kept_at_their_limit_but_known_ones_still_grow() -> None:
    kept = DetailCollector()
    kept.feed([{"type": "reasoning.text", "text": str(i), "index": i} for i in range(300)])
    kept.feed([{"text": "+", "index": 0}, {"text": "new", "index": 999}, {"text": "!", "index": 0}])
    entries = kept.kept()
    assert len(entries) == DetailCollector.MAX_ENTRIES == 256
    assert entries[0]["text"] == "0+!"  # a piece after one over the limit still counts
    assert entries[-1]["text"] == "255"


# A reply that is not a stream.


def test_a_whole_json_reply_with_tool_calls_runs_them_and_sends_its_details_back(
    api_env: LocalServer,
) -> None:
    """A server that ignored ``stream: true`` in a tool loop: its calls run, and OpenRouter's
    ``reasoning_details`` go back unchanged with them, as in a streamed turn."""
    details = [{"type": "reasoning.encrypted", "data": "ZW5j", "index": 0}]
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "area", "arguments": '{"width": 2, "height": 3}'},
        }
    ]
    turn = whole(
        {
            "content": None,
            "tool_calls": calls,
            "reasoning": "I need the area.",
            "reasoning_details": details,
        },
        "tool_calls",
    )
    answer = whole({"content": "It is 6."}, usage={"prompt_tokens": 3, "completion_tokens": 2})
    with SSEPeer(replies=[[turn.encode()], [answer.encode()]], head=JSON_HEAD) as peer:
        result = ask("How big?", tools=[area], base_url=peer.base_url, display=False, history=False)
        second = json.loads(peer.bodies[1])
    assert (result.status, result.answer) == ("complete", "It is 6.")
    assert result.reasoning.startswith("I need the area.")
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": "6"}
    assert second["messages"][-2]["reasoning_details"] == details
    assert (result.trace_id, result.completion_id) == ("sse-peer-trace", "cmpl-w")


def area(width: int, height: int) -> int:
    """The area of a rectangle."""
    return width * height


@pytest.mark.parametrize(
    ("body", "status", "answer"),
    [
        (whole({"content": "Fo<think>"}, "length"), "truncated", "Fo<think>"),
        (whole({"content": "<think>Hm"}, None), "incomplete", ""),
    ],
    ids=["cut at the limit", "no finish reason"],
)
def test_a_whole_json_reply_ends_as_its_finish_reason_says(
    api_env: LocalServer, body: str, status: str, answer: str
) -> None:
    result = answered_whole(body)
    assert (result.status, result.answer) == (status, answer)


def test_a_whole_json_reply_keeps_what_the_think_tags_held_back(api_env: LocalServer) -> None:
    result = answered_whole(whole({"content": "<think>Two and two"}, "stop"))
    assert result.reasoning == "Two and two"
    result = answered_whole(whole({"content": "Four <"}, "stop"))
    assert result.answer == "Four <"


def test_a_whole_json_reply_without_choices_is_an_empty_reply(api_env: LocalServer) -> None:
    with pytest.raises(StepAPIError) as caught:
        answered_whole('{"id": "e", "choices": []}')
    assert "the server sent an empty reply (trace id sse-peer-trace)" in str(caught.value)


def test_a_whole_json_reply_that_is_not_a_completion_says_so(api_env: LocalServer) -> None:
    with pytest.raises(StepAPIError) as caught:
        answered_whole('{"id": "x", "choices": {"0": {}}}')
    said = str(caught.value).partition(": ")[2]  # after "API error from HOST:PORT"
    assert (
        said
        == "unreadable reply from the server (not a completion) (trace id sse-peer-trace, id x)"
    )


@pytest.mark.parametrize(
    "kind", ["text/html; charset=utf-8", "Text/HTML", "application/xhtml+xml", "text/xml"]
)
def test_a_page_instead_of_a_stream_is_named_by_its_content_type(
    api_env: LocalServer, kind: str
) -> None:
    head = JSON_HEAD.replace(b"application/json", kind.encode())
    with pytest.raises(StepAPIError) as caught:
        answered_whole(b"<html><body>Sign in</body></html>", head=head)
    what = kind.split(";")[0]
    assert (
        f"the server answered with {what}, not a stream of events: is --base-url an API endpoint?"
        in str(caught.value)
    )


def test_which_content_types_are_read_as_one_reply() -> None:
    for kind in (
        "application/json",
        " Application/JSON ; charset=utf-8",
        "application/problem+json",
        "text/html",
        "application/xhtml+xml",
        "text/xml",
    ):
        assert is_whole(kind), kind
    for kind in ("text/event-stream", "text/plain; charset=utf-8", "", "application/octet-stream"):
        assert not is_whole(kind), kind


def test_a_whole_reply_over_the_event_limit_is_stopped_there(
    api_env: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = whole({"content": "Four."})
    monkeypatch.setattr(sse, "MAX_EVENT_CHARS", len(body))
    assert answered_whole(body).answer == "Four."  # exactly the limit is read
    with pytest.raises(StepAPIError) as caught:
        answered_whole(body + " ")
    assert f"the reply from the server is over {len(body):,} bytes; it was stopped there" in str(
        caught.value
    )


# How the stream itself ends or fails (``chatwire.ChatWire.read_event``).


def test_nothing_after_done_is_read(api_env: LocalServer) -> None:
    """``[DONE]`` ends the reply, as in the openai SDK: a chunk after it is not the answer."""
    result = streamed([chunk({"content": "Four."}, "stop"), DONE, chunk({"content": " Five."})])
    assert (result.answer, result.status) == ("Four.", "complete")


@pytest.mark.parametrize("named", [b"", b"event: error\n"], ids=["unnamed", "named error"])
def test_an_error_in_the_stream_fails_the_reply_in_one_line_keeping_the_text(
    api_env: LocalServer, named: bytes
) -> None:
    failure = {"error": {"message": "The engine is overloaded", "type": "server_error"}}
    pieces = [chunk({"content": "Fo"}), named + f"data: {json.dumps(failure)}\n\n".encode()]
    with pytest.raises(StepAPIError) as caught:
        streamed(pieces)
    message = str(caught.value)
    assert "The engine is overloaded" in message
    assert "sse-peer-trace" in message  # the trace id to copy
    assert "\n" not in message
    assert caught.value.result.answer == "Fo"  # type: ignore[attr-defined]


def test_other_named_events_are_not_chunks(api_env: LocalServer) -> None:
    result = streamed(
        [
            b'event: ping\ndata: {"choices":[{"delta":{"content":"no"}}]}\n\n',
            chunk({"content": "Four."}, "stop"),
            DONE,
        ]
    )
    assert result.answer == "Four."


def test_a_reply_that_breaks_half_way_keeps_its_id_and_the_usage_it_reported(
    api_env: LocalServer,
) -> None:
    """The tokens were billed: a reply cut by a broken chunk keeps what its chunks said."""
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    pieces = [chunk({"content": "Fo"}, id="cmpl-cut", usage=usage), b"data: {not json\n\n"]
    with pytest.raises(StepAPIError) as caught:
        streamed(pieces)
    result = caught.value.result  # type: ignore[attr-defined]
    assert (result.answer, result.completion_id) == ("Fo", "cmpl-cut")
    assert result.usage is not None
    assert result.usage.total == 7


def test_a_last_event_without_its_blank_line_is_read(api_env: LocalServer) -> None:
    """The server closed right after its last ``data:`` line: the event is whole all the same
    (the SSE decoder dispatches what it holds at the end of the body)."""
    last = chunk({"content": "ur."}, "stop").rstrip(b"\n")
    result = streamed([chunk({"content": "Fo"}), last])
    assert (result.answer, result.status) == ("Four.", "complete")


def test_a_server_that_stalls_after_done_does_not_hold_the_reply(api_env: LocalServer) -> None:
    from ..sse_peer import RESPONSE_HEAD

    reply = RESPONSE_HEAD + chunk({"content": "Four."}, "stop") + DONE  # at once, then 3 s
    with SSEPeer([b": still here\n\n"], head=reply, pause=3) as peer:
        started = time.monotonic()
        result = ask("2+2?", base_url=peer.base_url, display=False, history=False)
        took = time.monotonic() - started
    assert (result.answer, result.status) == ("Four.", "complete")
    assert took < 2.5


def test_a_whole_reply_with_an_invalid_byte_is_read_and_one_that_is_not_json_says_so(
    api_env: LocalServer,
) -> None:
    raw = whole({"content": "Four."}).encode().replace(b"Four.", b"Fo\xffur.")  # not UTF-8
    assert answered_whole(raw).answer == "Fo\ufffdur."
    with pytest.raises(StepAPIError) as caught:
        answered_whole("{not json")
    assert said(caught.value).startswith("unreadable reply from the server (not JSON)")


def test_the_doctor_reads_a_delta_as_a_call_reads_it() -> None:
    """``step-magic doctor`` names the field the reasoning came in from one delta: every
    piece of text in it counts, in order, split by think tags as a call splits them."""
    from step_magic.wire.chat import delta_texts

    thinking = [{"type": "text", "text": "Two and "}, {"type": "text", "text": "two."}]
    parts = [
        {"type": "thinking", "thinking": thinking},
        {"type": "text", "text": "Fo"},
        {"type": "text", "text": "ur."},
    ]
    assert delta_texts({"content": parts}) == ("Two and two.", "Four.")
    assert delta_texts({"content": "<think>Sum.</think>Four."}) == ("Sum.", "Four.")
    assert delta_texts({"reasoning": "Sum.", "content": "Four."}) == ("Sum.", "Four.")


@pytest.mark.parametrize("system", [None, "Be brief."])
def test_a_refused_schema_is_asked_for_in_the_system_message(
    api_env: LocalServer, system: str | None
) -> None:
    """Added to the caller's own system message, or as the first message when there is
    none; the conversation after it is sent as it was."""
    from step_magic.wire import chat

    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    try:
        result = ask(
            "2+2?", schema=schema, system=system, model="fault-refuse-schema", display=False,
            history=False,
        )  # fmt: skip
    finally:
        chat.REFUSED_SCHEMA.discard(api_env.base_url)
    sent = api_env.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]
    assert sent[0]["content"].startswith(f"{system}\n\nAnswer with" if system else "Answer with")
    assert "JSON" in sent[0]["content"]
    assert sent[1]["content"] == "2+2?"
    assert result.parsed is not None


def test_reasoning_left_open_when_the_reply_ends_is_still_reasoning(api_env: LocalServer) -> None:
    """A ``<think>`` the model never closed is reasoning to the end, including what was held
    back because it might have begun a closing tag."""
    pieces = [chunk({"content": "<think>Still wei"}), chunk({"content": "ghing </thi"}), DONE]
    result = streamed(pieces)
    assert (result.reasoning, result.answer) == ("Still weighing </thi", "")


def test_an_id_that_is_not_text_is_no_id(api_env: LocalServer) -> None:
    result = streamed([chunk({"content": "Four."}, "stop", id=12345), DONE])
    assert result.completion_id is None


def test_a_whole_reply_in_pieces_and_one_that_is_not_an_object(api_env: LocalServer) -> None:
    body = whole({"content": "Four, " + "and more " * 2_000}).encode()
    pieces = [body[i : i + 4_096] for i in range(0, len(body), 4_096)]
    with SSEPeer(pieces, head=JSON_HEAD, pause=0.005) as peer:
        result = ask("2+2?", base_url=peer.base_url, display=False, history=False)
    assert result.answer.startswith("Four, and more and more")
    assert len(result.answer) == len("Four, " + "and more " * 2_000)
    with pytest.raises(StepAPIError) as caught:
        answered_whole("[1, 2]")
    assert said(caught.value).startswith("unreadable reply from the server (not a JSON object)")
