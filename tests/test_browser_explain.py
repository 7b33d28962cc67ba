"""The "Explain with step-magic" control under a traceback, as a keyboard user meets it.

JupyterLab in headless Chromium (helpers in browser.py): with ``StepMagics.explain_errors``
on, a failed cell shows the control below its traceback; Tab reaches it, Enter asks, and the
explanation streams into that cell's output, then stays as the saved form; its text reads at
4.5:1 in Light and Dark. With the trait off (the default), nothing is shown.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from step_magic.server import LocalServer

from .browser import CHROMIUM, JupyterServer, NotebookPage, write_notebook
from .test_browser import ARTIFACTS
from .test_browser_look import CHANGE_THEME, COLOURS, poorly_contrasted

pytestmark = [  # browser and kernel marks come from the fixtures (conftest.py)
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing"),
]
FAILING = "total = undefined_sales * 2"


def failed_cell(page: Page, jupyter: JupyterServer, name: str, *, on: bool) -> NotebookPage:
    setup = "%load_ext step_magic" + ("\n%config StepMagics.explain_errors = True" if on else "")
    write_notebook(jupyter.root / name, setup, FAILING)
    view = NotebookPage(page, jupyter, name, ARTIFACTS)
    view.open()
    view.wait_for_idle_kernel()
    view.run_and_wait(0)
    view.run_and_wait(1)
    expect(view.output(1)).to_contain_text("NameError")
    return view


def test_tab_reaches_the_control_and_enter_streams_the_explanation_into_the_failed_cell(
    page: Page, jupyter: JupyterServer, server: LocalServer
) -> None:
    server.config.tokens_per_second = 300
    server.config.reasoning_tokens = 900  # three seconds of thinking: the panel is seen live
    view = failed_cell(page, jupyter, "explain.ipynb", on=True)
    button = view.output(1).get_by_role("button", name="Explain with step-magic")
    expect(button).to_be_visible()

    view.page.keyboard.press("Escape")  # command mode, as a keyboard user leaves the editor
    for _ in range(40):
        view.page.keyboard.press("Tab")
        if button.evaluate("node => node === document.activeElement"):
            break
    else:
        raise AssertionError("40 presses of Tab never reached the explain control")
    view.page.keyboard.press("Enter")

    live = view.output(1).locator("details.step-magic-live")
    expect(live.locator("summary")).to_contain_text("Thinking…")
    expect(view.output(1)).to_contain_text("NameError")  # the traceback stays above it
    saved = view.output(1).locator("details.step-magic-reasoning")
    expect(saved).to_have_count(1, timeout=60_000)
    expect(view.answer(1)).to_contain_text("Simulated answer")
    expect(view.output(1)).to_contain_text("trace id")
    expect(button).to_have_count(0)
    view.screenshot("explain-answered", cell=1)
    sent = [r for r in server.requests if r.path.endswith("/chat/completions")]
    assert len(sent) == 1
    assert "NameError: name 'undefined_sales' is not defined" in str(sent[0].body)


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_the_control_reads_at_4_5_to_1(
    page: Page, jupyter: JupyterServer, server: LocalServer, theme: str
) -> None:
    view = failed_cell(page, jupyter, f"explain-{theme.split()[-1]}.ipynb", on=True)
    try:
        page.evaluate(CHANGE_THEME, theme)
        expect(page.locator("body")).to_have_attribute("data-jp-theme-name", theme)
        button = view.output(1).get_by_role("button", name="Explain with step-magic")
        expect(button).to_be_visible()
        found = button.locator("xpath=..").evaluate(COLOURS)
        assert any(item["text"] == "Explain with step-magic" for item in found)
        assert poorly_contrasted(found) == []
    finally:
        page.evaluate(CHANGE_THEME, "JupyterLab Light")


def test_without_the_trait_a_failed_cell_shows_no_control(
    page: Page, jupyter: JupyterServer, server: LocalServer
) -> None:
    view = failed_cell(page, jupyter, "no-explain.ipynb", on=False)
    view.page.wait_for_timeout(1_000)  # the kernel's idle status came; nothing else will
    expect(view.output(1).get_by_role("button")).to_have_count(0)
