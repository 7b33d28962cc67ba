"""Starting a call in the background: ``ask(..., background=True)`` and ``%%step --background``.

The call is checked and prepared on the caller's thread (bad input fails at once, as in the
foreground), its panel shown at once in the cell that asked, then it runs through the same
``Session.ask`` as any call, on a thread of the shared ``POOL`` (at most ``POOL.limit`` at
once). History, cassettes and, for the magic, conversation memory record it when it ends.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from step_magic.api.prepare import Call
from step_magic.core.errors import StepMagicError
from step_magic.core.result import StepResult
from step_magic.core.settings import redact
from step_magic.display.frontend import background_view
from step_magic.engine.background import Pending, Pool
from step_magic.engine.session import Session

POOL = Pool()  # one per process: the limit holds for the magic and the API together


def start(
    session: Session,
    call: Call,
    display: bool | None,
    *,
    cell: str | None = None,
    on_end: Callable[[], None] | None = None,
) -> Pending:
    """Show the call's panel, start it on a thread of its own, return the ``Pending`` call.

    ``on_end`` runs on that thread once the call is recorded (closing a one-off history).
    """
    session.check_replay(call.prepared, call.options)  # a miss fails now, not in the panel
    POOL.cancel_from(cell)  # re-running a cell replaces the call it started before
    view, around, republish = background_view(
        display,
        call.settings,
        stop=lambda: pending.cancel(),  # bound below, clicked later
    )
    pending = Pending(call.settings.model, call.settings.effort, view, after_wait=republish)
    pending.cell = cell
    busy = POOL.streaming()
    pending.recording.start(
        f"Queued: {busy} background calls are streaming (at most {POOL.limit} at once)"
        if busy >= POOL.limit
        else "Starting…"
    )

    def run(stop: list[int]) -> tuple[StepResult, BaseException | None]:
        try:
            return session.ask(
                call.settings, call.prepared, call.options, pending.recording, cell, None, stop
            )
        except Exception as err:  # the runner ends its own failures; this is a bug of ours
            return _failed(call, pending, err)
        finally:
            if on_end is not None:
                on_end()

    POOL.submit(pending, run, around)
    return pending


def _failed(call: Call, pending: Pending, err: Exception) -> tuple[StepResult, StepMagicError]:
    """A call that failed outside the runner: its panel still ends (a live widget left in
    the saved notebook would not render), with the error's text free of the key."""
    detail = redact(f"the background call failed: {err!r}", *call.settings.secrets)
    result = StepResult(call.settings.model, call.settings.effort, status="failed", error=detail)
    with contextlib.suppress(Exception):
        pending.recording.finish(result)
    return result, StepMagicError(detail)


def stop_all(seconds: float) -> None:
    """Stop every running call and give them ``seconds`` to end and be recorded."""
    running = POOL.running()
    for pending in running:
        pending.cancel()
    ends = time.monotonic() + seconds
    for pending in running:
        with contextlib.suppress(TimeoutError):
            pending.wait(max(ends - time.monotonic(), 0.0))
