"""What each DataFrame tool in ``frametools.py`` does.

A handler reads its arguments through ``Args`` (checked as they are read, ``frame_args.py``),
has the backend (``frame_backends.py``) do the work in vectorised library calls, and writes
the few values it shows as Markdown within the character budget (``frame_text.py``).
Quartiles and correlations are computed here in numpy from the columns as floats; Spearman
ranks a fixed-seed sample of the pairs when there are too many to sort in a second or two.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from step_magic.core.errors import ToolError
from step_magic.frames.tables import clip_cell
from step_magic.frames.text import NOTE_RESERVE, cell, count, number, render
from step_magic.tools.frame_args import (
    AGGS,
    MAX_BY,
    MAX_CONDITIONS,
    MAX_ROWS,
    MAX_SEED,
    METHODS,
    Args,
    Context,
    condition_mask,
    show,
)

if TYPE_CHECKING:
    from step_magic.frames.backends import Backend, Floats

SEED = 0
RANK_PAIRS = 1_000_000  # Spearman on more pairs than this ranks a random sample of them
TOP_VALUES = 5  # most common values in ``describe``
NAME_CHARS = 120  # column names in the ``columns`` table: long, since calls need them exactly
NUMERIC_AGGS = ("sum", "mean", "median")


def list_columns(ctx: Context, args: Args, budget: int) -> str:
    """Schema table, filled column by column until the budget is used (nulls cost time)."""
    offset = args.integer("offset", 0, 0, max(len(ctx.names) - 1, 0))
    contains = args.text("contains")
    picked = [
        j
        for j, n in enumerate(ctx.names)
        if j >= offset and (contains is None or contains.casefold() in n.casefold())
    ]
    lead = f"{ctx.data.library} DataFrame `{ctx.name}`: {ctx.shape}."
    if contains is not None:
        lead += f" {len(picked):,} column names contain {show(contains)}."
    lines = [lead, "", "| # | column | dtype | nulls |", "|---|---|---|---|"]
    used = sum(len(line) + 1 for line in lines) + NOTE_RESERVE
    shown = 0
    for j in picked:
        data = ctx.data
        line = f"| {j} | {clip_cell(ctx.names[j], NAME_CHARS)} | {data.dtype(j)} | "
        line += f"{data.nulls(j):,} |"
        if used + len(line) + 1 > budget:
            break
        lines.append(line)
        used += len(line) + 1
        shown += 1
    if not picked:
        lines[2:] = ["(no columns)" if not ctx.names else "(no column matches)"]
    elif shown < len(picked):
        last = picked[shown - 1] + 1 if shown else offset
        lines.append(
            f"(+{len(picked) - shown:,} more columns not shown, to fit the budget: "
            f"call again with offset={last} or a narrower contains)"
        )
    return "\n".join(lines)


def describe(ctx: Context, args: Args, budget: int) -> str:
    j = args.column("column")
    data = ctx.data
    kind, nulls = data.kind(j), data.nulls(j)
    stats = [("dtype", data.dtype(j)), ("count (non-null)", f"{data.n_rows - nulls:,}")]
    stats.append(("nulls", f"{nulls:,}"))
    if kind in ("numeric", "temporal"):
        stats.append(("distinct (non-null)", f"{data.distinct(j):,}"))
        if nulls < data.n_rows and kind == "numeric":
            stats += _numeric_stats(data.floats(j))
        elif nulls < data.n_rows:
            low, high = data.extremes(j)
            stats += [("min", cell(low)), ("max", cell(high))]
    else:
        stats += _top_values(data, j)
    lead = [f"Column `{ctx.names[j]}` of `{ctx.name}` ({data.n_rows:,} rows):"]
    return render(lead, ["stat", "value"], [[k, v] for k, v in stats], budget)


def _top_values(data: Backend, j: int) -> list[tuple[str, str]]:
    """Distinct count and most common values, from one hashing pass over the column."""
    try:
        values, tallies, distinct = data.counts(j, TOP_VALUES + 1)
    except Exception as err:  # lists, dicts or other cells the library cannot hash
        return [("distinct (non-null)", f"not available ({type(err).__name__})")]
    pairs = [(v, c) for v, c in zip(values, tallies, strict=True) if v is not None]
    top = [(f"top {i + 1}", f"{clip_cell(cell(v))} ({c:,})") for i, (v, c) in enumerate(pairs)]
    return [("distinct (non-null)", f"{distinct:,}"), *top[:TOP_VALUES]]


def _numeric_stats(values: Floats) -> list[tuple[str, str]]:
    import numpy as np

    present = values[~np.isnan(values)]
    if present.size == 0:
        return [("values", "all NaN")]
    low, q1, median, q3, high = np.quantile(present, [0, 0.25, 0.5, 0.75, 1])
    std = float(present.std(ddof=1)) if present.size > 1 else math.nan
    stats = {"min": low, "25%": q1, "50%": median, "75%": q3, "max": high}
    stats |= {"mean": present.mean(), "std": std}
    return [(key, number(float(value))) for key, value in stats.items()]


def value_counts(ctx: Context, args: Args, budget: int) -> str:
    j = args.column("column")
    top = args.integer("top", 10, 1, MAX_ROWS)
    values, tallies, distinct = ctx.data.counts(j, top)
    n_rows = max(ctx.data.n_rows, 1)
    rows = [
        [clip_cell(cell(v)), f"{c:,}", f"{100 * c / n_rows:.1f}%"]
        for v, c in zip(values, tallies, strict=True)
    ]
    lead = [
        f"Column `{ctx.names[j]}` of `{ctx.name}`: {count(distinct, 'distinct non-null value')}; "
        f"null in {ctx.data.nulls(j):,} of {count(ctx.data.n_rows, 'row')}. The {len(rows)} most "
        "common (null included):"
    ]
    return render(lead, ["value", "count", "share"], rows, budget)


def group_by(ctx: Context, args: Args, budget: int) -> str:
    by = args.column_list("by", MAX_BY)
    if by is None:
        raise ToolError(f"by is required: a list of 1 to {MAX_BY} column names")
    agg = args.choice("agg", AGGS)
    j = args.optional_column("column")
    top = args.integer("top", 20, 1, MAX_ROWS)
    descending = args.flag("descending", True)
    if j is None and agg != "count":
        raise ToolError(f"column is required with agg={agg!r}: the column to aggregate")
    if j is not None and agg in NUMERIC_AGGS and ctx.data.kind(j) not in ("numeric", "bool"):
        raise ToolError(
            f"cannot {agg} column {show(ctx.names[j])} of dtype {ctx.data.dtype(j)}: "
            "use count, nunique, min or max for non-numeric columns"
        )
    keys, results, n_groups = ctx.data.group(by, agg, j, top, descending)
    label = agg if j is None else f"{agg}({ctx.names[j]})"
    header = [*(ctx.names[k] for k in by), label]
    rows = [
        [*(clip_cell(cell(k)) for k in key), _aggregate(r)]
        for key, r in zip(keys, results, strict=True)
    ]
    order = "descending" if descending else "ascending"
    lead = [
        f"{count(n_groups, 'group')} in all; the {len(rows)} with the "
        f"{'largest' if descending else 'smallest'} {label} ({order}, nulls last):"
    ]
    return render(lead, [clip_cell(h) for h in header], rows, budget)


def _aggregate(value: object) -> str:
    return number(value) if isinstance(value, float) else clip_cell(cell(value))


def filter_rows(ctx: Context, args: Args, budget: int) -> str:
    import numpy as np

    conditions = args.values.get("conditions")
    if not isinstance(conditions, list) or not 1 <= len(conditions) <= MAX_CONDITIONS:
        raise ToolError(
            f"conditions must be a list of 1 to {MAX_CONDITIONS} objects "
            '{"column": ..., "op": ..., "value": ...}'
        )
    columns = args.column_list("columns", MAX_ROWS)
    limit = args.integer("limit", 20, 1, MAX_ROWS)
    masks = [condition_mask(ctx, c, i) for i, c in enumerate(conditions)]
    matched = np.flatnonzero(np.logical_and.reduce(masks))
    lead = [f"{matched.size:,} of {count(ctx.data.n_rows, 'row')} match."]
    if matched.size:
        lead[0] += f" The first {min(limit, matched.size)}:"
    positions = [int(p) for p in matched[:limit]]
    return _row_table(ctx, lead, positions, columns, budget)


def sort_rows(ctx: Context, args: Args, budget: int) -> str:
    j = args.column("by")
    descending = args.flag("descending", False)
    n = args.integer("n", 10, 1, MAX_ROWS)
    columns = args.column_list("columns", MAX_ROWS)
    if columns is not None and j not in columns:
        columns = [j, *columns]
    positions = ctx.data.order(j, descending, n)
    order = "descending" if descending else "ascending"
    lead = [
        f"The first {len(positions)} of {ctx.data.n_rows:,} rows sorted by "
        f"`{ctx.names[j]}` ({order}, nulls last):"
    ]
    return _row_table(ctx, lead, positions, columns, budget)


def sample_rows(ctx: Context, args: Args, budget: int) -> str:
    import numpy as np

    n = args.integer("n", 10, 1, MAX_ROWS)
    seed = args.integer("seed", 0, 0, MAX_SEED)
    columns = args.column_list("columns", MAX_ROWS)
    total = ctx.data.n_rows
    rng = np.random.default_rng(seed)
    positions = sorted(int(p) for p in rng.choice(total, min(n, total), replace=False))
    lead = [f"{len(positions)} random rows of {total:,} (seed {seed}), in frame order:"]
    return _row_table(ctx, lead, positions, columns, budget)


def correlation(ctx: Context, args: Args, budget: int) -> str:
    import numpy as np

    a, b = args.column("a"), args.column("b")
    method = args.choice("method", METHODS, "pearson")
    for j in (a, b):
        if ctx.data.kind(j) not in ("numeric", "bool"):
            raise ToolError(
                f"column {show(ctx.names[j])} is not numeric ({ctx.data.dtype(j)}): "
                "correlation needs two numeric columns"
            )
    x, y = ctx.data.floats(a), ctx.data.floats(b)
    both = ~(np.isnan(x) | np.isnan(y))
    x, y = x[both], y[both]
    pairs = f"{x.size:,} pairs of non-null values"
    label = f"{method.capitalize()} correlation of `{ctx.names[a]}` and `{ctx.names[b]}`"
    if x.size < 2:
        return f"{label}: undefined ({pairs}; it needs at least 2)."
    note = ""
    if method == "spearman":
        if x.size > RANK_PAIRS:  # ranking is a sort: ~4 s for two 10M columns
            keep = np.random.default_rng(SEED).choice(x.size, RANK_PAIRS, replace=False)
            x, y = x[keep], y[keep]
            note = f", estimated from a {RANK_PAIRS:,}-pair random sample (seed {SEED})"
        x, y = _ranks(x), _ranks(y)
    if x.std() == 0 or y.std() == 0:
        return f"{label}: undefined (a column is constant over the {pairs})."
    r = float(np.corrcoef(x, y)[0, 1])
    if not math.isfinite(r):  # infinite values
        return f"{label}: undefined (infinite values among the {pairs})."
    return f"{label}: {r:.4f} over {pairs}{note}."


def _ranks(values: Floats) -> Floats:
    """Average ranks (ties share the mean of their positions), as Spearman's rho needs."""
    import numpy as np

    order = np.argsort(values)
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], values.size]
    group = np.repeat(np.arange(starts.size), ends - starts)
    ranks = np.empty(values.size)
    ranks[order] = ((starts + ends + 1) / 2)[group]
    return ranks


def _row_table(
    ctx: Context, lead: list[str], positions: list[int], columns: list[int] | None, budget: int
) -> str:
    """Rows as a Markdown table led by the index (pandas) or the row number (polars)."""
    if not positions:
        return "\n".join(lead)
    chosen = columns or list(range(len(ctx.names)))
    # Each shown column takes at least 4 characters a line: never fetch more than could fit.
    columns = chosen[: max(budget // 4, 1)]
    labels, cells = ctx.data.rows(positions, columns)
    header = [ctx.data.index_header, *(clip_cell(ctx.names[j]) for j in columns)]
    rows = [
        [clip_cell(cell(label)), *(clip_cell(cell(c)) for c in row)]
        for label, row in zip(labels, cells, strict=True)
    ]
    return render(lead, header, rows, budget, hidden=len(chosen) - len(columns))
