"""Run one call: read the stream on a worker thread, show it on the main thread, at a bounded rate.

The worker turns the HTTP stream into events; the main thread (the kernel's, where widgets and
Ctrl-C live) buffers text and hands it to the view at most every ``FLUSH_SECONDS``, so a reply
of 20,000 chunks becomes a few hundred display updates. Whatever happens — a finished reply,
an API error, a dropped connection, Ctrl-C — the view is finished with what arrived, and only
then is the error raised, so nothing already shown is lost.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from .client import (
    AnswerDelta,
    Event,
    Finished,
    ReasoningDelta,
    ReplyStream,
    StepAPIError,
    Waiting,
)
from .config import Settings
from .request import ChatRequest
from .result import StepResult, classify

FLUSH_SECONDS = 0.1  # at most 10 display updates a second, plus the first and the last
IDLE_SECONDS = 0.1  # how soon a noted Ctrl-C is acted on while no text arrives
_END = object()


class View(Protocol):
    """Where a reply is shown: the notebook panel or the terminal."""

    def start(self, status: str) -> None: ...
    def waiting(self, status: str) -> None: ...
    def update(self, reasoning: str, answer: str, elapsed: float) -> None: ...
    def finish(self, result: StepResult) -> None: ...


class EventSource(Protocol):
    """A live reply (``client.ReplyStream``) or a recorded one (``replay.ReplayStream``)."""

    trace_id: str | None

    def __iter__(self) -> Iterator[Event]: ...
    def close(self) -> None: ...


class StepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a call; IPython shows one line instead of our stack."""

    def _render_traceback_(self) -> list[str]:
        return ["KeyboardInterrupt: reply interrupted; the partial text above is kept"]


@dataclass
class _Progress:
    """Text received so far, what the view has not seen yet, and the timings."""

    started: float
    reasoning: list[str] = field(default_factory=list)
    answer: list[str] = field(default_factory=list)
    pending_reasoning: list[str] = field(default_factory=list)
    pending_answer: list[str] = field(default_factory=list)
    first_token: float | None = None
    first_answer: float | None = None
    last_flush: float = float("-inf")

    def add(self, event: ReasoningDelta | AnswerDelta, now: float) -> None:
        if self.first_token is None:
            self.first_token = now - self.started
        if isinstance(event, ReasoningDelta):
            self.reasoning.append(event.text)
            self.pending_reasoning.append(event.text)
        else:
            if self.first_answer is None:
                self.first_answer = now - self.started
            self.answer.append(event.text)
            self.pending_answer.append(event.text)

    def flush(self, view: View, now: float) -> None:
        if self.pending_reasoning or self.pending_answer:
            reasoning, answer = "".join(self.pending_reasoning), "".join(self.pending_answer)
            self.pending_reasoning.clear()
            self.pending_answer.clear()
            view.update(reasoning, answer, now - self.started)
        self.last_flush = now


def run_call(
    settings: Settings,
    request: ChatRequest,
    view: View,
    *,
    stream: EventSource | None = None,
    annotate: Callable[[StepResult], None] | None = None,
) -> tuple[StepResult, BaseException | None]:
    """Stream one reply into ``view``; return it with the error to raise, if the call failed.

    ``stream`` defaults to a live call; ``annotate`` adds what only the caller knows (what
    was attached, notes, replay) before the final form is shown. The caller keeps the
    (partial) result before raising, so ``_step`` holds what arrived.
    """
    stream = stream if stream is not None else live_stream(settings, request)
    events: queue.Queue[object] = queue.Queue()
    worker = threading.Thread(target=_pump, args=(stream, events), daemon=True)
    progress = _Progress(started=time.monotonic())
    finished: Finished | None = None
    error: StepAPIError | None = None
    with interrupts_noted() as interrupts:
        view.start(_waiting_status(settings))
        worker.start()
        try:
            finished, error = _consume(events, progress, view, interrupts)
        except KeyboardInterrupt:  # only where no handler could be installed (not main thread)
            interrupts.append(signal.SIGINT)
        stream.close()
        interrupted = bool(interrupts)
        if not (interrupted or error or progress.reasoning or progress.answer):
            error = StepAPIError("the server sent an empty reply", trace_id=stream.trace_id)
        progress.flush(view, time.monotonic())
        result = _result(settings, request, progress, finished, error, interrupted)
        if annotate is not None:
            annotate(result)
        view.finish(result)
    return result, (StepInterrupted() if interrupted else error)


