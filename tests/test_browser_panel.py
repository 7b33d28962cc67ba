"""The live panel as keyboard, screen-reader and reading users meet it, in a real browser.

JupyterLab and Notebook 7 in headless Chromium (helpers in browser.py): the header is reached
by Tab and toggled by Enter and Space with its expanded state exposed; the open panel follows
the newest text until the reader scrolls up, then keeps their place; the end of the reply
does not move the answer.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import nbformat
import pytest
from playwright.sync_api import Browser, Page, expect

from step_magic.server import LocalServer

from .browser import (
    CHROMIUM,
    SAVE_WIDGET_STATE,
    WIDGET_VIEW,
    JupyterServer,
    NotebookPage,
    read_outputs,
    write_notebook,
)
from .conftest import TEST_KEY, VIEWPORT
from .test_browser import ARTIFACTS
from .test_browser_look import CHANGE_THEME, COLOURS, poorly_contrasted

pytestmark = [  # browser and kernel marks come from the fixtures (conftest.py)
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing"),
]
THINKING = re.compile(r"^Thinking… [\d,]+ chars · [\d.]+ s$")


def streaming_notebook(page: Page, jupyter: JupyterServer, name: str, app: str) -> NotebookPage:
    write_notebook(jupyter.root / name, "%load_ext step_magic", "%%step\nWhy is the sky blue?")
    view = NotebookPage(page, jupyter, name, ARTIFACTS)
    view.open(app)
    view.wait_for_idle_kernel()
    view.run_and_wait(0)
    return view


def expanded(page: Page) -> bool | None:
    """The expanded state Chromium exposes for the focused element (None: none exposed)."""
    session = page.context.new_cdp_session(page)
    try:
        tree = session.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        session.detach()
    for node in tree:
        props = {p["name"]: p["value"].get("value") for p in node.get("properties", [])}
        if props.get("focused") and node["role"]["value"] != "RootWebArea":
            assert node["name"]["value"].startswith(("Thinking…", "Thought for"))
            return props.get("expanded")
    return None


@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_the_header_is_reached_by_tab_and_toggled_by_enter_and_space(
    page: Page, jupyter: JupyterServer, server: LocalServer, app: str
) -> None:
    server.config.tokens_per_second = 150
    server.config.reasoning_tokens = 1_500  # ten seconds of thinking
    view = streaming_notebook(page, jupyter, f"keyboard-{app}.ipynb", app)
    view.run_cell(1)
    panel = view.output(1).locator("details.step-magic-live")
    header = panel.locator("summary")
    expect(header).to_have_text(THINKING)

    view.page.keyboard.press("Escape")  # command mode, as a keyboard user leaves the editor
    for _ in range(40):
        view.page.keyboard.press("Tab")
        if header.evaluate("node => node === document.activeElement"):
            break
    else:
        raise AssertionError("40 presses of Tab never reached the panel's header")
    expect(header).to_have_css("outline-style", "solid")  # a visible focus ring
    assert expanded(view.page) is False
    view.page.keyboard.press("Enter")
    expect(panel).to_have_attribute("open", "")
    assert expanded(view.page) is True
    view.page.keyboard.press("Space")
    expect(panel).not_to_have_attribute("open", "")
    assert expanded(view.page) is False
    view.page.keyboard.press("Space")
    expect(panel).to_have_attribute("open", "")
    status = view.output(1).locator("[role=status][aria-live=polite]")
    expect(status).to_have_text("Thinking…")  # the phase is announced, not every count
    view.screenshot(f"keyboard-focus-{app}", cell=1)
    view.wait_until_ran(1, timeout=90)
    # the kernel heard of the keys once the cell ended: the saved form stays open
    saved = view.output(1).locator("details.step-magic-reasoning")
    expect(saved).to_have_attribute("open", "")
    expect(view.output(1).locator(".jupyter-widgets")).to_have_count(0)


# The text at the top of the reasoning box's view: what the reader is reading.
TOP_TEXT = """(box) => {
  const r = box.getBoundingClientRect();
  const range = document.caretRangeFromPoint(r.left + 20, r.top + 6);
  if (!range || !box.contains(range.startContainer)) return null;
  const text = range.startContainer.textContent;
  return text.slice(range.startOffset, range.startOffset + 60);
}"""
DISTANCE_FROM_END = "(box) => box.scrollHeight - box.scrollTop - box.clientHeight"


# The newest text counts as in view within a few lines of the end: on a loaded machine the
# chunks' estimated heights settle a frame after the scroll.
IN_VIEW = 120


def test_the_open_panel_follows_the_newest_text_until_the_reader_scrolls_up(
    page: Page, jupyter: JupyterServer, server: LocalServer
) -> None:
    server.config.tokens_per_second = 600
    server.config.reasoning_tokens = 9_000  # 15 s of thinking, far more than the box shows
    view = streaming_notebook(page, jupyter, "follow.ipynb", "lab")
    view.run_cell(1)
    panel = view.output(1).locator("details.step-magic-live")
    expect(panel.locator("summary")).to_have_text(THINKING)
    panel.locator("summary").click()
    box = panel.locator(":scope > div")
    expect(box).to_be_visible()
    grown = box.evaluate("box => box.scrollHeight")
    for _ in range(6):  # following: the newest line is in view whenever we look
        view.page.wait_for_timeout(300)
        assert box.evaluate(DISTANCE_FROM_END) < IN_VIEW
    assert box.evaluate("box => box.scrollHeight") > grown

    box.hover()
    view.page.mouse.wheel(0, -400)  # the reader scrolls up to read
    view.page.wait_for_timeout(300)
    reading = box.evaluate(TOP_TEXT)
    assert reading
    held_at = box.evaluate("box => box.scrollTop")
    height = box.evaluate("box => box.scrollHeight")
    for _ in range(6):  # 3 s while the text goes on growing below
        view.page.wait_for_timeout(500)
        assert box.evaluate(TOP_TEXT) == reading
        assert box.evaluate("box => box.scrollTop") == held_at
    assert box.evaluate("box => box.scrollHeight") > height  # it did grow meanwhile
    assert box.evaluate(DISTANCE_FROM_END) > IN_VIEW

    box.hover()  # the pointer over the box again: the notebook may have moved under it
    view.page.mouse.wheel(0, 100_000)  # back to the end: following again
    following = []
    for _ in range(10):  # the wheel lands when the busy page gets to it: wait for the state
        view.page.wait_for_timeout(300)
        following.append(box.evaluate(DISTANCE_FROM_END) < IN_VIEW)
        if following[-1] and len(following) > 1 and following[-2]:
            break
    assert following[-2:] == [True, True]  # at the end, and still there as the text grows
    view.wait_until_ran(1, timeout=90)


# Each frame: where the answer's first heading is, relative to its cell; and long tasks.
WATCH_FINISH = """(cell) => {
  window.__frames = [];
  window.__long = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__long.push([e.startTime, e.duration]);
  }).observe({type: "longtask"});
  const tick = () => {
    const h2 = cell.querySelector(".jp-OutputArea-output h2");
    const top = h2 ? h2.getBoundingClientRect().top - cell.getBoundingClientRect().top : null;
    const live = Boolean(h2 && h2.closest(".step-magic-live-answer"));
    window.__frames.push([top, live]);
    if (window.__frames.length < 20000) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""


@pytest.mark.parametrize("opened", ["by a click", "by --show-reasoning"])
def test_the_end_of_a_reply_does_not_move_the_answer(
    page: Page, jupyter: JupyterServer, server: LocalServer, opened: str
) -> None:
    server.config.tokens_per_second = 2_000
    server.config.reasoning_tokens = 6_000
    server.config.answer_tokens = 400
    flags = "--show-reasoning" if opened == "by --show-reasoning" else ""
    write_notebook(
        jupyter.root / f"finish-{flags}.ipynb", "%load_ext step_magic", f"%%step {flags}\nHi"
    )
    view = NotebookPage(page, jupyter, f"finish-{flags}.ipynb", ARTIFACTS)
    view.open()
    view.wait_for_idle_kernel()
    view.run_and_wait(0)
    view.cell(1).evaluate(WATCH_FINISH)
    view.run_cell(1)
    panel = view.output(1).locator("details.step-magic-live")
    expect(panel.locator("summary")).to_have_text(THINKING)
    if not flags:
        panel.locator("summary").click()
    expect(panel).to_have_attribute("open", "")
    view.wait_until_ran(1, timeout=90)
    saved = view.output(1).locator("details.step-magic-reasoning")
    expect(saved).to_have_attribute("open", "")
    view.page.wait_for_timeout(1500)
    frames = view.page.evaluate("() => window.__frames")
    tops = [top for top, _ in frames if top is not None]
    assert {live for top, live in frames if top is not None} == {True, False}  # both seen
    moves = [round(b - a) for a, b in itertools.pairwise(tops) if abs(b - a) > 50]
    assert len(moves) <= 1, f"the answer's heading jumped {moves} px at the end"
    assert view.widget_errors() == []
    tasks = view.page.evaluate("() => window.__long")
    longest = max((duration for _, duration in tasks), default=0)
    # A freeze (the whole reply laid out again at its end) is seconds; a loaded 2-core
    # machine alone makes a task of 200 ms (seen once, with the suite and three mutation
    # runs beside it). How fast the end is, is measured in benchmarks/panel_bench.py.
    assert longest < 400, f"a {longest:.0f} ms task froze the page"


@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_every_text_of_the_live_panel_reads_at_4_5_to_1(
    page: Page, jupyter: JupyterServer, server: LocalServer, theme: str
) -> None:
    server.config.tokens_per_second = 150
    server.config.reasoning_tokens = 3_000
    view = streaming_notebook(page, jupyter, f"contrast-live-{theme[-4:]}.ipynb", "lab")
    try:
        page.evaluate(CHANGE_THEME, theme)
        expect(page.locator("body")).to_have_attribute("data-jp-theme-name", theme)
        view.run_cell(1)
        panel = view.output(1).locator("details.step-magic-live")
        expect(panel.locator("summary")).to_have_text(THINKING)
        found = view.output(1).evaluate(COLOURS)  # closed: the header and the status line
        panel.locator("summary").click()
        expect(panel.locator(".step-magic-chunk").first).to_be_visible()
        found += view.output(1).evaluate(COLOURS)  # open: the reasoning too
        texts = [item["text"] for item in found]
        assert any(text.startswith("Thinking…") for text in texts)
        assert any(text.startswith("The request is for") for text in texts)
        poor = poorly_contrasted(found)
        view.screenshot(f"live-contrast-{theme.split()[-1].lower()}", cell=1)
        assert poor == [], str(poor)
        view.wait_until_ran(1, timeout=90)
    finally:
        page.evaluate(CHANGE_THEME, "JupyterLab Light")


@pytest.fixture(scope="module")
def lab_saving_widgets(_server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """JupyterLab with "Save Widget State Automatically" on, its kernels on the local server."""
    env = {"STEPFUN_API_KEY": TEST_KEY, "STEPFUN_BASE_URL": _server.base_url}
    base = tmp_path_factory.mktemp("lab-saving-widgets")
    lab = JupyterServer(base, env, unset=("STEP_API_KEY",), settings=SAVE_WIDGET_STATE)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


def test_a_notebook_saved_mid_stream_shows_the_text_so_far_when_reopened(
    browser: Browser, lab_saving_widgets: JupyterServer, server: LocalServer
) -> None:
    """With widget state saved (a JupyterLab setting, off by default), the panel's page-side
    snapshot is in the file: reopened with a fresh kernel, it shows the reasoning received."""
    server.config.tokens_per_second = 100
    server.config.reasoning_tokens = 6_000  # a minute: still streaming when saved
    lab = lab_saving_widgets
    context = browser.new_context(viewport=VIEWPORT)
    try:
        view = streaming_notebook(context.new_page(), lab, "midstream.ipynb", "lab")
        view.run_cell(1)
        panel = view.output(1).locator("details.step-magic-live")
        expect(panel.locator(":scope > div")).to_contain_text("The last user message begins")
        view.page.wait_for_timeout(1_500)  # the page's snapshot is refreshed once a second
        view.save()
        view.shut_down_kernel()  # the call never finishes: as if the kernel had died
        notebook = nbformat.read(view.path, as_version=4)
        states = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]
        snapshots = [
            model["state"]["snapshot"]["reasoning"]
            for model in states["state"].values()
            if model["state"].get("snapshot")
        ]
        assert any("The last user message begins" in text for text in snapshots)
        assert any(WIDGET_VIEW in o.get("data", {}) for o in read_outputs(view.path, 1))
        nbformat.write(notebook, lab.root / "midstream-copy.ipynb")
        # Reopened later, as JupyterLab does after a restart: a fresh kernel, nothing run.
        # (With no kernel at all JupyterLab 4.6 shows "Loading widget...": its widget
        # manager reads the saved state only after asking a kernel for its widgets.)
        reopened = NotebookPage(context.new_page(), lab, "midstream-copy.ipynb", ARTIFACTS)
        reopened.open()
        reopened.wait_for_idle_kernel()
        restored = reopened.output(1).locator("details.step-magic-live")
        # The widget manager restores the saved state only once the new kernel has answered
        # for its widgets: with two suites on two cores that once took over 30 s.
        expect(restored.locator("summary")).to_be_visible(timeout=90_000)
        restored.locator("summary").click()
        body = restored.locator(":scope > div")
        expect(body).to_contain_text("Saved while the reply streamed")
        expect(body).to_contain_text("The last user message begins")
        assert body.inner_text().count("The last user message begins") == 1  # once, whole
        reopened.screenshot("midstream-reopened", cell=1)
        assert reopened.widget_errors() == []
    finally:
        context.close()
        lab.shut_down_kernels()
