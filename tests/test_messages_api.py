"""The Messages API path (``--api messages``): real server, real HTTP, parity with the chat path.

``MessagesStream`` must be a drop-in for ``ReplyStream``: where the two can be compared they
run side by side on the same request and must yield the same events, finish reasons, usage
and error lines. Wire-level checks use ``http.client`` so nothing hides a protocol mistake.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPResponse
from typing import Any

import pytest

from step_magic.core.errors import StepAPIError
from step_magic.core.events import AnswerDelta, Event, Finished, ReasoningDelta, Usage, Waiting
from step_magic.core.request import ChatRequest
from step_magic.core.settings import Settings
from step_magic.server import LocalServer
from step_magic.wire.chatwire import ReplyStream
from step_magic.wire.messages import MessagesStream
from step_magic.wire.responses import ResponsesStream
from step_magic.wire.sse import ServerEvent, SSEDecoder

from .conftest import TEST_KEY
from .sse_peer import SSEPeer

MODEL = "step-3.7-flash"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()
Stream = type[ReplyStream] | type[MessagesStream] | type[ResponsesStream]
EVERY_API = pytest.mark.parametrize(
    "api", [ReplyStream, MessagesStream, ResponsesStream], ids=["chat", "messages", "responses"]
)


def settings(base_url: str, **extra: Any) -> Settings:
    return Settings(MODEL, base_url, TEST_KEY, **{"timeout": 10, **extra})


def ask(text: str = "Hi", model: str = MODEL, **extra: Any) -> ChatRequest:
    system = extra.pop("system", None)
    parts = extra.pop("parts", None)
    messages = [{"role": "system", "content": system}] if system else []
    content = [*parts, {"type": "text", "text": text}] if parts else text
    return ChatRequest(model, (*messages, {"role": "user", "content": content}), **extra)


@dataclass
class Reply:
    """What one stream yielded, and the error that ended it, if any."""

    events: list[Event] = field(default_factory=list)
    error: StepAPIError | None = None

    @property
    def reasoning(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, ReasoningDelta))

    @property
    def answer(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, AnswerDelta))

    @property
    def finished(self) -> Finished:
        last = self.events[-1]
        assert isinstance(last, Finished)
        return last


def run(api: Stream, server_url: str, request: ChatRequest, **extra: Any) -> Reply:
    reply = Reply()
    try:
        reply.events.extend(api(settings(server_url, **extra), request))
    except StepAPIError as error:
        reply.error = error
    return reply


def post(server: LocalServer, body: Any, headers: dict[str, str] | None = None) -> HTTPResponse:
    connection = HTTPConnection("127.0.0.1", server.port, timeout=10)
    auth = {"Authorization": f"Bearer {TEST_KEY}"} if headers is None else headers
    connection.request("POST", "/v1/messages", json.dumps(body), auth)
    return connection.getresponse()


def wire_events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, JSON data) of an SSE body whose events each carry an ``event:`` line."""
    events = []
    for block in data.decode().split("\n\n")[:-1]:
        name, payload = block.split("\n")
        assert name.startswith("event: ")
        assert payload.startswith("data: ")
        events.append((name[7:], json.loads(payload[6:])))
    return events


def body(stream: bool = True, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": "Hi"}]
    return {"model": MODEL, "max_tokens": 1024, "messages": messages, "stream": stream, **extra}


# Parity with the chat path


def test_the_same_request_yields_the_same_events_on_both_apis(server: LocalServer) -> None:
    request = ask("Compare both paths", system="Be brief.", effort="high")
    chat = run(ReplyStream, server.base_url, request)
    messages = run(MessagesStream, server.base_url, request)
    assert messages.events[:-1] == chat.events[:-1]  # every delta, token by token
    assert "reasoning effort high" in messages.reasoning
    assert "a system prompt was given" in messages.reasoning
    assert "- Effort: high" in messages.answer
    done, chat_done = messages.finished, chat.finished
    assert (done.finish_reason, done.usage) == (chat_done.finish_reason, chat_done.usage)
    assert done.completion_id is not None
    assert done.completion_id.startswith("msg_")
    assert done.trace_id
    assert done.trace_id != chat_done.trace_id


def test_the_request_uses_only_documented_fields_and_both_key_headers(
    server: LocalServer,
) -> None:
    request = ask("Hi", system="Be brief.", effort="low", temperature=0.3)
    assert run(MessagesStream, server.base_url, request).error is None
    received = server.requests[-1]
    assert (received.method, received.path) == ("POST", "/v1/messages")
    assert received.body == {
        "model": MODEL,
        "max_tokens": 8192,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "Hi"}],
        "temperature": 0.3,
        "output_config": {"effort": "low"},
        "stream": True,
    }
    assert received.headers["x-api-key"] == received.headers["authorization"]
    assert received.headers["anthropic-version"] == "2023-06-01"  # as the reference SDK sends
    assert TEST_KEY not in repr(received)


