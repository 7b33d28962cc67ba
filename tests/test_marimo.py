"""step-magic in marimo (from the package registry), for real: its own runner, and a real
browser on ``marimo run`` for the live part.

marimo shows objects through ``_repr_mimebundle_`` and runs anywidgets natively: a cell that
calls ``step_magic.ask`` shows the live panel while the reply streams, then the finished form
(the same static HTML a Jupyter notebook saves); a cell that shows the result renders it.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from step_magic.server import LocalServer

from .browser import CHROMIUM, free_port
from .conftest import TEST_KEY

pytest.importorskip("marimo")

NOTEBOOK = """import marimo

app = marimo.App()


@app.cell
def _():
    import step_magic

    result = step_magic.ask("Why is the sky blue? <b>bold</b>", effort="high")
    return result, step_magic


@app.cell
def _(result):
    result
    return
{extra}

if __name__ == "__main__":
    app.run()
"""
MARIMO = [sys.executable, "-m", "marimo"]


@pytest.fixture
def marimo_notebook(server: LocalServer, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A marimo notebook asking the local server, and the environment to run it in."""
    path = tmp_path / "ask.py"
    path.write_text(NOTEBOOK.format(extra=""))
    env = {
        **os.environ,
        "STEPFUN_API_KEY": TEST_KEY,
        "STEPFUN_BASE_URL": server.base_url,
        "STEP_MAGIC_HISTORY": str(tmp_path / "history.sqlite3"),
        "HOME": str(tmp_path / "home"),  # marimo's own config and caches stay in the test
    }
    env.pop("STEP_API_KEY", None)
    return path, env


COMPARE = """

@app.cell
def _(step_magic):
    step_magic.compare("Hi", efforts=["low", "high"])
    return
"""


def test_marimo_export_holds_the_finished_form_of_a_call_and_a_comparison(
    marimo_notebook: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    path, env = marimo_notebook
    path.write_text(NOTEBOOK.format(extra=COMPARE))
    out = tmp_path / "ask.html"
    command = [*MARIMO, "export", "html", str(path), "-o", str(out), "--force"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    escaped = out.read_text().replace('\\"', '"')  # the outputs sit in JSON in the page
    page = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), escaped)
    # the calling cell's output became the static form; the next cell renders the result
    assert page.count('<details class="step-magic-reasoning">') >= 2
    assert page.count('class="step-magic-column"') == 2  # the comparison's grid
    assert page.count('class="step-magic-footer"') == 4  # the call, the result, 2 columns
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    source = 'step_magic.ask("Why is the sky blue? <b>bold</b>"'
    assert page.count("<b>bold</b>") == page.count(source)  # markup only in the code itself
    assert TEST_KEY not in page


@pytest.fixture
def marimo_app(marimo_notebook: tuple[Path, dict[str, str]], tmp_path: Path) -> Iterator[str]:
    """``marimo run`` serving the notebook on 127.0.0.1; its address."""
    path, env = marimo_notebook
    port = free_port()
    command = [*MARIMO, "run", str(path), "--headless", "--no-token", "-p", str(port)]
    with (tmp_path / "marimo.log").open("wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}/"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing")
def test_marimo_shows_the_live_panel_then_the_finished_form(
    browser: Browser, server: LocalServer, marimo_app: str
) -> None:
    server.config.tokens_per_second = 200
    server.config.reasoning_tokens = 1_500
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(marimo_app)
        live = page.locator("details.step-magic-live")
        header = live.locator("summary")
        expect(header).to_have_text(re.compile(r"^Thinking… [\d,]+ chars"), timeout=60_000)
        seen = header.inner_text()
        expect(header).not_to_have_text(seen)  # it grows while closed
        header.focus()
        page.keyboard.press("Enter")  # the keyboard opens it here too
        expect(live).to_have_attribute("open", "")
        expect(live.locator(":scope > div")).to_contain_text("The request is for step-3.7-flash")
        final = page.locator("details.step-magic-reasoning:not(.step-magic-live)")
        expect(final).to_have_count(2, timeout=60_000)  # the call's cell, and `result`
        expect(page.locator(".step-magic-footer").first).to_contain_text("trace id")
        expect(live).to_have_count(0)
        assert page.locator("b", has_text="bold").count() == 0  # escaped, not markup
    finally:
        context.close()
