"""The terminal view: reasoning dimmed as it streams, then the answer, then the footer.

Terminal IPython and ``step_magic.ask`` on a TTY use it; text printed cannot be taken back, so
everything is written once, in order.
"""

from __future__ import annotations

import re
import sys

from step_magic.core.result import StepResult
from step_magic.core.toolrecords import ToolRecord, outcome_text
from step_magic.display import static

# What must not reach a terminal from text the model wrote: C1 control characters (an 8-bit
# CSI is an escape sequence) and the bidirectional overrides and isolates, which make a line
# read differently from what it holds. C0 controls are already gone (``core.text``).
TERMINAL_UNSAFE = re.compile("[\u0080-\u009f\u202a-\u202e\u2066-\u2069]")


class TerminalView:
    """Terminal IPython: reasoning dimmed as it arrives, then the answer, then the footer."""

    def __init__(
        self, *, reasoning: bool, color: bool | None = None, shown_in: str | None = None
    ) -> None:
        self._with_reasoning = reasoning
        self._shown_in = shown_in  # the terminal cell this runs in (frontend.cell_token)
        self._color = sys.stdout.isatty() if color is None else color
        self._phase = "start"

    def start(self, status: str) -> None:
        """Say what is happening before the first token arrives."""
        self._write(status + "\n", dim=True)

    def waiting(self, status: str) -> None:
        """A retry wait: one line, so a scrolling terminal keeps a record of it."""
        self._write(status + "\n", dim=True)

    def update(self, reasoning: str, answer: str, elapsed: float) -> None:
        """Print new text as it arrives; a blank line separates reasoning from the answer."""
        if reasoning and self._with_reasoning:
            self._phase = "reasoning"
            self._write(reasoning, dim=True)
        if answer:
            if self._phase == "reasoning":
                self._write("\n\n", dim=False)
            self._phase = "answer"
            self._write(answer, dim=False)

    def tool(self, record: ToolRecord) -> None:
        """One dim line when a tool call starts, one when it ends."""
        if record.status == "running":
            gap = "" if self._phase == "start" else "\n"
            self._write(f"{gap}{static.tool_line(record)}\n", dim=True)
        else:
            self._write(f"   ↳ {outcome_text(record)}\n", dim=True)
        self._phase = "start"  # at the start of a line

    def rethink(self) -> None:
        """Printed text cannot be taken back: say that it was reasoning."""
        self._write("\n(the text above was the model's reasoning)\n\n", dim=True)
        self._phase = "start"

    def finish(self, result: StepResult) -> None:
        """End the stream with the provenance footer."""
        result.shown_in = self._shown_in
        self._write("\n\n" + static.footer_text(result) + "\n", dim=True)

    def _write(self, text: str, *, dim: bool) -> None:
        text = TERMINAL_UNSAFE.sub("\ufffd", text)
        if dim and self._color:
            text = f"\x1b[2m{text}\x1b[0m"
        sys.stdout.write(text)
        sys.stdout.flush()
