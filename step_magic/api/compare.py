"""``step_magic.compare``: one prompt, several efforts or models, run at once, side by side.

The teaching demo: the same question at low and high effort (or on two models), watched
together. Each variant is a whole call of its own, prepared and checked before anything is
sent, run on a thread of its own through the same engine as ``ask``, and recorded in the
history; a failed variant fails its column only. ``%%step --effort low,high`` runs the same
``run_variants`` with calls the magic prepared from the notebook.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

from step_magic.api.prepare import Call, close, one_off_session, prepare
from step_magic.core.comparison import Comparison, variants
from step_magic.core.errors import InputError, StepInterrupted
from step_magic.core.models import DEFAULT_MODEL
from step_magic.core.result import StepResult
from step_magic.display.compare import ColumnTally
from step_magic.display.frontend import auto_compare_progress
from step_magic.engine.session import Session

POLL_SECONDS = 0.1
JOIN_SECONDS = 5.0


def compare(
    prompt: str,
    *,
    efforts: Sequence[str | None] | None = None,
    models: Sequence[str] | None = None,
    display: bool | None = None,
    history: bool = True,
    **keywords: Any,
) -> Comparison:
    """Ask once per effort and model (every combination, at most 6), all at once.

    The other keywords are ``ask``'s (``attach``, ``system``, ``base_url``…), the same for
    every variant; ``tools`` are refused (a function would run once per column). In a
    notebook each column's progress shows live, then the side-by-side grid. Raises
    ``InputError`` before anything is sent (naming the variant), ``StepInterrupted`` on
    Ctrl-C with what arrived in ``.result``.
    """
    for plural, single in (("models", "model"), ("efforts", "effort")):
        if single in keywords and (models if plural == "models" else efforts):
            raise InputError(f"give {single}= or {plural}=, not both")
    if keywords.get("tools"):
        raise InputError("compare runs without tools: a function would run once per column")
    chosen_models = list(models or [keywords.pop("model", None) or DEFAULT_MODEL])
    chosen_efforts = list(efforts or [keywords.pop("effort", None)])
    chosen = variants(chosen_models, chosen_efforts)
    labels = tuple(
        v.label(models=len(chosen_models) > 1, efforts=len(chosen_efforts) > 1) for v in chosen
    )
    session = one_off_session(history)
    try:
        calls = []
        for variant, label in zip(chosen, labels, strict=True):
            given = {**keywords, "model": variant.model, "effort": variant.effort}
            try:
                calls.append(prepare(session, prompt, given, memory=False))
            except InputError as err:
                raise InputError(f"{label}: {err}") from None
        return run_variants(session, prompt, calls, labels, display)
    finally:
        close(session)


def run_variants(
    session: Session,
    prompt: str,
    calls: Sequence[Call],
    labels: tuple[str, ...],
    display: bool | None,
) -> Comparison:
    """Run every call at once, show their progress, return them side by side."""
    tallies = [ColumnTally() for _ in calls]
    stops: list[list[int]] = [[] for _ in calls]
    results: list[StepResult | None] = [None] * len(calls)
    done = [threading.Event() for _ in calls]

    def work(index: int) -> None:
        call = calls[index]
        try:
            try:
                result, _ = session.ask(
                    call.settings, call.prepared, call.options, tallies[index], None, None,
                    stop=stops[index],
                )  # fmt: skip
            except Exception as err:  # a column that could not run fails alone
                result = StepResult(call.settings.model, call.settings.effort, status="failed")
                result.error = str(err)
            results[index] = result
        finally:
            done[index].set()  # after the result: the main thread reads it once this is set

    for index in range(len(calls)):
        threading.Thread(target=work, args=(index,), daemon=True).start()
    progress = auto_compare_progress(display, labels)
    interrupted = _wait(done, tallies, results, progress, stops)
    finished = tuple(
        result or _still_stopping(call) for result, call in zip(results, calls, strict=True)
    )
    comparison = Comparison(prompt, labels, finished)
    if progress is not None:
        progress.finish(comparison)
    if interrupted:
        error = StepInterrupted()
        error.result = comparison
        raise error
    return comparison


def _wait(
    done: list[threading.Event],
    tallies: list[ColumnTally],
    results: list[StepResult | None],
    progress: Any,
    stops: list[list[int]],
) -> bool:
    """Refresh the progress until every variant ended; True if Ctrl-C stopped them.

    Waits on events and sleeps, never on ``Thread.join``: a join that Ctrl-C interrupts
    can leave CPython believing the thread has ended while it still runs.
    """
    try:
        while not all(event.is_set() for event in done):
            time.sleep(POLL_SECONDS)
            if progress is not None:
                progress.update(tallies, results)
    except KeyboardInterrupt:
        for stop in stops:
            stop.append(signal.SIGINT)
        deadline = time.monotonic() + JOIN_SECONDS
        for event in done:
            event.wait(max(deadline - time.monotonic(), 0))
        return True
    return False


def _still_stopping(call: Call) -> StepResult:
    """The stand-in for a variant that had not stopped when the others were gathered."""
    result = StepResult(call.settings.model, call.settings.effort, status="interrupted")
    result.error = "still stopping when the comparison was gathered"
    return result
