"""Markdown tables and value text for the DataFrame tools in ``frametools.py``.

Every answer must fit the tool's character budget, yet a cut table misleads unless it says
what it left out: ``render`` fits as many columns, then rows, as the budget allows and notes
the rest, and ``clip_text`` is the hard cap behind it. Values are written so the model reads
them back unambiguously: null as ``null``, floats exactly, statistics to 6 digits.
"""

from __future__ import annotations

import math
from itertools import accumulate

from step_magic.frames.tables import ELLIPSIS

MIN_COLUMNS = 5  # row tables drop rows before they drop columns below this many
NOTE_RESERVE = 120  # room kept for the notes under a table


def render(
    lead: list[str], header: list[str], rows: list[list[str]], budget: int, hidden: int = 0
) -> str:
    """Lead lines, then as many columns and rows of the table as fit, with what was left out."""
    room = budget - sum(len(line) + 1 for line in lead) - NOTE_RESERVE
    lines, k, shown = _table(header, rows, room)
    notes = []
    if k < len(header) or hidden:
        more = len(header) - k + hidden
        notes.append(f"(+{more:,} more columns not shown, to fit the budget: pass columns)")
    if shown < len(rows):
        notes.append(f"(+{len(rows) - shown:,} more rows not shown, to fit the budget)")
    return "\n".join([*lead, "", *lines, *notes])


def _table(header: list[str], rows: list[list[str]], budget: int) -> tuple[list[str], int, int]:
    """Lines of the table with as many columns (then rows) as fit; columns and rows shown.

    Columns go first: all rows at full width if possible, else at least a few columns for
    the rows that still fit.
    """
    widths = [max(len(cell) + 3 for cell in column) for column in zip(header, *rows, strict=True)]
    line_sizes = [2 + w for w in accumulate(widths)]

    def fits(k: int, n: int) -> bool:
        return (2 + n) * line_sizes[k - 1] <= budget

    k = max((k for k in range(1, len(header) + 1) if fits(k, len(rows))), default=0)
    if k < min(MIN_COLUMNS, len(header)):
        k = max((k for k in range(1, min(MIN_COLUMNS, len(header)) + 1) if fits(k, 1)), default=1)
    lines = [_line(header[:k]), "|---" * k + "|"]
    used = sum(len(line) + 1 for line in lines)
    shown = 0
    for row in rows:
        line = _line(row[:k])
        if used + len(line) + 1 > budget:
            break
        lines.append(line)
        used += len(line) + 1
        shown += 1
    return lines, k, shown


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def clip_text(text: str, budget: int) -> str:
    """Hard cap, for budgets too small for even the trimmed tables: cut at a line end."""
    if len(text) <= budget:
        return text
    note = f"\n(cut: {{}} more characters not shown, to fit {budget:,})"
    room = budget - len(note.format(f"{len(text):,}"))
    if room <= 0:
        return text[: max(budget - 1, 0)] + ELLIPSIS if budget > 0 else ""
    cut = text[:room]
    if "\n" in cut:
        cut = cut[: cut.rindex("\n")]
    return cut + note.format(f"{len(text) - len(cut):,}")


def cell(value: object) -> str:
    """Text for one value; values whose ``str`` fails still get a name, never an exception."""
    if value is None:
        return "null"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else repr(value)
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def number(value: object) -> str:
    """A statistic to 6 significant digits, without exponent for everyday magnitudes."""
    if not isinstance(value, float):
        return cell(value)
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else str(value)
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}" if abs(value) >= 1e4 else str(int(value))
    magnitude = abs(value)
    if magnitude < 1e-4 or magnitude >= 1e15:
        return f"{value:.6g}"
    decimals = max(0, 6 - (math.floor(math.log10(magnitude)) + 1))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
