"""Compact, bounded, deterministic summaries of pandas and polars frames.

A model needs a frame's shape, schema, value ranges and a few real rows, not the frame: the
summary has those and never exceeds its character budget. It must also be cheap on frames of
tens of millions of rows, so nothing here copies the frame or formats it whole: stats come from
a fixed-seed row sample on big frames (and the text says so), rows are picked by position.

pandas and polars are never imported: the frame object brings its own methods, and a small
adapter per library (``frame_tables.py``) exposes the few operations the shared
code needs, so both libraries go through the same profile and layout.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Positions = npt.NDArray[np.int64]
    Floats = npt.NDArray[np.float64]

from step_magic.core.errors import InputError
from step_magic.core.text import a_type
from step_magic.frames.tables import (
    ELLIPSIS,
    Column,
    Frame,
    PandasTable,
    PolarsTable,
    Table,
    clip_cell,
    is_series,
    library_of,
)
from step_magic.frames.text import count

SAMPLE_ROWS = 200_000
SEED = 0
HEAD_ROWS = 5
MIN_COLUMNS = 5  # fewer than this fit alongside the sample rows: drop the rows instead
RANDOM_ROWS = 5
MAX_CATEGORIES = 50
TOP_VALUES = 5
TIMES = "\N{MULTIPLICATION SIGN}"


@dataclass(frozen=True)
class FrameSummary:
    """A frame summary in Markdown, with the short label for the panel header."""

    text: str
    label: str
    shape: tuple[int, ...]


def is_frame(obj: object) -> bool:
    """True for pandas/polars DataFrames and Series (subclasses too), without importing them."""
    return library_of(obj) is not None


def summarize_frame(obj: Frame, *, name: str, budget_chars: int) -> FrameSummary:
    """Summarise a frame or series as Markdown of at most ``budget_chars`` characters.

    Columns that do not fit are dropped (the text says how many); the same frame always gives
    the same text, because every random choice uses a fixed seed.
    """
    library = library_of(obj)
    if library is None:
        raise InputError(f"{name} is {a_type(obj)}, not a pandas or polars frame")
    series = is_series(obj)
    table: Table = (PandasTable if library == "pandas" else PolarsTable)(obj, name)
    n_rows, n_columns = table.n_rows, len(table.names)
    sample = _sample_positions(n_rows)
    # No column line is shorter than ~40 characters: never profile columns that cannot fit.
    cap = min(n_columns, max(budget_chars // 40, 1))
    lines = [_schema_line(table, j, sample) for j in range(cap)]
    labels, cells = table.rows(_row_positions(n_rows), cap)
    grid = [[table.index_header, *(clip_cell(n) for n in table.names[:cap])]]
    grid += [
        [clip_cell(_cell(v)) for v in (label, *(c[i] for c in cells))]
        for i, label in enumerate(labels)
    ]
    text, k, shown = _layout(_header(table, series, sample), lines, n_columns, grid, budget_chars)
    size = f"{n_rows:,} values" if series else f"{n_rows:,}{TIMES}{n_columns:,}"
    complete = k == n_columns and shown == n_rows
    return FrameSummary(
        text=text,
        label=f"{name} ({size})" if complete else f"{name} ({size}, summarised)",
        shape=(n_rows,) if series else (n_rows, n_columns),
    )


def _sample_positions(n_rows: int) -> Positions | None:
    """Sorted fixed-seed row positions for stats on big frames, or None to use every row."""
    if n_rows <= SAMPLE_ROWS:
        return None
    import numpy as np

    rng = np.random.default_rng(SEED)
    return np.sort(rng.choice(n_rows, SAMPLE_ROWS, replace=False)).astype(np.int64)


def _row_positions(n_rows: int) -> list[int]:
    """The first rows, then a few fixed-seed random rows from the rest."""
    head = list(range(min(HEAD_ROWS, n_rows)))
    rest = n_rows - len(head)
    if rest <= 0:
        return head
    import numpy as np

    picked = np.random.default_rng(SEED).choice(rest, min(RANDOM_ROWS, rest), replace=False)
    return head + sorted(int(p) + len(head) for p in picked)


def _header(table: Table, series: bool, sample: Positions | None) -> str:
    n_columns = len(table.names)
    rows = f"{table.n_rows:,} row{'' if table.n_rows == 1 else 's'}"
    shape = f"{rows} {TIMES} {n_columns:,} column{'' if n_columns == 1 else 's'}"
    first = (
        f"{table.library} Series of {table.n_rows:,} values."
        if series
        else f"{table.library} DataFrame, {shape}."
    )
    if sample is None:
        return first
    return (
        f"{first} Stats, top values and distinct counts from a {len(sample):,}-row random "
        f"sample (seed {SEED}); null counts marked ≈ are estimated from it."
    )


def _schema_line(table: Table, j: int, sample: Positions | None) -> str:
    """One column's row of the schema table: name, dtype, nulls and a summary by kind."""
    full = table.column(j)
    column = full if sample is None else table.take(full, sample)
    nulls, exact = table.nulls(full, None if sample is None else column)
    dtype, kind = table.dtype(column)
    if table.n_rows == 0:
        summary = "—"
    elif nulls == table.n_rows:
        summary = "all null"
    elif kind == "numeric":
        summary = _numeric_summary(table.floats(column), table.n_rows - nulls)
    elif kind == "temporal":
        summary = f"min {column.min()} · max {column.max()}"
    else:
        summary = _counts_summary(table.value_counts(column))
    nulls_text = f"{nulls:,}" if exact else f"≈{nulls:,}"
    return f"| {clip_cell(table.names[j])} | {dtype} | {nulls_text} | {summary} |"


