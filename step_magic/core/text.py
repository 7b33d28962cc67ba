"""Text from outside (the model, a server, a tool) made safe to show and to store.

Control characters (but tab and newlines) and lone surrogates cannot travel as Jupyter
messages or be stored in SQLite, and escape sequences would reach a terminal raw; they are
replaced where the text enters the program.
"""

from __future__ import annotations

import json
import re
from typing import Any

_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Replace characters that would break a Jupyter message or a database with U+FFFD."""
    return _UNSAFE.sub("\ufffd", text)


def bounded(text: str, budget_chars: int, why: str = "cut: {total} chars in all") -> str:
    """``text`` cut to ``budget_chars``, saying why and how long it was (``{total}``)."""
    if len(text) <= budget_chars:
        return text
    return text[:budget_chars] + f"\n… ({why.format(total=f'{len(text):,}')})"


MAX_MESSAGE_CHARS = 2_000  # an error line, a note: what a server can make us show or keep


def excerpt(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` whole when short, else its head and tail with how much was cut between:
    a 100 MB error body must not become a 100 MB exception, cell output or history row."""
    if len(text) <= limit:
        return text
    keep = max(limit // 2 - 40, 1)
    return f"{text[:keep]} … [{len(text) - 2 * keep:,} characters cut] … {text[-keep:]}"


def seconds(value: float) -> str:
    """Format a duration for people: ``0.42 s``, ``12.3 s``, ``2 min 5 s``."""
    if value < 1:
        return f"{value:.2f} s"
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes} min {rest} s"


def dollars(cost: float) -> str:
    """An estimated price for people: ``≈ $0.0123``; a cost too small for four decimals is
    ``< $0.0001`` (``≈ $0.0000`` read as free), and nothing at all is ``$0``."""
    if cost <= 0:
        return "$0"
    if cost < 0.0001:
        return "< $0.0001"
    return f"≈ ${cost:.4f}"


def read_json(text: str) -> Any:
    """``json.loads``, where JSON nested too deeply to read (``[[[[…`` from a model) is a
    ValueError like any other bad JSON, not a RecursionError that ``except ValueError``
    would let through."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("it is nested too deeply to read") from None


def a_type(value: object) -> str:
    """``an int``, ``a str``: the value's type name with its article, for one-line errors."""
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"