def test_an_explicit_max_tokens_is_sent_and_cuts_the_reply(server: LocalServer) -> None:
    reply = run(MessagesStream, server.base_url, ask(max_tokens=10))
    assert server.requests[-1].body["max_tokens"] == 10
    assert reply.finished.finish_reason == "length"
    assert reply.finished.usage is not None
    assert reply.finished.usage.completion == 10


@pytest.mark.parametrize(
    ("fault", "finish"),
    [("length", "length"), ("content-filter", "content_filter"), ("reasoning-only", "stop")],
)
def test_unusual_endings_match_the_chat_path(server: LocalServer, fault: str, finish: str) -> None:
    chat = run(ReplyStream, server.base_url, ask(model=f"fault-{fault}"))
    messages = run(MessagesStream, server.base_url, ask(model=f"fault-{fault}"))
    assert messages.finished.finish_reason == chat.finished.finish_reason == finish
    assert (messages.reasoning, messages.answer) == (chat.reasoning, chat.answer)


def test_cached_prompt_tokens_are_reported_like_the_chat_path(server: LocalServer) -> None:
    request = ask("data " * 400)
    first = run(MessagesStream, server.base_url, request).finished.usage
    second = run(MessagesStream, server.base_url, request).finished.usage
    chat = run(ReplyStream, server.base_url, request).finished.usage
    assert first is not None
    assert first.cached is None
    assert second == chat
    assert second is not None
    assert second.cached == second.prompt


# The server's Messages endpoint on the wire


def test_stream_sends_thinking_then_text_blocks_with_event_lines(server: LocalServer) -> None:
    response = post(server, body())
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/event-stream")
    assert response.getheader("X-Trace-Id")
    events = wire_events(response.read())
    assert all(name == data["type"] for name, data in events)
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    starts = [
        data["content_block"]["type"] for name, data in events if name == "content_block_start"
    ]
    assert starts == ["thinking", "text"]
    deltas = [data["delta"]["type"] for name, data in events if name == "content_block_delta"]
    assert deltas == sorted(deltas, reverse=True)  # thinking_delta… then text_delta…
    assert names.count("content_block_stop") == 2
    start, end = events[0][1]["message"], events[-2][1]
    assert start["id"].startswith("msg_")
    assert start["usage"]["input_tokens"] > 0
    assert end["delta"]["stop_reason"] == "end_turn"
    assert end["usage"]["output_tokens"] == len(deltas)


def test_non_streaming_reply_holds_the_same_blocks(server: LocalServer) -> None:
    streamed = run(MessagesStream, server.base_url, ask())
    response = post(server, body(stream=False))
    message = json.loads(response.read())
    assert response.getheader("X-Trace-Id")
    assert [block["type"] for block in message["content"]] == ["thinking", "text"]
    assert message["content"][0]["thinking"] == streamed.reasoning
    assert message["content"][1]["text"] == streamed.answer
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["output_tokens"] == streamed.finished.usage.completion  # type: ignore[union-attr]


