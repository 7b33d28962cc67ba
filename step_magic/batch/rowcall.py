"""One ``--map`` row's call, and what the call may tell the scheduler while it runs.

The scheduler (``batch.scheduler``) runs any ``call`` (``stream_call``'s live stream, or one of
the caller's own) on a worker thread. The call must still be able to report a retry for the
progress display and say how to stop it if the row is abandoned after Ctrl-C; a per-thread
row context lets it do so without the scheduler passing anything through its signature.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from step_magic.core.cassette import RecordedReply
from step_magic.core.errors import StepAPIError
from step_magic.core.events import AnswerDelta, Finished, ReasoningDelta, Waiting
from step_magic.core.request import ChatRequest
from step_magic.core.settings import Settings, server_label
from step_magic.wire.transport import open_stream

Call = Callable[[ChatRequest], RecordedReply]


class RowContext:
    """What a ``call`` may tell its row while it runs: a retry, and how to stop it."""

    def __init__(self) -> None:
        self.retries = 0
        self.abandoned = False
        self._closers: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def on_abandon(self, close: Callable[[], None]) -> None:
        with self._lock:
            if not self.abandoned:
                self._closers.append(close)
                return
        close()

    def abandon(self) -> None:
        with self._lock:
            self.abandoned, closers = True, list(self._closers)
        for close in closers:
            close()

    def run(self, call: Call, request: ChatRequest) -> RecordedReply:
        """``call(request)`` on this worker thread, as this row's call.

        ``note_retry`` and ``on_abandon`` find the row through the thread, so a call reports to
        its row without taking it as an argument.
        """
        _current.row = self
        try:
            return call(request)
        finally:
            _current.row = None


_current = threading.local()


def note_retry() -> None:
    """For ``call`` functions: the row's request is waiting to be retried (429/5xx)."""
    context = getattr(_current, "row", None)
    if context is not None:
        context.retries += 1


def on_abandon(close: Callable[[], None]) -> None:
    """For ``call`` functions: run ``close`` (from another thread) if the row is abandoned."""
    context = getattr(_current, "row", None)
    if context is not None:
        context.on_abandon(close)


def stream_call(settings: Settings) -> Call:
    """A ``call`` on the live stream of the API the settings name: reports retries, stops
    when abandoned.

    A reply without an answer is a failure (StepAPIError), never an empty cell value.
    """

    def call(request: ChatRequest) -> RecordedReply:
        stream = open_stream(settings, request)
        on_abandon(stream.close)
        answer: list[str] = []
        reasoning: list[str] = []
        end: Finished | None = None
        for event in stream:
            if isinstance(event, AnswerDelta):
                answer.append(event.text)
            elif isinstance(event, ReasoningDelta):
                reasoning.append(event.text)
            elif isinstance(event, Waiting):
                note_retry()
            elif isinstance(event, Finished):
                end = event
        if end is None or not answer:
            why = "was cut off" if end is None else f"has no answer (finish {end.finish_reason})"
            server = server_label(settings)
            raise StepAPIError(f"the reply {why}", trace_id=stream.trace_id, server=server)
        ids = (stream.trace_id, end.completion_id)
        return RecordedReply(
            "".join(reasoning), "".join(answer), end.finish_reason, end.usage, *ids
        )

    return call
