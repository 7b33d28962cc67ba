"""The magic's input as parsed flags and a prompt, or a one-line ``UsageError``.

Both forms of the magic end up here: ``%%step flags`` with the prompt as the cell body, and
``%step flags prompt`` on one line, where ``flags.split_flags`` tells where the flags end.
Whatever is wrong with the input (quoting, a bad ``-o`` name, contradicting flags, no prompt)
is reported before anything is built or sent, as one line rather than a traceback. Apart from
``magics.step``, which keeps the magic's flag list and the flow of a call.
"""

from __future__ import annotations

import argparse
import shlex

from IPython.core.error import UsageError

from step_magic.batch.mapflags import MAP_FLAGS
from step_magic.magics import argtypes as flags

# Flags that mean something only beside another: (that flag's dest, how to name it, flags).
NEEDS = (
    ("map", "--map NAME", (*(names[0] for names, _ in MAP_FLAGS), "--inplace")),
    ("tools", "--tools NAMES", ("--confirm", "--max-steps")),
)


def read_flags(
    parser: argparse.ArgumentParser, line: str, cell: str | None
) -> tuple[argparse.Namespace, str]:
    """Flags and prompt from either form of the magic."""
    if cell is None:
        try:
            flag_text, prompt = flags.split_flags(parser, line)
        except ValueError as err:
            raise UsageError(str(err)) from None
    else:
        flag_text, prompt = line, cell
    args = _parse(parser, flag_text)
    prompt = prompt.strip()
    if not prompt and not args.fix:  # --fix has a question of its own
        raise UsageError("Nothing to ask: write the prompt in the cell body (or after %step)")
    return args, prompt


def _parse(parser: argparse.ArgumentParser, flag_text: str) -> argparse.Namespace:
    try:
        argv = shlex.split(flag_text)
    except ValueError as err:
        raise UsageError(f"Cannot read the flags {flag_text!r}: {err}") from None
    # POSIX quoting, so --system "Be terse." arrives without its quotes.
    for word in argv:
        if word.startswith("-") and word.split("=", 1)[0] not in parser._option_string_actions:
            hint = flags.did_you_mean(parser, word)
            if hint:
                raise UsageError(f"unknown flag {word}{hint}")
    args = parser.parse_args(argv)
    if args.output and not args.output.isidentifier():
        raise UsageError(f"-o needs a Python name, not {args.output!r}")
    if args.show_reasoning and args.no_reasoning:
        raise UsageError("--show-reasoning and --no-reasoning contradict each other")
    return args


def check_needs(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """A one-line ``UsageError`` for a flag given without the flag it needs (``--concurrency``
    without ``--map``): silently ignoring it would look as if it had worked."""
    for needed, what, dependent in NEEDS:
        used = [] if getattr(args, needed) else [f for f in dependent if _given(args, parser, f)]
        if used:
            verb = "makes" if len(used) == 1 else "make"
            raise UsageError(f"{' and '.join(used)} only {verb} sense with {what}")


def _given(args: argparse.Namespace, parser: argparse.ArgumentParser, flag: str) -> bool:
    action = parser._option_string_actions[flag]
    return bool(getattr(args, action.dest) != action.default)


def refuse(args: argparse.Namespace, refused: dict[str, str], what: str) -> None:
    """A one-line ``UsageError`` for the first flag in ``refused`` that is set (``refused``
    maps each flag's name to how the message calls it); ``what`` names the kind of call."""
    for name, flag in refused.items():
        if getattr(args, name, None):
            raise UsageError(f"{what} takes no {flag}")
