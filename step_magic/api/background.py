"""Starting a call in the background: ``ask(..., background=True)`` and ``%%step --background``.

The call is checked and prepared on the caller's thread (bad input fails at once, as in the
foreground), its panel shown at once in the cell that asked, then it runs through the same
``Session.ask`` as any call, on a thread of the shared ``POOL`` (at most ``POOL.limit`` at
once). History, cassettes and, for the magic, conversation memory record it when it ends.
"""

from __future__ import annotations

from collections.abc import Callable

from step_magic.api.prepare import Call
from step_magic.core.result import StepResult
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
    POOL.cancel_from(cell)
    holder: list[Pending] = []
    view, around, republish = background_view(
        display, call.settings, stop=lambda: holder[0].cancel()
    )
    pending = Pending(call.settings.model, call.settings.effort, view, after_wait=republish)
    pending.cell = cell
    holder.append(pending)
    busy = len(POOL.running())
    pending.recording.start(
        f"Queued: {busy} background calls are running" if busy >= POOL.limit else "Starting…"
    )

    def run(stop: list[int]) -> tuple[StepResult, BaseException | None]:
        try:
            return session.ask(
                call.settings, call.prepared, call.options, pending.recording, cell, None, stop
            )
        finally:
            if on_end is not None:
                on_end()

    POOL.submit(pending, run, around)
    return pending
