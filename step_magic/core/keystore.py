"""The API key kept between sessions: the system keyring when there is a real one, else a
file only its owner can read.

``step-magic key set`` writes here; ``core.settings.find_api_key`` reads here after the
environment. Nothing in this module prints, logs or raises with the key in it: messages name
where the key is, never what it is. ``keyring`` and ``platformdirs`` are imported when a key
is looked up, not when the extension loads.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from step_magic.core.errors import InputError

DIR_VARIABLE = "STEP_MAGIC_CONFIG_DIR"
FILE_NAME = "key"
KEYRING_SERVICE = "step-magic"
KEYRING_USER = "api-key"
KEYRING_PLACE = "the system keyring"
IN_KEYRING = f"in {KEYRING_PLACE}"
# one line of printable ASCII without spaces: what every provider's keys look like, and not a
# sentence, a pasted `export NAME=...` line or two keys run together
PLAUSIBLE = re.compile(r"[!-~]{16,1024}")
ASSIGNMENT = re.compile(r"(export\s+)?[A-Z][A-Z0-9_]*=")


@dataclass(frozen=True)
class StoredKey:
    """A key found in the store, and where: ``stored in <path>`` or ``in the system keyring``."""

    key: str
    where: str


def plausibility_problem(key: str) -> str | None:
    """Why ``key`` cannot be an API key (without quoting it), else None."""
    if not key:
        return "no key given"
    if ASSIGNMENT.match(key):
        return "that is a shell assignment (NAME=...): give the key alone"
    if not PLAUSIBLE.fullmatch(key):
        return (
            "that does not look like an API key (one line of 16 to 1024 printable ASCII "
            "characters without spaces)"
        )
    return None


def masked(key: str) -> str:
    """``sk-…89ab``: enough to tell two keys apart, never enough to use one."""
    prefix = key[: key.index("-") + 1] if "-" in key[:4] else ""
    return f"{prefix}…{key[-4:]}" if len(key) >= 12 else "…"


def key_path(environ: Mapping[str, str] | None = None) -> Path:
    """The key file: ``$STEP_MAGIC_CONFIG_DIR/key``, else in the user config directory."""
    env = os.environ if environ is None else environ
    chosen = env.get(DIR_VARIABLE, "").strip()
    if chosen:
        return Path(chosen).expanduser() / FILE_NAME
    import platformdirs

    return platformdirs.user_config_path("step-magic") / FILE_NAME


def keyring_backend(environ: Mapping[str, str] | None = None) -> Any | None:
    """The ``keyring`` module when it is installed with a real backend, else None.

    An explicit ``STEP_MAGIC_CONFIG_DIR`` means the file there (and keeps tests away from the
    user's keyring); keyring's fail, null and plaintext backends do not count.
    """
    env = os.environ if environ is None else environ
    if env.get(DIR_VARIABLE, "").strip():
        return None
    return _usable_keyring()


@functools.lru_cache(maxsize=1)
def _usable_keyring() -> Any | None:
    try:
        import keyring  # type: ignore[import-not-found, unused-ignore]

        backend = keyring.get_keyring()
    except Exception:  # not installed, or a backend that fails to load: the file is used
        return None
    kind = type(backend)
    if kind.__module__.startswith(("keyring.backends.fail", "keyring.backends.null")):
        return None
    if "plaintext" in kind.__name__.lower():  # keyrings.alt's file, readable like any other
        return None
    if kind.__module__ == "keyring.backends.chainer" and not getattr(backend, "backends", ()):
        return None
    if getattr(backend, "priority", 1) <= 0:
        return None
    return keyring


def read(environ: Mapping[str, str] | None = None) -> StoredKey | None:
    """The stored key, from the keyring first, then the file; None when neither holds one.

    Raises InputError (one line, no key in it) for a key file others may read, or a keyring
    that cannot be read.
    """
    keyring = keyring_backend(environ)
    if keyring is not None:
        try:
            value = keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
        except Exception as err:
            kind = type(err).__name__  # its message might quote what it was given
            raise InputError(f"The system keyring could not be read ({kind})") from None
        if value and value.strip():
            return StoredKey(value.strip(), IN_KEYRING)
    path = key_path(environ)
    value = _read_file(path)
    return StoredKey(value, f"stored in {path}") if value else None


def _read_file(path: Path) -> str | None:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        handle = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise InputError(f"Cannot read the key file {path}: {err.strerror or err}") from None
    try:
        info = os.fstat(handle)
        if sys.platform != "win32":
            if info.st_mode & 0o077:
                raise InputError(
                    f"The key file {path} can be read by other users; not using it: "
                    f"run chmod 600 {path} (or step-magic key set again)"
                )
            if info.st_uid != os.getuid():
                raise InputError(f"The key file {path} belongs to another user; not using it")
        data = os.read(handle, 4096)
    finally:
        os.close(handle)
    return data.decode("utf-8", "replace").strip() or None


def write(key: str, environ: Mapping[str, str] | None = None) -> str:
    """Store ``key`` (in the keyring, else the file); return where, as ``read`` names it."""
    problem = plausibility_problem(key)
    if problem:
        raise InputError(problem)
    keyring = keyring_backend(environ)
    if keyring is not None:
        try:
            keyring.set_password(KEYRING_SERVICE, KEYRING_USER, key)
        except Exception as err:
            raise InputError(f"The system keyring refused the key ({type(err).__name__})") from None
        return IN_KEYRING
    path = key_path(environ)
    _write_file(path, key)
    return f"stored in {path}"


def _write_file(path: Path, key: str) -> None:
    """Owner-only from the first byte: a new file in the same directory, then renamed over."""
    folder = path.parent
    try:
        if not folder.is_dir():
            folder.mkdir(mode=0o700, parents=True)
            folder.chmod(0o700)  # mkdir's mode is reduced by the umask
        temporary = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
        handle = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            try:
                if hasattr(os, "fchmod"):
                    os.fchmod(handle, 0o600)
                os.write(handle, f"{key}\n".encode())
                os.fsync(handle)
            finally:
                os.close(handle)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    except OSError as err:
        raise InputError(f"Cannot write the key file {path}: {err.strerror or err}") from None


def delete(environ: Mapping[str, str] | None = None) -> list[str]:
    """Remove the stored key from the keyring and the file; return where it was removed."""
    removed = []
    keyring = keyring_backend(environ)
    if keyring is not None:
        try:
            if keyring.get_password(KEYRING_SERVICE, KEYRING_USER) is not None:
                keyring.delete_password(KEYRING_SERVICE, KEYRING_USER)
                removed.append(KEYRING_PLACE)
        except Exception as err:
            kind = type(err).__name__
            raise InputError(f"The system keyring refused to delete the key ({kind})") from None
    path = key_path(environ)
    try:
        path.unlink()
        removed.append(str(path))
    except FileNotFoundError:
        pass
    except OSError as err:
        raise InputError(f"Cannot delete the key file {path}: {err.strerror or err}") from None
    return removed
