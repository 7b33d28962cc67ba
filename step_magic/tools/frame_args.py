"""What a model may pass to the DataFrame tools in ``frametools.py``, and checking it.

The arguments come from a model, so each tool checks them itself: columns by their exact
name, operators, aggregates and methods from fixed tables, bounded numbers, values typed
like the column they are compared with. Any problem is a ``ToolError`` whose message says
how to fix the call (the argument quoted back, short; close column names), so the model can
correct itself. Nothing here evaluates text: a condition becomes a mask through a fixed table
of operators, never through ``eval``, ``DataFrame.query`` or SQL. ``Context`` is what the
arguments are checked against: the frame's backend and the column names the model uses.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from step_magic.core.errors import ToolError
from step_magic.frames.backends import COMPARISONS, Backend
from step_magic.frames.summary import TIMES
from step_magic.frames.tables import ELLIPSIS
from step_magic.frames.text import count

if TYPE_CHECKING:
    from step_magic.frames.backends import Mask

MAX_ROWS = 100  # top / limit / n: what a model can read in one answer
MAX_BY = 3
MAX_CONDITIONS = 10
MAX_IN_VALUES = 500
MAX_SEED = 2**32 - 1
VALUE_CHARS = 60  # argument values quoted back in error messages
OPS = [*COMPARISONS, "in", "isnull", "notnull"]
AGGS = ["count", "sum", "mean", "min", "max", "median", "nunique"]
METHODS = ["pearson", "spearman"]


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
        return f"{count(self.data.n_rows, 'row')} {TIMES} {count(len(self.names), 'column')}"


class Args:
    """The model's arguments for one call, checked one at a time as the handler reads them."""

    def __init__(
        self, ctx: Context, tool: str, arguments: Mapping[str, Any], allowed: set[str]
    ) -> None:
        unknown = sorted(set(arguments) - allowed)
        if unknown:
            raise ToolError(
                f"{tool} has no argument(s) {', '.join(show(u) for u in unknown)}; "
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
            raise ToolError(f"{key} must be one of {', '.join(options)}, not {show(value)}")
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
    hint = f"; did you mean {', '.join(show(c) for c in close)}?" if close else ""
    raise ToolError(
        f"{ctx.name} has no column {show(value)}{hint} ({ctx.prefix}_columns lists them)"
    )


def condition_mask(ctx: Context, condition: Any, i: int) -> Mask:
    """One ``{column, op, value}`` as a boolean mask, its value checked against the dtype."""
    where = f"conditions[{i}]"
    if not isinstance(condition, dict):
        raise ToolError(f"{where} must be an object with column, op and value")
    unknown = sorted(set(condition) - {"column", "op", "value"}, key=str)
    if unknown:
        raise ToolError(f"{where} has unknown key(s) {', '.join(show(u) for u in unknown)}")
    j = _position(ctx, condition.get("column"), f"{where}.column")
    op = condition.get("op")
    if not isinstance(op, str) or op not in OPS:
        raise ToolError(f"{where}.op must be one of {', '.join(OPS)}, not {show(op)}")
    value = condition.get("value")
    if ctx.data.kind(j) == "bool" and op in ("<", "<=", ">", ">="):
        raise ToolError(f"{where}: column {show(ctx.names[j])} is boolean: use == or != with it")
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
            f"{where}: cannot apply {op} to column {show(ctx.names[j])} "
            f"({ctx.data.dtype(j)}) with {show(value)}: {type(err).__name__}: {first_line(err)}"
        ) from None


def _typed(ctx: Context, j: int, value: Any, where: str) -> Any:
    """Check a comparison value against the column's kind; ISO text for dates becomes a date."""
    kind, dtype, column = ctx.data.kind(j), ctx.data.dtype(j), show(ctx.names[j])
    if value is None:
        raise ToolError(f"{where} is missing: use op isnull/notnull to test for nulls")
    if not isinstance(value, (str, int, float)):
        raise ToolError(f"{where} must be a string, number or boolean, not {_json_type(value)}")
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "numeric" and not is_number:
        raise ToolError(
            f"column {column} is numeric ({dtype}): compare it with a number, not {show(value)}"
        )
    if kind == "bool" and not isinstance(value, bool):
        raise ToolError(
            f"column {column} is boolean: compare it with true or false, not {show(value)}"
        )
    if kind == "text" and not isinstance(value, str):
        raise ToolError(
            f"column {column} holds text ({dtype}): compare it with a string, not {show(value)}"
        )
    if kind == "temporal":
        if not isinstance(value, str):
            raise ToolError(
                f"column {column} holds dates ({dtype}): compare it with an ISO string "
                f"such as '2024-01-31' or '2024-01-31T12:00:00', not {show(value)}"
            )
        return ctx.data.time(j, _parse_time(value))
    return value


def _parse_time(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ToolError(
            f"{show(text)} is not an ISO date or time; write e.g. '2024-01-31' or "
            "'2024-01-31T12:00:00'"
        ) from None


def show(value: object) -> str:
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
        return f"a string ({show(value)})"
    names = {list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def first_line(err: Exception) -> str:
    """A library error's first line, short: enough for the model to see what went wrong."""
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else ""
