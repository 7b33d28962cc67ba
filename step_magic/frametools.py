"""Read-only tools over one pandas or polars DataFrame, for model tool calling.

``%%step --tools df`` gives the model these tools instead of the frame: a 10M-row frame never
fits in a prompt, but its schema, statistics, counts, groups and a few matching rows do. Every
tool is read-only and bounded: it answers in Markdown of at most ``budget_chars`` characters,
and on tens of millions of rows in a second or two, because the work is done by vectorised
library calls and only the few rows shown ever become Python objects.

The arguments come from a model, so each tool checks them itself: columns by their exact
name, operators, aggregates and methods from fixed tables, bounded numbers, typed values.
Any problem is a ``ToolError`` whose message says how to fix the call. Nothing here evaluates
text: no eval/exec, no ``DataFrame.query``/``eval``, no SQL, no attribute looked up by a name
from the arguments. As in ``frames.py`` pandas and polars are not imported up front: the
frame brings its own methods, and polars is imported only where expressions are needed.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Protocol

from .frame_tables import ELLIPSIS, clip_cell, flat_name, is_series, library_of
from .tools import JSONSchema, Tool, ToolError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Floats = npt.NDArray[np.float64]
    Mask = npt.NDArray[np.bool_]

MAX_ROWS = 100  # top / limit / n: what a model can read in one answer
MAX_BY = 3
MAX_CONDITIONS = 10
MAX_IN_VALUES = 500
MAX_SEED = 2**32 - 1
SEED = 0
RANK_PAIRS = 1_000_000  # Spearman on more pairs than this ranks a random sample of them
ENUM_COLUMNS = 200  # up to this many column names go into the schemas as an enum
MIN_COLUMNS = 5  # row tables drop rows before they drop columns below this many
TOP_VALUES = 5  # most common values in ``describe``
NAME_CHARS = 120  # column names in the ``columns`` table: long, since calls need them exactly
VALUE_CHARS = 60  # argument values quoted back in error messages
NOTE_RESERVE = 120  # room kept for the notes under a table
TIMES = "\N{MULTIPLICATION SIGN}"

COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
OPS = [*COMPARISONS, "in", "isnull", "notnull"]
AGGS = ["count", "sum", "mean", "min", "max", "median", "nunique"]
NUMERIC_AGGS = ("sum", "mean", "median")
METHODS = ["pearson", "spearman"]
Cells = list[list[object]]


class Backend(Protocol):
    """The operations the tools need from one library's frame; columns go by position."""

    library: str
    n_rows: int
    labels: list[str]
    index_header: str

    def dtype(self, j: int) -> str: ...
    def kind(self, j: int) -> str: ...
    def nulls(self, j: int) -> int: ...
    def distinct(self, j: int) -> int: ...
    def floats(self, j: int) -> Floats: ...
    def extremes(self, j: int) -> tuple[object, object]: ...
    def counts(self, j: int, top: int) -> tuple[list[object], list[int], int]:
        """The top values (null as None) with their counts, and how many non-null distinct."""

    def group(
        self, by: list[int], agg: str, j: int | None, top: int, descending: bool
    ) -> tuple[Cells, list[object], int]: ...
    def mask(self, j: int, op: str, value: Any) -> Mask: ...
    def time(self, j: int, text: str) -> object: ...
    def order(self, j: int, descending: bool, n: int) -> list[int]: ...
    def rows(self, positions: list[int], columns: list[int]) -> tuple[list[object], Cells]: ...


def frame_tools(name: str, frame: Any, *, budget_chars: int = 8_000) -> list[Tool]:
    """Read-only tools over the pandas/polars DataFrame bound to ``name``."""
    library = library_of(frame)
    if library is None or is_series(frame):
        raise ValueError(f"{name} is a {type(frame).__name__}, not a pandas or polars DataFrame")
    if budget_chars < 1:
        raise ValueError(f"budget_chars must be at least 1, not {budget_chars}")
    backend: Backend = PandasFrame(frame) if library == "pandas" else PolarsFrame(frame)
    names = _unique(backend.labels)
    ctx = Context(name, _prefix(name), backend, names, {n: j for j, n in enumerate(names)})
    return [
        Tool(
            f"{ctx.prefix}_{op_name}",
            op.description,
            {
                "type": "object",
                "properties": op.properties,
                "required": op.required,
                "additionalProperties": False,
            },
            _runner(ctx, op_name, op, budget_chars),
        )
        for op_name, op in _ops(ctx).items()
    ]


