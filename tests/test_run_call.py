"""``run_call`` against the bundled server: what a view is told, and how each failure reads.

Whatever ends a call — a bug of ours while showing it, a server that sends nothing, the
deadline — the result keeps what arrived, its status says the call failed (never a quiet
"incomplete"), and the error names the server it was made to (only StepFun's own endpoints
say "StepFun API error") without ever quoting the key.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from step_magic.core.errors import StepAPIError, StepInterrupted, StepMagicError
from step_magic.core.events import Event, EventSource
from step_magic.core.outputschema import OutputSchema
from step_magic.core.request import build_request
from step_magic.core.settings import Settings
from step_magic.display.frontend import QuietView
from step_magic.engine.runner import run_call
from step_magic.server import LocalServer
from step_magic.wire.transport import open_stream

from .conftest import TEST_KEY
from .sse_peer import SSEPeer


def settings_for(server: LocalServer, **changes: Any) -> Settings:
    settings = Settings(model="step-3.7-flash", base_url=server.base_url, api_key=TEST_KEY)
    return replace(settings, **changes)


def where(server: LocalServer) -> str:
    """How errors name the bundled server when it is reached by its address."""
    return f"API error from {server.base_url.split('//')[1].split('/')[0]}: "


class Recorder(QuietView):
    """A view that keeps what it is told."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.waits: list[str] = []
        self.finished: list[Any] = []

    def start(self, status: str) -> None:
        self.started.append(status)

    def waiting(self, status: str) -> None:
        self.waits.append(status)

    def finish(self, result: Any) -> None:
        self.finished.append(result)


class BreaksOnText(Recorder):
    """A view with a bug that quotes the key (bare, not in a header the URL redaction
    knows), hit as soon as text is shown."""

    def update(self, reasoning: str, answer: str, elapsed: float) -> None:
        raise RuntimeError(f"cannot draw the reply to {TEST_KEY}")


class BreaksOnFinish(Recorder):
    def finish(self, result: Any) -> None:
        raise ValueError(f"no frontend for {TEST_KEY}")  # the key bare, as above


def test_the_view_starts_with_the_model_it_waits_for(server: LocalServer) -> None:
    view = Recorder()
    result, error = run_call(settings_for(server), build_request(settings_for(server), "Hi"), view)

    assert error is None
    assert view.started == ["Waiting for step-3.7-flash…"]
    assert view.finished == [result]
    local = settings_for(server, local=True)
    run_call(local, build_request(local, "Hi"), view := Recorder())
    assert view.started == ["Waiting for step-3.7-flash (local simulator)…"]


def test_the_result_says_how_it_was_asked_for(server: LocalServer) -> None:
    """The saved form reads these: its footer names the model and effort, and the
    answer's remote images load only when asked for."""
    settings = settings_for(server, model="step-3.7-flash", effort="low", remote_images=True)

    result, error = run_call(settings, build_request(settings, "Hi"), Recorder())

    assert error is None
    assert (result.model, result.effort, result.remote_images) == ("step-3.7-flash", "low", True)


def test_a_retry_is_shown_with_its_reason_delay_and_count(server: LocalServer) -> None:
    settings = settings_for(server, model="fault-503x1")
    view = Recorder()

    result, error = run_call(settings, build_request(settings, "Hi"), view)

    assert error is None
    assert result.status == "complete"
    assert len(view.waits) == 1  # the reason starts the line, the delay to a tenth of a second
    assert re.fullmatch(r"Server error 503 — retrying in \d\.\d s \(retry 1 of 3\)", view.waits[0])


def test_a_bug_while_showing_the_reply_fails_the_call_without_quoting_the_key(
    server: LocalServer,
) -> None:
    settings = settings_for(server)

    result, error = run_call(settings, build_request(settings, "Hi"), BreaksOnText())

    assert isinstance(error, StepAPIError)
    assert result.status == "failed"  # not a silent "incomplete"
    assert str(error) == (
        where(server)
        + "unexpected failure during the call: RuntimeError('cannot draw the reply to ***')"
    )
    assert result.error == error.detail
    assert TEST_KEY not in result.error
    assert error.result is result


def test_a_view_that_cannot_show_the_final_form_keeps_the_reply(server: LocalServer) -> None:
    settings = settings_for(server)

    result, error = run_call(settings, build_request(settings, "Hi"), BreaksOnFinish())

    assert result.status == "complete"
    assert "You wrote" in result.answer
    assert isinstance(error, StepMagicError)
    assert not isinstance(error, StepAPIError)
    assert str(error).startswith("the reply arrived but could not be shown (ValueError('no fro")
    assert str(error).endswith("); it is kept in the result (_step in a notebook)")
    assert TEST_KEY not in str(error)
    assert error.result is result


