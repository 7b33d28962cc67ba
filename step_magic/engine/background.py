"""Calls that run on a thread of their own while the kernel runs other cells (``--background``).

A ``Pending`` is what the caller holds at once: the text received so far, ``done``, ``wait``
and ``cancel``. A ``Pool`` bounds how many calls stream at a time (the others wait for a
slot, still cancellable) and keeps them for ``%step_wait all`` and ``%step_cancel all``.

The engine knows nothing of where output goes. The caller passes ``around``, entered on the
worker thread for the whole call (in a kernel it sends the thread's output to the cell that
started the call, not to whichever cell runs meanwhile), and ``after_wait``, run by ``wait``
with the result (in a notebook it republishes the final form from the waiting cell, since
nbclient and papermill hear only the cell that is running).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from typing import Any

from step_magic.core.result import StepResult
from step_magic.core.toolrecords import ToolRecord
from step_magic.engine.runner import View

Run = Callable[[list[int]], tuple[StepResult, BaseException | None]]
POLL_SECONDS = 0.1  # how often a wait looks again: Ctrl-C lands between two looks
DEFAULT_LIMIT = 4
KEEP_FINISHED = 64


class Recording:
    """A view that keeps the text it is shown (for ``Pending.answer``) and passes it on.

    Started once: the caller shows the panel at once, from the cell that asked, so the
    runner's own ``start`` (on the worker, maybe after waiting for a slot) only sets the
    status. Fed on the worker thread, read from the kernel's: appends and joins of lists
    are atomic under the GIL, so no lock is needed.
    """

    def __init__(self, view: View) -> None:
        self.view = view
        self.reasoning: list[str] = []
        self.answer: list[str] = []
        self.elapsed = 0.0
        self._started = False

    def start(self, status: str) -> None:
        if self._started:
            self.view.waiting(status)
        else:
            self._started = True
            self.view.start(status)

    def waiting(self, status: str) -> None:
        self.view.waiting(status)

    def update(self, reasoning: str, answer: str, elapsed: float) -> None:
        self.reasoning.append(reasoning)
        self.answer.append(answer)
        self.elapsed = elapsed
        self.view.update(reasoning, answer, elapsed)

    def tool(self, record: ToolRecord) -> None:
        self.view.tool(record)

    def rethink(self) -> None:
        self.answer.clear()
        self.view.rethink()

    def finish(self, result: StepResult) -> None:
        self.view.finish(result)


class Pending:
    """A call running in the background; ``wait()`` gives its ``StepResult``.

    ``answer`` and ``reasoning`` hold the text received so far (all of it once done);
    ``cancel()`` stops the call as Ctrl-C stops a foreground one (the kernel's interrupt
    does not reach it: it runs on its own thread). A failed call's ``wait()`` returns its
    result all the same (``status``, ``error``); the exception is in ``.exception``.
    """

    def __init__(
        self,
        model: str,
        effort: str | None,
        view: View,
        after_wait: Callable[[StepResult], None] | None = None,
    ) -> None:
        self.model, self.effort = model, effort
        self.cell: str | None = None  # the notebook cell that started it, when known
        self.label = f"{model} · effort {effort}" if effort else model
        self.recording = Recording(view)
        self.stop: list[int] = []
        self.result: StepResult | None = None
        self.exception: BaseException | None = None
        self.state = "queued"
        self.waited = False  # set by ``wait``: ``%step_wait all`` has nothing left to do
        self._done = threading.Event()
        self._after_wait = after_wait
        self._started_at = time.monotonic()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def answer(self) -> str:
        return self.result.answer if self.result else "".join(self.recording.answer)

    @property
    def reasoning(self) -> str:
        return self.result.reasoning if self.result else "".join(self.recording.reasoning)

    def cancel(self) -> bool:
        """Stop the call (what arrived is kept); False if it had already ended."""
        if self.done:
            return False
        self.stop.append(signal.SIGINT)
        return True

    def wait(self, timeout: float | None = None) -> StepResult:
        """The finished result; ``TimeoutError`` if it is still running after ``timeout``
        seconds (the call goes on). Ctrl-C stops the waiting, not the call."""
        ends = time.monotonic() + timeout if timeout is not None else float("inf")
        while not self._done.wait(min(POLL_SECONDS, max(ends - time.monotonic(), 0))):
            if time.monotonic() >= ends:
                raise TimeoutError(
                    f"the background call is still running after {timeout:g} s "
                    "(it goes on; .cancel() stops it)"
                )
        assert self.result is not None  # set before the event
        self.waited = True
        if self._after_wait is not None:
            self._after_wait(self.result)
        return self.result

    def finished(self, result: StepResult, error: BaseException | None) -> None:
        """Called on the worker thread once, when the call ended however it ended."""
        self.result, self.exception, self.state = result, error, result.status
        self._done.set()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """Its result's static form once it ended; until then what the repr says."""
        if self.result is not None:
            return self.result._repr_mimebundle_()
        return {"text/plain": repr(self)}

    def __repr__(self) -> str:
        if self.result is not None:
            return f"<background call {self.label}: {self.result.status}, {self._sizes()}>"
        if self.state == "queued":
            return f"<background call {self.label}: waiting for a free slot>"
        took = time.monotonic() - self._started_at
        return f"<background call {self.label}: running for {took:.1f} s, {self._sizes()}>"

    def _sizes(self) -> str:
        return f"{len(self.reasoning):,} chars of reasoning, {len(self.answer):,} of answer"


