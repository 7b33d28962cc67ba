"""Fixtures: the bundled StepFun-compatible server, an IPython shell, and a real kernel.

Every test talks to a real HTTP server on 127.0.0.1 through the real openai client; nothing
here is mocked. The test key is a recognisable string so tests can prove it never leaks.
"""

from __future__ import annotations

import dataclasses
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from step_magic.server import LocalServer, ServerConfig

TEST_KEY = "sk-step-test-5ecret-KEY-0123456789"


def pytest_configure(config: pytest.Config) -> None:
    """A key kept on this machine by ``step-magic key set`` never reaches a test: the tests
    and every process they start look in an empty config directory of their own."""
    import os
    import tempfile

    os.environ["STEP_MAGIC_CONFIG_DIR"] = tempfile.mkdtemp(prefix="step-magic-config-")


def pytest_unconfigure(config: pytest.Config) -> None:
    import os
    import shutil

    folder = os.environ.pop("STEP_MAGIC_CONFIG_DIR", "")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


LOCAL_KEY = "sk-local-server-test-KEY-7f3a9c"  # the server tests' own server (``local``)


@pytest.fixture(scope="session")
def _server() -> Iterator[LocalServer]:
    with LocalServer(ServerConfig(api_key=TEST_KEY)) as server:
        yield server


@pytest.fixture
def server(_server: LocalServer) -> Iterator[LocalServer]:
    """The local server, with its request log and faults cleared, and its config restored."""
    saved = dataclasses.replace(_server.config)
    _server.reset()
    yield _server
    for item in dataclasses.fields(saved):
        setattr(_server.config, item.name, getattr(saved, item.name))
    _server.reset()


@pytest.fixture(scope="module")
def _running() -> Iterator[LocalServer]:
    with LocalServer(ServerConfig(api_key=LOCAL_KEY)) as server:
        yield server


@pytest.fixture
def local(_running: LocalServer) -> LocalServer:
    """A server of the test module's own, with a fresh log, counters and default config."""
    _running.reset()
    _running.config = ServerConfig(api_key=LOCAL_KEY)
    return _running


@pytest.fixture
def client(local: LocalServer) -> Any:
    """The real openai client, pointed at ``local``."""
    import openai

    return openai.OpenAI(base_url=local.base_url, api_key=LOCAL_KEY, max_retries=0, timeout=10)