def test_an_empty_reply_is_a_failure_of_the_server_it_came_from(server: LocalServer) -> None:
    settings = settings_for(server, model="fault-empty")

    result, error = run_call(settings, build_request(settings, "Hi"), Recorder())

    assert isinstance(error, StepAPIError)
    assert result.status == "failed"
    assert str(error).startswith(where(server) + "the server sent an empty reply (trace id ")
    assert error.trace_id is not None
    assert error.trace_id == result.trace_id


@pytest.mark.parametrize("deadline", [0.4, 1.5])
def test_the_deadline_ends_the_call_and_names_itself(server: LocalServer, deadline: float) -> None:
    server.config.first_byte_delay = 5
    settings = settings_for(server, deadline=deadline)

    result, error = run_call(settings, build_request(settings, "Hi"), Recorder())

    assert isinstance(error, StepAPIError)
    assert result.status == "failed"
    assert str(error) == (
        f"{where(server)}the call passed the deadline of {deadline:g} s it was given (--deadline)"
    )
    assert deadline <= result.elapsed < deadline + 1


class BreaksAfterOneEvent:
    """The server's real reply stream, read by a parser with a bug that quotes the key."""

    def __init__(self, source: EventSource) -> None:
        self.source = source
        self.trace_id = source.trace_id

    def __iter__(self) -> Iterator[Event]:
        for event in self.source:
            yield event
            raise KeyError(f"no field for {TEST_KEY}")

    def close(self) -> None:
        self.source.close()


def test_a_bug_while_reading_the_reply_keeps_what_arrived_and_never_the_key(
    server: LocalServer,
) -> None:
    settings = settings_for(server)
    request = build_request(settings, "Hi")
    stream = BreaksAfterOneEvent(open_stream(settings, request))

    result, error = run_call(settings, request, Recorder(), stream=stream)

    assert isinstance(error, StepAPIError)
    assert result.status == "failed"
    assert result.reasoning or result.answer  # the one event that arrived is kept
    assert str(error) == (
        where(server) + "unexpected failure while reading the reply: KeyError('no field for ***')"
    )


def test_thinking_time_runs_from_the_first_token_to_the_first_word_of_the_answer(
    server: LocalServer,
) -> None:
    server.config.tokens_per_second = 100
    server.config.reasoning_tokens, server.config.answer_tokens = 40, 40  # 0.4 s each
    server.config.first_byte_delay = 0.5  # waiting for the first token is not thinking
    settings = settings_for(server)

    result, _ = run_call(settings, build_request(settings, "Hi"), Recorder())

    assert result.reasoning
    assert result.answer
    assert result.first_token is not None
    assert result.first_token >= 0.5
    assert result.thinking_time is not None
    assert result.thinking_time > 0.3  # the 0.4 s of reasoning (more on a loaded machine)
    assert result.thinking_time < result.elapsed - result.first_token - 0.25  # not the answer


def test_a_reply_without_reasoning_has_no_thinking_time(server: LocalServer) -> None:
    server.config.reasoning_tokens = 0
    settings = settings_for(server)

    result, _ = run_call(settings, build_request(settings, "Hi"), Recorder())

    assert result.answer
    assert not result.reasoning
    assert result.thinking_time is None


def test_a_reply_that_only_thought_thought_until_its_end(server: LocalServer) -> None:
    server.config.tokens_per_second = 100
    server.config.reasoning_tokens = 40
    settings = settings_for(server, model="fault-reasoning-only")

    result, _ = run_call(settings, build_request(settings, "Hi"), Recorder())

    assert result.reasoning
    assert not result.answer
    assert result.first_token is not None
    assert result.thinking_time is not None
    assert result.thinking_time == pytest.approx(result.elapsed - result.first_token, abs=0.05)


