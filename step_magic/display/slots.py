"""Where a live view's parts go in a Jupyter frontend: outputs of the running cell, each under
a display id, so each is replaced in place (``marimo.MarimoSlots`` is the same for marimo).

A part is a widget or a MIME bundle; ``replace`` puts a bundle in its place, also from
another cell (a background call's ``wait()``): a display id reaches its output anywhere.
"""

from __future__ import annotations

import uuid
from typing import Any

from IPython.display import display, update_display


class JupyterSlots:
    """Where the parts go in a Jupyter frontend: outputs of the running cell, each under a
    display id of its own, so each is replaced in place."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}

    def show(self, parts: list[tuple[str, Any]]) -> None:
        """Display each part (a widget, or a bundle) under a new display id."""
        for name, shown in parts:
            self._ids[name] = uuid.uuid4().hex
            raw = isinstance(shown, dict)
            display(shown, raw=raw, display_id=self._ids[name])

    def replace(self, name: str, bundle: dict[str, Any]) -> None:
        """Put ``bundle`` where part ``name`` is shown (also from another cell)."""
        update_display(bundle, display_id=self._ids[name], raw=True)


class ReservedSlots(JupyterSlots):
    """Parts shown in outputs a cell displayed earlier, under the display ids in ``ids``.

    The explain control reserves them under a failed cell's traceback; its click is handled
    when the kernel is idle, and the panel then streams into that cell from there.
    """

    def __init__(self, ids: dict[str, str]) -> None:
        super().__init__()
        self._ids = dict(ids)
        self.control: Any = None  # what holds the first place until the parts come

    @property
    def ids(self) -> dict[str, str]:
        return dict(self._ids)

    def show(self, parts: list[tuple[str, Any]]) -> None:
        """Each part replaces what its reserved output held."""
        for name, shown in parts:
            update_display(shown, display_id=self._ids[name], raw=isinstance(shown, dict))
