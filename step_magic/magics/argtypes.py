"""Flag values and the line form's split between flags and free-text prompt.

Converters raise ``argparse.ArgumentTypeError`` so the magic's parser reports a bad value as
a one-line usage error naming the flag.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shlex

from step_magic.batch.mapflags import count

_FLAG_VALUE = re.compile(r""""(?:[^"\\]|\\.)*"|'[^']*'|\S+""")


positive_int = count  # a whole number above zero: token counts, budgets, --map's counts


def positive_seconds(text: str) -> float:
    """A duration above zero."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def temperature(text: str) -> float:
    """A sampling temperature in StepFun's accepted range."""
    value = float(text)
    if not 0 <= value <= 2:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2, not {text}")
    return value


def efforts(text: str) -> str:
    """``high``, or ``low,high`` to compare efforts side by side; each a documented level."""
    from step_magic.core.models import EFFORTS

    parts = [part.strip() for part in text.split(",")]
    for part in parts:
        if part not in EFFORTS:
            close = difflib.get_close_matches(part, EFFORTS, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise argparse.ArgumentTypeError(
                f"must be {', '.join(EFFORTS)} or a comma list of them, not {part!r}{hint}"
            )
    return ",".join(parts)


def names(text: str) -> tuple[str, ...]:
    """``df,fig, Out[3]`` -> ``("df", "fig", "Out[3]")``."""
    found = tuple(name.strip() for name in text.split(",") if name.strip())
    if not found:
        raise argparse.ArgumentTypeError("needs at least one name, e.g. --with df,fig")
    return found


def did_you_mean(parser: argparse.ArgumentParser, word: str) -> str:
    """``; did you mean --effort?`` for a mistyped flag, or nothing when none is close."""
    flag = word.split("=", 1)[0]
    close = difflib.get_close_matches(flag, parser._option_string_actions, n=1, cutoff=0.75)
    return f"; did you mean {close[0]}?" if close else ""


def split_flags(parser: argparse.ArgumentParser, line: str) -> tuple[str, str]:
    """Split ``%step`` line text into its leading flags and the prompt, kept verbatim.

    Prompts are free text (apostrophes, dashes, braces), so only the leading words that are
    known options, with their values, go to the flag parser; the rest is the prompt as typed.
    ``--`` ends the flags explicitly. Raises ValueError for unbalanced quotes in a value.
    """
    rest = line.lstrip()
    flags: list[str] = []
    while rest.startswith("-"):
        word, after = _next_word(rest)
        if word == "--":
            return " ".join(flags), after
        action, attached = _option(parser, word)
        if action is None:
            if re.match(r"--?[A-Za-z]", word):
                hint = did_you_mean(parser, word) or " (put -- before a prompt starting with -)"
                raise ValueError(f"unknown flag {word}{hint}")
            break
        flags.append(word)
        rest = after
        if action.nargs == 0 or attached:
            continue
        value, after = _take_value(rest)
        if (
            action.nargs == "?"
            and action.choices
            and shlex.split(value or "''")[0] not in (action.choices)
        ):
            continue  # an optional value that is not one of its choices is prompt text
        flags.append(value)
        rest = after
    return " ".join(flags), rest


def _next_word(text: str) -> tuple[str, str]:
    parts = text.split(None, 1)
    return parts[0], (parts[1] if len(parts) > 1 else "")


def _option(parser: argparse.ArgumentParser, word: str) -> tuple[argparse.Action | None, bool]:
    """The option ``word`` names and whether its value is attached (``--x=1``, ``-mNAME``)."""
    actions = parser._option_string_actions
    if "=" in word and word.startswith("--"):
        return actions.get(word.split("=", 1)[0]), True
    if word in actions:
        return actions[word], False
    if not word.startswith("--") and word[:2] in actions:
        action = actions[word[:2]]
        return (action, True) if action.nargs != 0 else (None, False)
    return None, False


def _take_value(text: str) -> tuple[str, str]:
    """The flag value at the start of ``text`` (quotes allowed), quoted again, and the rest."""
    match = _FLAG_VALUE.match(text)
    if match is None:
        return "", text
    try:
        value = shlex.split(match.group(0))[0]
    except (ValueError, IndexError):
        raise ValueError(f"unbalanced quotes in the flag value {match.group(0)}") from None
    return shlex.quote(value), text[match.end() :].lstrip()