def test_with_the_debug_switch_a_bug_in_the_view_keeps_its_cause_without_the_key(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEP_MAGIC_DEBUG", "1")
    settings = settings_for(server)

    _, error = run_call(settings, build_request(settings, "Hi"), BreaksOnText())

    assert isinstance(error, StepAPIError)
    cause = error.__cause__
    assert cause is not None
    assert "RuntimeError: cannot draw the reply to ***" in str(cause)
    assert "in update" in str(cause)  # where it happened
    assert TEST_KEY not in str(cause)


def test_with_the_debug_switch_a_bug_while_reading_keeps_its_cause_without_the_key(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEP_MAGIC_DEBUG", "1")
    settings = settings_for(server)
    request = build_request(settings, "Hi")
    stream = BreaksAfterOneEvent(open_stream(settings, request))

    _, error = run_call(settings, request, Recorder(), stream=stream)

    assert isinstance(error, StepAPIError)
    cause = error.__cause__
    assert cause is not None
    assert "KeyError: 'no field for ***'" in str(cause)
    assert TEST_KEY not in str(cause)
    assert TEST_KEY not in (error.debug_trace or "")


def test_a_reply_that_only_says_it_finished_is_an_empty_reply(server: LocalServer) -> None:
    """A finish reason with no text and no tool calls is nothing to show: a failure."""
    finish = {"id": "c1", "object": "chat.completion.chunk", "model": "step-3.7-flash"}
    finish["choices"] = [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    with SSEPeer([f"data: {json.dumps(finish)}\n\n".encode(), b"data: [DONE]\n\n"]) as peer:
        settings = replace(settings_for(server), base_url=peer.base_url)
        result, error = run_call(settings, build_request(settings, "Hi"), Recorder())

    assert isinstance(error, StepAPIError)
    assert result.status == "failed"
    assert "the server sent an empty reply (trace id sse-peer-trace)" in str(error)


def test_the_exchange_is_what_the_call_added_to_the_conversation(server: LocalServer) -> None:
    """Without tools, that is the answer alone (the prompt is the caller's own)."""
    settings = settings_for(server, system="Be brief.")
    request = build_request(settings, "Hi")

    result, _ = run_call(settings, request, Recorder())

    assert result.messages == request.messages  # the system prompt too
    assert result.exchange == ({"role": "assistant", "content": result.answer},)


SCORE = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}


def with_schema(server: LocalServer, model: str) -> Any:
    settings = settings_for(server, model=model)
    request = replace(build_request(settings, "Hi"), schema=OutputSchema.of(SCORE))
    result, _ = run_call(settings, request, Recorder())
    return result


def test_an_answer_cut_at_the_token_limit_is_still_checked_against_the_schema(
    server: LocalServer,
) -> None:
    """A truncated answer is kept, so it is checked too, and the note says it does not fit."""
    result = with_schema(server, "fault-length")

    assert result.status == "truncated"
    assert result.parsed is None
    assert len(result.notes) == 1


def test_a_failed_calls_partial_answer_is_not_checked_against_the_schema(
    server: LocalServer,
) -> None:
    result = with_schema(server, "fault-drop-answer")

    assert result.status == "failed"
    assert result.answer  # something arrived...
    assert (result.parsed, result.notes) == (None, ())  # ...but a partial text is no verdict


def test_another_thread_stops_a_call_midway_as_ctrl_c_would(server: LocalServer) -> None:
    server.config.tokens_per_second = 50
    server.config.reasoning_tokens, server.config.answer_tokens = 100, 100  # 4 s in all
    settings = settings_for(server)
    stop: list[int] = []

    class StopsOnceTextIsShown(Recorder):
        def update(self, reasoning: str, answer: str, elapsed: float) -> None:
            if reasoning and not stop:  # from another thread, as a --map abandoning a row
                threading.Thread(target=stop.append, args=(signal.SIGINT,)).start()

    started = time.monotonic()
    result, error = run_call(
        settings, build_request(settings, "Hi"), StopsOnceTextIsShown(), stop=stop
    )

    assert isinstance(error, StepInterrupted)
    assert error.result is result
    assert result.status == "interrupted"
    assert result.reasoning  # what arrived is kept
    assert time.monotonic() - started < 3  # not the whole 4 s reply


class CountsUpdates(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.updates = 0

    def update(self, reasoning: str, answer: str, elapsed: float) -> None:
        self.updates += 1


def test_thousands_of_chunks_become_at_most_ten_display_updates_a_second(
    server: LocalServer,
) -> None:
    server.config.tokens_per_second = 10_000
    server.config.reasoning_tokens, server.config.answer_tokens = 3000, 3000
    settings = settings_for(server)
    view = CountsUpdates()

    result, error = run_call(settings, build_request(settings, "Hi"), view)

    assert error is None
    assert result.elapsed > 0.4  # 6,000 chunks, paced
    assert 2 <= view.updates <= 10 * result.elapsed + 3  # the first, ten a second, the last


def test_a_stop_while_the_server_is_still_silent_is_acted_on_at_once(
    server: LocalServer,
) -> None:
    server.config.first_byte_delay = 5
    settings = settings_for(server)
    stop: list[int] = []
    threading.Timer(0.3, stop.append, args=(signal.SIGINT,)).start()

    started = time.monotonic()
    result, error = run_call(settings, build_request(settings, "Hi"), Recorder(), stop=stop)

    assert isinstance(error, StepInterrupted)
    assert result.status == "interrupted"
    assert time.monotonic() - started < 1.5
