"""The live panel in marimo: the same widgets, in the running cell's output.

marimo runs anywidgets natively but has no display ids: the cell's output is replaced as a
whole (``mo.output.replace``), once when the call starts and once per part at the end, when
each part becomes its static form (the HTML a saved Jupyter notebook keeps). marimo is
imported only when it is the one running this code.
"""

from __future__ import annotations

import sys
from typing import Any


def running() -> bool:
    """True inside a marimo notebook's cell (``marimo edit``, ``run``, ``export``)."""
    marimo = sys.modules.get("marimo")
    return marimo is not None and bool(marimo.running_in_notebook())


class MarimoSlots:
    """The parts stacked in the running cell's output, replaced as a whole."""

    def __init__(self) -> None:
        self._parts: dict[str, Any] = {}

    def show(self, parts: list[tuple[str, Any]]) -> None:
        """Show every part (a widget, or a bundle) in the cell's output."""
        import marimo as mo

        for name, shown in parts:
            self._parts[name] = _html(shown) if isinstance(shown, dict) else mo.ui.anywidget(shown)
        self._draw()

    def replace(self, name: str, bundle: dict[str, Any]) -> None:
        """Put ``bundle`` where part ``name`` was."""
        self._parts[name] = _html(bundle)
        self._draw()

    def _draw(self) -> None:
        import marimo as mo

        shown = [part for part in self._parts.values() if part is not None]
        mo.output.replace(mo.vstack(shown) if shown else None)


def _html(bundle: dict[str, Any]) -> Any:
    """A bundle as marimo shows it: its HTML, else its text; None when it holds nothing."""
    import marimo as mo

    from step_magic.display.static import escape

    if bundle.get("text/html"):
        return mo.Html(bundle["text/html"])
    text = bundle.get("text/plain", "")
    return mo.Html(f"<pre>{escape(text)}</pre>") if text else None