@dataclass(frozen=True)
class Context:
    """What every tool of one frame shares: its name, the backend and the column names."""

    name: str
    prefix: str
    data: Backend
    names: list[str]
    positions: dict[str, int]

    @property
    def shape(self) -> str:
        return f"{_count(self.data.n_rows, 'row')} {TIMES} {_count(len(self.names), 'column')}"


@dataclass(frozen=True)
class Op:
    """One tool before it is bound: the handler reads its arguments through ``Args``."""

    description: str
    properties: dict[str, JSONSchema]
    required: list[str]
    handler: Callable[[Context, Args, int], str]


def _runner(ctx: Context, name: str, op: Op, budget: int) -> Callable[..., str]:
    """The tool's ``run``: check the argument names, run, bound the text.

    Failures inside the library (a type pandas cannot compare, a dtype polars cannot group)
    become ToolErrors too, so the model always gets a message and never a traceback.
    """
    tool = f"{ctx.prefix}_{name}"

    def run(**arguments: Any) -> str:
        args = Args(ctx, tool, arguments, set(op.properties))
        try:
            text = op.handler(ctx, args, budget)
        except ToolError:
            raise
        except Exception as err:
            raise ToolError(
                f"{tool} could not run on this data: {type(err).__name__}: {_first_line(err)}"
            ) from None
        return _clip(text, budget)

    run.__name__ = tool
    return run


class Args:
    """The model's arguments for one call, checked one at a time as the handler reads them."""

    def __init__(
        self, ctx: Context, tool: str, arguments: Mapping[str, Any], allowed: set[str]
    ) -> None:
        unknown = sorted(set(arguments) - allowed)
        if unknown:
            raise ToolError(
                f"{tool} has no argument(s) {', '.join(_show(u) for u in unknown)}; "
                f"it takes: {', '.join(sorted(allowed)) or 'no arguments'}"
            )
        self.ctx = ctx
        self.values = {key: value for key, value in arguments.items() if value is not None}

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self.values.get(key, default)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ToolError(f"{key} must be an integer, not {_json_type(value)}")
        if not low <= value <= high:
            raise ToolError(f"{key} must be between {low:,} and {high:,}, not {value:,}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.values.get(key, default)
        if not isinstance(value, bool):
            raise ToolError(f"{key} must be true or false, not {_json_type(value)}")
        return value

    def choice(self, key: str, options: list[str], default: str | None = None) -> str:
        value = self.values.get(key, default)
        if value is None:
            raise ToolError(f"{key} is required: one of {', '.join(options)}")
        if not isinstance(value, str) or value not in options:
            raise ToolError(f"{key} must be one of {', '.join(options)}, not {_show(value)}")
        return value

    def text(self, key: str) -> str | None:
        value = self.values.get(key)
        if value is not None and not isinstance(value, str):
            raise ToolError(f"{key} must be a string, not {_json_type(value)}")
        return value

    def column(self, key: str) -> int:
        if key not in self.values:
            raise ToolError(f"{key} is required: a column name")
        return _position(self.ctx, self.values[key], key)

    def optional_column(self, key: str) -> int | None:
        return self.column(key) if key in self.values else None

    def column_list(self, key: str, high: int) -> list[int] | None:
        """A list of 1..high distinct column names, or None when absent."""
        if key not in self.values:
            return None
        value = self.values[key]
        if not isinstance(value, list) or not 1 <= len(value) <= high:
            raise ToolError(f"{key} must be a list of 1 to {high} column names")
        return list(
            dict.fromkeys(_position(self.ctx, v, f"{key}[{i}]") for i, v in enumerate(value))
        )


def _position(ctx: Context, value: Any, where: str) -> int:
    """The position of the column named exactly ``value``, or an error with close names."""
    if not isinstance(value, str):
        raise ToolError(f"{where} must be a column name (a string), not {_json_type(value)}")
    found = ctx.positions.get(value)
    if found is not None:
        return found
    folded = [n for n in ctx.names if n.casefold() == value.casefold()]
    close = folded or difflib.get_close_matches(value, ctx.names, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(_show(c) for c in close)}?" if close else ""
    raise ToolError(
        f"{ctx.name} has no column {_show(value)}{hint} ({ctx.prefix}_columns lists them)"
    )


# ---- the tools ---------------------------------------------------------------------------


def _columns(ctx: Context, args: Args, budget: int) -> str:
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
        lead += f" {len(picked):,} column names contain {_show(contains)}."
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


def _describe(ctx: Context, args: Args, budget: int) -> str:
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
            stats += [("min", _cell(low)), ("max", _cell(high))]
    else:
        stats += _top_values(data, j)
    lead = [f"Column `{ctx.names[j]}` of `{ctx.name}` ({data.n_rows:,} rows):"]
    return _render(lead, ["stat", "value"], [[k, v] for k, v in stats], budget)


def _top_values(data: Backend, j: int) -> list[tuple[str, str]]:
    """Distinct count and most common values, from one hashing pass over the column."""
    try:
        values, tallies, distinct = data.counts(j, TOP_VALUES + 1)
    except Exception as err:  # lists, dicts or other cells the library cannot hash
        return [("distinct (non-null)", f"not available ({type(err).__name__})")]
    pairs = [(v, c) for v, c in zip(values, tallies, strict=True) if v is not None]
    top = [(f"top {i + 1}", f"{clip_cell(_cell(v))} ({c:,})") for i, (v, c) in enumerate(pairs)]
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
    return [(key, _number(float(value))) for key, value in stats.items()]


def _value_counts(ctx: Context, args: Args, budget: int) -> str:
    j = args.column("column")
    top = args.integer("top", 10, 1, MAX_ROWS)
    values, tallies, distinct = ctx.data.counts(j, top)
    n_rows = max(ctx.data.n_rows, 1)
    rows = [
        [clip_cell(_cell(v)), f"{c:,}", f"{100 * c / n_rows:.1f}%"]
        for v, c in zip(values, tallies, strict=True)
    ]
    lead = [
        f"Column `{ctx.names[j]}` of `{ctx.name}`: {_count(distinct, 'distinct non-null value')}; "
        f"null in {ctx.data.nulls(j):,} of {_count(ctx.data.n_rows, 'row')}. The {len(rows)} most "
        "common (null included):"
    ]
    return _render(lead, ["value", "count", "share"], rows, budget)


def _group_by(ctx: Context, args: Args, budget: int) -> str:
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
            f"cannot {agg} column {_show(ctx.names[j])} of dtype {ctx.data.dtype(j)}: "
            "use count, nunique, min or max for non-numeric columns"
        )
    keys, results, n_groups = ctx.data.group(by, agg, j, top, descending)
    label = agg if j is None else f"{agg}({ctx.names[j]})"
    header = [*(ctx.names[k] for k in by), label]
    rows = [
        [*(clip_cell(_cell(k)) for k in key), _aggregate(r)]
        for key, r in zip(keys, results, strict=True)
    ]
    order = "descending" if descending else "ascending"
    lead = [
        f"{_count(n_groups, 'group')} in all; the {len(rows)} with the "
        f"{'largest' if descending else 'smallest'} {label} ({order}, nulls last):"
    ]
    return _render(lead, [clip_cell(h) for h in header], rows, budget)