@pytest.fixture
def api_env(server: LocalServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> LocalServer:
    """Environment pointing step-magic at the local server with the test key.

    The history database goes to a per-test file, never the user's data directory.
    """
    monkeypatch.setenv("STEP_MAGIC_HISTORY", str(tmp_path / "history.sqlite3"))
    monkeypatch.setenv("STEPFUN_API_KEY", TEST_KEY)
    monkeypatch.delenv("STEP_API_KEY", raising=False)
    monkeypatch.setenv("STEPFUN_BASE_URL", server.base_url)
    return server


@pytest.fixture(scope="session")
def _shell() -> Any:
    from IPython.testing.globalipapp import start_ipython

    return start_ipython()


@pytest.fixture
def ip(_shell: Any, api_env: LocalServer) -> Iterator[Any]:
    """A real IPython shell with step_magic loaded, talking to the local server."""
    from traitlets.config import Config

    _shell.config.StepMagics = Config()
    before = set(_shell.user_ns)
    _shell.run_line_magic("load_ext", "step_magic")
    yield _shell
    _shell.run_line_magic("unload_ext", "step_magic")
    _shell.config.StepMagics = Config()
    for name in set(_shell.user_ns) - before:  # a test's names must not reach the next one
        _shell.user_ns.pop(name, None)
    for name in ("_step", "res"):
        _shell.user_ns.pop(name, None)


def kernel_env(server: LocalServer, history_dir: Path) -> dict[str, str]:
    """A kernel's environment: the test key, the local server, a history file of its own."""
    import os

    env = {
        **os.environ,
        "STEPFUN_API_KEY": TEST_KEY,
        "STEPFUN_BASE_URL": server.base_url,
        "STEP_MAGIC_HISTORY": str(history_dir / "history.sqlite3"),
    }
    env.pop("STEP_API_KEY", None)
    return env


@pytest.fixture(scope="session")
def _kernel(_server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from .kernel import KernelSession

    session = KernelSession(kernel_env(_server, tmp_path_factory.mktemp("kernel")))
    session.execute("%load_ext step_magic")
    yield session
    session.shutdown()


@pytest.fixture
def fresh_kernel(_server: LocalServer, tmp_path: Path) -> Iterator[Any]:
    """A kernel of the test's own, where nothing has run yet."""
    from .kernel import KernelSession

    session = KernelSession(kernel_env(_server, tmp_path))
    yield session
    session.shutdown()


@pytest.fixture
def kernel(_kernel: Any, server: LocalServer) -> Any:
    """A real ipykernel with step_magic loaded, pointed at the (reset) local server."""
    return _kernel


# The tiers are marked from the fixtures a test uses, never by hand: a test that starts a
# kernel (directly or through another fixture) is ``kernel``, one that drives Chromium is
# ``browser``. ``-m "not kernel and not browser and not slow"`` is the unit tier.
KERNEL_FIXTURES = frozenset(
    {
        "_kernel",
        "spare_kernel",
        "fresh_kernel",
        "run_notebook",
        "run_notebook_in",
        "notebook_refresher",
        "marimo_notebook",
    }
)
BROWSER_FIXTURES = frozenset({"browser", "jupyter"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.kernel)  # its notebooks run in real kernels
        elif used & KERNEL_FIXTURES:
            item.add_marker(pytest.mark.kernel)


def _patient_client() -> Any:
    """scripts/refresh_notebooks.py's client, which does not lose a cell's reply under load."""
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("refresh", root / "scripts/refresh_notebooks.py")
    assert spec is not None
    assert spec.loader is not None
    refresh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(refresh)
    return refresh.PatientClient


@pytest.fixture
def run_notebook() -> Any:
    """Execute a notebook of code cells for real (nbclient + ipykernel), save it, read it back.

    Through scripts/refresh_notebooks.py's client, which does not lose a cell's reply on a
    loaded machine (see ``PatientClient`` there).
    """
    import nbformat

    client_class = _patient_client()

    def execute(cells: list[str], path: Path) -> Any:
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
        client = client_class(notebook, timeout=120, kernel_name="python3", allow_errors=True)
        client.execute()
        nbformat.write(notebook, path)
        return nbformat.read(path, as_version=4)

    return execute


@pytest.fixture
def run_notebook_in() -> Any:
    """Like ``run_notebook``, in a working folder and an environment of the test's choosing."""
    import nbformat

    client_class = _patient_client()

    def execute(cells: list[str], folder: Path, env: dict[str, str]) -> Any:
        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
        client = client_class(
            notebook,
            timeout=180,
            kernel_name="python3",
            allow_errors=True,
            resources={"metadata": {"path": str(folder)}},
        )
        client.execute(env=env)
        return notebook

    return execute


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if the test key leaked into any file a test produced.

    Every test's tmp_path (notebooks, histories, cassettes, exports) lives under basetemp.
    """
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    root = factory.getbasetemp()
    leaks = [
        path
        for path in root.rglob("*")
        if path.is_file() and TEST_KEY.encode() in path.read_bytes()
    ]
    if leaks:
        print(f"\nThe test API key leaked into: {', '.join(map(str, leaks))}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- the browser tier: JupyterLab in Debian's Chromium (tests/browser.py has the helpers) ---

VIEWPORT = {"width": 1280, "height": 1300}  # tall enough for a finished cell in one shot


@pytest.fixture(scope="module")
def jupyter(_server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """JupyterLab (and Notebook 7) on 127.0.0.1; its kernels use the local server."""
    from .browser import JupyterServer

    env = {"STEPFUN_API_KEY": TEST_KEY, "STEPFUN_BASE_URL": _server.base_url}
    jupyter = JupyterServer(tmp_path_factory.mktemp("jupyter"), env, unset=("STEP_API_KEY",))
    jupyter.start()
    try:
        yield jupyter
    finally:
        jupyter.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (which brings no browser of its own)."""
    from playwright.sync_api import expect, sync_playwright

    from .browser import CHROMIUM, CHROMIUM_ARGS

    # A kernel's first reply can take seconds on a busy 2-core machine: assertions wait for
    # what the page shows for up to 30 s (Playwright's default is 5 s), never for less.
    expect.set_options(timeout=30_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, jupyter: Any) -> Iterator[Any]:
    """A fresh browser context; the kernels the test started are shut down after it."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    try:
        yield context.new_page()
    finally:
        context.close()
        jupyter.shut_down_kernels()


SELF_SIGNED = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"]


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A server context with a certificate made now, trusted by nobody."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl binary is not installed: cannot make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, *SELF_SIGNED, "-days", "1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
