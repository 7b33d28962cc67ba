"""``step-magic key``: a key kept between sessions in an owner-only file (or the keyring),
read after the environment by every way in: the magic, the Python API, ``ask``, ``doctor``.

The commands run for real as subprocesses with the config directory in ``tmp_path`` and the
key piped in. The key here is not ``TEST_KEY``: the session's leak scan would find it in the
key file, the one place it belongs; these tests scan for their own key everywhere else.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import step_magic
from step_magic.core import keystore
from step_magic.core.errors import InputError
from step_magic.core.settings import find_api_key, key_origin
from step_magic.server import LocalServer, ServerConfig

STORED_KEY = "sk-keystore-only-7e57-KEY-fedcba9876"
OTHER_KEY = "sk-keystore-other-1234-KEY-abcdef0123"
POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")


@pytest.fixture(scope="module")
def _keyed() -> Iterator[LocalServer]:
    with LocalServer(ServerConfig(api_key=STORED_KEY)) as server:
        yield server


@pytest.fixture
def keyed(_keyed: LocalServer) -> LocalServer:
    """A server of this module's own that accepts STORED_KEY only."""
    _keyed.reset()
    return _keyed


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return tmp_path / "config" / "step-magic"


def key_env(config_dir: Path, tmp_path: Path, **extra: str) -> dict[str, str]:
    """No key in the environment; the config directory, home and history in ``tmp_path``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("STEPFUN_API_KEY", "STEP_API_KEY", "STEPFUN_BASE_URL")
    }
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        STEP_MAGIC_CONFIG_DIR=str(config_dir),
        STEP_MAGIC_HISTORY=str(tmp_path / "history.sqlite3"),
        **extra,
    )
    return env


def step_magic_cli(
    *args: str, env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """The console script's code in its own process, with ``stdin`` piped in."""
    command = [sys.executable, "-m", "step_magic.cli", *args]
    done = subprocess.run(
        command, env=env, input=stdin, capture_output=True, text=True, timeout=120
    )
    for key in (STORED_KEY, OTHER_KEY):
        assert key not in done.stdout + done.stderr, args
    return done


def files_holding(key: str, root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]


@POSIX
def test_a_piped_key_is_stored_owner_only_shown_masked_and_deleted(
    config_dir: Path, tmp_path: Path
) -> None:
    env = key_env(config_dir, tmp_path)
    stored = step_magic_cli("key", "set", env=env, stdin=f"  {STORED_KEY}\n")
    assert stored.returncode == 0, stored.stderr
    path = config_dir / "key"
    assert stored.stdout.strip() == f"Key sk-…9876 stored in {path}."
    assert path.read_text() == f"{STORED_KEY}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_dir.stat().st_mode) == 0o700
    assert files_holding(STORED_KEY, tmp_path) == [path]  # no temporary file left behind

    shown = step_magic_cli("key", "show", env=env)
    assert shown.returncode == 0
    assert shown.stdout.strip() == f"The key in force: sk-…9876, stored in {path}"

    deleted = step_magic_cli("key", "delete", env=env)
    assert deleted.stdout.strip() == f"Deleted the key stored in {path}."
    assert not path.exists()
    gone = step_magic_cli("key", "show", env=env)
    assert gone.returncode == 1
    assert "step-magic key set" in gone.stderr
    again = step_magic_cli("key", "delete", env=env)
    assert again.returncode == 0
    assert "nothing deleted" in again.stdout


@POSIX
def test_a_key_file_others_can_read_is_refused_in_one_line_everywhere(
    config_dir: Path, tmp_path: Path, keyed: LocalServer
) -> None:
    env = key_env(config_dir, tmp_path, STEPFUN_BASE_URL=keyed.base_url)
    assert step_magic_cli("key", "set", env=env, stdin=STORED_KEY).returncode == 0
    path = config_dir / "key"
    path.chmod(0o644)
    refusal = f"can be read by other users; not using it: run chmod 600 {path}"
    shown = step_magic_cli("key", "show", env=env)
    assert shown.returncode == 1
    assert refusal in shown.stderr
    asked = step_magic_cli("ask", "Hi", env=env)
    assert asked.returncode == 1
    assert asked.stderr.strip().splitlines() == [
        f"step-magic ask: The key file {path} {refusal} (or step-magic key set again)"
    ]
    assert not keyed.requests  # nothing was sent
    # setting it again replaces the file with an owner-only one
    assert step_magic_cli("key", "set", env=env, stdin=STORED_KEY).returncode == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert step_magic_cli("ask", "Hi", env=env).returncode == 0