def test_x_api_key_alone_is_accepted_on_messages_only(server: LocalServer) -> None:
    assert post(server, body(), {"x-api-key": TEST_KEY}).status == 200
    assert post(server, body(), {"x-api-key": "sk-wrong"}).status == 401
    assert post(server, body(), {}).status == 401
    connection = HTTPConnection("127.0.0.1", server.port, timeout=10)
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    connection.request("POST", "/v1/chat/completions", json.dumps(chat), {"x-api-key": TEST_KEY})
    assert connection.getresponse().status == 401


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"max_tokens": None}, "max_tokens is required"),
        ({"output_config": {"effort": "max"}}, "output_config.effort must be one of"),
        ({"model": "step-3.5-flash", "output_config": {"effort": "low"}}, "not supported"),
        ({"messages": [{"role": "system", "content": "x"}]}, "role user or assistant"),
        ({"messages": []}, "messages is required"),
        ({"system": 3}, "system must be"),
        ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "image block"),
    ],
)
def test_invalid_bodies_get_400_in_anthropic_shape(
    server: LocalServer, change: dict[str, Any], fragment: str
) -> None:
    response = post(server, body(**change))
    error = json.loads(response.read())
    assert response.status == 400
    assert error["type"] == "error"
    assert error["error"]["type"] == "request_params_invalid"
    assert fragment in error["error"]["message"]


# Images


def test_images_become_image_blocks_and_are_counted(server: LocalServer) -> None:
    parts = [
        {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"},
        },
        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg", "detail": "low"}},
    ]
    plain = run(MessagesStream, server.base_url, ask("look")).finished.usage
    reply = run(MessagesStream, server.base_url, ask("look", parts=parts))
    assert server.requests[-1].body["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}},
        {"type": "text", "text": "look"},
    ]
    assert "2 images and 0 videos" in reply.reasoning
    assert reply.finished.usage is not None
    assert plain is not None
    assert reply.finished.usage.prompt == plain.prompt + 800


def test_images_to_a_text_only_model_are_a_one_line_400(server: LocalServer) -> None:
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    error = run(MessagesStream, server.base_url, ask(model="step-3.5-flash", parts=[image])).error
    assert error is not None
    assert error.status == 400
    assert "step-3.5-flash does not accept image input" in str(error)
    assert f"trace id {error.trace_id}" in str(error)


def test_video_is_refused_before_anything_is_sent(server: LocalServer) -> None:
    video = {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}}
    error = run(MessagesStream, server.base_url, ask(parts=[video])).error
    assert error is not None
    assert "cannot carry video_url parts; use --api chat" in str(error)
    assert server.requests == []


# Errors and retries


def test_http_errors_read_the_same_on_both_apis(server: LocalServer) -> None:
    for fault in ("400", "402", "451", "401"):
        lines = []
        for api in (ReplyStream, MessagesStream):
            error = run(api, server.base_url, ask(model=f"fault-{fault}")).error
            assert error is not None
            assert error.trace_id
            assert f"API error {fault} from 127.0.0.1:{server.port}: " in str(error)
            assert "\n" not in str(error)
            lines.append(str(error).replace(error.trace_id, "<trace>"))
        assert lines[0] == lines[1]


@EVERY_API
@pytest.mark.parametrize("fault", ["529", "503"])
def test_overloaded_and_unavailable_are_retried_like_the_reference_sdks(
    server: LocalServer, api: Stream, fault: str
) -> None:
    server.config.fault, server.config.fault_times = fault, 1
    reply = run(api, server.base_url, ask())
    waits = [event for event in reply.events if isinstance(event, Waiting)]
    assert [(w.reason, w.attempt) for w in waits] == [
        ("overloaded" if fault == "529" else "server error 503", 1)
    ]
    assert reply.finished.finish_reason == "stop"
    assert len(server.requests) == 2


@EVERY_API
def test_a_wrong_key_is_a_one_line_401_with_the_region_hint(
    server: LocalServer, api: Stream
) -> None:
    reply = Reply()
    with pytest.raises(StepAPIError) as caught:
        reply.events.extend(api(Settings(MODEL, server.base_url, "sk-wrong"), ask()))
    assert caught.value.status == 401
    assert "(international) are not interchangeable" in str(caught.value)  # the server's hint
    assert "check the key this server expects" in str(caught.value)  # not StepFun's own
    assert f"trace id {caught.value.trace_id}" in str(caught.value)