def _aggregate(value: object) -> str:
    return _number(value) if isinstance(value, float) else clip_cell(_cell(value))


def _filter(ctx: Context, args: Args, budget: int) -> str:
    import numpy as np

    conditions = args.values.get("conditions")
    if not isinstance(conditions, list) or not 1 <= len(conditions) <= MAX_CONDITIONS:
        raise ToolError(
            f"conditions must be a list of 1 to {MAX_CONDITIONS} objects "
            '{"column": ..., "op": ..., "value": ...}'
        )
    columns = args.column_list("columns", MAX_ROWS)
    limit = args.integer("limit", 20, 1, MAX_ROWS)
    masks = [_condition(ctx, c, i) for i, c in enumerate(conditions)]
    matched = np.flatnonzero(np.logical_and.reduce(masks))
    lead = [f"{matched.size:,} of {_count(ctx.data.n_rows, 'row')} match."]
    if matched.size:
        lead[0] += f" The first {min(limit, matched.size)}:"
    positions = [int(p) for p in matched[:limit]]
    return _row_table(ctx, lead, positions, columns, budget)


def _condition(ctx: Context, condition: Any, i: int) -> Mask:
    """One ``{column, op, value}`` as a boolean mask, its value checked against the dtype."""
    where = f"conditions[{i}]"
    if not isinstance(condition, dict):
        raise ToolError(f"{where} must be an object with column, op and value")
    unknown = sorted(set(condition) - {"column", "op", "value"}, key=str)
    if unknown:
        raise ToolError(f"{where} has unknown key(s) {', '.join(_show(u) for u in unknown)}")
    j = _position(ctx, condition.get("column"), f"{where}.column")
    op = condition.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise ToolError(f"{where}.op must be one of {', '.join(OPS)}, not {_show(op)}")
    value = condition.get("value")
    if ctx.data.kind(j) == "bool" and op in ("<", "<=", ">", ">="):
        raise ToolError(f"{where}: column {_show(ctx.names[j])} is boolean: use == or != with it")
    if op in ("isnull", "notnull"):
        if value is not None:
            raise ToolError(f"{where}: op {op} takes no value")
        return ctx.data.mask(j, op, None)
    if op == "in":
        if not isinstance(value, list) or len(value) > MAX_IN_VALUES:
            raise ToolError(
                f"{where}: op 'in' needs value to be a list of at most {MAX_IN_VALUES} values"
            )
        value = [_typed(ctx, j, v, f"{where}.value[{k}]") for k, v in enumerate(value)]
    else:
        value = _typed(ctx, j, value, f"{where}.value")
    try:
        return ctx.data.mask(j, op, value)
    except Exception as err:  # a comparison the library refuses, e.g. ordering mixed objects
        raise ToolError(
            f"{where}: cannot apply {op} to column {_show(ctx.names[j])} "
            f"({ctx.data.dtype(j)}) with {_show(value)}: {type(err).__name__}: {_first_line(err)}"
        ) from None


