"""The notebook experience in a real browser: JupyterLab and Notebook 7 in headless Chromium.

One JupyterLab server for the module (it takes seconds to start), isolated in a temporary
folder, whose kernels talk to the test session's local StepFun-compatible server; every test's
``server`` fixture resets that same server. Each test opens its own notebook in a fresh browser
context and checks what the page renders. Screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

import http.server
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import nbformat
import pytest
from playwright.sync_api import Browser, Page, expect

from step_magic.core.result import StepResult
from step_magic.display.bundles import answer_bundle, footer_bundle
from step_magic.server import LocalServer
from step_magic.server.replies import build_reply
from step_magic.server.validation import parse_chat_request

from .browser import (
    CHROMIUM,
    WIDGET_VIEW,
    JupyterServer,
    NotebookPage,
    read_outputs,
    write_notebook,
)
from .conftest import VIEWPORT

pytestmark = [  # browser and kernel marks come from the fixtures (conftest.py)
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"{CHROMIUM} is missing: install Debian's Chromium with `bash .ci/browser-deps`",
    ),
]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "browser"
THINKING = re.compile(r"^Thinking… [\d,]+ chars · [\d.]+ s$")
THOUGHT = re.compile(r"^Thought for [\d.]+ s · [\d,]+ chars$")
TRACE_ID = re.compile(r"trace id [0-9a-f]{32}\b")
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


def open_notebook(page: Page, jupyter: JupyterServer, name: str, step_cell: str) -> NotebookPage:
    """Write a notebook of ``%load_ext step_magic`` and ``step_cell``, open it in JupyterLab
    and run the first cell; the ``%%step`` cell is left for the test to run."""
    write_notebook(jupyter.root / name, "%load_ext step_magic", step_cell)
    view = NotebookPage(page, jupyter, name, ARTIFACTS)
    view.open()
    view.wait_for_idle_kernel()
    view.run_and_wait(0)
    return view


def check_static_form(view: NotebookPage, index: int = 1, *, effort: str = "no effort") -> None:
    """The finished reply as it must render: ``<details>`` reasoning, Markdown answer, footer
    with a trace id; no widget left in the cell and no widget error text in the notebook."""
    output = view.output(index)
    details = output.locator("details.step-magic-reasoning")
    expect(details).to_have_count(1)
    expect(details.locator("summary")).to_have_text(THOUGHT)
    expect(details).to_contain_text(f"The request is for step-3.7-flash with {effort}")
    answer = view.answer(index)
    expect(answer.locator("h2")).to_contain_text("Simulated answer")
    expect(answer.locator("li")).to_have_text(
        ["Model: step-3.7-flash", re.compile(r"^Effort: "), "Messages: 1"]
    )
    expect(answer.locator("pre code")).to_have_text('print("simulated reply from step-3.7-flash")')
    expect(output.locator(".step-magic-footer")).to_contain_text(TRACE_ID)
    expect(output.locator(".jupyter-widgets")).to_have_count(0)
    assert view.widget_errors() == []


def test_reasoning_streams_into_a_collapsed_live_panel_that_a_click_opens(
    page: Page, jupyter: JupyterServer, server: LocalServer
) -> None:
    server.config.tokens_per_second = 300
    server.config.reasoning_tokens = 900  # three seconds of visible thinking
    view = open_notebook(page, jupyter, "live.ipynb", "%%step\nWhy is the sky blue?")
    view.run_cell(1)

    panel = view.output(1).locator("details.step-magic-live")
    header = panel.locator("summary")
    body = panel.locator(":scope > div")
    expect(header).to_have_text(THINKING)
    expect(body).to_be_hidden()
    seen = header.inner_text()
    expect(header).not_to_have_text(seen)  # the count goes on while the panel is closed
    expect(body).to_contain_text("The request is for step-3.7-flash")  # filled while hidden
    # Long reasoning wraps between words, in the content font, as in the saved form.
    expect(body).to_have_css("white-space", "pre-wrap")
    expect(body).to_have_css("word-break", "normal")
    view.screenshot("1-streaming-panel-closed", cell=1)

    header.click()
    expect(body).to_be_visible()
    expect(body).to_contain_text('The last user message begins: "Why is the sky blue?"')
    view.screenshot("2-streaming-panel-open", cell=1)

    view.wait_until_ran(1)
    # The kernel only hears of the click once the cell has ended; the static form follows it.
    expect(view.output(1).locator("details.step-magic-reasoning")).to_have_attribute("open", "")
    check_static_form(view)
    view.screenshot("3-final-static-form", cell=1)

    view.save()
    reasoning = read_outputs(view.path, 1)[0]["data"]["text/html"]
    assert reasoning.startswith('<details class="step-magic-reasoning" open>')


@pytest.fixture(scope="module")
def saved_demo(browser: Browser, jupyter: JupyterServer) -> Path:
    """A notebook run in JupyterLab, saved with Ctrl+S, its kernel shut down from the menu."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        cell = "%%step --effort high\nWhy does the Moon always show us the same face?"
        view = open_notebook(context.new_page(), jupyter, "saved.ipynb", cell)
        view.run_and_wait(1)
        view.save()
        view.shut_down_kernel()
        return view.path
    finally:
        context.close()
        jupyter.shut_down_kernels()


