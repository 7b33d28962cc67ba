"""The live panel of a call running in the background (``--background``, ``background=True``).

It is the foreground panel with three differences:
- a Stop button under it, since the kernel's interrupt does not reach a background call;
- its thread's output goes to the cell that started the call (ipykernel's
  ``set_thread_parent``), even after that cell ended and while others run;
- its text waits until that cell has ended, and each write routes into the panel's widgets
  only while it holds the cell's lock: the cell's own later prints, and other background
  calls the same cell started, route by the same request id and must not land in it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from step_magic.core.errors import InputError
from step_magic.core.settings import Settings

_CELL_LOCKS: dict[str, threading.Lock] = {}
_CELL_LOCKS_LOCK = threading.Lock()


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
    ended = threading.Event()

    def cell_ended(*_: Any) -> None:
        ended.set()
        shell.events.unregister("post_run_cell", cell_ended)

    shell.events.register("post_run_cell", cell_ended)
    view = views.NotebookView(
        parent,
        show_reasoning=settings.show_reasoning,
        remote_images=settings.remote_images,
        reasoning=settings.reasoning,
        footer=lambda status: stop_button(status, stop),
        exclusive=_cell_lock(parent),
    )
    republished = {parent}  # once per cell that waits: the form does not change

    def republish(result: Any) -> None:
        waiting_in = running_cell()
        if waiting_in is not None and waiting_in not in republished:
            republished.add(waiting_in)
            view.show_final(result)

    return UntilCellEnds(view, ended), _output_to(shell), republish


class UntilCellEnds:
    """Holds the panel's text until the cell that started the call has ended; the panel
    itself (its header, its status) is shown at once."""

    def __init__(self, view: Any, ended: threading.Event) -> None:
        self.view = view
        self._ended = ended
        self._held = ["", ""]  # reasoning, answer

    def start(self, status: str) -> None:
        self.view.start(status)

    def waiting(self, status: str) -> None:
        self.view.waiting(status)

    def update(self, reasoning: str, answer: str, elapsed: float) -> None:
        if not self._ended.is_set():
            self._held = [self._held[0] + reasoning, self._held[1] + answer]
            return
        held, self._held = self._held, ["", ""]
        self.view.update(held[0] + reasoning, held[1] + answer, elapsed)

    def tool(self, record: Any) -> None:
        self.view.tool(record)

    def rethink(self) -> None:
        self._held[1] = ""
        self.view.rethink()

    def finish(self, result: Any) -> None:
        self.view.finish(result)


def stop_button(status: Any, stop: Callable[[], object]) -> Any:
    """The status line with a Stop button beside it."""
    import ipywidgets as widgets

    button = widgets.Button(
        description="Stop",
        tooltip="Stop this background call. The kernel's interrupt does not reach it; a click "
        "lands when no cell is running (%step_cancel works from any cell).",
        layout=widgets.Layout(width="auto"),
    )

    def clicked(_: Any) -> None:
        button.description, button.disabled = "Stopping…", True
        stop()

    button.on_click(clicked)
    return widgets.HBox([button, status])


def _cell_lock(parent: str) -> threading.Lock:
    with _CELL_LOCKS_LOCK:
        return _CELL_LOCKS.setdefault(parent, threading.Lock())


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
