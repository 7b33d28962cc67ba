"""``StepMagics.explain_errors``: an "Explain with step-magic" control under tracebacks.

IPython's ``post_run_cell`` event says a cell failed; the control goes under its traceback
(``display.explain``). Nothing is sent until it is clicked; the click is handled when the
kernel is idle, and the explanation is an ordinary call (``%step --with @error``, without
memory) streaming into the failed cell. Headless runs (nbclient, papermill: no one could
click, and the saved file would keep a dead widget) never see the control; neither do
interrupts and step-magic's own errors, which already say what to do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from IPython.core.error import UsageError

from step_magic.core.errors import StepMagicError

if TYPE_CHECKING:
    from step_magic.display.slots import ReservedSlots


class Explains(Protocol):
    """What the glue needs of ``StepMagics``: its shell, and the call it makes on a click."""

    shell: Any

    def explain_into(self, error: BaseException, slots: ReservedSlots, parent: str) -> None: ...


class ErrorExplainer:
    """Remembers the last failure of the user's code (what ``@error`` means: not a mistyped
    flag or a step-magic error that came after it); with ``offer(True)``, shows the control
    after a failed cell and withdraws it when the next cell runs."""

    def __init__(self, magics: Explains) -> None:
        self._magics = magics
        self._on = False
        self._offering = False
        self._offered: ReservedSlots | None = None

    def offer(self, on: bool) -> None:
        """Show the control under failed cells from now on, or no longer."""
        self._offering = on
        if not on:
            self.before_cell()

    def switch(self, on: bool) -> None:
        """Listen to the shell's cell events, or stop (and withdraw an open offer)."""
        events = getattr(self._magics.shell, "events", None)
        if events is None or on == self._on:
            return
        if on:
            events.register("pre_run_cell", self.before_cell)
            events.register("post_run_cell", self.after_cell)
        else:
            events.unregister("pre_run_cell", self.before_cell)
            events.unregister("post_run_cell", self.after_cell)
            self.before_cell()
        self._on = on

    def before_cell(self, info: Any = None) -> None:
        """A new cell runs: the last error's control, unclicked, goes away."""
        if self._offered is not None:
            from step_magic.display.explain import withdraw

            withdraw(self._offered)
            self._offered = None

    def after_cell(self, result: Any) -> None:
        """Offer the control under a failed cell's traceback, to a person at a frontend."""
        from step_magic.display.frontend import parent_msg_id

        error = getattr(result, "error_in_exec", None)
        if error is None or not _worth_explaining(error):
            return
        from step_magic.context import failure

        failure.remember(error)
        shell = self._magics.shell
        parent = parent_msg_id(shell)
        if not self._offering or parent is None or not _someone_can_click(shell):
            return
        from step_magic.display.explain import offer

        self._offered = offer(lambda slots: self._clicked(error, slots, parent))

    def _clicked(self, error: BaseException, slots: ReservedSlots, parent: str) -> None:
        from step_magic.display.explain import say

        if self._offered is slots:
            self._offered = None  # answered: the next cell leaves it in place
        try:
            self._magics.explain_into(error, slots, parent)
        except (UsageError, StepMagicError) as err:
            say(slots, f"step-magic: {err}")


def _worth_explaining(error: BaseException | None) -> bool:
    """A failure of the user's code, not Ctrl-C, not a usage error, not one of ours."""
    if error is None or isinstance(error, KeyboardInterrupt | UsageError | StepMagicError):
        return False
    return isinstance(error, Exception)


def _someone_can_click(shell: Any) -> bool:
    """JupyterLab, Notebook and VS Code send ``allow_stdin``; nbclient and papermill do not."""
    kernel = getattr(shell, "kernel", None)
    return bool(getattr(kernel, "_allow_stdin", False))