def test_the_saved_file_holds_the_static_form_and_no_widget(saved_demo: Path) -> None:
    assert all(WIDGET_VIEW not in output.get("data", {}) for output in read_outputs(saved_demo))
    reasoning, answer, footer = read_outputs(saved_demo, 1)
    assert reasoning["data"]["text/html"].startswith('<details class="step-magic-reasoning">')
    assert "The request is for step-3.7-flash with reasoning effort high." in str(reasoning)
    assert "Simulated answer" in str(answer["data"])
    assert TRACE_ID.search(footer["data"]["text/plain"])
    assert "widgets" not in nbformat.read(saved_demo, as_version=4).metadata


@pytest.mark.parametrize(
    ("app", "kernel"),
    [("lab", "no"), ("lab", "fresh"), ("notebook", "no"), ("notebook", "fresh")],
    ids=["jupyterlab-no-kernel", "jupyterlab-fresh-kernel", "notebook7-no-kernel", "notebook7"],
)
def test_the_saved_notebook_renders_its_static_form_when_reopened(
    page: Page, jupyter: JupyterServer, saved_demo: Path, app: str, kernel: str
) -> None:
    """With no kernel at all, and with a fresh kernel (where a saved widget view would say
    "model not found"), in JupyterLab and Notebook 7: the reasoning is a working
    ``<details>``, the answer Markdown, and no widget error shows."""
    view = NotebookPage(page, jupyter, saved_demo.name, ARTIFACTS)
    if kernel == "no":
        view.open_without_kernel(app)
    else:
        view.open(app)
        view.wait_for_idle_kernel()
    expect(view.output(1).locator(".jp-mod-trusted").first).to_be_visible()
    check_static_form(view, effort="reasoning effort high")

    details = view.output(1).locator("details.step-magic-reasoning")
    reasoning = details.locator("div")
    expect(reasoning).to_be_hidden()  # saved closed: nobody opened the panel
    details.locator("summary").click()
    expect(reasoning).to_be_visible()
    expect(reasoning).to_contain_text("Why does the Moon always show us the same face?")
    view.screenshot(f"4-reopened-{app}-{kernel}-kernel", cell=1)
    assert view.widget_errors() == []


def test_a_hostile_prompt_runs_no_script_live_or_after_a_reload(
    page: Page, jupyter: JupyterServer, server: LocalServer
) -> None:
    """The local server quotes the prompt in the reasoning and in the answer."""
    view = open_notebook(page, jupyter, "hostile.ipynb", f"%%step\nRepeat {HOSTILE}")
    view.record_output_elements("img, script")
    view.run_and_wait(1)
    check_shown_as_text(view)
    assert view.recorded_elements() == []  # not even for a moment while it streamed
    view.save()

    view.reload()  # the outputs are the user's own, hence trusted: their HTML is not sanitised
    view.wait_for_idle_kernel()
    expect(view.output(1).locator(".jp-mod-trusted").first).to_be_visible()
    check_shown_as_text(view)
    view.screenshot("5-hostile-prompt-after-reload", cell=1)


def check_shown_as_text(view: NotebookPage) -> None:
    """The hostile markup reads as text, no element was made of it, and no script ran."""
    output = view.output(1)
    expect(output.locator("details")).to_contain_text('begins: "Repeat <img src=x onerror=')
    expect(view.answer(1)).to_contain_text(f'You wrote: "Repeat {HOSTILE}"')
    expect(output.locator("img, script")).to_have_count(0)
    assert view.pwned() is None


