"""The "Explain with step-magic" control under a failed cell's traceback.

It is shown in the failing cell together with two empty outputs, all under display ids
(``ReservedSlots``): a click reaches the kernel only when it is idle, long after that cell
ended, and a display id is the one way to put the live panel, then the saved form, back in
that cell. Until it is clicked, the next cell to run takes the control away (its three
outputs become empty), so a notebook saved later holds no dead widget for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import anywidget
from IPython.display import display, update_display

from step_magic.display.panel import script
from step_magic.display.slots import ReservedSlots

NAMES = ("reasoning", "answer", "footer")  # the live panel's parts, in order
EMPTY: dict[str, Any] = {"text/plain": ""}


class ExplainControl(anywidget.AnyWidget):
    """A native button; its click comes back as a message."""

    _esm = script("controls.js", "explain.js")

    def __init__(self, on_click: Callable[[], object]) -> None:
        super().__init__()
        self._on_click: Callable[[], object] | None = on_click
        self.on_msg(self._received)

    def _received(self, _: Any, content: dict[str, Any], buffers: Any) -> None:
        if content.get("explain") and self._on_click is not None:
            on_click, self._on_click = self._on_click, None  # one explanation per error
            on_click()


def offer(on_click: Callable[[ReservedSlots], object]) -> ReservedSlots:
    """Show the control and two empty outputs; a click calls ``on_click`` with their slots."""
    slots = ReservedSlots({name: uuid.uuid4().hex for name in NAMES})
    control = ExplainControl(lambda: on_click(slots))
    display(control, display_id=slots.ids["reasoning"])
    for name in NAMES[1:]:
        display(EMPTY, raw=True, display_id=slots.ids[name])
    slots.control = control
    return slots


def withdraw(slots: ReservedSlots) -> None:
    """Take an unclicked control away: its outputs become empty, its widget is closed."""
    for name in NAMES:
        update_display(EMPTY, raw=True, display_id=slots.ids[name])
    _close_control(slots)


def say(slots: ReservedSlots, text: str) -> None:
    """One line where the control was (a missing key, a refused input)."""
    update_display({"text/plain": text}, raw=True, display_id=slots.ids["reasoning"])
    _close_control(slots)


def _close_control(slots: ReservedSlots) -> None:
    """The button's widget, now out of view, closed (once)."""
    if slots.control is not None:
        slots.control.close()
        slots.control = None
