"""Run one call on an event loop: ``runner.run_call`` without a thread, for ``ask_async``.

Many calls at once on one loop cost a task each, not a thread each. Everything that decides
is shared with the thread driver: ``runner.turn_plan`` (turn after turn, tools between),
``runner.TurnReader`` (the events into the buffer, the flush schedule, the deadline) and
``runner.conclude`` (the result and its final form). Only the waiting differs: a task reads
the reply into an ``asyncio.Queue`` where the thread driver has a worker and a ``Queue``.

Cancelling the task (``Task.cancel``, ``asyncio.timeout``, Ctrl-C under ``asyncio.run`` or in
a notebook cell) stops the call as Ctrl-C stops a thread's: the connection is closed, the view
keeps what arrived, and the returned error is ``StepInterrupted`` with the partial result;
the caller keeps the call (history, thread) and then raises ``CancelledError`` as asyncio
expects. Tool functions run in a worker thread (``asyncio.to_thread``), so a slow tool does
not hold up the other calls on the loop.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

from step_magic.core.errors import StepAPIError
from step_magic.core.events import AsyncEventSource, Finished
from step_magic.core.request import ChatRequest
from step_magic.core.result import StepResult
from step_magic.core.settings import Settings
from step_magic.core.toolrecords import ToolRecord
from step_magic.engine.buffer import ReplyBuffer
from step_magic.engine.runner import (
    END,
    ReadTurn,
    TurnReader,
    View,
    conclude,
    failure,
    reading_failure,
    turn_plan,
    unexpected,
    waiting_status,
)
from step_magic.engine.toolloop import ToolLoop, ToolView
from step_magic.engine.turns import Turns
from step_magic.wire.transport import open_async_stream


async def run_call_async(
    settings: Settings,
    request: ChatRequest,
    view: View,
    *,
    stream: AsyncEventSource | None = None,
    annotate: Callable[[StepResult], None] | None = None,
    tools: ToolLoop | None = None,
) -> tuple[StepResult, BaseException | None]:
    """``runner.run_call`` on the running event loop (see the module docstring)."""
    progress = ReplyBuffer(started=time.monotonic())
    turns = Turns(request, len(request.messages))
    interrupts: list[int] = []
    view.start(waiting_status(settings))
    try:
        await _turns_async(settings, turns, progress, view, interrupts, stream, tools)
    except asyncio.CancelledError:
        interrupts.append(signal.SIGINT)
    except Exception as err:  # a bug of ours must not cost the user what was shown
        unexpected(err, turns, settings)
    return conclude(settings, turns, progress, view, interrupts, tools, annotate)


async def _turns_async(
    settings: Settings,
    turns: Turns,
    progress: ReplyBuffer,
    view: View,
    interrupts: list[int],
    stream: AsyncEventSource | None,
    tools: ToolLoop | None,
) -> None:
    """``runner.turn_plan`` driven on the loop: each turn read by a task, tools in a thread."""
    plan = turn_plan(turns, progress, view, interrupts, stream, tools)
    step = next(plan, None)
    while step is not None:
        if isinstance(step, ReadTurn):
            source = step.source or open_async_stream(settings, turns.request)
            outcome: Any = (source, *await _reply(source, progress, view, interrupts, settings))
        else:
            assert tools is not None  # the plan asks for tools only when there are some
            outcome = await _run_tools(tools, step.arguments, interrupts)
        try:
            step = plan.send(outcome)
        except StopIteration:
            return


async def _run_tools(tools: ToolLoop, arguments: dict[str, Any], interrupts: list[int]) -> Any:
    """The turn's tool calls in a worker thread (``ToolLoop.run_calls``). Cancelled, the call
    ends now: the running function cannot be stopped (a thread cannot be), so its record says
    interrupted, no later call starts, and nothing it does after reaches the view."""
    view = _UntilEnded(arguments["view"])
    try:
        return await asyncio.to_thread(tools.run_calls, **{**arguments, "view": view})
    except asyncio.CancelledError:
        view.ended = True
        tools.stop(interrupts)
        raise


class _UntilEnded:
    """A tool view that passes updates on until the call has ended."""

    def __init__(self, view: ToolView) -> None:
        self._view, self.ended = view, False

    def tool(self, record: ToolRecord) -> None:
        if not self.ended:
            self._view.tool(record)


async def _reply(
    source: AsyncEventSource,
    progress: ReplyBuffer,
    view: View,
    interrupts: list[int],
    settings: Settings,
) -> tuple[Finished | None, StepAPIError | None]:
    """One model turn: read ``source`` in a task until it ends, fails, is cancelled or the
    call's deadline passes; the task is ended (its connection closed) before returning."""
    events: asyncio.Queue[object] = asyncio.Queue()
    reading = asyncio.create_task(_pump(source, events, settings))
    before = (len(progress.reasoning), len(progress.answer))
    reader = TurnReader(progress, view, settings)
    try:
        await _consume(events, reader)
    except asyncio.CancelledError:
        interrupts.append(signal.SIGINT)
    finally:
        reading.cancel()
        await asyncio.wait([reading])
    finished, error = reader.finished, reader.error
    arrived = (len(progress.reasoning), len(progress.answer)) != before
    if not (interrupts or error or arrived or (finished and finished.tool_calls)):
        error = failure("the server sent an empty reply", settings, source.trace_id)
    return finished, error


async def _pump(
    source: AsyncEventSource, events: asyncio.Queue[object], settings: Settings
) -> None:
    """The reading task: events (or the error that ended them) onto the queue, then END."""
    try:
        async for event in source:
            events.put_nowait(event)
    except StepAPIError as err:
        events.put_nowait(err)
    except Exception as err:
        events.put_nowait(reading_failure(err, settings))
    finally:
        events.put_nowait(END)


async def _consume(events: asyncio.Queue[object], reader: TurnReader) -> None:
    """Take events as they come, flushing on schedule, until the turn ends or the deadline
    passes. A queued event is taken at once; only an empty queue is waited on, by one getter
    kept across waits (``asyncio.wait``, which never swallows a cancellation as
    ``asyncio.wait_for`` can before Python 3.12)."""
    getter: asyncio.Task[object] | None = None
    try:
        while True:
            wait = reader.wait(time.monotonic())
            if wait is None:
                return
            if getter is None:
                try:
                    item = events.get_nowait()
                except asyncio.QueueEmpty:
                    getter = asyncio.ensure_future(events.get())
            if getter is not None:
                done, _ = await asyncio.wait({getter}, timeout=wait)
                if not done:
                    reader.idle()
                    continue
                item, getter = getter.result(), None
            if reader.take(item):
                return
    finally:
        if getter is not None:
            getter.cancel()
