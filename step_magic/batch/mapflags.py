"""The map's own options (column, concurrency, pace, limit, fields), declared once.

``%%step --map`` (``magics.stepflags``) and ``step-magic map`` (``cli_map``) both add these with
``add_argument``-style calls, so a flag, its check and its help are written here only; the call
settings (model, effort…) come from ``core.catalog`` as everywhere else.
"""

from __future__ import annotations

import argparse
from typing import Any

# (names, options): what argparse's add_argument and IPython's @argument both take. The help
# says what the flag does; the magic prefixes it with "--map: ", which it needs among its
# other flags.
Flag = tuple[tuple[str, ...], dict[str, Any]]


def count(text: str) -> int:
    """A whole number above zero (a concurrency, a row limit)."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text}")
    return value


def per_minute(text: str) -> float:
    """A rate above zero."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


MAP_FLAGS: tuple[Flag, ...] = (
    (
        ("--as",),
        {"dest": "as_column", "default": "answer", "metavar": "COLUMN", "help": "the column."},
    ),
    (("--concurrency",), {"type": count, "default": 4, "help": "parallel calls."}),
    (("--rpm",), {"type": per_minute, "help": "at most this many requests a minute."}),
    (("--limit",), {"type": count, "help": "only the first N rows."}),
    (("--reasoning-col",), {"metavar": "COLUMN", "help": "keep the reasoning too."}),
    (
        ("--fields",),
        {"metavar": "SPEC", "help": "parse answers into typed columns a:int,b:str."},
    ),
)


def parse_fields(spec: str | None) -> tuple[tuple[str, str], ...]:
    """``--fields a:int,b:str`` -> ``(("a", "int"), ("b", "str"))``; a bare name is a str."""
    if not spec:
        return ()
    pairs = [item.strip().partition(":") for item in spec.split(",") if item.strip()]
    return tuple((name.strip(), (kind or "str").strip()) for name, _, kind in pairs)
