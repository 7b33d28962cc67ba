"""Where a reply is shown: which frontend runs this code, and the view that fits it.

A Jupyter frontend gets the live panel, a terminal gets the plain stream, and a script whose
output goes to a file or a pipe gets nothing (its caller has the result). The shell is read,
never changed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from step_magic.core.settings import Settings


def current_shell() -> Any:
    """The running IPython shell, or None; IPython is not imported when nobody else did."""
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def parent_msg_id(shell: Any) -> str | None:
    """The running cell's request id in a Jupyter kernel; None in terminal IPython."""
    if getattr(shell, "kernel", None) is None:
        return None
    parent = shell.get_parent() if hasattr(shell, "get_parent") else None
    header = (parent or {}).get("header") or {}
    msg_id = header.get("msg_id")
    return msg_id if isinstance(msg_id, str) and msg_id else None


def choose_view(shell: Any, settings: Settings, *, tools: bool = False) -> Any:
    """The live panel in a Jupyter frontend, the plain stream elsewhere."""
    from step_magic.display import views
    from step_magic.display.terminal import TerminalView

    parent = parent_msg_id(shell)
    if parent is not None:
        return views.NotebookView(parent, settings, tools=tools)
    return TerminalView(reasoning=settings.reasoning, shown_in=cell_token(shell))


def reserved_view(parent: str, settings: Settings, slots: Any) -> Any:
    """The live panel in outputs a cell reserved earlier (the explain control's)."""
    from step_magic.display import views

    return views.NotebookView(parent, settings, slots=slots)


class QuietView:
    """Shows nothing: a script's caller has the result, and its output may be a file."""

    def start(self, status: str) -> None: ...
    def waiting(self, status: str) -> None: ...
    def update(self, reasoning: str, answer: str, elapsed: float) -> None: ...
    def tool(self, record: Any) -> None: ...
    def rethink(self) -> None: ...
    def finish(self, result: Any) -> None: ...


def auto_view(display: bool | None, settings: Settings, *, tools: bool = False) -> Any:
    """The view for a call from Python: the live panel in a notebook cell, the plain stream
    on a terminal (or whenever ``display`` is True), nothing otherwise or when it is False."""
    if display is False:
        return QuietView()
    from step_magic.display import marimo

    if marimo.running():
        from step_magic.display.views import NotebookView

        return NotebookView("marimo", settings, tools=tools, slots=marimo.MarimoSlots())
    shell = current_shell()
    if parent_msg_id(shell) is not None:
        return choose_view(shell, settings, tools=tools)
    if display or sys.stdout.isatty():
        from step_magic.display.terminal import TerminalView

        return TerminalView(reasoning=settings.reasoning, shown_in=cell_token(shell))
    return QuietView()


def background_view(
    display: bool | None, settings: Settings, stop: Callable[[], object]
) -> tuple[Any, Callable[[], AbstractContextManager[Any]] | None, Any]:
    """For a call that runs on a thread of its own: the view, what to enter on that thread,
    and what ``wait()`` runs with the result (None each where nothing is needed).

    In a notebook cell, the live panel of ``display.background``. Elsewhere the call runs
    quietly (a terminal's prompt would be written over), or as a plain stream if
    ``display`` is True.
    """
    shell = current_shell()
    parent = parent_msg_id(shell)
    if display is False or parent is None:
        return auto_view(display or False, settings), None, None
    from step_magic.display.background import background_panel

    return background_panel(shell, settings, stop, lambda: parent_msg_id(current_shell()))


def auto_progress(display: bool | None, total: int) -> Any:
    """A ``--map`` progress view chosen as ``auto_view`` chooses: a bar in a notebook cell, a
    line on a terminal (or whenever ``display`` is True), None otherwise or when False."""
    from step_magic.display import progress

    if display is False:
        return None
    if parent_msg_id(current_shell()) is not None:
        return progress.NotebookProgress(total)
    if display or sys.stdout.isatty():
        return progress.TerminalProgress(total)
    return None


def auto_compare_progress(display: bool | None, labels: tuple[str, ...]) -> Any:
    """The live lines of a comparison in a notebook cell (None elsewhere, or when False);
    its ``finish`` shows the side-by-side grid."""
    from step_magic.display import marimo
    from step_magic.display.compare import CompareProgress

    if display is False:
        return None
    parent = parent_msg_id(current_shell())
    if marimo.running():
        progress = CompareProgress(labels, "marimo", marimo.MarimoSlots())
    elif parent is not None:
        progress = CompareProgress(labels, parent)
    else:
        return None
    progress.start()
    return progress


def cell_token(shell: Any) -> str | None:
    """What names the running cell: its request id in a Jupyter kernel, its execution count
    in terminal IPython; None outside IPython."""
    parent = parent_msg_id(shell)
    if parent is not None or shell is None:
        return parent
    return f"terminal:{getattr(shell, 'execution_count', 0)}"


def show_in_ipython(shown: Any, *, comparison: bool) -> None:
    """``display(result)`` and a cell ending in a result (``r = %step ...``): the static form;
    where this very cell's live view became it, nothing in a notebook and one line of what
    it is in a terminal (its answer was printed already)."""
    from IPython.display import display

    shell = current_shell()
    here = shown.shown_in is not None and shown.shown_in == cell_token(shell)
    in_notebook = parent_msg_id(shell) is not None
    if here:
        if not in_notebook:
            print(repr(shown) if comparison else summary_line(shown))
    elif in_notebook and not comparison:
        from step_magic.display.views import show_static

        show_static(shown)
    else:
        display(shown._repr_mimebundle_(), raw=True)


def summary_line(result: Any) -> str:
    """What a result is, in a line: for a terminal's ``Out[n]``, below the reply itself."""
    return (
        f"StepResult: {result.status}, {len(result.reasoning):,} chars of reasoning, "
        f"{len(result.answer):,} of answer"
    )
