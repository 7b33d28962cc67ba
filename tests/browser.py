"""Helpers for the browser tests: a JupyterLab server of the test's own, and a notebook page.

``JupyterServer`` runs ``jupyter lab`` on 127.0.0.1 with every Jupyter and home directory inside
the test's temporary folder, so nothing the developer configured leaks in (and nothing leaks
out). The same server also serves Notebook 7 (``/notebooks/<name>``). ``NotebookPage`` drives
one notebook in headless Chromium through Playwright the way a person would: keyboard to run
cells and save, clicks on what is shown, and reads back what the page renders.

The selectors are the JupyterLab 4 / Notebook 7 DOM as measured with JupyterLab 4.6 and
ipywidgets 8.1 (an Accordion is ``.jupyter-widget-Accordion``; its header is
``.jupyter-widget-Collapse-header`` and its body ``.jupyter-widget-Collapse-contents``, which
carries ``lm-mod-hidden`` while collapsed).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat
from playwright.sync_api import Locator, Page, Route, expect

CHROMIUM = Path("/usr/bin/chromium")
# What this machine needs to run Debian's Chromium headless as root with no network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# What JupyterLab and Notebook 7 show where a widget cannot be displayed (see rendering.md).
WIDGET_ERRORS = ("Error displaying widget", "model not found", "Loading widget")

# JupyterLab's "Save Widget State Automatically" (Settings menu), off unless a test asks.
SAVE_WIDGET_STATE = {
    "@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings": {"saveState": True}
}
# Settings that keep pop-ups out of the way: no news / update check toasts.
USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
# Variables that would point the server at the developer's own Jupyter setup.
ISOLATION_UNSET = (
    "JUPYTER_PATH",
    "JUPYTER_PREFER_ENV_PATH",
    "JUPYTERLAB_DIR",
    "JUPYTERLAB_SETTINGS_DIR",
    "JUPYTERLAB_WORKSPACES_DIR",
    "IPYTHONDIR",
)
# True once the app shows the notebook at ``path`` loaded (and, with ``kernel``, its session
# settled: a kernel connected, or "No Kernel" chosen). Clicks and keys sent before that may
# be lost: JupyterLab is still restoring its layout and connecting the kernel.
NOTEBOOK_READY = """({path, kernel}) => {
  const app = window.jupyterapp;
  if (!app || !app.shell) return false;
  for (const widget of app.shell.widgets("main")) {
    if (widget.context && widget.context.path === path) {
      return widget.context.isReady && (!kernel || widget.sessionContext.isReady);
    }
  }
  return false;
}"""
# A MutationObserver noting elements that match a selector inside output areas.
RECORD_ELEMENTS = """(selector) => {
  window.__recorded = [];
  new MutationObserver((mutations) => {
    for (const mutation of mutations) {
      for (const node of mutation.addedNodes) {
        if (!(node instanceof Element) || !node.closest(".jp-OutputArea")) continue;
        const found = [...node.querySelectorAll(selector)];
        if (node.matches(selector)) found.push(node);
        for (const element of found) window.__recorded.push(element.outerHTML.slice(0, 120));
      }
    }
  }).observe(document.body, {childList: true, subtree: true});
}"""
# A cell's prompt once it has run: "[3]:" (queued or running cells show "[*]:").
DONE_PROMPT = re.compile(r"^\s*\[\d+\]:\s*$")
KERNEL_SPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


# Loopback needs no proxy, whatever the environment says.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def write_notebook(path: Path, *sources: str) -> None:
    """Write a notebook of code cells with the python3 kernel (no kernel-choice dialog)."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = KERNEL_SPEC
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(notebook, path)


def read_outputs(path: Path, index: int | None = None) -> list[dict[str, Any]]:
    """The outputs of cell ``index`` of a saved notebook, or of every code cell, in order."""
    cells = nbformat.read(path, as_version=4).cells
    chosen = cells if index is None else [cells[index]]
    return [output for cell in chosen if cell.cell_type == "code" for output in cell.outputs]