@EVERY_API
def test_429_is_retried_after_the_servers_retry_after_then_succeeds(
    server: LocalServer, api: Stream
) -> None:
    server.config.retry_after = 0.2
    server.config.fault, server.config.fault_times = "429", 2
    started = time.monotonic()
    reply = run(api, server.base_url, ask())
    assert time.monotonic() - started >= 0.4
    waits = [event for event in reply.events if isinstance(event, Waiting)]
    assert waits == [Waiting("rate limited", 0.2, 1, 3), Waiting("rate limited", 0.2, 2, 3)]
    assert reply.finished.finish_reason == "stop"
    assert len(server.requests) == 3


@EVERY_API
def test_a_retry_after_above_the_cap_fails_at_once(server: LocalServer, api: Stream) -> None:
    server.config.fault, server.config.retry_after = "429", 120
    started = time.monotonic()
    error = run(api, server.base_url, ask()).error
    assert time.monotonic() - started < 5
    assert error is not None
    assert "the server asks to wait 120 s" in str(error)
    assert len(server.requests) == 1


@EVERY_API
def test_a_dropped_connection_mid_answer_keeps_the_partial_text(
    server: LocalServer, api: Stream
) -> None:
    full = run(api, server.base_url, ask()).answer
    reply = run(api, server.base_url, ask(model="fault-drop-answer"))
    assert reply.error is not None
    assert "connection" in str(reply.error)
    assert reply.error.trace_id
    assert reply.error.completion_id
    assert reply.reasoning
    assert reply.answer
    assert full.startswith(reply.answer)
    assert len(reply.answer) < len(full)
    assert len(server.requests) == 2  # text had arrived: no retry


@EVERY_API
@pytest.mark.parametrize(
    ("fault", "words"),
    [("error-event", "error while generating the reply"), ("malformed", "malformed chunk")],
)
def test_a_bad_event_mid_stream_is_one_line_after_the_partial_reasoning(
    server: LocalServer, api: Stream, fault: str, words: str
) -> None:
    reply = run(api, server.base_url, ask(model=f"fault-{fault}"))
    assert reply.error is not None
    assert words in str(reply.error)
    assert reply.error.status is None
    assert reply.error.trace_id
    assert reply.reasoning
    assert not reply.answer


def test_unknown_event_types_are_ignored(server: LocalServer) -> None:
    names = [
        name for name, _ in wire_events(post(server, body(model="fault-unknown-shape")).read())
    ]
    assert "step_meta" in names
    normal = run(MessagesStream, server.base_url, ask())
    odd = run(MessagesStream, server.base_url, ask(model="fault-unknown-shape"))
    assert odd.error is None
    assert odd.events[:-1] == normal.events[:-1]


def test_a_silent_server_times_out_in_one_line(server: LocalServer) -> None:
    server.config.fault, server.config.stall_seconds = "stall-mid", 10
    reply = run(MessagesStream, server.base_url, ask(), timeout=0.5)
    assert reply.error is not None
    assert "timed out; see --timeout" in str(reply.error)
    assert reply.reasoning


# close() from another thread


def iterate_in_thread(stream: MessagesStream) -> tuple[threading.Thread, list[Any]]:
    seen: list[Any] = []

    def pump() -> None:
        try:
            seen.extend(stream)
        except StepAPIError as error:
            seen.append(error)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread, seen


@pytest.mark.parametrize("api", ["messages", "chat", "responses"])
@pytest.mark.parametrize("fault", ["stall-before", "stall-mid", "429"])
def test_close_from_another_thread_ends_iteration_promptly(
    server: LocalServer, fault: str, api: str
) -> None:
    """On every wire API: the socket is shut down, so even a read blocked on a silent server
    ends at once (closing the HTTP client alone would wait for data or the timeout)."""
    from step_magic.wire.transport import open_stream

    server.config.fault, server.config.stall_seconds, server.config.retry_after = fault, 30, 20
    stream: Any = open_stream(settings(server.base_url, timeout=60, api=api), ask())
    thread, seen = iterate_in_thread(stream)
    deadline = time.monotonic() + 5
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)  # the request is sent (the first import of the SDK takes a while)
    while fault != "stall-before" and not seen and time.monotonic() < deadline:
        time.sleep(0.01)  # let the reasoning (or the retry wait) begin
    time.sleep(0.3)
    closed = time.monotonic()
    stream.close()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - closed < 2
    assert not any(isinstance(item, Finished | StepAPIError) for item in seen)
    assert len(server.requests) == 1