def _numeric_summary(values: Floats, count: int) -> str:
    import numpy as np

    present = values[~np.isnan(values)]
    if present.size == 0:
        return "all null"
    low, q1, median, q3, high = np.quantile(present, [0, 0.25, 0.5, 0.75, 1])
    std = present.std(ddof=1) if present.size > 1 else float("nan")
    stats = {"mean": present.mean(), "std": std, "min": low, "25%": q1, "50%": median}
    stats |= {"75%": q3, "max": high}
    return f"count {count:,} · " + " · ".join(f"{k} {_cell(float(v))}" for k, v in stats.items())


def _counts_summary(counts: tuple[Column, Column] | None) -> str:
    """Distinct count, and for low cardinality the top values with their shares."""
    if counts is None:
        return "unhashable values"
    values, tallies = counts
    distinct, nonnull = len(tallies), int(tallies.sum())
    if distinct > MAX_CATEGORIES:
        return f"{distinct:,} distinct"
    # Sort ourselves: the order of ties comes from hash tables and differs between processes.
    pairs = zip(values.to_list(), tallies.to_list(), strict=True)
    ranked = sorted(pairs, key=lambda pair: (-pair[1], str(pair[0])))
    top = ", ".join(
        f"{clip_cell(_cell(value), 30)} {100 * count / nonnull:.1f}%"
        for value, count in ranked[:TOP_VALUES]
    )
    more = distinct - TOP_VALUES
    return f"{distinct:,} distinct: {top}" + (f", +{more:,} more" if more > 0 else "")


def _layout(
    header: str, lines: list[str], n_columns: int, grid: list[list[str]], budget: int
) -> tuple[str, int, int]:
    """Fit as many columns as the budget allows; return the text, columns and rows shown.

    The schema and the sample rows show the same columns, so the model never sees a column
    in one and not the other. If keeping every row would leave fewer than a handful of
    columns, rows go instead, whole and from the end, and the text says how many.
    """

    def render(k: int, n_rows: int) -> str:
        if n_columns == 0:
            return f"{header}\n\n(no columns)"
        parts = [header, "", "| column | dtype | nulls | summary |", "|---|---|---|---|"]
        parts += lines[:k]
        if k < n_columns:
            parts.append(f"(+{n_columns - k:,} more columns not shown, to fit the budget)")
        parts.append("")
        left_out = len(grid) - 1 - n_rows
        if len(grid) == 1:
            parts.append("(no rows)")
        elif n_rows:
            parts.append(f"Rows (first rows, then random rows, seed {SEED}):")
            parts += ["| " + " | ".join(row[: k + 1]) + " |" for row in grid[: n_rows + 1]]
            parts.insert(-n_rows, "|---" * (k + 1) + "|")
        if left_out:
            parts.append(f"({count(left_out, 'sample row')} left out to fit the budget)")
        return "\n".join(parts)

    def fits(n_rows: int, k: int) -> bool:
        return len(render(k, n_rows)) <= budget

    n_rows = len(grid) - 1
    k = _largest(len(lines), partial(fits, n_rows))
    handful = min(len(lines), MIN_COLUMNS)
    if k < handful:
        n_rows = _largest(n_rows, lambda n: fits(n, handful))
        k = _largest(len(lines), partial(fits, n_rows))
    return _clip_text(render(k, n_rows), budget), k, n_rows


def _largest(limit: int, fits: Callable[[int], bool]) -> int:
    """The largest k in [0, limit] with fits(k), for fits true up to some k and false after."""
    return bisect.bisect_left(range(1, limit + 1), True, key=lambda k: not fits(k))


def _cell(value: object) -> str:
    """Short, stable text for a value: integral floats without ``.0``, others to 6 digits."""
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.6g}"
    return "null" if value is None else str(value)


def _clip_text(text: str, budget: int) -> str:
    """Hard cap for tiny budgets: cut at a line end where possible, marking the cut."""
    if len(text) <= budget:
        return text
    if budget <= 0:
        return ""
    cut = text[: budget - 1]
    if "\n" in cut:
        cut = cut[: cut.rindex("\n") + 1]
    return cut + ELLIPSIS
