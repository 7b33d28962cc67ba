"""Closing the widgets a finished panel leaves behind, with the models they made for themselves.

A finished call's accordion header outlives it until the next call (a click made while the
reply streamed reaches the kernel only after the cell ends); everything else is closed when
the static form replaces the live one.
"""

from __future__ import annotations

import threading
from typing import Any

_LINGERING: list[Any] = []
_LOCK = threading.Lock()  # background calls start (and close these) on threads of their own


def keep_until_next_call(*widgets: Any) -> None:
    """Leave ``widgets`` open until the next call starts (or the extension is unloaded)."""
    with _LOCK:
        _LINGERING.extend(widgets)


def close_lingering_panels() -> None:
    """Close the headers kept from earlier calls (see ``_follow_late_clicks``)."""
    with _LOCK:
        lingering = list(_LINGERING)
        _LINGERING.clear()
    for widget in lingering:
        retire = getattr(widget, "retire", None)  # a panel part keeps no script once closed
        if retire is not None:
            retire()
        close_widgets(widget)


def close_widgets(*widgets: Any) -> None:
    """Close widgets with the layout and style models each made for itself.

    ``Widget.close`` closes only the widget's own comm; its ``Layout`` and ``HTMLStyle``
    are widgets too, and stayed open in the kernel: nine comms a call, 2,747 after 300.
    """
    for widget in widgets:
        for part in ("layout", "style"):
            model = getattr(widget, part, None)
            if model is not None:
                model.close()
        widget.close()
