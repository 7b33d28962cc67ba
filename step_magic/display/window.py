"""The part of a long reasoning the live panel holds: a window over the newest text.

A frontend re-renders a growing stream output whole on every append, so an open panel with
a million characters in it kept the browser busy (tasks up to 640 ms, 12 to 25 frames a
second). The live panel therefore holds at most ``limit`` characters: when the text outgrows
that, the panel restarts with a one-line note and the newest ``keep`` characters, and goes
on appending. Each restart re-sends ``keep`` characters once, so the bytes on the wire stay
linear in the text (at most ``keep / (limit - keep)`` more). The final form holds it all.
"""

from __future__ import annotations

LIMIT = 48_000
KEEP = 16_000


class LiveWindow:
    """Feed the text shown; ``add`` says when and with what to restart the panel."""

    def __init__(self, limit: int | None = None, keep: int | None = None) -> None:
        self.limit = LIMIT if limit is None else limit  # read now: a benchmark may change it
        self.keep = KEEP if keep is None else keep
        self._shown = 0  # characters in the panel now
        self._total = 0  # characters shown since the start
        self._recent = ""  # the newest ``keep`` characters

    def add(self, text: str) -> str | None:
        """Note ``text`` as appended; the panel's new content if it must restart, else None."""
        self._total += len(text)
        self._shown += len(text)
        self._recent = (self._recent + text)[-self.keep :]
        if self._shown <= self.limit:
            return None
        earlier = self._total - len(self._recent)
        note = f"… {earlier:,} earlier characters are not shown here; the final form has all\n\n"
        self._shown = len(self._recent)
        return note + self._recent
