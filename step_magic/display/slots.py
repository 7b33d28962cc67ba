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
