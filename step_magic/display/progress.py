"""How a ``--map`` run is shown: a progress bar in a notebook, one updating line in a terminal.

The bar is a live widget only while rows are answered: at the end it is replaced, through its
display id, by a static HTML summary, so the saved notebook holds no widget view (one would
show "model not found" after a restart, see rendering.md). Updates are bounded to a few a
second whatever the caller does: each one is a message to the frontend.
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any, TextIO

from IPython.display import display, update_display

from step_magic.core.mapresult import MapPlan, MapProgress, MapSummary
from step_magic.core.text import dollars, seconds
from step_magic.display import dryrun
from step_magic.display.closing import close_widgets
from step_magic.display.static import escape

MIN_INTERVAL = 0.25  # seconds between two visible updates


def progress_line(progress: MapProgress) -> str:
    """One line of counts: rows, failures, cache hits, retries, tokens, cost, time left."""
    parts = [f"{progress.done + progress.failed:,} / {progress.total:,} rows"]
    for count, word in (
        (progress.failed, "failed"),
        (progress.cached, "cached"),
        (progress.retrying, "retrying"),
    ):
        if count:
            parts.append(f"{count:,} {word}")
    tokens = progress.prompt_tokens + progress.completion_tokens
    if tokens:
        parts.append(f"{tokens:,} tokens")
    if progress.cost:
        parts.append(dollars(progress.cost))
    if progress.stopping:
        parts.append("interrupted: finishing the rows in flight (Ctrl-C again to abandon them)")
    elif progress.eta is not None:
        parts.append(f"about {seconds(progress.eta)} left")
    return " · ".join(parts)


class _Throttled:
    """Drops updates that come sooner than ``MIN_INTERVAL`` after the last one shown, except
    the one that completes the run: the display must not stop one row short."""

    def __init__(self) -> None:
        self._shown_at = float("-inf")

    def _due(self, progress: MapProgress) -> bool:
        now = time.monotonic()
        complete = progress.done + progress.failed >= progress.total
        if now - self._shown_at < MIN_INTERVAL and not complete:
            return False
        self._shown_at = now
        return True


class NotebookProgress(_Throttled):
    """An ipywidgets bar and label, shown at the first update, replaced by the summary.

    Shown lazily so a map that fails before its first row leaves nothing behind.
    """

    def __init__(self, total: int) -> None:
        super().__init__()
        self._total = total
        self._id = uuid.uuid4().hex
        self._widgets: tuple[Any, Any, Any] | None = None

    def __call__(self, progress: MapProgress) -> None:
        """Move the bar and rewrite the label (a few times a second at most)."""
        if not self._due(progress):
            return
        if self._widgets is None:
            import ipywidgets as widgets

            bar = widgets.IntProgress(value=0, min=0, max=max(self._total, 1))
            label = widgets.HTML()
            self._widgets = (widgets.HBox([bar, label]), bar, label)
            display(self._widgets[0], display_id=self._id)
        _, bar, label = self._widgets
        bar.max = max(progress.total, 1)  # the rows mapped (--limit), known once it runs
        bar.value = progress.done + progress.failed
        bar.bar_style = "warning" if progress.failed or progress.stopping else ""
        label.value = f'<span style="font-size: 85%">{escape(progress_line(progress))}</span>'

    def finish(self, summary: MapSummary) -> None:
        """Replace the bar by the static summary and close the widgets."""
        bundle = {"text/html": summary_html(summary), "text/plain": summary.text()}
        if self._widgets is None:
            display(bundle, raw=True)
            return
        update_display(bundle, display_id=self._id, raw=True)
        close_widgets(*self._widgets)
        self._widgets = None


class TerminalProgress(_Throttled):
    """One line rewritten in place with a carriage return, then the summary below it."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        super().__init__()
        self._total = total
        self._stream = stream
        self._width = 0

    def __call__(self, progress: MapProgress) -> None:
        """Rewrite the line (a few times a second at most)."""
        if self._due(progress):
            line = progress_line(progress)
            self._write("\r" + line.ljust(self._width))
            self._width = len(line)

    def finish(self, summary: MapSummary) -> None:
        """Clear the line and print the summary."""
        clear = "\r" + " " * self._width + "\r" if self._width else ""
        self._write(clear + summary.text() + "\n")

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(text)
        stream.flush()


def summary_html(summary: MapSummary) -> str:
    """The summary as static, escaped HTML for the saved notebook."""
    lines = "<br>".join(escape(line) for line in summary.text().splitlines())
    return (
        f'<div class="step-magic-map" style="font-size: 90%; white-space: pre-wrap">{lines}</div>'
    )


def map_dry_run_text(plan: MapPlan) -> str:
    """What a map would send: the number of requests, a token and price estimate for the
    prompts (replies cost more), and the first request in full, as ``--dry-run`` shows one."""
    if plan.first_body is None:
        return "Dry run — nothing sent. There are no rows to map."
    pace = f", {plan.rpm:g} a minute: ≥ {seconds(60 * plan.rows / plan.rpm)}" if plan.rpm else ""
    price = f" {dollars(plan.cost)} before the replies" if plan.cost is not None else ""
    return "\n".join(
        (
            f"Map dry run: {plan.rows:,} requests, one per row (at most "
            f"{plan.concurrency} at once{pace}).",
            f"Estimated prompts: ≈ {plan.tokens:,} tokens in all, ≈ {plan.tokens // plan.rows:,} "
            f"a row{price}.",
            "The first request:",
            dryrun.dry_run_text(plan.first_body, plan.endpoint, plan.api),
        )
    )
