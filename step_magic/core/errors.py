"""The base of step-magic's user-facing errors: IPython shows them as one red line.

IPython asks an exception for ``_render_traceback_`` before formatting a traceback; these
errors answer with a single line, so a failed call never shows a stack of our internals.
"""

from __future__ import annotations


class OneLineError(Exception):
    """An error whose message says everything the user needs; no traceback is shown."""

    def _render_traceback_(self) -> list[str]:
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]