def _typed(ctx: Context, j: int, value: Any, where: str) -> Any:
    """Check a comparison value against the column's kind; ISO text for dates becomes a date."""
    kind, dtype, column = ctx.data.kind(j), ctx.data.dtype(j), _show(ctx.names[j])
    if value is None:
        raise ToolError(f"{where} is missing: use op isnull/notnull to test for nulls")
    if not isinstance(value, (str, int, float)):
        raise ToolError(f"{where} must be a string, number or boolean, not {_json_type(value)}")
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "numeric" and not is_number:
        raise ToolError(
            f"column {column} is numeric ({dtype}): compare it with a number, not {_show(value)}"
        )
    if kind == "bool" and not isinstance(value, bool):
        raise ToolError(
            f"column {column} is boolean: compare it with true or false, not {_show(value)}"
        )
    if kind == "text" and not isinstance(value, str):
        raise ToolError(
            f"column {column} holds text ({dtype}): compare it with a string, not {_show(value)}"
        )
    if kind == "temporal":
        if not isinstance(value, str):
            raise ToolError(
                f"column {column} holds dates ({dtype}): compare it with an ISO string "
                f"such as '2024-01-31' or '2024-01-31T12:00:00', not {_show(value)}"
            )
        return ctx.data.time(j, value)
    return value


def _sort(ctx: Context, args: Args, budget: int) -> str:
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


def _sample(ctx: Context, args: Args, budget: int) -> str:
    import numpy as np

    n = args.integer("n", 10, 1, MAX_ROWS)
    seed = args.integer("seed", 0, 0, MAX_SEED)
    columns = args.column_list("columns", MAX_ROWS)
    total = ctx.data.n_rows
    rng = np.random.default_rng(seed)
    positions = sorted(int(p) for p in rng.choice(total, min(n, total), replace=False))
    lead = [f"{len(positions)} random rows of {total:,} (seed {seed}), in frame order:"]
    return _row_table(ctx, lead, positions, columns, budget)