class JupyterServer:
    """``jupyter lab`` in a process group of its own, isolated under ``base``.

    ``env`` is added to the server's environment, so the kernels it starts inherit it;
    ``settings`` are user settings beside ``USER_SETTINGS`` (file name -> values).
    """

    def __init__(
        self,
        base: Path,
        env: Mapping[str, str],
        unset: tuple[str, ...] = (),
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.base = base
        self._settings = {**USER_SETTINGS, **(settings or {})}
        self.root = base / "notebooks"
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self._env = dict(env)
        self._unset = unset
        self._process: subprocess.Popen[bytes] | None = None
        self.log = base / "jupyter.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        """The address of ``path`` on this server, with the token that opens it."""
        return f"{self.base_url}{path}?token={self.token}"

    def start(self, timeout: float = 60) -> JupyterServer:
        """Start the server and wait until its REST API answers."""
        dirs = {
            "HOME": self.base / "home",
            "JUPYTER_CONFIG_DIR": self.base / "config",
            "JUPYTER_DATA_DIR": self.base / "data",
            "JUPYTER_RUNTIME_DIR": self.base / "runtime",
        }
        for folder in (*dirs.values(), self.root):
            folder.mkdir(parents=True, exist_ok=True)
        settings = dirs["JUPYTER_CONFIG_DIR"] / "lab" / "user-settings"
        for name, values in self._settings.items():
            (settings / name).parent.mkdir(parents=True, exist_ok=True)
            (settings / name).write_text(json.dumps(values))
        env = {**os.environ, **{name: str(path) for name, path in dirs.items()}, **self._env}
        for name in (*ISOLATION_UNSET, *self._unset):
            env.pop(name, None)
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            # window.jupyterapp, to wait until the app is ready rather than sleep.
            "--LabApp.expose_app_in_browser=True",
            "--JupyterNotebookApp.expose_app_in_browser=True",
        ]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"jupyter lab exited early:\n{self.log.read_text()[-3000:]}")
            try:
                self.api("GET", "/api/status")
                return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        self.kill()
        raise TimeoutError(f"jupyter lab did not answer in {timeout} s:\n{self.log.read_text()}")

    def api(self, method: str, path: str) -> Any:
        """One call to the Jupyter REST API; the parsed JSON answer, or None when empty."""
        request = urllib.request.Request(
            self.base_url + path, method=method, headers={"Authorization": f"token {self.token}"}
        )
        with _DIRECT.open(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def kernels(self) -> list[dict[str, Any]]:
        """The kernels running now."""
        kernels: list[dict[str, Any]] = self.api("GET", "/api/kernels")
        return kernels

    def shut_down_kernels(self) -> None:
        """Shut every kernel down (each test leaves none behind)."""
        for kernel in self.kernels():
            self.api("DELETE", f"/api/kernels/{kernel['id']}")

    def stop(self, timeout: float = 20) -> None:
        """Ask the server to shut down (kernels included); kill its process group if it won't."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        try:
            self.api("POST", "/api/shutdown")
            process.wait(timeout=timeout)
        except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
            self.kill()

    def kill(self) -> None:
        """End the server's process group at once."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=5)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue


class NotebookPage:
    """One notebook open in JupyterLab (``app="lab"``) or Notebook 7 (``app="notebook"``)."""

    def __init__(self, page: Page, server: JupyterServer, name: str, artifacts: Path) -> None:
        self.page = page
        self.server = server
        self.name = name
        self.artifacts = artifacts

    @property
    def path(self) -> Path:
        return self.server.root / self.name

    def open(self, app: str = "lab") -> None:
        """Open the notebook (in JupyterLab, in a workspace of its own: no other tab comes back)."""
        stem = Path(self.name).stem
        if app == "lab":
            where = f"/lab/workspaces/{stem}/tree/{self.name}"
        else:
            where = f"/notebooks/{self.name}"
        self.page.goto(self.server.url(where))
        self.wait_for_notebook()

    def reload(self) -> None:
        self.page.reload()
        self.wait_for_notebook()

    def wait_for_notebook(self, *, kernel: bool = False, timeout: float = 60) -> None:
        """Wait until the notebook is loaded (and, with ``kernel``, its session settled)."""
        self.page.wait_for_function(
            NOTEBOOK_READY, arg={"path": self.name, "kernel": kernel}, timeout=timeout * 1000
        )
        expect(self.cells.first).to_be_visible()

    # What is on the page.
    @property
    def notebook(self) -> Locator:
        return self.page.locator(".jp-Notebook").first

    @property
    def cells(self) -> Locator:
        return self.notebook.locator(".jp-Cell")

    def cell(self, index: int) -> Locator:
        return self.cells.nth(index)

    def output(self, index: int) -> Locator:
        """The output area of cell ``index`` (widgets have output areas of their own inside)."""
        return self.cell(index).locator(".jp-Cell-outputArea")

    def answer(self, index: int) -> Locator:
        """The output of cell ``index`` that shows the answer: the one with its ``##`` heading
        (rendered from text/markdown or from HTML, whichever the app chose)."""
        outputs = self.output(index).locator(".jp-OutputArea-output")
        return outputs.filter(has=self.page.locator("h2"))

    @property
    def kernel_status(self) -> Locator:
        """JupyterLab's execution indicator: ``data-status`` is idle, busy, ...."""
        return self.page.locator(".jp-Notebook-ExecutionIndicator").first

    @property
    def kernel_name(self) -> Locator:
        """The toolbar's kernel button: the kernel's display name, or "No Kernel"."""
        return self.page.locator(".jp-KernelName").first

    def widget_errors(self) -> list[str]:
        """Widget error texts anywhere in the notebook (there must be none)."""
        text = self.notebook.inner_text()
        return [error for error in WIDGET_ERRORS if error.lower() in text.lower()]

    def pwned(self) -> Any:
        """``window.__pwned``: set only if a hostile output ran script in the page."""
        return self.page.evaluate("() => window.__pwned")

    def record_output_elements(self, selector: str) -> None:
        """From now on, note every element matching ``selector`` put into any output area,
        even one that is replaced a moment later (read them with ``recorded_elements``)."""
        self.page.evaluate(RECORD_ELEMENTS, selector)

    def recorded_elements(self) -> list[str]:
        """The start of each element noted by ``record_output_elements``."""
        recorded: list[str] = self.page.evaluate("() => window.__recorded")
        return recorded

    def slowest_response_while_running(self, index: int, timeout: float = 60) -> float:
        """Ask the page a trivial question again and again until cell ``index`` has run;
        the longest answer in seconds (a page frozen by its outputs answers late)."""
        slowest = 0.0
        prompt = self.cell(index).locator(".jp-InputPrompt")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            asked = time.monotonic()
            text = prompt.inner_text()
            slowest = max(slowest, time.monotonic() - asked)
            if DONE_PROMPT.match(text):
                break
        return slowest

    def screenshot(self, name: str, cell: int | None = None) -> Path:
        """Save ``<name>.png`` of the page, or of cell ``cell`` only, under ``artifacts``."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{name}.png"
        target = self.page if cell is None else self.cell(cell)
        target.screenshot(path=str(path), animations="disabled")
        return path

    # What a person does.
    def wait_for_idle_kernel(self, timeout: float = 60) -> None:
        """Wait until a kernel is connected and idle."""
        self.wait_for_notebook(kernel=True, timeout=timeout)
        expect(self.kernel_name).not_to_have_text("No Kernel", timeout=timeout * 1000)
        expect(self.kernel_status).to_have_attribute("data-status", "idle", timeout=timeout * 1000)

    def run_cell(self, index: int) -> None:
        """Put the cursor in cell ``index`` and press Shift+Enter."""
        self.cell(index).locator(".jp-InputArea-editor").click()
        self.page.keyboard.press("Shift+Enter")

    def wait_until_ran(self, index: int, timeout: float = 60) -> None:
        """Wait until cell ``index`` has finished: its prompt shows an execution count."""
        prompt = self.cell(index).locator(".jp-InputPrompt")
        expect(prompt).to_have_text(DONE_PROMPT, timeout=timeout * 1000)

    def run_and_wait(self, index: int, timeout: float = 60) -> None:
        self.run_cell(index)
        self.wait_until_ran(index, timeout)

    def save(self, timeout: float = 30) -> None:
        """Ctrl+S, then wait until the document is no longer marked as modified."""
        self.page.keyboard.press("Escape")  # command mode
        self.page.keyboard.press("Control+s")
        dirty = self.page.locator(".jp-mod-dirty")
        expect(dirty).to_have_count(0, timeout=timeout * 1000)

    def shut_down_kernel(self) -> None:
        """Kernel menu → Shut Down Kernel, then wait for "No Kernel"."""
        self.page.get_by_role("menuitem", name="Kernel", exact=True).click()
        self.page.get_by_role("menuitem", name=re.compile(r"^Shut Down Kernel")).click()
        expect(self.kernel_name).to_have_text("No Kernel", timeout=30_000)

    def open_without_kernel(self, app: str = "lab") -> None:
        """Open the notebook in a page that cannot start a kernel, and choose "No Kernel".

        Opening a notebook makes JupyterLab and Notebook 7 start the kernel its metadata
        names; the page's requests for a new session are answered 503 here, so the app says
        "Error Starting Kernel" and offers the kernel choice, where a person picks No Kernel.
        That is the notebook exactly as it renders with no kernel at all.
        """

        def refuse(route: Route) -> None:
            if route.request.method == "POST":
                route.fulfill(
                    status=503,
                    content_type="application/json",
                    body=json.dumps({"message": "no kernel for this test"}),
                )
            else:
                route.continue_()

        self.page.route("**/api/sessions**", refuse)
        self.open(app)
        self.answer_dialog("Error Starting Kernel", "Ok")
        self.answer_dialog("Select Kernel", "No Kernel")
        self.wait_for_notebook(kernel=True)
        expect(self.kernel_name).to_have_text("No Kernel")

    def answer_dialog(self, title: str, button: str) -> None:
        """Wait for the modal dialog titled ``title`` and press its ``button``."""
        header = self.page.locator(".jp-Dialog-header", has_text=title)
        dialog = self.page.locator(".jp-Dialog", has=header)
        dialog.get_by_role("button", name=button, exact=True).click()
        expect(dialog).to_have_count(0)
