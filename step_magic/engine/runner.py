"""Run one call: read the stream on a worker thread, show it on the main thread, at a bounded rate.

The worker turns the HTTP stream into events; the main thread (the kernel's, where widgets and
Ctrl-C live) buffers text and hands it to the view at most every ``FLUSH_SECONDS``, so a reply
of 20,000 chunks becomes a few hundred display updates. With ``--tools`` a call is several
model turns, with the model's tool calls run in between, all shown in the same view. Whatever
happens — a finished reply, an API error, a dropped connection, Ctrl-C — the view is finished
with what arrived, and only then is the error raised, so nothing already shown is lost.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from step_magic.core.diagnostics import keep_cause
from step_magic.core.errors import StepAPIError, StepInterrupted, StepMagicError
from step_magic.core.events import (
    AnswerDelta,
    EventSource,
    Finished,
    ReasoningDelta,
    Rethought,
    Waiting,
)
from step_magic.core.interrupts import interrupts_noted
from step_magic.core.request import ChatRequest
from step_magic.core.result import StepResult, classify
from step_magic.core.settings import Settings, redact, server_label
from step_magic.core.toolrecords import ToolRecord
from step_magic.engine.buffer import ReplyBuffer
from step_magic.engine.toolloop import ToolLoop, not_run
from step_magic.engine.turns import Turns
from step_magic.wire.transport import open_stream

FLUSH_SECONDS = 0.1  # at most 10 display updates a second, plus the first and the last
IDLE_SECONDS = 0.1  # how soon a noted Ctrl-C is acted on while no text arrives
MAX_REPLY_CHARS = 16_000_000  # of one call's text: ~16x the longest reply a 256K model writes
END = object()  # the last item a turn's event queue holds


class View(Protocol):
    """Where a reply is shown: the notebook panel or the terminal."""

    def start(self, status: str) -> None: ...
    def waiting(self, status: str) -> None: ...
    def update(self, reasoning: str, answer: str, elapsed: float) -> None: ...
    def tool(self, record: ToolRecord) -> None: ...
    def rethink(self) -> None: ...
    def finish(self, result: StepResult) -> None: ...


def run_call(
    settings: Settings,
    request: ChatRequest,
    view: View,
    *,
    stream: EventSource | None = None,
    annotate: Callable[[StepResult], None] | None = None,
    tools: ToolLoop | None = None,
    stop: list[int] | None = None,
) -> tuple[StepResult, BaseException | None]:
    """Stream the reply into ``view``; return it with the error to raise, if the call failed.

    ``stream`` defaults to a live call; ``annotate`` adds what only the caller knows (what
    was attached, notes, replay) before the final form is shown. With ``tools`` the model's
    tool calls are run and answered until it gives its answer or ``max_steps`` turns were
    taken. The caller keeps the (partial) result before raising, so ``_step`` holds what
    arrived. Another thread stops the call by appending to ``stop``, as Ctrl-C would.
    """
    progress = ReplyBuffer(started=time.monotonic())
    turns = Turns(request, len(request.messages))
    with interrupts_noted(stop) as interrupts:
        view.start(waiting_status(settings))
        try:
            _turns(settings, turns, progress, view, interrupts, stream, tools)
        except Exception as err:  # a bug of ours must not cost the user what was shown
            unexpected(err, turns, settings)
        return conclude(settings, turns, progress, view, interrupts, tools, annotate)


def reading_failure(err: Exception, settings: Settings) -> StepAPIError:
    """A bug of ours (or a library's) while a reply was read, as the turn's error: its text
    shown and logged, and some (an HTTP library refusing a header) quote the key: removed."""
    detail = redact(f"unexpected failure while reading the reply: {err!r}", *settings.secrets)
    error = failure(detail, settings)
    keep_cause(error, err, settings.secrets)
    return error


def unexpected(err: Exception, turns: Turns, settings: Settings) -> None:
    """A bug of ours during the call becomes its error, redacted, the cause kept for debug."""
    detail = redact(f"unexpected failure during the call: {err!r}", *settings.secrets)
    turns.error = failure(detail, settings)
    keep_cause(turns.error, err, settings.secrets)


def conclude(
    settings: Settings,
    turns: Turns,
    progress: ReplyBuffer,
    view: View,
    interrupts: list[int],
    tools: ToolLoop | None,
    annotate: Callable[[StepResult], None] | None,
) -> tuple[StepResult, BaseException | None]:
    """The end of every call, however it ended: the last text shown, the result built and
    annotated, its final form shown; the error to raise carries the result."""
    progress.flush(view, time.monotonic())
    result = _result(settings, turns, progress, bool(interrupts), tools)
    if annotate is not None:
        annotate(result)
    shown = _finish(view, result, settings.secrets)
    error = StepInterrupted() if interrupts else turns.error or shown
    if error is not None:
        error.result = result  # whoever raises it, the partial reply goes along
    return result, error


def _finish(view: View, result: StepResult, secrets: Sequence[str]) -> StepMagicError | None:
    """Show the final form; a failure to show it must not lose the reply, which the caller
    still binds and records, so it becomes the call's error instead of escaping."""
    try:
        view.finish(result)
    except Exception as err:
        detail = redact(f"the reply arrived but could not be shown ({err!r})", *secrets)
        return StepMagicError(f"{detail}; it is kept in the result (_step in a notebook)")
    return None


@dataclass(frozen=True)
class ReadTurn:
    """The plan asks its driver for one model turn from ``source`` (None: a live call)."""

    source: Any  # an EventSource, or an AsyncEventSource for the event-loop driver


@dataclass(frozen=True)
class RunTools:
    """The plan asks its driver to run the model's tool calls (``ToolLoop.run_calls``)."""

    arguments: dict[str, Any]


TurnPlan = Generator[ReadTurn | RunTools, Any, None]


def turn_plan(
    turns: Turns,
    progress: ReplyBuffer,
    view: View,
    interrupts: list[int],
    stream: object,
    tools: ToolLoop | None,
) -> TurnPlan:
    """Model turn after model turn, running the tool calls in between, until one answers.

    The decisions only: a driver (``_turns`` on a thread, ``_turns_async`` on an event loop)
    does what each step asks and sends back its outcome, so the two cannot decide apart.
    """
    while not interrupts:  # a call stopped before it started sends nothing
        source, finished, error = yield ReadTurn(stream)
        stream = None
        turns.add(finished, error, source)
        calls = turns.calls() if tools else ()
        if tools is None or not calls or turns.error or interrupts:
            return
        if turns.steps >= tools.max_steps:
            turns.unanswered = calls
            return
        progress.flush(view, time.monotonic())
        turns.request = yield RunTools(
            {
                "request": turns.request,
                "content": progress.step_answer().strip(),
                "calls": calls,
                "view": view,
                "interrupts": interrupts,
                "step": turns.steps,
                "reasoning_at": progress.reasoning_chars,
                "thinking": turns.finished.thinking_blocks if turns.finished else (),
                "details": turns.finished.reasoning_details if turns.finished else (),
            }
        )
        progress.next_step()


def _turns(
    settings: Settings,
    turns: Turns,
    progress: ReplyBuffer,
    view: View,
    interrupts: list[int],
    stream: EventSource | None,
    tools: ToolLoop | None,
) -> None:
    """``turn_plan`` driven on this thread: each turn read by a worker, tools run here."""
    plan = turn_plan(turns, progress, view, interrupts, stream, tools)
    step = next(plan, None)
    while step is not None:
        if isinstance(step, ReadTurn):
            source = step.source or open_stream(settings, turns.request)
            outcome: Any = (source, *_reply(source, progress, view, interrupts, settings))
        else:
            assert tools is not None  # the plan asks for tools only when there are some
            outcome = tools.run_calls(**step.arguments)
        try:
            step = plan.send(outcome)
        except StopIteration:
            return


def _reply(
    source: EventSource,
    progress: ReplyBuffer,
    view: View,
    interrupts: list[int],
    settings: Settings,
) -> tuple[Finished | None, StepAPIError | None]:
    """One model turn: read ``source`` on a worker thread until it ends, fails, Ctrl-C or
    the call's deadline."""
    events: queue.Queue[object] = queue.Queue()
    worker = threading.Thread(target=_pump, args=(source, events, settings), daemon=True)
    before = (len(progress.reasoning), len(progress.answer))
    worker.start()
    finished: Finished | None = None
    error: StepAPIError | None = None
    try:
        finished, error = _consume(events, progress, view, interrupts, settings)
    except KeyboardInterrupt:  # only where no handler could be installed (not main thread)
        interrupts.append(signal.SIGINT)
    source.close()
    arrived = (len(progress.reasoning), len(progress.answer)) != before
    if not (interrupts or error or arrived or (finished and finished.tool_calls)):
        error = failure("the server sent an empty reply", settings, source.trace_id)
    return finished, error


def _pump(stream: EventSource, events: queue.Queue[object], settings: Settings) -> None:
    """Worker thread: move events (or the error that ended them) onto the queue.

    An unexpected error's text is shown and logged, and some (an HTTP library refusing a
    header) quote the key: it is removed first.
    """
    try:
        for event in stream:
            events.put(event)
    except StepAPIError as err:
        events.put(err)
    except Exception as err:
        events.put(reading_failure(err, settings))
    finally:
        events.put(END)


class TurnReader:
    """What one model turn's events do to the buffer and the view, on the flush schedule and
    the call's deadline: shared by the thread driver (``_consume``) and the event-loop one
    (``_consume_async``), which only differ in how they wait for the next event."""

    def __init__(self, progress: ReplyBuffer, view: View, settings: Settings) -> None:
        self._progress, self._view, self._settings = progress, view, settings
        deadline = settings.deadline
        self._ends_at = progress.started + deadline if deadline is not None else float("inf")
        self.finished: Finished | None = None
        self.error: StepAPIError | None = None

    def wait(self, now: float) -> float | None:
        """How long to wait for the next event before a flush is due; None once the
        deadline passed (the turn's error then says so)."""
        if now >= self._ends_at:
            deadline = self._settings.deadline
            late = f"the call passed the deadline of {deadline:g} s it was given (--deadline)"
            self.error = failure(late, self._settings)
            return None
        progress = self._progress
        has_pending = bool(progress.pending_reasoning or progress.pending_answer)
        wait = max(progress.last_flush + FLUSH_SECONDS - now, 0) if has_pending else IDLE_SECONDS
        return min(wait, self._ends_at - now)

    def idle(self) -> None:
        """No event came in time: show what is pending."""
        self._progress.flush(self._view, time.monotonic())

    def take(self, item: object) -> bool:
        """Take one item of the stream; True when the turn ended (its end or its error)."""
        if item is END:
            return True
        if isinstance(item, StepAPIError):
            self.error = item
            return True
        now = time.monotonic()
        progress = self._progress
        if isinstance(item, ReasoningDelta | AnswerDelta):
            progress.add(item, now)
            progress.received += len(item.text)
            if progress.received > MAX_REPLY_CHARS:  # a server that never stops is stopped
                over = f"the reply is over {MAX_REPLY_CHARS:,} characters; it was stopped there"
                self.error = failure(over, self._settings)
                return True
        elif isinstance(item, Waiting):
            self._view.waiting(_retry_status(item))
        elif isinstance(item, Rethought):
            progress.rethink(now)
            self._view.rethink()
        elif isinstance(item, Finished):
            self.finished = item
        if now - progress.last_flush >= FLUSH_SECONDS:
            progress.flush(self._view, now)
        return False


def _consume(
    events: queue.Queue[object],
    progress: ReplyBuffer,
    view: View,
    interrupts: list[int],
    settings: Settings,
) -> tuple[Finished | None, StepAPIError | None]:
    """Pull events and flush on schedule until the stream ends, a Ctrl-C is noted or the
    call's deadline (seconds from its start) passes."""
    reader = TurnReader(progress, view, settings)
    while not interrupts:
        wait = reader.wait(time.monotonic())
        if wait is None:
            break
        try:
            item = events.get(timeout=wait)
        except queue.Empty:
            reader.idle()
            continue
        if reader.take(item):
            break
    return reader.finished, reader.error


def _result(
    settings: Settings,
    turns: Turns,
    progress: ReplyBuffer,
    interrupted: bool,
    tools: ToolLoop | None,
) -> StepResult:
    answer, reasoning = progress.step_answer(), "".join(progress.reasoning)
    finished, error = turns.finished, turns.error
    finish_reason = finished.finish_reason if finished else None
    end = time.monotonic() - progress.started
    thinking_end = progress.first_answer if progress.first_answer is not None else end
    records = list(tools.records) if tools else []
    thinking_end -= sum(record.duration for record in records)  # time in tools is not thought
    status = classify(
        finish_reason,
        answer,
        reasoning,
        interrupted=interrupted,
        failed=error is not None,
        unanswered=bool(turns.unanswered),
    )
    records += not_run(turns.unanswered, turns.steps, progress.reasoning_chars)
    parsed, notes = _parsed(turns.request, answer, status, turns.notes)
    return StepResult(
        model=settings.model,
        effort=settings.effort,
        remote_images=settings.remote_images,
        answer=answer,
        reasoning=reasoning,
        status=status,
        error=error.detail if error else None,
        usage=turns.usage,
        finish_reason=finish_reason,
        trace_id=turns.ids[0],
        completion_id=turns.ids[1],
        elapsed=end,
        first_token=progress.first_token,
        thinking_time=thinking_end - (progress.first_token or 0) if reasoning else None,
        messages=turns.request.messages,
        exchange=(
            *turns.request.messages[turns.prompt_messages :],
            {"role": "assistant", "content": answer},
        ),
        tool_calls=tuple(records),
        steps=turns.steps,
        notes=notes,
        parsed=parsed,
    )


def _parsed(
    request: ChatRequest, answer: str, status: str, notes: list[str]
) -> tuple[object, tuple[str, ...]]:
    """With a schema, the answer validated, or a note saying why it does not fit (a reply
    that did not finish is not checked: its text is partial anyway)."""
    schema = request.schema
    if schema is None or status not in ("complete", "truncated"):
        return None, tuple(notes)
    value, problem = schema.parse(answer)
    return value, (*notes, problem) if problem else tuple(notes)


def failure(detail: str, settings: Settings, trace_id: str | None = None) -> StepAPIError:
    """A failure of the call (not an HTTP error), naming the server it was made to."""
    return StepAPIError(detail, trace_id=trace_id, server=server_label(settings))


def waiting_status(settings: Settings) -> str:
    where = " (local simulator)" if settings.local else ""
    return f"Waiting for {settings.model}{where}…"


def _retry_status(event: Waiting) -> str:
    return (
        f"{event.reason.capitalize()} — retrying in {event.delay:.1f} s "
        f"(retry {event.attempt} of {event.max_attempts})"
    )