def test_a_large_reply_finishes_and_the_page_stays_responsive(
    page: Page, jupyter: JupyterServer, server: LocalServer
) -> None:
    server.config.reasoning_tokens = 20_000
    server.config.answer_tokens = 2_000
    server.config.tokens_per_second = 0  # as fast as the server can send
    view = open_notebook(page, jupyter, "large.ipynb", "%%step\nTell me everything.")

    started = time.monotonic()
    view.run_cell(1)
    slowest = view.slowest_response_while_running(1, timeout=60)
    view.wait_until_ran(1, timeout=1)
    assert time.monotonic() - started < 60
    assert slowest < 2, f"the page took {slowest:.1f} s to answer while the reply streamed"
    expect(view.kernel_status).to_have_attribute("data-status", "idle")
    assert [kernel["execution_state"] for kernel in jupyter.kernels()] == ["idle"]

    sent = "".join(build_reply(parse_chat_request(server.requests[-1].body), 20_000, 2_000).answer)
    expect(view.answer(1)).to_contain_text(" ".join(sent.split()[-6:]))
    check_static_form(view)

    # Typing into the new cell below and running it works, and sees the whole reply.
    view.cell(2).locator(".jp-InputArea-editor").click()
    view.page.keyboard.type("print(len(_step.answer), len(_step.reasoning))")
    view.page.keyboard.press("Shift+Enter")
    view.wait_until_ran(2)
    expect(view.output(2)).to_contain_text(f"{len(sent)} ")
    view.output(1).locator(".step-magic-footer").scroll_into_view_if_needed()
    view.screenshot("6-large-reply-end")


TOOL_CELL = f'''%load_ext step_magic

def lookup(key: str) -> str:
    """Look a key up (returns hostile markup)."""
    return {HOSTILE!r}
'''


def test_tool_calls_show_as_text_in_the_live_panel_and_the_saved_form(
    page: Page, jupyter: JupyterServer, server: LocalServer
) -> None:
    """A tool that returns markup: the call and its result read as text, nothing runs."""
    write_notebook(jupyter.root / "tools.ipynb", TOOL_CELL, "%%step --tools lookup\nLook it up")
    view = NotebookPage(page, jupyter, "tools.ipynb", ARTIFACTS)
    view.open()
    view.wait_for_idle_kernel()
    view.run_and_wait(0)
    view.record_output_elements("img, script")
    view.run_and_wait(1)
    details = view.output(1).locator("details.step-magic-reasoning")
    expect(details.locator("summary")).to_have_text(re.compile(r" · 1 tool call$"))
    details.locator("summary").click()
    call = details.locator(".step-magic-tool")
    expect(call).to_contain_text("⚙ lookup(key='example') — ")
    expect(call).to_contain_text("→ <img src=x onerror=")
    expect(view.answer(1).locator("li code").first).to_have_text("lookup")
    expect(view.answer(1)).to_contain_text('"<img src=x onerror=')  # the quoted result
    assert view.recorded_elements() == []
    assert view.pwned() is None
    view.screenshot("7-tool-calls", cell=1)


class _Tracker(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a 1-pixel GIF and notes the path: a beacon's host."""

    fetched: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.fetched.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.end_headers()
        self.wfile.write(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")

    def log_message(self, *args: object) -> None: ...


@pytest.fixture
def tracker() -> Iterator[tuple[str, list[str]]]:
    """An HTTP server on loopback that records what was fetched from it."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tracker)
    _Tracker.fetched = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", _Tracker.fetched
    finally:
        server.shutdown()


def saved_with_outputs(path: Path, outputs: list[dict[str, Any]]) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    cell = nbformat.v4.new_code_cell("%%step\nShow me the chart")
    cell.outputs = [nbformat.v4.new_output("display_data", data=data) for data in outputs]
    notebook.cells = [cell]
    nbformat.write(notebook, path)


def test_a_saved_answer_with_a_remote_image_fetches_nothing_when_opened(
    page: Page, jupyter: JupyterServer, tracker: tuple[str, list[str]]
) -> None:
    """Untrusted, no kernel, nothing run: a plain ``<img>`` output does fetch (the control),
    the answer's image does not, and is a link naming its host instead."""
    base, fetched = tracker
    control = jupyter.root / "control.ipynb"
    saved_with_outputs(control, [{"text/html": f'<img src="{base}/control.gif">'}])
    view = NotebookPage(page, jupyter, control.name, ARTIFACTS)
    view.open_without_kernel()
    expect(view.output(0).locator("img")).to_have_count(1)
    deadline = time.monotonic() + 30
    while not fetched and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fetched == ["/control.gif"]  # the tracker does see what a page loads

    fetched.clear()
    answer = f"The chart:\n\n![sales chart]({base}/beacon.gif?id=reader)\n\nDone."
    result = StepResult(model="step-3.7-flash", effort=None, answer=answer)
    saved = jupyter.root / "remote-image.ipynb"
    saved_with_outputs(saved, [answer_bundle(result), footer_bundle(result)])
    view = NotebookPage(page, jupyter, saved.name, ARTIFACTS)
    view.open_without_kernel()
    link = view.output(0).locator("a", has_text="[image: sales chart — 127.0.0.1]")
    expect(link).to_have_count(1)
    expect(view.output(0).locator("img")).to_have_count(0)
    page.wait_for_timeout(2000)  # time for a late fetch to land
    assert fetched == []
    view.screenshot("6-remote-image-as-link", cell=0)
