"""What one ``--map`` row's call may tell the scheduler while it runs.

The scheduler (``batch.scheduler``) runs any ``call`` (``api.rows.row_call``, which runs the
row as every other call runs, or one of the caller's own): on a worker thread, or, when it
has an ``acall``, as a task of the rows' one event loop (``shared_loop``). The call must still
be able to report a retry for the progress display and say how to stop it if the row is
abandoned after Ctrl-C; a row context (a context variable, so per thread and per task) lets
it do so without the scheduler passing anything through its signature.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from typing import Any

from step_magic.core.request import ChatRequest
from step_magic.core.result import StepResult

# One row's call: its result however it ended, or an exception (its ``result`` attribute,
# when set, is what arrived; a ``StepAPIError``'s HTTP status may stop the whole map).
Call = Callable[[ChatRequest], StepResult]
# The same call on the rows' event loop; a ``Call`` with an ``acall`` of this kind is run
# there, every row of every map on one loop, rather than on a thread of its own.
AsyncCall = Callable[[ChatRequest], Awaitable[StepResult]]


def shared_loop() -> asyncio.AbstractEventLoop:
    """The event loop every map's rows run on: one thread for the process, started on first
    use, so hundreds of rows in flight cost a task each, not a thread each."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop.is_closed() or _loop_pid != os.getpid():  # (after a fork)
            _loop, _loop_pid = asyncio.new_event_loop(), os.getpid()
            thread = threading.Thread(target=_loop.run_forever, name="step-magic-rows", daemon=True)
            thread.start()
        return _loop


def on_rows_loop() -> bool:
    """Whether this runs on the rows' loop (``shared_loop``), which lives as long as the
    process: what it keeps open (connections) is never left behind by a loop that ended."""
    try:
        return asyncio.get_running_loop() is _loop
    except RuntimeError:  # no loop running here
        return False


_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = 0
_loop_lock = threading.Lock()


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

    def run(self, call: Call, request: ChatRequest) -> StepResult:
        """``call(request)`` on this worker thread, as this row's call, holding a lease of
        the ``ROW_GATE`` in force (if any) while it runs.

        ``note_retry`` and ``on_abandon`` find the row through the context, so a call reports
        to its row without taking it as an argument.
        """
        token = _current.set(self)
        try:
            with ROW_GATE.get() or contextlib.nullcontext():
                return call(request)
        finally:
            _current.reset(token)

    async def arun(self, call: AsyncCall, request: ChatRequest) -> StepResult:
        """``run`` for a call on the rows' event loop (``shared_loop``); a row under a gate
        is never run here (taking its lease may block)."""
        token = _current.set(self)
        try:
            return await call(request)
        finally:
            _current.reset(token)


_current: contextvars.ContextVar[RowContext | None] = contextvars.ContextVar(
    "step_magic_row", default=None
)

# A lease every row call holds while it runs, shared beyond this map: a Dask map's
# cluster-wide budget (``api.daskrows``). The scheduler runs each row in a copy of the
# context it was started in, so a gate set around ``map_rows`` reaches its rows.
ROW_GATE: contextvars.ContextVar[AbstractContextManager[Any] | None] = contextvars.ContextVar(
    "step_magic_row_gate", default=None
)


def note_retry() -> None:
    """For ``call`` functions: the row's request is waiting to be retried (429/5xx)."""
    context = _current.get()
    if context is not None:
        context.retries += 1


def on_abandon(close: Callable[[], None]) -> None:
    """For ``call`` functions: run ``close`` (from another thread) if the row is abandoned."""
    context = _current.get()
    if context is not None:
        context.on_abandon(close)