def _correlation(ctx: Context, args: Args, budget: int) -> str:
    import numpy as np

    a, b = args.column("a"), args.column("b")
    method = args.choice("method", METHODS, "pearson")
    for j in (a, b):
        if ctx.data.kind(j) not in ("numeric", "bool"):
            raise ToolError(
                f"column {_show(ctx.names[j])} is not numeric ({ctx.data.dtype(j)}): "
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


# ---- schemas -----------------------------------------------------------------------------


def _ops(ctx: Context) -> dict[str, Op]:
    """Every tool of the frame: what it does, its parameters and its handler."""
    name, column, last = ctx.name, _column_schema(ctx), max(len(ctx.names) - 1, 0)
    rows = _integer_schema("How many rows to show", 1, MAX_ROWS)
    pick = {"type": "array", "items": column, "minItems": 1, "maxItems": MAX_ROWS}
    pick["description"] = "Columns to show (default: all that fit)"
    return {
        "columns": Op(
            f"Shape of the {ctx.data.library} DataFrame `{name}` ({ctx.shape}) and each "
            "column's name, dtype and null count. Call this first.",
            {
                "offset": _integer_schema("Start at this column position", 0, last, 0),
                "contains": {"type": "string", "description": "Only names containing this"},
            },
            [],
            _columns,
        ),
        "describe": Op(
            f"Statistics of one column of `{name}`: count, nulls, distinct; min/quartiles/max/"
            "mean/std for numbers, min/max for dates, most common values otherwise.",
            {"column": column},
            ["column"],
            _describe,
        ),
        "value_counts": Op(
            f"The most common values of one column of `{name}` with their counts (null "
            "counted) and the number of distinct values.",
            {"column": column, "top": {**rows, "default": 10}},
            ["column"],
            _value_counts,
        ),
        "group_by": Op(
            f"Group the rows of `{name}` by 1-{MAX_BY} columns and aggregate: the groups sorted "
            "by the aggregate (top ones only) and the number of groups.",
            {
                "by": {**pick, "maxItems": MAX_BY, "description": "Columns to group by"},
                "agg": {
                    "type": "string",
                    "enum": AGGS,
                    "description": "count: rows per group (non-null values of column if given)",
                },
                "column": {**column, "description": "Column to aggregate (not needed for count)"},
                "top": {**rows, "default": 20, "description": "How many groups to show"},
                "descending": {"type": "boolean", "default": True},
            },
            ["by", "agg"],
            _group_by,
        ),
        "filter": Op(
            f"Count the rows of `{name}` matching all conditions (AND) and show the first ones.",
            {
                "conditions": _conditions_schema(column),
                "columns": pick,
                "limit": {**rows, "default": 20},
            },
            ["conditions"],
            _filter,
        ),
        "sort": Op(
            f"The first n rows of `{name}` sorted by one column (nulls last).",
            {
                "by": column,
                "descending": {"type": "boolean", "default": False},
                "n": {**rows, "default": 10},
                "columns": pick,
            },
            ["by"],
            _sort,
        ),
        "sample": Op(
            f"n random rows of `{name}`, reproducible with seed.",
            {
                "n": {**rows, "default": 10},
                "seed": _integer_schema("Random seed", 0, MAX_SEED, 0),
                "columns": pick,
            },
            [],
            _sample,
        ),
        "correlation": Op(
            f"Correlation of two numeric columns of `{name}` over the rows where both are "
            "non-null, and the number of such rows.",
            {
                "a": column,
                "b": column,
                "method": {"type": "string", "enum": METHODS, "default": "pearson"},
            },
            ["a", "b"],
            _correlation,
        ),
    }


def _column_schema(ctx: Context) -> JSONSchema:
    if 1 <= len(ctx.names) <= ENUM_COLUMNS:
        return {"type": "string", "enum": list(ctx.names)}
    return {
        "type": "string",
        "description": f"A column name, exactly as {ctx.prefix}_columns lists it",
    }


def _integer_schema(
    description: str, low: int, high: int, default: int | None = None
) -> JSONSchema:
    schema: JSONSchema = {"type": "integer", "minimum": low, "maximum": high}
    schema["description"] = description
    if default is not None:
        schema["default"] = default
    return schema


def _conditions_schema(column: JSONSchema) -> JSONSchema:
    return {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_CONDITIONS,
        "items": {
            "type": "object",
            "properties": {
                "column": column,
                "op": {"type": "string", "enum": OPS},
                "value": {
                    "type": ["string", "number", "boolean", "array"],
                    "items": {"type": ["string", "number", "boolean"]},
                    "description": "A number, string (ISO for dates) or boolean; a list for "
                    "in; leave out for isnull/notnull",
                },
            },
            "required": ["column", "op"],
            "additionalProperties": False,
        },
    }


# ---- text --------------------------------------------------------------------------------


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
        [clip_cell(_cell(label)), *(clip_cell(_cell(c)) for c in row)]
        for label, row in zip(labels, cells, strict=True)
    ]
    return _render(lead, header, rows, budget, hidden=len(chosen) - len(columns))