@POSIX
def test_offline_commands_run_whatever_the_stored_key(config_dir: Path, tmp_path: Path) -> None:
    """The simulator needs no key, so a key file others can read stops nothing offline; the
    demo says why it answers offline (the file's fix included)."""
    env = key_env(config_dir, tmp_path)
    assert step_magic_cli("key", "set", env=env, stdin=STORED_KEY).returncode == 0
    path = config_dir / "key"
    path.chmod(0o644)
    table = tmp_path / "cities.csv"
    table.write_text("city\nLima\nOslo\n")
    commands = [
        ("ask", "--local", "Hi"),
        ("map", "--local", str(table), "Country of {city}?", "-o", str(tmp_path / "out.csv")),
        ("doctor", "--local"),
        ("demo", "Hi"),
    ]
    for command in commands:
        done = step_magic_cli(*command, env=env)
        assert done.returncode == 0, (command, done.stderr)
    demo = step_magic_cli("demo", "Hi", env=env)
    assert f"The key file {path} can be read by other users; not using it" in demo.stdout
    assert "the bundled local simulator answers" in demo.stdout


def test_the_environment_wins_over_the_stored_key(
    config_dir: Path, tmp_path: Path, keyed: LocalServer
) -> None:
    env = key_env(config_dir, tmp_path, STEPFUN_BASE_URL=keyed.base_url)
    assert step_magic_cli("key", "set", env=env, stdin=STORED_KEY).returncode == 0
    answered = step_magic_cli("ask", "How many r in strawberry", env=env)
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.strip()

    overridden = {**env, "STEP_API_KEY": OTHER_KEY}
    shown = step_magic_cli("key", "show", env=overridden)
    assert shown.stdout.splitlines() == [
        "The key in force: sk-…0123, set in STEP_API_KEY",
        f"Also stored in {config_dir / 'key'}: sk-…9876, used when STEP_API_KEY is unset",
    ]
    refused = step_magic_cli("ask", "Hi", env=overridden)
    assert refused.returncode == 1
    assert "401" in refused.stderr  # the environment's key was sent, and the server said no
    noted = step_magic_cli("key", "set", env=overridden, stdin=STORED_KEY)
    assert "STEP_API_KEY is set here and is read first" in noted.stdout
    assert files_holding(STORED_KEY, tmp_path) == [config_dir / "key"]


def test_a_key_is_never_taken_from_the_command_line_nor_echoed_back(
    config_dir: Path, tmp_path: Path
) -> None:
    env = key_env(config_dir, tmp_path)
    for args in (
        ("key", "set", STORED_KEY),
        ("key", "set", "--" + STORED_KEY),
        ("key", STORED_KEY),
        ("key", "show", STORED_KEY),
    ):
        done = step_magic_cli(*args, env=env)  # checks the key is in neither stream
        assert done.returncode == 2
        assert "never taken from the command line" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    assert not config_dir.exists()


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("", "no key given"),
        ("  \n", "no key given"),
        ("sk-short", "that does not look like an API key"),
        (f"{STORED_KEY} {OTHER_KEY}", "that does not look like an API key"),
        (f"STEPFUN_API_KEY={STORED_KEY}", "that is a shell assignment"),
        (f"export STEPFUN_API_KEY={STORED_KEY}", "that is a shell assignment"),
        ("sk-\x00\x01binary-bytes-here-0123", "that does not look like an API key"),
    ],
)
def test_an_empty_or_implausible_key_is_refused_in_one_line_and_nothing_is_stored(
    typed: str, problem: str, config_dir: Path, tmp_path: Path
) -> None:
    done = step_magic_cli("key", "set", env=key_env(config_dir, tmp_path), stdin=typed)
    assert done.returncode == 2
    assert done.stderr.startswith(f"step-magic key set: {problem}")
    assert done.stderr.strip().endswith("nothing stored")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (config_dir / "key").exists()


