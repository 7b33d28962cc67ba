"""A comparison shown side by side: live progress per column, then a static grid.

The grid is plain HTML with inline styles: columns that wrap onto new rows on a narrow
screen (``auto-fit``), each with its header, its reasoning in a ``<details>`` block, its
answer and its footer, the same pieces a single call's static form is made of. Where a
sanitiser strips the styles (GitHub), the columns simply stack, still readable. Nothing in
it is a widget, so the saved notebook needs no kernel.
"""

from __future__ import annotations

import time
from typing import Any

from step_magic.core.comparison import Comparison
from step_magic.core.text import seconds
from step_magic.display import static
from step_magic.display.bundles import answer_div
from step_magic.display.slots import JupyterSlots

# min(18em, 100%): a column narrower than 18em fits its output area instead of being clipped
GRID = (
    "display: grid; grid-template-columns: repeat(auto-fit, minmax(min(18em, 100%), 1fr)); gap: 1em"
)
REFRESH_SECONDS = 0.5


def comparison_bundle(comparison: Comparison) -> dict[str, Any]:
    """The static form: the summary table, then one column per variant."""
    columns = "".join(
        f'<div class="step-magic-column" style="min-width: 0">'
        f'<div style="font-weight: 600; margin-bottom: 0.4em">{static.escape(label)}</div>'
        f"{static.reasoning_html(result) if result.reasoning else ''}"
        f"{answer_div(result.answer, remote_images=result.remote_images)}"
        f"{static.footer_html(result)}</div>"
        for label, result in zip(comparison.labels, comparison.results, strict=True)
    )
    html = (
        f'<div class="step-magic-compare">{_summary_html(comparison)}'
        f'<div style="{GRID}">{columns}</div>'
        '<div style="font-size: 85%; opacity: 0.75">a comparison: not part of the conversation'
        "</div></div>"
    )
    return {"text/html": html, "text/plain": _summary_text(comparison)}


def _summary_html(comparison: Comparison) -> str:
    rows = comparison.rows()
    head = "".join(f"<th>{static.escape(name)}</th>" for name in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{static.escape(_cell(v))}</td>" for v in row.values()) + "</tr>"
        for row in rows
    )
    return f'<table style="margin-bottom: 0.8em"><tr>{head}</tr>{body}</table>'


def _summary_text(comparison: Comparison) -> str:
    lines = []
    for row, result in zip(comparison.rows(), comparison.results, strict=True):
        figures = ", ".join(f"{k} {_cell(v)}" for k, v in row.items() if k != "variant")
        lines += [f"== {row['variant']} ({figures})", result.answer.strip(), ""]
    return "\n".join(lines).rstrip()


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else str(value)


class ColumnTally:
    """The view of one variant: what arrived, kept for its live column (fed on the
    variant's own thread, read by the main thread that draws the columns)."""

    TAIL = 1_200  # characters of reasoning a live column shows

    def __init__(self) -> None:
        self.reasoning_chars = 0
        self.reasoning_tail = ""
        self.answer = ""
        self.elapsed = 0.0

    def start(self, status: str) -> None: ...
    def waiting(self, status: str) -> None: ...
    def tool(self, record: Any) -> None: ...
    def finish(self, result: Any) -> None: ...

    def update(self, reasoning: str, answer: str, elapsed: float) -> None:
        self.reasoning_chars += len(reasoning)
        self.reasoning_tail = (self.reasoning_tail + reasoning)[-self.TAIL :]
        self.answer += answer
        self.elapsed = elapsed

    def rethink(self) -> None:
        self.answer = ""


class CompareProgress:
    """While the variants run: one live column each (header, the newest reasoning, the
    answer so far), redrawn twice a second in place. Each redraw is bounded (a reasoning
    tail and the answer's last part), so the bytes grow with time, not with the text."""

    ANSWER_TAIL = 4_000

    def __init__(self, labels: tuple[str, ...], parent: str, slots: Any = None) -> None:
        self._labels = labels
        self._parent = parent
        self._slots = JupyterSlots() if slots is None else slots
        self._shown_at = float("-inf")

    def start(self) -> None:
        self._slots.show([("grid", {"text/plain": "Starting the comparison…"})])

    def update(self, tallies: list[ColumnTally], results: list[Any]) -> None:
        """Redraw the columns (at most twice a second); ``results`` has None while running."""
        now = time.monotonic()
        if now - self._shown_at < REFRESH_SECONDS:
            return
        self._shown_at = now
        lines, columns = [], []
        for label, tally, result in zip(self._labels, tallies, results, strict=True):
            line = progress_line(
                tally.reasoning_chars,
                len(tally.answer),
                result.elapsed if result else tally.elapsed,
                result.status if result else None,
            )
            lines.append(f"{label}: {line}")
            columns.append(_live_column(label, line, tally, self.ANSWER_TAIL))
        html = f'<div class="step-magic-compare-live" style="{GRID}">{"".join(columns)}</div>'
        self._slots.replace("grid", {"text/html": html, "text/plain": "\n".join(lines)})

    def finish(self, comparison: Comparison) -> None:
        self._slots.replace("grid", comparison_bundle(comparison))
        comparison.shown_in = self._parent


def _live_column(label: str, line: str, tally: ColumnTally, answer_tail: int) -> str:
    reasoning = (
        '<div style="display: flex; flex-direction: column-reverse; max-height: 7em;'
        " overflow: hidden; white-space: pre-wrap; font-size: 90%; opacity: 0.8;"
        f' border-left: 3px solid #ccc; padding-left: 0.6em">'
        f"<div>{static.escape(tally.reasoning_tail)}</div></div>"
        if tally.reasoning_tail
        else ""
    )
    answer = answer_div(tally.answer[-answer_tail:]) if tally.answer else ""
    return (
        '<div class="step-magic-column" style="min-width: 0">'
        f'<div style="font-weight: 600">{static.escape(label)}</div>'
        f'<div style="font-size: 85%; opacity: 0.75; margin-bottom: 0.4em">'
        f"{static.escape(line)}</div>{reasoning}{answer}</div>"
    )


def progress_line(reasoning: int, answer: int, elapsed: float, status: str | None) -> str:
    """One column's state in a few words."""
    if status is not None:
        return f"{status} after {seconds(elapsed)}"
    if answer:
        return f"Answering… {answer:,} chars · {seconds(elapsed)}"
    return f"Thinking… {reasoning:,} chars · {seconds(elapsed)}"
