"""A comparison in a real kernel: live lines per column while they run, then a static grid."""

from __future__ import annotations

from typing import Any

from step_magic.server import LocalServer

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_the_cell_shows_live_progress_then_the_side_by_side_grid(
    kernel: Any, server: LocalServer
) -> None:
    server.config.tokens_per_second = 400
    server.config.reasoning_tokens = 600
    run = kernel.execute("%%step --effort low,high\nWhy is the sky blue?", timeout=120)
    assert run.error() is None
    updates = [m["content"]["data"] for m in run.of_type("update_display_data")]
    live = [u["text/plain"] for u in updates if "Thinking…" in u.get("text/plain", "")]
    assert live, "no live progress line was shown"
    assert all(line.startswith("effort low: ") for line in live)
    final = list(run.final_outputs().values())[-1]
    html = final["text/html"]
    assert html.count('class="step-magic-column"') == 2
    assert html.count('<details class="step-magic-reasoning">') == 2
    assert "effort low" in html
    assert "effort high" in html
    assert "not part of the conversation" in html
    assert all(WIDGET_VIEW not in m["content"].get("data", {}) for m in run.messages)
    shown = kernel.execute("print(type(_step).__name__, [r.status for r in _step.results])")
    assert shown.stdout().strip() == "Comparison ['complete', 'complete']"


def test_displaying_the_comparison_again_shows_the_grid(kernel: Any) -> None:
    kernel.execute("%%step --effort low,high -o both\nHi", timeout=120)
    again = kernel.execute("both")
    grids = [m for m in again.of_type("display_data") if "step-magic-compare" in str(m)]
    assert len(grids) == 1