def _render(
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


def _clip(text: str, budget: int) -> str:
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


def _cell(value: object) -> str:
    """Text for one value; values whose ``str`` fails still get a name, never an exception."""
    if value is None:
        return "null"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else repr(value)
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _number(value: object) -> str:
    """A statistic to 6 significant digits, without exponent for everyday magnitudes."""
    if not isinstance(value, float):
        return _cell(value)
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


def _first_line(err: Exception) -> str:
    """A library error's first line, short: enough for the model to see what went wrong."""
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else ""


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _show(value: object) -> str:
    """An argument quoted back in a message, short however long the model made it."""
    text = repr(value) if isinstance(value, str) else _json_type(value)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + ELLIPSIS


def _json_type(value: object) -> str:
    """What the model sent, in JSON words, with the value itself when it is short."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        noun = "an integer" if isinstance(value, int) else "a number"
        return f"{noun} ({value!r})" if len(repr(value)) < 30 else noun
    if isinstance(value, str):
        return f"a string ({_show(value)})"
    names = {list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _unique(labels: list[str]) -> list[str]:
    """Column names as the model uses them: distinct (a repeated name gets ``(2)`` etc.)."""
    seen: set[str] = set()
    names = []
    for label in labels:
        name, k = label, 1
        while name in seen:
            k += 1
            name = f"{label} ({k})"
        seen.add(name)
        names.append(name)
    return names


def _prefix(name: str) -> str:
    """``name`` made safe for tool names (``^[a-zA-Z0-9_-]{1,64}$``) with the longest op."""
    safe = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[: 64 - len("_value_counts")]
    return safe or "frame"


# ---- backends ----------------------------------------------------------------------------


class PandasFrame:
    """pandas: columns by position (duplicate and MultiIndex labels work), rows by index."""

    library = "pandas"

    def __init__(self, frame: Any) -> None:
        self.frame = frame
        self.n_rows = len(frame)
        self.labels = [flat_name(c) for c in frame.columns]
        names = [str(n) for n in frame.index.names if n is not None]
        self.index_header = clip_cell(" / ".join(names)) or "index"

    def _series(self, j: int) -> Any:
        return self.frame.iloc[:, j]

    def dtype(self, j: int) -> str:
        return str(self._series(j).dtype)

    def kind(self, j: int) -> str:
        dtype = self._series(j).dtype
        if str(dtype) == "category":
            return "category"
        if str(dtype) in ("str", "string"):
            return "text"
        kinds = {"b": "bool", "i": "numeric", "u": "numeric", "f": "numeric", "M": "temporal"}
        return kinds.get(dtype.kind, "other")

    def nulls(self, j: int) -> int:
        return int(self._series(j).isna().sum())

    def distinct(self, j: int) -> int:
        """Numbers and times are sorted rather than hashed: 3x faster on 10M distinct floats."""
        series = self._series(j)
        if series.dtype.kind in "iufMm":
            values = series.dropna().to_numpy()
            if values.dtype.kind in "iufMm":  # not tz-aware times, which come back as objects
                return _distinct_sorted(values)
        return int(series.nunique(dropna=True))

    def floats(self, j: int) -> Floats:
        return self._series(j).to_numpy(dtype="float64", na_value=float("nan"))  # type: ignore[no-any-return]

    def extremes(self, j: int) -> tuple[object, object]:
        series = self._series(j)
        return series.min(), series.max()

    def counts(self, j: int, top: int) -> tuple[list[object], list[int], int]:
        """Most common first; ties in order of first appearance, so the answer is stable.

        ``factorize`` + ``bincount`` is twice as fast as ``value_counts`` on Python strings.
        """
        import numpy as np

        codes, uniques = self._series(j).factorize(use_na_sentinel=False)
        tallies = np.bincount(codes, minlength=len(uniques))
        picked = _first_n(-tallies, top)
        counts = [int(c) for c in tallies[picked]]
        return _pandas_values(uniques[picked]), counts, int(uniques.notna().sum())

    def group(
        self, by: list[int], agg: str, j: int | None, top: int, descending: bool
    ) -> tuple[Cells, list[object], int]:
        keys = [self._series(k) for k in by]
        values = keys[0] if j is None else self._series(j)
        grouped = values.groupby(keys, dropna=False, observed=True, sort=False)
        functions = {"sum": "sum", "mean": "mean", "min": "min", "max": "max"}
        functions |= {"median": "median", "nunique": "nunique", "count": "count"}
        result = grouped.size() if j is None else grouped.agg(functions[agg])
        ranked = result.iloc[_pandas_first(result, top, descending)]
        index = ranked.index
        levels = [_pandas_values(index.get_level_values(i)) for i in range(index.nlevels)]
        return [list(key) for key in zip(*levels, strict=True)], _pandas_values(ranked), len(result)

    def mask(self, j: int, op: str, value: Any) -> Mask:
        """SQL-like: no comparison matches a null (pandas ``!=`` alone would)."""
        series = self._series(j)
        if op == "isnull":
            return series.isna().to_numpy(dtype=bool)  # type: ignore[no-any-return]
        present = series.notna().to_numpy(dtype=bool)
        if op == "notnull":
            return present  # type: ignore[no-any-return]
        matched = series.isin(value) if op == "in" else COMPARISONS[op](series, value)
        return matched.to_numpy(dtype=bool, na_value=False) & present  # type: ignore[no-any-return]

    def time(self, j: int, text: str) -> object:
        moment = _parse_time(text)
        zone = self._series(j).dt.tz
        if zone is not None and moment.tzinfo is None:
            return moment.replace(tzinfo=zone)
        if zone is None and moment.tzinfo is not None:
            return moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return moment

    def order(self, j: int, descending: bool, n: int) -> list[int]:
        return _pandas_first(self._series(j), n, descending)

    def rows(self, positions: list[int], columns: list[int]) -> tuple[list[object], Cells]:
        labels = self.frame.index[positions].tolist()
        picked = [_pandas_values(self.frame.iloc[positions, j]) for j in columns]
        return labels, [[column[i] for column in picked] for i in range(len(positions))]


def _pandas_first(series: Any, n: int, descending: bool) -> list[int]:
    """Positions of the first n values in sorted order, nulls last, ties in frame order.

    Never a full sort (of 10M Python strings it takes 15 s): numbers go through
    ``nsmallest``/``nlargest``, anything else through ranks of only its n extreme values.
    """
    import numpy as np

    series = series.reset_index(drop=True)
    missing = series.isna().to_numpy(dtype=bool)
    if series.dtype.kind in "iufM" and str(series.dtype) != "category":
        present = series[~missing]
        found = (present.nlargest(n) if descending else present.nsmallest(n)).index.to_numpy()
    else:
        keys = _pandas_sort_keys(series, n, descending)[~missing]
        found = np.flatnonzero(~missing)[_first_n(keys, n)]
    nulls = np.flatnonzero(missing)[: n - found.size]
    return [int(p) for p in np.concatenate([found, nulls])]


def _pandas_sort_keys(series: Any, n: int, descending: bool) -> Any:
    """Integer keys that order the rows holding the n extreme values (others tie after).

    Categories sort in their category order (pandas' own); other values are factorized (one
    hashing pass), and only the distinct values are compared, by Python's ``<``.
    """
    import heapq

    import numpy as np

    if str(series.dtype) == "category":
        codes = series.cat.codes.to_numpy().astype(np.int64)
        return -codes if descending else codes
    codes, uniques = series.factorize()
    pick = heapq.nlargest if descending else heapq.nsmallest
    extreme = [code for _, code in pick(n, zip(uniques.tolist(), range(len(uniques)), strict=True))]
    ranks = np.full(len(uniques) + 1, n, dtype=np.int64)  # the extra slot is for nulls (-1)
    ranks[extreme] = np.arange(len(extreme))
    return ranks[codes]


def _pandas_values(values: Any) -> list[object]:
    """Values of a pandas Index or Series as Python objects, with every kind of NA as None."""
    missing = values.isna()
    return [None if na else v for v, na in zip(values.tolist(), missing, strict=True)]


class PolarsFrame:
    """polars: rows have no index (their position is shown), null counts are free."""

    library = "polars"
    index_header = "#"

    def __init__(self, frame: Any) -> None:
        self.frame = frame
        self.n_rows = frame.height
        self.labels = list(frame.columns)

    def _series(self, j: int) -> Any:
        return self.frame.to_series(j)

    def dtype(self, j: int) -> str:
        return str(self._series(j).dtype)

    def kind(self, j: int) -> str:
        import polars as pl

        dtype = self._series(j).dtype
        if dtype == pl.Boolean:
            return "bool"
        if dtype.is_numeric():
            return "numeric"
        if dtype == pl.Date or isinstance(dtype, pl.Datetime):
            return "temporal"
        if dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum)):
            return "text"
        return "other"

    def nulls(self, j: int) -> int:
        return int(self._series(j).null_count())

    def distinct(self, j: int) -> int:
        return int(self._series(j).drop_nulls().n_unique())

    def floats(self, j: int) -> Floats:
        return self._series(j).cast(float).to_numpy()  # type: ignore[no-any-return]

    def extremes(self, j: int) -> tuple[object, object]:
        series = self._series(j)
        return series.min(), series.max()

    def counts(self, j: int, top: int) -> tuple[list[object], list[int], int]:
        """Most common first; ties in order of first appearance, so the answer is stable."""
        import polars as pl

        table = (
            self._series(j)
            .alias("value")
            .to_frame()
            .group_by("value", maintain_order=True)
            .agg(pl.len().alias("count"))
        )
        _, picked = _polars_top(table, "count", top, descending=True)
        counts = [int(c) for c in picked.to_series(1).to_list()]
        return picked.to_series(0).to_list(), counts, table.height - table.to_series(0).null_count()

    def group(
        self, by: list[int], agg: str, j: int | None, top: int, descending: bool
    ) -> tuple[Cells, list[object], int]:
        import polars as pl

        keys = [f"k{i}" for i in range(len(by))]
        series = [self._series(k).alias(key) for k, key in zip(by, keys, strict=True)]
        if j is not None:
            series.append(self._series(j).alias("v"))
        v = pl.col("v")
        functions = {"sum": v.sum(), "mean": v.mean(), "min": v.min(), "max": v.max()}
        functions |= {"median": v.median(), "nunique": v.n_unique(), "count": v.count()}
        expression = pl.len() if j is None else functions[agg]
        result = pl.DataFrame(series).group_by(keys, maintain_order=True).agg(expression.alias("a"))
        _, ranked = _polars_top(result, "a", top, descending)
        columns = [ranked.to_series(i).to_list() for i in range(len(keys))]
        return (
            [list(key) for key in zip(*columns, strict=True)],
            ranked.to_series(len(keys)).to_list(),
            result.height,
        )

    def mask(self, j: int, op: str, value: Any) -> Mask:
        series = self._series(j)
        if op == "isnull":
            matched = series.is_null()
        elif op == "notnull":
            matched = series.is_not_null()
        elif op == "in" and series.dtype.is_float():
            matched = series.is_in([float(v) for v in value])  # polars will not mix 1 and 1.0
        elif op == "in" and series.dtype.is_integer() and any(isinstance(v, float) for v in value):
            matched = series.cast(float).is_in([float(v) for v in value])
        elif op == "in":
            matched = series.is_in(value)
        else:
            matched = COMPARISONS[op](series, value)
        return matched.fill_null(False).to_numpy()  # type: ignore[no-any-return]

    def time(self, j: int, text: str) -> object:
        import polars as pl

        moment = _parse_time(text)
        dtype = self._series(j).dtype
        if dtype == pl.Date:
            return moment.date()
        zone = getattr(dtype, "time_zone", None)
        if zone is not None and moment.tzinfo is None:
            from zoneinfo import ZoneInfo

            return moment.replace(tzinfo=ZoneInfo(zone))
        if zone is None and moment.tzinfo is not None:
            return moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return moment

    def order(self, j: int, descending: bool, n: int) -> list[int]:
        return _polars_top(self._series(j).alias("v").to_frame(), "v", n, descending)[0]

    def rows(self, positions: list[int], columns: list[int]) -> tuple[list[object], Cells]:
        picked = [self._series(j).gather(positions).to_list() for j in columns]
        return list(positions), [[column[i] for column in picked] for i in range(len(positions))]


def _polars_top(table: Any, column: str, k: int, descending: bool) -> tuple[list[int], Any]:
    """The k rows of ``table`` first when sorted by ``column``, nulls last, ties in table order.

    ``bottom_k`` selects without sorting everything (several times faster than a sort on
    millions of rows); the row number breaks ties. Returns their positions and the rows.
    ``table``'s own column names are ours (``v``, ``a``...), so the helper names cannot clash.
    """
    import polars as pl

    keys = ["_null", column, "_i"]
    ranked = table.with_row_index("_i").with_columns(pl.col(column).is_null().alias("_null"))
    picked = ranked.bottom_k(k, by=keys, reverse=[False, descending, False])
    picked = picked.sort(keys, descending=[False, descending, False])
    positions = [int(p) for p in picked.get_column("_i").to_list()]
    return positions, picked.drop(["_null", "_i"])


def _first_n(keys: Any, n: int) -> Any:
    """Indices of the n smallest keys in order, ties by index, in linear time (no full sort)."""
    import numpy as np

    n = min(n, keys.size)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    kth = np.partition(keys, n - 1)[n - 1]
    below = np.flatnonzero(keys < kth)
    tied = np.flatnonzero(keys == kth)[: n - below.size]
    picked = np.concatenate([below, tied])
    return picked[np.lexsort((picked, keys[picked]))]


def _distinct_sorted(values: Any) -> int:
    import numpy as np

    ordered = np.sort(values)
    return int(ordered.size and 1 + np.count_nonzero(ordered[1:] != ordered[:-1]))


def _parse_time(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ToolError(
            f"{_show(text)} is not an ISO date or time; write e.g. '2024-01-31' or "
            "'2024-01-31T12:00:00'"
        ) from None
