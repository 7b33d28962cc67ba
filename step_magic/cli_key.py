"""``step-magic key``: keep the API key between sessions without putting it in a notebook.

``set`` reads the key from a prompt that does not echo it, or from stdin when piped
(``printf %s "$KEY" | step-magic key set``), never from the command line, where it would stay
in the shell's history and be visible in ``ps``. ``show`` says where the key in force comes
from, masked; ``delete`` removes the stored one. The environment is read first, so
``STEPFUN_API_KEY`` still wins over a stored key.

This command has a parser of its own that never repeats its arguments in an error: a key
typed after ``key set`` by mistake must not be printed back.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import NoReturn, TextIO

from step_magic.core import keystore
from step_magic.core import settings as config
from step_magic.core.errors import InputError

MAX_KEY_BYTES = 4096
DESCRIPTION = (
    "Keep the StepFun API key between sessions: in the system keyring when the keyring "
    "package is installed with a real backend (pip install 'step-magic[keyring]'), else in "
    "a file only you can read in the user config directory. STEPFUN_API_KEY and STEP_API_KEY "
    "are read first. The key is never taken from the command line."
)
NOT_ON_THE_COMMAND_LINE = (
    "step-magic key: usage: step-magic key {set,show,delete}, nothing more; a key is never "
    "taken from the command line (it stays in the shell history and shows in ps): type it at "
    "the prompt of `step-magic key set`, or pipe it in"
)


class _QuietParser(argparse.ArgumentParser):
    """argparse quotes what it did not understand; here that could be the key."""

    def error(self, message: str) -> NoReturn:
        print(NOT_ON_THE_COMMAND_LINE, file=sys.stderr)
        sys.exit(2)


def add_help_entry(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """List ``key`` in ``step-magic --help``; ``main`` hands it to this module's parser."""
    commands.add_parser("key", help="store, show or delete the API key", description=DESCRIPTION)


def main(argv: list[str], stdin: TextIO | None = None) -> int:
    """``step-magic key ...``: the exit status."""
    parser = _QuietParser(prog="step-magic key", description=DESCRIPTION)
    actions = parser.add_subparsers(dest="action", required=True, parser_class=_QuietParser)
    actions.add_parser(
        "set",
        help="store the key (asked without echo, or piped in)",
        description="Store the key: typed at a prompt that does not echo it, or piped in "
        '(printf %%s "$KEY" | step-magic key set). Replaces a key stored before.',
    )
    actions.add_parser("show", help="where the key in force comes from, masked")
    actions.add_parser("delete", help="remove the stored key")
    args = parser.parse_args(argv)
    try:
        if args.action == "set":
            return _set(sys.stdin if stdin is None else stdin)
        if args.action == "show":
            return _show()
        return _delete()
    except InputError as err:
        print(f"step-magic key {args.action}: {err}", file=sys.stderr)
        return 1


def _set(source: TextIO) -> int:
    if source.isatty():
        try:
            typed = getpass.getpass("StepFun API key (not shown as you type): ")
        except (EOFError, KeyboardInterrupt):
            print("\nstep-magic key set: nothing stored", file=sys.stderr)
            return 1
    else:  # bytes, decoded leniently: a stray binary byte is refused below, not a traceback
        raw = getattr(source, "buffer", None)
        data = raw.read(MAX_KEY_BYTES + 1) if raw is not None else source.read(MAX_KEY_BYTES + 1)
        typed = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    key = typed.strip()
    problem = keystore.plausibility_problem(key)
    if problem:
        print(f"step-magic key set: {problem}; nothing stored", file=sys.stderr)
        return 2
    where = keystore.write(key)
    print(f"Key {keystore.masked(key)} {where}.")
    shadow = config.key_variable()
    if shadow:
        print(f"Note: {shadow} is set here and is read first; unset it to use the stored key.")
    return 0


def _show() -> int:
    name = config.key_variable()
    refused = None
    try:
        stored = keystore.read()
    except InputError as err:
        stored, refused = None, str(err)
    if name:
        key = config.find_api_key() or ""
        print(f"The key in force: {keystore.masked(key)}, set in {name}")
        if stored:
            print(f"Also {stored.where}: {keystore.masked(stored.key)}, used when {name} is unset")
    elif stored:
        print(f"The key in force: {keystore.masked(stored.key)}, {stored.where}")
    if refused:
        print(f"step-magic key show: {refused}", file=sys.stderr)
    elif not (name or stored):
        print("step-magic key show: no key is set or stored; step-magic key set stores one "
              "(or export STEPFUN_API_KEY=...)", file=sys.stderr)  # fmt: skip
    return 0 if name or stored else 1


def _delete() -> int:
    removed = keystore.delete()
    if not removed:
        print(f"No stored key (looked in {_places()}); nothing deleted.")
    for place in removed:
        print(f"Deleted the key stored in {place}.")
    name = config.key_variable()
    if name:
        print(f"{name} is still set in this environment and still gives a key.")
    return 0


def _places() -> str:
    path = keystore.key_path()
    return f"{keystore.KEYRING_PLACE} and {path}" if keystore.keyring_backend() else str(path)