# SSE parsing, independent of the server


def test_sse_decoder_gives_the_same_events_however_the_bytes_are_split() -> None:
    raw = (
        '\ufeff: a comment\r\nevent: one\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
        "event:two\rdata:é€😀\r\rid: 7\nretry: 10\nunknown\ndata\n\n"
        ": only a comment\n\nevent: empty\n\ndata: last"
    ).encode()
    expected = [
        ServerEvent("one", '{"a":\n1}'),
        ServerEvent("two", "é€😀"),
        ServerEvent("message", ""),
        ServerEvent("message", "last"),
    ]
    for size in (1, 2, 3, 5, len(raw)):
        decoder = SSEDecoder()
        events = [e for i in range(0, len(raw), size) for e in decoder.feed(raw[i : i + size])]
        assert [*events, *decoder.finish()] == expected, size


def peer_stream() -> bytes:
    """A hand-written Anthropic-style stream with everything a careful client must survive."""
    events: list[tuple[str | None, dict[str, Any]]] = [
        ("message_start", {"message": {"id": "msg_peer", "usage": {"input_tokens": 7}}}),
        ("ping", {}),
        (
            "content_block_start",
            {"index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        ),
        (
            "content_block_delta",
            {"index": 0, "delta": {"type": "thinking_delta", "thinking": "Wäge\r"}},
        ),
        (
            "content_block_delta",
            {"index": 0, "delta": {"type": "signature_delta", "signature": "x"}},
        ),
        ("content_block_stop", {"index": 0}),
        ("vendor_extension", {"anything": [1, 2]}),
        ("content_block_start", {"index": 1, "content_block": {"type": "text", "text": "Ant"}}),
        (
            None,
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "text_delta", "text": "wort 😀\x00"},
            },
        ),
        (
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 5, "cache_read_input_tokens": 300},
            },
        ),
        ("message_stop", {}),
    ]
    lines = []
    for name, payload in events:
        head = f": keep-alive\r\nevent: {name}\r\n" if name else ""
        lines.append(f"{head}data: {json.dumps({'type': name, **payload})}\r\n\r\n")
    return "".join(lines).encode()


def test_a_hand_written_stream_split_into_tiny_writes_arrives_whole() -> None:
    data = peer_stream()
    with SSEPeer([data[i : i + 3] for i in range(0, len(data), 3)], pause=0.0005) as peer:
        reply = run(MessagesStream, peer.base_url, ask(), max_retries=0)
    assert reply.error is None
    assert reply.reasoning == "Wäge\r"
    assert reply.answer == "Antwort 😀\ufffd"  # control characters are replaced
    signed = ({"type": "thinking", "thinking": "Wäge\r", "signature": "x"},)  # raw, to go back
    assert reply.finished == Finished(
        "stop", Usage(307, 5, 312, 300), "sse-peer-trace", "msg_peer", (), signed
    )


@pytest.mark.parametrize(
    "payload",
    [
        b'event: error\ndata: {"type":"error","error":'
        b'{"type":"overloaded_error","message":"Overloaded"}}\n\n',
        b'data: {"error":{"message":"Overloaded","type":"server_error"}}\n\n',
    ],
    ids=["anthropic-shape", "stepfun-shape"],
)
def test_error_events_of_either_shape_are_understood(payload: bytes) -> None:
    with SSEPeer([payload]) as peer:
        error = run(MessagesStream, peer.base_url, ask(), max_retries=0).error
    assert error is not None
    where = f"127.0.0.1:{peer.port}"
    assert str(error) == f"API error from {where}: Overloaded (trace id sse-peer-trace)"


def test_nothing_after_message_stop_is_read() -> None:
    tail = b'event: message_stop\ndata: {"type":"message_stop"}\n\nevent: junk\ndata: {not json\n\n'
    with SSEPeer([peer_stream().split(b"event: message_stop")[0], tail]) as peer:
        reply = run(MessagesStream, peer.base_url, ask(), max_retries=0)
    assert reply.error is None
    assert reply.finished.finish_reason == "stop"
