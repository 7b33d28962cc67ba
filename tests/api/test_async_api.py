"""The asyncio API: ``ask_async``, ``stream_async`` and ``Chat``'s async methods.

Each test runs its coroutine with ``asyncio.run``, as a script would, against the bundled
server over real HTTP. The async calls are the same calls as the sync ones: the same request,
result, errors and history; what differs is that many run on one event loop, a task each.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

import step_magic
from step_magic.server import LocalServer

from ..conftest import TEST_KEY


def test_ask_async_is_the_same_call_as_ask(api_env: LocalServer) -> None:
    sync = step_magic.ask("Why is the sky blue?", effort="high", system="Be brief.")
    sent_sync = api_env.requests[-1].body

    result = asyncio.run(
        step_magic.ask_async("Why is the sky blue?", effort="high", system="Be brief.")
    )

    assert api_env.requests[-1].body == sent_sync
    assert result.status == "complete"
    assert (result.reasoning, result.answer) == (sync.reasoning, sync.answer)
    assert result.trace_id
    assert result.trace_id != sync.trace_id
    assert result.usage == sync.usage
    logged = step_magic.history(2)
    assert [record.answer for record in logged] == [result.answer, sync.answer]


@pytest.mark.parametrize("api", ["chat", "messages", "responses"])
def test_every_wire_api_answers_on_the_event_loop(api_env: LocalServer, api: str) -> None:
    result = asyncio.run(step_magic.ask_async("Compare", api=api, model="step-3.7-flash"))

    assert result.status == "complete"
    assert result.reasoning
    assert result.answer
    assert result.completion_id
    path = {"chat": "/v1/chat/completions"}.get(api, f"/v1/{api}")
    assert api_env.requests[-1].path == path


def test_many_calls_at_once_share_one_thread(api_env: LocalServer) -> None:
    """Fifty replies in flight together, each a task: no thread per call (the in-process
    server's own connection threads aside), every reply whole, every call in the history."""
    api_env.config.tokens_per_second = 40
    api_env.config.reasoning_tokens, api_env.config.answer_tokens = 20, 10
    ours: set[str] = set()

    async def main() -> list[step_magic.StepResult]:
        calls = asyncio.gather(*(step_magic.ask_async(f"Question {n}") for n in range(50)))
        while len(api_env.requests) < 50:  # sample the threads while all are in flight
            ours.update(t.name for t in threading.enumerate() if _not_the_servers(t))
            await asyncio.sleep(0.01)
        ours.update(t.name for t in threading.enumerate() if _not_the_servers(t))
        return await calls

    before = {t.name for t in threading.enumerate() if _not_the_servers(t)}
    results = asyncio.run(main())

    assert ours <= before | {"asyncio_0"}  # at most the loop's one resolver thread
    assert [r.status for r in results] == ["complete"] * 50
    assert len({r.trace_id for r in results}) == 50
    assert len(step_magic.history(100)) == 50


def _not_the_servers(thread: threading.Thread) -> bool:
    return "process_request" not in thread.name and "serve" not in thread.name


def test_stream_async_yields_events_while_the_reply_arrives(api_env: LocalServer) -> None:
    api_env.config.tokens_per_second = 100
    api_env.config.reasoning_tokens, api_env.config.answer_tokens = 90, 30

    async def main() -> list[tuple[float, Any]]:
        seen: list[tuple[float, Any]] = []
        started = time.monotonic()
        async for event in step_magic.stream_async("Think slowly"):
            seen.append((time.monotonic() - started, event))
        return seen

    seen = asyncio.run(main())
    kinds = [event.kind for _, event in seen]
    assert kinds[0] == "reasoning"
    assert kinds[-1] == "done"
    assert {"reasoning", "answer", "usage"} <= set(kinds)
    assert seen[-1][0] - seen[0][0] > 0.5  # text came while the server was still sending
    done = seen[-1][1]
    assert "".join(e.text for _, e in seen if e.kind == "answer") == done.result.answer


def test_leaving_a_stream_early_closes_the_call_and_keeps_what_arrived(
    api_env: LocalServer,
) -> None:
    api_env.config.tokens_per_second = 40
    api_env.config.reasoning_tokens = 400  # ten seconds of reasoning

    async def main() -> str:
        text = ""
        async for event in step_magic.stream_async("A long thought"):
            text += event.text
            if len(text) > 20:
                break
        return text

    started = time.monotonic()
    text = asyncio.run(main())
    assert time.monotonic() - started < 5
    [record] = step_magic.history(5)
    assert record.status == "interrupted"
    assert record.reasoning.startswith(text)


def test_a_cancelled_call_raises_cancelled_and_is_kept_as_interrupted(
    api_env: LocalServer,
) -> None:
    api_env.config.tokens_per_second = 40
    api_env.config.reasoning_tokens = 400

    async def main() -> None:
        async with asyncio.timeout(1.0):
            await step_magic.ask_async("A long thought", display=False)

    started = time.monotonic()
    with pytest.raises(TimeoutError):  # asyncio.timeout turns our CancelledError into this
        asyncio.run(main())
    assert time.monotonic() - started < 5
    [record] = step_magic.history(5)
    assert record.status == "interrupted"


def test_a_failed_call_raises_the_same_one_line_error_with_the_partial_reply(
    api_env: LocalServer,
) -> None:
    with pytest.raises(step_magic.StepAPIError) as caught:
        asyncio.run(step_magic.ask_async("hi", model="fault-drop-answer"))
    assert caught.value.result.status == "failed"
    assert caught.value.result.reasoning
    assert "\n" not in str(caught.value)
    assert TEST_KEY not in str(caught.value)


def test_bad_input_is_refused_before_anything_is_sent(api_env: LocalServer) -> None:
    with pytest.raises(step_magic.InputError, match="takes no reasoning effort"):
        asyncio.run(step_magic.ask_async("hi", model="step-3.5-flash", effort="high"))
    with pytest.raises(step_magic.InputError, match="unknown keyword"):
        step_magic.stream_async("hi", efort="high")  # checked before iteration starts
    assert api_env.requests == []


def test_the_deadline_holds_on_the_event_loop(api_env: LocalServer) -> None:
    api_env.config.tokens_per_second = 20
    api_env.config.reasoning_tokens = 400
    started = time.monotonic()
    with pytest.raises(step_magic.StepAPIError, match="deadline of 1 s"):
        asyncio.run(step_magic.ask_async("A long thought", deadline=1))
    assert time.monotonic() - started < 5


def test_retries_wait_on_the_loop_and_then_answer(api_env: LocalServer) -> None:
    api_env.config.fault, api_env.config.fault_times = "429", 1
    api_env.config.retry_after = 0.2
    result = asyncio.run(step_magic.ask_async("hi"))
    assert result.status == "complete"
    assert len(api_env.requests) == 2


def test_tools_run_in_a_worker_thread_and_the_loop_stays_free(api_env: LocalServer) -> None:
    ran_on: list[str] = []

    def revenue(month: str) -> float:
        """Revenue of one month (YYYY-MM)."""
        ran_on.append(threading.current_thread().name)
        return 1234.5

    async def main() -> tuple[step_magic.StepResult, list[str]]:
        events = [event.kind async for event in step_magic.stream_async("Why?", tools=[revenue])]
        return await step_magic.ask_async("Why does revenue dip?", tools=[revenue]), events

    result, kinds = asyncio.run(main())
    assert result.tool_calls
    assert result.tool_calls[0].status == "ok"
    assert result.steps == 2
    assert {"tool_call", "tool_result"} <= set(kinds)
    assert ran_on
    assert threading.main_thread().name not in ran_on


def test_an_async_chat_remembers_like_a_chat(api_env: LocalServer) -> None:
    async def main() -> int:
        async with step_magic.Chat("lesson", effort="low") as chat:
            await chat.ask_async("My name is Ada.")
            [event.kind async for event in chat.stream_async("What is my name?")]
            return len(chat.turns)

    assert asyncio.run(main()) == 2
    sent = api_env.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "My name is Ada."
    with step_magic.Chat("lesson") as resumed:  # and the thread is in the history
        assert len(resumed.turns) == 2


def test_a_replayed_reply_plays_on_the_loop(api_env: LocalServer, tmp_path: Any) -> None:
    cassette = tmp_path / "lesson.jsonl"
    live = step_magic.ask("Record me", cassette=cassette)
    api_env.reset()
    replayed = asyncio.run(step_magic.ask_async("Record me", cassette=cassette, replay=True))
    assert replayed.replayed
    assert replayed.answer == live.answer
    assert api_env.requests == []


def test_asks_awaited_together_on_one_chat_are_turns_one_after_another(
    api_env: LocalServer,
) -> None:
    """A conversation has an order: the second call is sent with the first's answer."""

    async def main() -> list[str]:
        async with step_magic.Chat("lesson", history=False) as chat:
            first, second = await asyncio.gather(
                chat.ask_async("My name is Ada.", display=False),
                chat.ask_async("What is my name?", display=False),
            )
            assert [t.user["content"] for t in chat.turns] == [
                "My name is Ada.",
                "What is my name?",
            ]
            return [first.answer, second.answer]

    answers = asyncio.run(main())
    first, second = (r.body["messages"] for r in api_env.requests)
    assert [m["content"] for m in first] == ["My name is Ada."]
    assert [m["content"] for m in second] == ["My name is Ada.", answers[0], "What is my name?"]
    with step_magic.Chat("lesson", history=False) as chat:  # and a chat moves between loops
        assert asyncio.run(chat.ask_async("Hi", display=False)).status == "complete"
        assert asyncio.run(chat.ask_async("Hi again", display=False)).status == "complete"


def test_a_call_cancelled_inside_a_tool_ends_now_and_the_tool_is_interrupted(
    api_env: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A thread cannot be stopped, so the running function finishes on its own; the call
    does not wait for it, marks it interrupted, and shows nothing it does after."""
    started, release = threading.Event(), threading.Event()

    def revenue(month: str) -> float:
        """Revenue of one month (YYYY-MM)."""
        started.set()
        release.wait(10)
        return 1234.5

    async def main() -> tuple[Any, list[str], str]:
        task = asyncio.create_task(
            step_magic.ask_async("Why does revenue dip?", tools=[revenue], display=True)
        )
        await asyncio.to_thread(started.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as cancelled:
            await task
        result = cancelled.value.result  # type: ignore[attr-defined]
        at_the_end = [record.status for record in result.tool_calls]
        shown = capsys.readouterr().out
        release.set()  # the tool returns now; asyncio.run waits for its thread
        return result, at_the_end, shown

    result, at_the_end, shown = asyncio.run(main())
    assert at_the_end == ["interrupted"]
    assert [record.status for record in result.tool_calls] == ["interrupted"]  # still
    assert "revenue" in shown
    assert capsys.readouterr().out == ""  # nothing shown after the call ended
    assert len(api_env.requests) == 1  # no turn sent with the tool's late result


# The wire on the loop (``wire.asyncstream``) fails, waits and reads as the thread's does.

ERROR_HEAD = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
ERROR_HEAD += b"X-Trace-Id: sse-peer-trace\r\nConnection: close\r\n\r\n"


def both_errors(pieces: list[bytes], head: bytes = ERROR_HEAD) -> tuple[str, str]:
    """The error line of one call on a thread and of the same call on the loop."""
    from ..sse_peer import SSEPeer

    lines = []
    with SSEPeer(pieces, head=head, pause=0.02) as peer:
        for call in (step_magic.ask, lambda *a, **k: asyncio.run(step_magic.ask_async(*a, **k))):
            with pytest.raises(step_magic.StepAPIError) as caught:
                call("hi", base_url=peer.base_url, display=False, history=False)
            lines.append(str(caught.value))
    return lines[0], lines[1]


def test_an_error_body_in_pieces_is_read_whole_on_the_loop(api_env: LocalServer) -> None:
    body = json.dumps({"error": {"message": "Your prompt was flagged", "type": "invalid"}})
    on_thread, on_loop = both_errors([body[:20].encode(), body[20:].encode()])
    assert "Your prompt was flagged" in on_loop
    assert on_loop == on_thread


def test_a_huge_error_body_is_read_to_its_cap_and_shown_cut_on_the_loop(
    api_env: LocalServer,
) -> None:
    from step_magic.wire.httpstream import MAX_ERROR_BYTES

    body = b'{"error": {"message": "' + b"x" * (MAX_ERROR_BYTES + 500_000) + b'"}}'
    pieces = [body[i : i + 65_536] for i in range(0, len(body), 65_536)]
    on_thread, on_loop = both_errors(pieces)
    assert on_loop == on_thread
    assert "\n" not in on_loop
    assert len(on_loop) < 5_000


@pytest.mark.parametrize(
    ("kind", "body", "shown"),
    [
        ("text/plain", b"Blocked by the\n proxy policy ", "Blocked by the proxy policy"),
        ("text/html", b"<html><body><h1>Forbidden</h1>" + b"<p>x</p>" * 500, "Forbidden"),
        ("text/html", b'<html><script>{"message": "evil"}' + b" " * 1_100_000, "Forbidden"),
    ],
    ids=["plain text", "a page", "a page over the cap"],
)
def test_an_error_that_is_not_json_shows_its_words_but_not_a_page(
    api_env: LocalServer, kind: str, body: bytes, shown: str
) -> None:
    head = f"HTTP/1.1 403 Forbidden\r\nContent-Type: {kind}\r\nConnection: close\r\n\r\n"
    on_thread, on_loop = both_errors([body], head=head.encode())
    assert on_loop == on_thread
    assert "API error 403 from 127.0.0.1:" in on_loop
    assert on_loop.split(": ", 1)[1].startswith(shown)
    assert "<" not in on_loop


def test_an_unauthorised_key_fails_at_once_on_the_loop(api_env: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(step_magic.StepAPIError, match="401"):
        asyncio.run(step_magic.ask_async("hi", model="fault-401"))
    assert time.monotonic() - started < 3
    assert len(api_env.requests) == 1  # not retried


def test_a_retry_is_announced_then_waited_on_the_loop(api_env: LocalServer) -> None:
    api_env.config.fault, api_env.config.fault_times = "429", 1
    api_env.config.retry_after = 0.5

    async def main() -> list[str]:
        return [event.kind async for event in step_magic.stream_async("hi")]

    started = time.monotonic()
    kinds = asyncio.run(main())
    assert "waiting" in kinds
    assert kinds[-1] == "done"
    assert time.monotonic() - started >= 0.5  # the server's Retry-After, waited


@pytest.mark.parametrize("where", ["thread", "loop"])
def test_a_silent_server_times_out_after_the_timeout_given(
    api_env: LocalServer, where: str
) -> None:
    api_env.config.first_byte_delay = 10
    started = time.monotonic()
    if where == "thread":
        call = lambda: step_magic.ask("hi", timeout=1, max_retries=0, display=False)  # noqa: E731
    else:
        call = lambda: asyncio.run(step_magic.ask_async("hi", timeout=1, max_retries=0))  # noqa: E731
    with pytest.raises(step_magic.StepAPIError, match=r"no data from .* for 1 s \(timed out"):
        call()
    assert time.monotonic() - started < 4  # not the HTTP library's default of 5 s


def test_a_self_signed_certificate_is_refused_on_the_loop(
    api_env: LocalServer, self_signed: Any
) -> None:
    from ..sse_peer import SSEPeer

    with (
        SSEPeer([b"data: [DONE]\n\n"], tls=self_signed) as https,
        pytest.raises(step_magic.StepAPIError, match=r"(?i)certificate verify failed"),
    ):
        asyncio.run(step_magic.ask_async("hi", base_url=https.base_url, timeout=3))
    assert https.handshake_failures
    assert https.requests == 0  # no request, and no key, went over that connection


def test_a_server_that_ignores_stream_true_is_read_whole_on_the_loop(
    api_env: LocalServer,
) -> None:
    on_thread = step_magic.ask("Why is the sky blue?", model="fault-non-streamed", effort="low")
    on_loop = asyncio.run(
        step_magic.ask_async("Why is the sky blue?", model="fault-non-streamed", effort="low")
    )
    assert on_loop.status == on_thread.status == "complete"
    assert (on_loop.answer, on_loop.reasoning) == (on_thread.answer, on_thread.reasoning)


def test_a_whole_json_reply_in_pieces_is_read_whole_on_the_loop(api_env: LocalServer) -> None:
    from ..sse_peer import JSON_HEAD, SSEPeer

    message = {"role": "assistant", "content": "Four, " + "and more " * 2_000}
    reply = {"id": "c", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}
    body = json.dumps(reply).encode()
    pieces = [body[i : i + 4_096] for i in range(0, len(body), 4_096)]
    with SSEPeer(pieces, head=JSON_HEAD, pause=0.005) as peer:
        result = asyncio.run(step_magic.ask_async("2+2?", base_url=peer.base_url, display=False))
    assert (result.status, result.answer) == ("complete", message["content"])


def closed_port() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"  # nothing listens there now


FAILURE = json.dumps({"error": {"message": "The engine is overloaded"}}).encode()
NO_TYPE_HEAD = b"HTTP/1.1 200 OK\r\nX-Trace-Id: sse-peer-trace\r\nConnection: close\r\n\r\n"
PAGE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"
CHUNK = b'data: {"id":"c","choices":[{"delta":{"content":"Fo"},"finish_reason":null}]}\n\n'
FAILURES: dict[str, Any] = {  # what the server does -> (head, pieces[, api]), or a fault
    "drops the connection mid-answer": "fault-drop-answer",
    "refuses the key": "fault-401",
    "is not there": "closed port",
    "sends an error event mid-answer": (None, [CHUNK, b"data: " + FAILURE + b"\n\n"]),
    "sends a page, not a stream": (PAGE_HEAD, [b"<html><body>Sign in</body></html>"]),
    "sends a broken chunk": (None, [CHUNK, b"data: {not json\n\n"]),
    "sends events without a content type, cut": (NO_TYPE_HEAD, [CHUNK, b"data: {\n\n"]),
    "answers a Messages call with one JSON error": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        [b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}'],
        "messages",
    ),
}


@pytest.mark.parametrize("failure", list(FAILURES))
def test_each_failure_is_the_same_line_on_the_loop_as_on_a_thread(
    api_env: LocalServer, failure: str
) -> None:
    from ..sse_peer import RESPONSE_HEAD, SSEPeer

    how = FAILURES[failure]
    lines, partial = [], []
    with SSEPeer(how[1] if isinstance(how, tuple) else [], head=how[0] or RESPONSE_HEAD) as peer:
        options: dict[str, Any] = {"display": False, "history": False, "max_retries": 0}
        if isinstance(how, tuple):
            options["base_url"] = peer.base_url
            options["api"] = how[2] if len(how) > 2 else "chat"
        elif how == "closed port":
            options["base_url"] = closed_port()
        else:
            options["model"] = how
        for call in (step_magic.ask, lambda *a, **k: asyncio.run(step_magic.ask_async(*a, **k))):
            with pytest.raises(step_magic.StepAPIError) as caught:
                call("hi", **options)
            lines.append(str(caught.value))
            partial.append(caught.value.result.answer)  # type: ignore[attr-defined]
    on_thread, on_loop = (line.split(" (trace id")[0] for line in lines)  # ids differ per call
    assert on_loop == on_thread
    assert partial[0] == partial[1]
    assert "\n" not in on_loop
    assert "None" not in on_loop.split()  # a real reason, not an empty one
    if how == "closed port":
        assert on_loop.endswith("failed: [Errno 111] Connection refused")  # the socket's words


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
CHUNKED_HEAD += b"Transfer-Encoding: chunked\r\n\r\n"


def framed(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_a_map_row_whose_server_stalls_after_done_ends_with_its_reply(
    api_env: LocalServer,
) -> None:
    """The rest of a row's body is read so its connection can serve the next row, but for a
    moment only: a server that says nothing more for seconds costs the row nothing."""
    from step_magic.api.rows import row_call
    from step_magic.batch.scheduler import map_rows
    from step_magic.batch.table import MapOptions
    from step_magic.core.request import build_request
    from step_magic.core.settings import Settings

    from ..sse_peer import SSEPeer

    events = CHUNK + b'data: {"choices":[{"delta":{"content":"ur."},"finish_reason":"stop"}]}\n\n'
    reply = CHUNKED_HEAD + framed(events + b"data: [DONE]\n\n")
    with SSEPeer([framed(b": still here\n\n")], head=reply, pause=4) as peer:
        settings = Settings("step-3.7-flash", peer.base_url, TEST_KEY)
        started = time.monotonic()
        table, summary = map_rows(
            ["a", "b"], "{item}", lambda p: build_request(settings, p), row_call(settings),
            MapOptions("answer"),
        )  # fmt: skip
        took = time.monotonic() - started
    assert (summary.done, summary.failed) == (2, 0)
    assert [row["answer"] for row in table] == ["Four.", "Four."]
    assert took < 3


def test_a_connection_cut_after_done_leaves_the_reply_whole_everywhere(
    api_env: LocalServer,
) -> None:
    """The reply said it ended: a body cut before its last chunk marker loses nothing."""
    from step_magic.api.rows import row_call
    from step_magic.batch.scheduler import map_rows
    from step_magic.batch.table import MapOptions
    from step_magic.core.request import build_request
    from step_magic.core.settings import Settings

    from ..sse_peer import SSEPeer

    events = CHUNK + b'data: {"choices":[{"delta":{"content":"ur."},"finish_reason":"stop"}]}\n\n'
    with SSEPeer([framed(events + b"data: [DONE]\n\n")], head=CHUNKED_HEAD) as peer:
        options: dict[str, Any] = {"base_url": peer.base_url, "display": False, "history": False}
        on_thread = step_magic.ask("hi", **options)
        on_loop = asyncio.run(step_magic.ask_async("hi", **options))
        settings = Settings("step-3.7-flash", peer.base_url, TEST_KEY)
        table, summary = map_rows(
            ["a", "b"], "{item}", lambda p: build_request(settings, p), row_call(settings),
            MapOptions("answer"),
        )  # fmt: skip
    assert on_thread.answer == on_loop.answer == "Four."
    assert on_loop.status == "complete"
    assert (summary.done, summary.failed) == (2, 0)
    assert [row["answer"] for row in table] == ["Four.", "Four."]
