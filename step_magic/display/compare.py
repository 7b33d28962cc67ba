"""A comparison shown side by side: live progress per column, then a static grid.

The grid is plain HTML with inline styles: columns that wrap onto new rows on a narrow
screen (``auto-fit``), each with its header, its reasoning in a ``<details>`` block, its
answer and its footer, the same pieces a single call's static form is made of. Where a
sanitiser strips the styles (GitHub), the columns simply stack, still readable. Nothing in
it is a widget, so the saved notebook needs no kernel.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from IPython.display import display, update_display

from step_magic.core.comparison import Comparison
from step_magic.core.text import seconds
from step_magic.display import static
from step_magic.display.bundles import answer_div

GRID = "display: grid; grid-template-columns: repeat(auto-fit, minmax(18em, 1fr)); gap: 1em"
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


class CompareProgress:
    """While the variants run: one line per column, refreshed twice a second in place."""

    def __init__(self, labels: tuple[str, ...], parent: str) -> None:
        self._labels = labels
        self._parent = parent
        self._id = uuid.uuid4().hex
        self._shown_at = float("-inf")

    def start(self) -> None:
        display({"text/plain": "Starting the comparison…"}, raw=True, display_id=self._id)

    def update(self, lines: list[str], *, force: bool = False) -> None:
        """``lines`` in the order of the labels, e.g. ``Thinking… 2,431 chars · 4.1 s``."""
        now = time.monotonic()
        if not force and now - self._shown_at < REFRESH_SECONDS:
            return
        self._shown_at = now
        text = "\n".join(
            f"{label}: {line}" for label, line in zip(self._labels, lines, strict=True)
        )
        html = "<br>".join(
            f"<b>{static.escape(label)}</b>: {static.escape(line)}"
            for label, line in zip(self._labels, lines, strict=True)
        )
        bundle = {"text/html": f'<div style="font-size: 90%">{html}</div>', "text/plain": text}
        update_display(bundle, display_id=self._id, raw=True)

    def finish(self, comparison: Comparison) -> None:
        update_display(comparison_bundle(comparison), display_id=self._id, raw=True)
        comparison.shown_in = self._parent


def show_comparison(comparison: Comparison) -> None:
    """``display(comparison)``: the static grid."""
    display(comparison_bundle(comparison), raw=True)


def progress_line(reasoning: int, answer: int, elapsed: float, status: str | None) -> str:
    """One column's state in a few words."""
    if status is not None:
        return f"{status} after {seconds(elapsed)}"
    if answer:
        return f"Answering… {answer:,} chars · {seconds(elapsed)}"
    return f"Thinking… {reasoning:,} chars · {seconds(elapsed)}"
