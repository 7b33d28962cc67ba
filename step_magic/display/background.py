"""The live panel of a call running in the background (``--background``, ``background=True``).

It is the foreground panel with two differences:
- a Stop button under it, since the kernel's interrupt does not reach a background call;
- its thread's displays go to the cell that started the call (ipykernel's
  ``set_thread_parent``), even after that cell ended and while others run. The panel's text
  travels as messages to its own widget, never as the cell's output, so nothing another cell
  prints can land in it, and nothing it streams can land in another cell.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from step_magic.core.errors import InputError
from step_magic.core.settings import Settings


def background_panel(
    shell: Any,
    settings: Settings,
    stop: Callable[[], object],
    running_cell: Callable[[], str | None],
) -> tuple[Any, Callable[[], AbstractContextManager[Any]], Callable[[Any], None]]:
    """The view, what its worker thread enters, and what ``wait()`` runs with the result.

    ``running_cell`` tells the request id of the cell running now (the one that started
    the call, here; a later one that waits, in ``wait()``)."""
    from step_magic.display import views

    parent = running_cell()
    assert parent is not None  # the caller knows it runs in a notebook cell
    if not hasattr(shell, "set_thread_parent"):
        raise InputError(
            "a background call needs ipykernel 7.4 or later (set_thread_parent), so that its "
            "panel stays in its own cell: pip install -U ipykernel, then restart the kernel"
        )
    view = views.NotebookView(parent, settings, stop=stop)
    republished = {parent}  # once per cell that waits: the form does not change

    def republish(result: Any) -> None:
        waiting_in = running_cell()
        if waiting_in is not None and waiting_in not in republished:
            republished.add(waiting_in)
            view.show_final(result)

    return view, _output_to(shell), republish


def _output_to(shell: Any) -> Callable[[], AbstractContextManager[Any]]:
    """A context manager for the worker thread: what it prints and displays inside goes to
    the cell running now, not to the cell running when it writes."""
    parent = shell.get_parent()

    @contextlib.contextmanager
    def around() -> Iterator[None]:
        tokens = shell.set_thread_parent(parent)
        try:
            yield
        finally:
            shell.reset_thread_parent(tokens)

    return around