def live_stream(settings: Settings, request: ChatRequest) -> EventSource:
    """A live reply through the API the settings name (both yield the same events)."""
    if settings.api == "messages":
        from .messages import MessagesStream

        return MessagesStream(settings, request)
    return ReplyStream(settings, request)


def _pump(stream: EventSource, events: queue.Queue[object]) -> None:
    """Worker thread: move events (or the error that ended them) onto the queue."""
    try:
        for event in stream:
            events.put(event)
    except StepAPIError as err:
        events.put(err)
    except Exception as err:
        events.put(StepAPIError(f"unexpected failure while reading the reply: {err!r}"))
    finally:
        events.put(_END)


def _consume(
    events: queue.Queue[object], progress: _Progress, view: View, interrupts: list[int]
) -> tuple[Finished | None, StepAPIError | None]:
    """Pull events and flush on schedule until the stream ends or a Ctrl-C is noted."""
    finished: Finished | None = None
    while not interrupts:
        now = time.monotonic()
        has_pending = bool(progress.pending_reasoning or progress.pending_answer)
        wait = max(progress.last_flush + FLUSH_SECONDS - now, 0) if has_pending else IDLE_SECONDS
        try:
            item = events.get(timeout=wait)
        except queue.Empty:
            progress.flush(view, time.monotonic())
            continue
        if item is _END:
            return finished, None
        if isinstance(item, StepAPIError):
            return finished, item
        now = time.monotonic()
        if isinstance(item, ReasoningDelta | AnswerDelta):
            progress.add(item, now)
        elif isinstance(item, Waiting):
            view.waiting(_retry_status(item))
        elif isinstance(item, Finished):
            finished = item
        if now - progress.last_flush >= FLUSH_SECONDS:
            progress.flush(view, now)
    return finished, None


def _result(
    settings: Settings,
    request: ChatRequest,
    progress: _Progress,
    finished: Finished | None,
    error: StepAPIError | None,
    interrupted: bool,
) -> StepResult:
    answer, reasoning = "".join(progress.answer), "".join(progress.reasoning)
    finish_reason = finished.finish_reason if finished else None
    end = time.monotonic() - progress.started
    thinking_end = progress.first_answer if progress.first_answer is not None else end
    return StepResult(
        model=settings.model,
        effort=settings.effort,
        answer=answer,
        reasoning=reasoning,
        status=classify(
            finish_reason, answer, reasoning, interrupted=interrupted, failed=error is not None
        ),
        error=error.detail if error else None,
        usage=finished.usage if finished else None,
        finish_reason=finish_reason,
        trace_id=(finished.trace_id if finished else None) or (error.trace_id if error else None),
        completion_id=(finished.completion_id if finished else None)
        or (error.completion_id if error else None),
        elapsed=end,
        first_token=progress.first_token,
        thinking_time=thinking_end - (progress.first_token or 0) if reasoning else None,
        messages=request.messages,
    )


def _waiting_status(settings: Settings) -> str:
    where = " (local simulator)" if settings.local else ""
    return f"Waiting for {settings.model}{where}…"


def _retry_status(event: Waiting) -> str:
    return (
        f"{event.reason.capitalize()} — retrying in {event.delay:.1f} s "
        f"(retry {event.attempt} of {event.max_attempts})"
    )


@contextlib.contextmanager
def interrupts_noted() -> Iterator[list[int]]:
    """For the whole call, Ctrl-C is noted in the yielded list instead of raised.

    A KeyboardInterrupt raised at an arbitrary point (inside a queue's lock, inside the
    view, while closing the stream) could lose the partial reply or leave the live widgets
    behind; a noted one is acted on between events, and a second one changes nothing.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)