class Pool:
    """At most ``limit`` background calls stream at once; the others wait for a slot."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.calls: list[Pending] = []
        self._slots = threading.Condition()
        self._running = 0

    def submit(
        self,
        pending: Pending,
        run: Run,
        around: Callable[[], ContextManager[Any]] | None = None,
    ) -> None:
        """Run ``run(pending.stop)`` on a thread of its own once a slot is free."""
        self.calls = [*_kept(self.calls), pending]
        worker = threading.Thread(
            target=self._work,
            args=(pending, run, around or contextlib.nullcontext),
            name=f"step-magic-background-{pending.label}",
            daemon=True,
        )
        worker.start()

    def cancel_from(self, cell: str | None) -> None:
        """Stop the calls a cell started before: re-running it replaces its call (its old
        panel is gone from the page, and its reply would stream on unseen)."""
        for call in self.running():
            if cell is not None and call.cell == cell:
                call.cancel()

    def running(self) -> list[Pending]:
        """The calls not finished yet, oldest first."""
        return [call for call in self.calls if not call.done]

    def unwaited(self) -> list[Pending]:
        """The calls nobody has waited for yet, running or finished, oldest first: what
        ``%step_wait all`` waits for (a finished one still needs its final form republished
        from the waiting cell, for a headless run to save it)."""
        return [call for call in self.calls if not call.waited]

    def streaming(self) -> int:
        """How many calls hold a slot now."""
        with self._slots:
            return self._running

    def _work(self, pending: Pending, run: Run, around: Callable[[], ContextManager[Any]]) -> None:
        """Whatever fails here, the call ends with a result: ``wait()`` never hangs."""
        result: StepResult | None = None
        error: BaseException | None = None
        try:
            with around():
                self._acquire(pending)
                try:
                    result, error = run(pending.stop)
                finally:
                    self._release()
        except BaseException as err:  # ``run`` ends its own failures; this is a bug of ours
            error = err
        if result is None:
            result = StepResult(pending.model, pending.effort, status="failed")
            result.error = f"the background call could not run ({type(error).__name__})"
        pending.finished(result, error)

    def _acquire(self, pending: Pending) -> None:
        """Wait for a slot; a call cancelled meanwhile takes one at once and ends at once."""
        with self._slots:
            while self._running >= max(self.limit, 1) and not pending.stop:
                self._slots.wait(POLL_SECONDS)
            self._running += 1
            pending.state = "running"

    def _release(self) -> None:
        with self._slots:
            self._running -= 1
            self._slots.notify()


def _kept(calls: list[Pending], finished: int = KEEP_FINISHED) -> list[Pending]:
    """The calls still worth keeping: running ones, and the newest finished ones nobody
    waited for (a script that never waits must not keep every reply it ever started)."""
    unwaited = [call for call in calls if call.done and not call.waited][-finished:]
    return [call for call in calls if not call.done or call in unwaited]