@pytest.fixture
def stored_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, config_dir: Path, keyed: LocalServer
) -> Path:
    """This process: no key variable, the key stored in ``config_dir``, the keyed server."""
    for name in ("STEPFUN_API_KEY", "STEP_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STEP_MAGIC_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("STEP_MAGIC_HISTORY", str(tmp_path / "history.sqlite3"))
    monkeypatch.setenv("STEPFUN_BASE_URL", keyed.base_url)
    assert keystore.write(STORED_KEY) == f"stored in {config_dir / 'key'}"
    return config_dir / "key"


def test_the_python_api_uses_the_stored_key(stored_env: Path, keyed: LocalServer) -> None:
    result = step_magic.ask("How many r in strawberry?")
    assert result.answer
    assert find_api_key() == STORED_KEY
    assert key_origin() == f"stored in {stored_env}"
    keystore.write(OTHER_KEY)  # a key this server refuses: proof the stored one is sent
    with pytest.raises(step_magic.StepMagicError) as caught:
        step_magic.ask("Hi")
    assert "401" in str(caught.value)
    assert OTHER_KEY not in str(caught.value)


@POSIX
def test_an_unsafe_key_file_stops_a_call_with_its_one_line(stored_env: Path) -> None:
    stored_env.chmod(0o640)
    with pytest.raises(InputError, match="chmod 600"):
        step_magic.ask("Hi")
    assert key_origin() is not None
    assert key_origin().startswith("not used: The key file")  # type: ignore[union-attr]


def test_step_config_says_the_key_is_stored_and_where(
    ip: Any, stored_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("step_config", "")
    out = capsys.readouterr().out
    assert f"api key:   stored in {stored_env}" in out
    assert STORED_KEY not in out


def test_the_missing_key_messages_name_key_set() -> None:
    from step_magic.core.settings import missing_key_message

    for where in ("notebook", "python", "shell"):
        assert "step-magic key set" in missing_key_message(where)


def _fake_keyring(folder: Path, backend_module: str) -> None:
    """A ``keyring`` package whose backend class lives in ``backend_module``."""
    package = folder / "keyring"
    (package / "backends").mkdir(parents=True)
    (package / "backends" / "__init__.py").write_text("")
    (package / "backends" / "memory.py").write_text(
        "class Keyring:\n    priority = 5\n    saved = {}\n"
    )
    (package / "__init__.py").write_text(
        f"import importlib\n"
        f"_backend = importlib.import_module('keyring.backends.memory').Keyring\n"
        f"_backend.__module__ = {backend_module!r}\n"
        "def get_keyring():\n"
        "    return _backend()\n"
        "def get_password(service, user):\n"
        "    return _backend.saved.get((service, user))\n"
        "def set_password(service, user, value):\n"
        "    _backend.saved[(service, user)] = value\n"
        "def delete_password(service, user):\n"
        "    del _backend.saved[(service, user)]\n"
    )


@pytest.fixture
def keyring_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No config directory override (so a keyring may be used); home and XDG in tmp_path."""
    monkeypatch.delenv("STEP_MAGIC_CONFIG_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for name in ("STEPFUN_API_KEY", "STEP_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    keystore._usable_keyring.cache_clear()
    yield tmp_path / "xdg" / "step-magic" / "key"
    keystore._usable_keyring.cache_clear()
    for name in [m for m in sys.modules if m == "keyring" or m.startswith("keyring.")]:
        del sys.modules[name]


def test_a_real_keyring_backend_holds_the_key_instead_of_the_file(
    keyring_home: Path, tmp_path: Path
) -> None:
    _fake_keyring(tmp_path / "site", "keyring.backends.SecretService")
    assert keystore.write(STORED_KEY) == "in the system keyring"
    assert not keyring_home.exists()
    assert find_api_key() == STORED_KEY
    assert key_origin() == "in the system keyring"
    assert keystore.delete() == ["the system keyring"]
    assert find_api_key() is None


@pytest.mark.parametrize(
    "module", ["keyring.backends.fail", "keyring.backends.null", "keyring.backends.chainer"]
)
def test_a_keyring_without_a_real_backend_leaves_the_key_to_the_file(
    module: str, keyring_home: Path, tmp_path: Path
) -> None:
    _fake_keyring(tmp_path / "site", module)
    assert keystore.write(STORED_KEY) == f"stored in {keyring_home}"
    assert key_origin() == f"stored in {keyring_home}"


def test_without_keyring_installed_loading_the_extension_imports_neither_it_nor_platformdirs(
    tmp_path: Path,
) -> None:
    code = (
        "import sys; from IPython.core.interactiveshell import InteractiveShell;"
        "ip = InteractiveShell.instance(); ip.run_line_magic('load_ext', 'step_magic');"
        "print(sorted(m for m in ('keyring', 'platformdirs') if m in sys.modules))"
    )
    env = key_env(tmp_path / "config", tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


@POSIX
def test_on_a_terminal_the_key_is_asked_for_without_echo(config_dir: Path, tmp_path: Path) -> None:
    import pty
    import select

    env = key_env(config_dir, tmp_path)
    pid, terminal = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and controlling terminal are the pty
        os.execve(sys.executable, [sys.executable, "-m", "step_magic.cli", "key", "set"], env)
    seen = b""

    def read_until(marker: bytes) -> None:
        nonlocal seen
        while marker not in seen:
            ready, _, _ = select.select([terminal], [], [], 60)
            assert ready, seen
            try:
                chunk = os.read(terminal, 1024)
            except OSError:  # the child closed the terminal
                return
            if not chunk:
                return
            seen += chunk

    read_until(b"not shown as you type")
    os.write(terminal, f"{STORED_KEY}\n".encode())
    read_until(b"stored in")
    read_until(b"\n")
    _, status = os.waitpid(pid, 0)
    os.close(terminal)
    assert os.waitstatus_to_exitcode(status) == 0
    assert STORED_KEY.encode() not in seen  # nothing echoed what was typed
    assert b"sk-\xe2\x80\xa69876" in seen
    assert (config_dir / "key").read_text() == f"{STORED_KEY}\n"
