"""A background call in JupyterLab: its panel streams and ends in its own cell while the
next cell runs, and that cell's output holds only what it printed itself."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from step_magic.server import LocalServer

from .browser import CHROMIUM, JupyterServer, NotebookPage, write_notebook
from .test_browser import ARTIFACTS

pytestmark = [  # browser and kernel marks come from the fixtures (conftest.py)
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing"),
]

MEANWHILE = """import time
_t0 = time.monotonic()
while not r.done and time.monotonic() - _t0 < 90:
    time.sleep(0.2)
print("the other cell saw it end:", r.done, r.result.status)
time.sleep(10)  # still running while the page shows the finished panel above
"""


def test_a_background_call_finishes_in_its_own_cell_while_another_cell_runs(
    page: Page, jupyter: JupyterServer, server: LocalServer
) -> None:
    server.config.tokens_per_second = 150
    server.config.reasoning_tokens = 600
    write_notebook(
        jupyter.root / "background.ipynb",
        "%load_ext step_magic",
        "%%step --background -o r\nWhy does the Moon always show us the same face?",
        MEANWHILE,
    )
    view = NotebookPage(page, jupyter, "background.ipynb", ARTIFACTS)
    view.open()
    view.wait_for_idle_kernel()
    view.run_and_wait(0)
    view.run_and_wait(1)  # returns at once: the reply streams on
    view.run_cell(2)
    panel = view.output(1)
    expect(panel.get_by_role("button", name="Stop")).to_be_visible()
    expect(panel).to_contain_text(re.compile(r"Thinking… [\d,]+ chars"))
    view.screenshot("11-background-streaming", cell=1)
    # the final static form replaces the panel while cell 2 still runs
    expect(panel.locator("details.step-magic-reasoning")).to_have_count(1, timeout=60_000)
    expect(view.output(2)).to_contain_text("the other cell saw it end: True complete")
    expect(view.cell(2).locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\*\]"))
    expect(panel.get_by_role("button", name="Stop")).to_have_count(0)
    expect(panel).to_contain_text(re.compile(r"trace id [0-9a-f]{32}"))
    assert view.output(2).locator(".step-magic-reasoning, .widget-accordion").count() == 0
    view.screenshot("12-background-finished", cell=1)
    view.wait_until_ran(2)


WAIT_A_WHILE = "import time\ntime.sleep(8)  # the kernel is busy: a click reaches it only after"


def test_stop_says_stopping_at_once_while_another_cell_keeps_the_kernel_busy(
    page: Page, jupyter: JupyterServer, server: LocalServer
) -> None:
    server.config.tokens_per_second = 100
    server.config.reasoning_tokens = 3_000  # 30 s: still thinking when stopped
    write_notebook(
        jupyter.root / "stop.ipynb",
        "%load_ext step_magic",
        "%%step --background -o r\nWhy is the sky blue?",
        WAIT_A_WHILE,
        "print(r.done, r.result.status)",
    )
    view = NotebookPage(page, jupyter, "stop.ipynb", ARTIFACTS)
    view.open()
    view.wait_for_idle_kernel()
    view.run_and_wait(0)
    view.run_and_wait(1)
    stop = view.output(1).get_by_role("button", name="Stop")
    expect(view.output(1)).to_contain_text(re.compile(r"Thinking… [\d,]+ chars"))
    view.run_cell(2)
    expect(view.cell(2).locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\*\]"))
    stop.click()
    stopping = view.output(1).get_by_role("button", name="Stopping…")
    expect(stopping).to_be_visible(timeout=1_000)  # at once, though the kernel is busy
    expect(stopping).to_be_disabled()
    view.wait_until_ran(2, timeout=60)
    expect(view.output(1).locator("details.step-magic-reasoning")).to_have_count(1)
    expect(view.output(1)).to_contain_text("interrupted while the model was thinking")
    view.run_and_wait(3)
    expect(view.output(3)).to_contain_text("True interrupted")
