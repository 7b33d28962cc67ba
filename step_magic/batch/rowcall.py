"""What one ``--map`` row's call may tell the scheduler while it runs.

The scheduler (``batch.scheduler``) runs any ``call`` (``api.rows.row_call``, which runs the
row as every other call runs, or one of the caller's own) on a worker thread. The call must
still be able to report a retry for the progress display and say how to stop it if the row is
abandoned after Ctrl-C; a per-thread row context lets it do so without the scheduler passing
anything through its signature.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from step_magic.core.request import ChatRequest
from step_magic.core.result import StepResult

# One row's call: its result however it ended, or an exception (its ``result`` attribute,
# when set, is what arrived; a ``StepAPIError``'s HTTP status may stop the whole map).
Call = Callable[[ChatRequest], StepResult]


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

        ``note_retry`` and ``on_abandon`` find the row through the thread, so a call reports to
        its row without taking it as an argument.
        """
        _current.row = self
        try:
            with ROW_GATE.get() or contextlib.nullcontext():
                return call(request)
        finally:
            _current.row = None


_current = threading.local()

# A lease every row call holds while it runs, shared beyond this map: a Dask map's
# cluster-wide budget (``api.daskrows``). The scheduler runs each row in a copy of the
# context it was started in, so a gate set around ``map_rows`` reaches its rows.
ROW_GATE: contextvars.ContextVar[AbstractContextManager[Any] | None] = contextvars.ContextVar(
    "step_magic_row_gate", default=None
)


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
