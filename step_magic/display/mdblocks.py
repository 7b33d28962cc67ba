"""Split a growing Markdown answer into finished blocks and the unfinished tail.

While an answer streams, finished blocks are sent once each (rendered as Markdown) and only
the short tail is re-sent, which keeps the bytes on the wire linear in the answer's length.
A block is finished at a blank line outside a code fence once the next line has started and
is not indented (an indented line may continue a list item or a code block).
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


class BlockSplitter:
    """Feed answer text in any pieces; collect the blocks that can no longer change."""

    def __init__(self) -> None:
        self._lines: list[str] = []  # complete lines of the current block
        self._partial = ""  # the line being written
        self._fence: str | None = None
        self._after_blank = False

    @property
    def tail(self) -> str:
        """The text not yet part of a finished block."""
        return "".join(self._lines) + self._partial

    def feed(self, text: str) -> list[str]:
        """Add ``text``; return the blocks it finished, in order."""
        finished: list[str] = []
        pieces = (self._partial + text).split("\n")
        self._partial = pieces.pop()
        for line in pieces:
            self._finish_before(line, finished)
            self._lines.append(line + "\n")
            self._track_fence(line)
            self._after_blank = self._fence is None and not line.strip()
        self._finish_before(self._partial, finished)
        return finished

    def _finish_before(self, line: str, finished: list[str]) -> None:
        """Close the current block if ``line`` starts a new, unindented one after a blank."""
        starts_block = bool(line.strip()) and not line[0].isspace()
        block = "".join(self._lines)
        if self._after_blank and starts_block and block.strip():
            finished.append(block)
            self._lines = []
            self._after_blank = False

    def _track_fence(self, line: str) -> None:
        match = _FENCE.match(line)
        if not match:
            return
        marker = match.group(1)
        if self._fence is None:
            self._fence = marker
        elif marker[0] == self._fence[0] and len(marker) >= len(self._fence):
            self._fence = None
