"""Read-only tools over one pandas or polars DataFrame, for model tool calling.

``%%step --tools df`` gives the model these tools instead of the frame: a 10M-row frame never
fits in a prompt, but its schema, statistics, counts, groups and a few matching rows do. Every
tool is read-only and bounded: it answers in Markdown of at most ``budget_chars`` characters,
and on tens of millions of rows in a second or two, because the work is done by vectorised
library calls and only the few rows shown ever become Python objects.

This module is the tools' interface: their names, descriptions and JSON schemas, and the
``run`` that bounds every answer and turns any failure into a ``ToolError``. The arguments
are checked in ``frame_args.py``, the tools do their work in ``frame_ops.py`` through one
adapter per library (``frame_pandas.py``, ``frame_polars.py``; their protocol is in
``frame_backends.py``), and answers are written by ``frame_text.py``.
Nothing evaluates text: no eval/exec, no ``DataFrame.query``/``eval``, no SQL, no attribute
looked up by a name from the arguments; as in ``frames.py``, pandas and polars are not
imported up front.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from step_magic.core.errors import InputError, ToolError
from step_magic.core.text import a_type
from step_magic.frames.backends import Backend
from step_magic.frames.pandas_frame import PandasFrame
from step_magic.frames.polars_frame import PolarsFrame
from step_magic.frames.tables import is_series, library_of
from step_magic.frames.text import clip_text
from step_magic.tools import frame_args as limits
from step_magic.tools.frame_args import Args, Context, first_line
from step_magic.tools.frame_ops import (
    correlation,
    describe,
    filter_rows,
    group_by,
    list_columns,
    sample_rows,
    sort_rows,
    value_counts,
)
from step_magic.tools.toolbox import JSONSchema, Tool

__all__ = ["frame_tools"]

ENUM_COLUMNS = 200  # up to this many column names go into the schemas as an enum


def frame_tools(name: str, frame: Any, *, budget_chars: int = 8_000) -> list[Tool]:
    """Read-only tools over the pandas/polars DataFrame bound to ``name``."""
    library = library_of(frame)
    if library is None or is_series(frame):
        raise InputError(f"{name} is {a_type(frame)}, not a pandas or polars DataFrame")
    if budget_chars < 1:
        raise InputError(f"budget_chars must be at least 1, not {budget_chars}")
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
                f"{tool} could not run on this data: {type(err).__name__}: {first_line(err)}"
            ) from None
        return clip_text(text, budget)

    run.__name__ = tool
    return run


# ---- schemas -----------------------------------------------------------------------------


def _ops(ctx: Context) -> dict[str, Op]:
    """Every tool of the frame: what it does, its parameters and its handler."""
    name, column, last = ctx.name, _column_schema(ctx), max(len(ctx.names) - 1, 0)
    rows = _integer_schema("How many rows to show", 1, limits.MAX_ROWS)
    pick = {"type": "array", "items": column, "minItems": 1, "maxItems": limits.MAX_ROWS}
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
            list_columns,
        ),
        "describe": Op(
            f"Statistics of one column of `{name}`: count, nulls, distinct; min/quartiles/max/"
            "mean/std for numbers, min/max for dates, most common values otherwise.",
            {"column": column},
            ["column"],
            describe,
        ),
        "value_counts": Op(
            f"The most common values of one column of `{name}` with their counts (null "
            "counted) and the number of distinct values.",
            {"column": column, "top": {**rows, "default": 10}},
            ["column"],
            value_counts,
        ),
        "group_by": Op(
            f"Group the rows of `{name}` by 1-{limits.MAX_BY} columns and aggregate: the groups "
            "sorted by the aggregate (top ones only) and the number of groups.",
            {
                "by": {**pick, "maxItems": limits.MAX_BY, "description": "Columns to group by"},
                "agg": {
                    "type": "string",
                    "enum": limits.AGGS,
                    "description": "count: rows per group (non-null values of column if given)",
                },
                "column": {**column, "description": "Column to aggregate (not needed for count)"},
                "top": {**rows, "default": 20, "description": "How many groups to show"},
                "descending": {"type": "boolean", "default": True},
            },
            ["by", "agg"],
            group_by,
        ),
        "filter": Op(
            f"Count the rows of `{name}` matching all conditions (AND) and show the first ones.",
            {
                "conditions": _conditions_schema(column),
                "columns": pick,
                "limit": {**rows, "default": 20},
            },
            ["conditions"],
            filter_rows,
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
            sort_rows,
        ),
        "sample": Op(
            f"n random rows of `{name}`, reproducible with seed.",
            {
                "n": {**rows, "default": 10},
                "seed": _integer_schema("Random seed", 0, limits.MAX_SEED, 0),
                "columns": pick,
            },
            [],
            sample_rows,
        ),
        "correlation": Op(
            f"Correlation of two numeric columns of `{name}` over the rows where both are "
            "non-null, and the number of such rows.",
            {
                "a": column,
                "b": column,
                "method": {"type": "string", "enum": limits.METHODS, "default": "pearson"},
            },
            ["a", "b"],
            correlation,
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
        "maxItems": limits.MAX_CONDITIONS,
        "items": {
            "type": "object",
            "properties": {
                "column": column,
                "op": {"type": "string", "enum": limits.OPS},
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
