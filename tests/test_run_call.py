"""``run_call`` against the bundled server: what a view is told, and how each failure reads.

Whatever ends a call — a bug of ours while showing it, a server that sends nothing, the
deadline — the result keeps what arrived, its status says the call failed (never a quiet
"incomplete"), and the error names the server it was made to (only StepFun's own endpoints
say "StepFun API error") without ever quoting the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from step_magic.core.errors import StepAPIError, StepMagicError
from step_magic.core.events import Event, EventSource
from step_magic.core.request import build_request
from step_magic.core.settings import Settings
from step_magic.display.frontend import QuietView
from step_magic.engine.runner import run_call
from step_magic.server import LocalServer
from step_magic.wire.transport import open_stream

from .conftest import TEST_KEY


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
