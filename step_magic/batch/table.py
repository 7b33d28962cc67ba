"""The table side of ``%%step --map``: rows in, one prompt per row, typed columns out.

pandas and polars are imported only when a table has to be written back; rows are read
through the frame's own methods (see ``frame_tables``). A pyarrow ``Table`` is taken too: it is
what a block of a file is (``batch.sources``), so a file's rows go through this same code.
Answers that do not parse keep their raw text and are flagged, never dropped.
"""

from __future__ import annotations

import importlib
import json
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from step_magic.context.interpolate import interpolate, parse_reference
from step_magic.core.answers import parse_json_answer
from step_magic.core.cassette import RecordedReply
from step_magic.core.errors import InputError
from step_magic.frames.tables import is_series, library_of

NO_NAMES: Mapping[str, object] = MappingProxyType({})
FIELD_TYPES = ("int", "float", "str", "bool")


@dataclass(frozen=True)
class MapOptions:
    """The ``%%step --map`` flags; ``strict`` (``--strict``) refuses unknown ``{names}``."""

    column: str
    concurrency: int = 4
    rpm: float | None = None
    limit: int | None = None
    inplace: bool = False
    reasoning_column: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    json_output: bool = False
    strict: bool = False
    schema_sent: bool = False  # the request carries the shape (schema=): no words needed

    def reserved(self) -> tuple[str, ...]:
        """The columns the run writes besides the fields: the answer's text, its error and
        parse-error flags, the reasoning. A field may share only the answer's own name (its
        text then moves to ``<column>_answer``)."""
        names = [f"{self.column}_{suffix}" for suffix in ("answer", "error", "parse_error")]
        return (*names, *([self.reasoning_column] if self.reasoning_column else []))

    def __post_init__(self) -> None:
        bad = [f"{name}:{kind}" for name, kind in self.fields if kind not in FIELD_TYPES]
        taken = [name for name, _ in self.fields if name in self.reserved()]
        problems = {
            f"--fields {', '.join(taken)}: the run writes that column itself": bool(taken),
            "--as needs a column name": not self.column,
            "--concurrency must be at least 1": self.concurrency < 1,
            "--rpm must be positive": self.rpm is not None and self.rpm <= 0,
            "--limit must not be negative": self.limit is not None and self.limit < 0,
            f"--fields types are {', '.join(FIELD_TYPES)}, not {', '.join(bad)}": bool(bad),
        }
        for message, broken in problems.items():
            if broken:
                raise InputError(message)


Frame = Any  # pandas/polars objects, untyped: neither library is imported at module level
Columns = dict[str, tuple[list[object], str]]  # name -> (values of mapped rows, type)
_TYPE_WORDS = {"int": "integer", "float": "number", "str": "string", "bool": "true/false"}


@dataclass(frozen=True)
class _Table:
    source: Frame
    library: str | None  # "pandas", "polars" or "pyarrow"; None for a list
    series: bool
    length: int  # every row of the input: rows past --limit get nulls
    columns: frozenset[str]
    prompts: list[str]


def format_instruction(options: MapOptions) -> str:
    """What is appended to each prompt so answers can be parsed into columns (or nothing)."""
    if options.schema_sent:
        return ""
    if options.fields:
        keys = ", ".join(f'"{name}" ({_TYPE_WORDS[kind]})' for name, kind in options.fields)
        return f"\n\nAnswer with only a JSON object with the keys {keys}."
    return "\n\nAnswer with only a JSON object." if options.json_output else ""


def row_prompts(
    frame: object, template: str, options: MapOptions, namespace: Mapping[str, object] = NO_NAMES
) -> list[str]:
    """The prompt of each row (up to ``--limit``), exactly as ``map_rows`` would send it."""
    return read_table(frame, template, options, namespace).prompts


def read_table(
    frame: Frame, template: str, options: MapOptions, namespace: Mapping[str, object]
) -> _Table:
    """Each row as a namespace: its columns and ``row`` (``{row["a b"]}`` for any column
    name), or an item as ``value`` / ``item``; row names hide kernel names. A prompt that
    uses no row name would send one request for every row: never what a paid batch wants."""
    library = library_of(frame) or ("pyarrow" if is_arrow(frame) else None)
    series = library in ("pandas", "polars") and is_series(frame)
    if library is None and not isinstance(frame, list | tuple):
        raise InputError(f"--map takes a DataFrame, Series or list, not a {type(frame).__name__}")
    count = len(frame) if options.limit is None else min(options.limit, len(frame))
    if library is None or series:
        items = list(frame[:count]) if library is None else frame.head(count).to_list()
        rows: list[dict[str, object]] = [{"value": item, "item": item} for item in items]
        names: frozenset[str] = frozenset()
    else:
        rows = [
            {"row": rec, **{str(k): v for k, v in rec.items()}} for rec in _records(frame, count)
        ]
        names = frozenset(str(name) for name in _names(frame))
    prompts: list[str] = []
    outer = dict(namespace)
    for row in rows:
        done = interpolate(template, ChainMap(row, outer), strict=options.strict)
        if not prompts and not any(_root(ref) in row for ref in done.used):
            raise InputError(f"the prompt uses no {{column}} of the rows: use one of {_some(row)}")
        prompts.append(done.text + format_instruction(options))
    return _Table(frame, library, series, len(frame), names, prompts)


def is_arrow(frame: object) -> bool:
    """A pyarrow ``Table`` (pyarrow is not imported to find out)."""
    kind = type(frame)
    return kind.__module__.partition(".")[0] == "pyarrow" and kind.__name__ == "Table"


def _records(frame: Frame, count: int) -> list[dict[str, Any]]:
    if is_arrow(frame):
        rows: list[dict[str, Any]] = frame.slice(0, count).to_pylist()
        return rows
    head = frame.head(count)
    records: list[dict[str, Any]] = (
        head.to_dicts() if library_of(frame) == "polars" else head.to_dict("records")
    )
    return records


def _names(frame: Frame) -> list[object]:
    return list(frame.column_names if is_arrow(frame) else frame.columns)


def _root(ref: str) -> str | None:
    parsed = parse_reference(ref)
    return parsed[0] if parsed else None


def _some(row: Mapping[str, object]) -> str:
    return ", ".join(f"{{{name}}}" for name in list(row)[:5])


def new_columns(
    options: MapOptions,
    replies: list[RecordedReply | None],
    errors: list[str | None],
    existing: frozenset[str],
) -> Columns:
    """The answer column, and the reasoning, error, parsed and parse-error columns asked for.

    An answer that does not parse keeps its text and is flagged, never dropped: the user
    decides what to do with it. When a field has the answer column's own name, the answers'
    text moves to ``<column>_answer`` so the field cannot overwrite it. The error column also
    appears when an earlier run left one.
    """
    answers = [reply.answer if reply else None for reply in replies]
    column = options.column
    columns: Columns = {column: (list(answers), "str")}  # moved below when a field takes it
    if options.reasoning_column:
        reasonings: list[object] = [reply.reasoning if reply else None for reply in replies]
        columns[options.reasoning_column] = (reasonings, "str")
    if any(errors) or f"{column}_error" in existing:
        columns[f"{column}_error"] = (list(errors), "str")
    if not (options.fields or options.json_output):
        return columns
    parsed = [None if answer is None else _parse(answer, options) for answer in answers]
    declared = dict(options.fields)
    if declared:
        keys = {key: key for key in declared}
        if answer_column(options) != column:  # a field named like the answer column
            columns[answer_column(options)] = columns.pop(column)
    else:  # the model's own keys: one that clashes with a column of ours is renamed
        found = dict.fromkeys(key for p in parsed if p for key in p)
        clash = {column, *options.reserved()}
        keys = {key: f"{key}_field" if key in clash else key for key in found}
    for key, name in keys.items():
        values = [p.get(key) if p else None for p in parsed]
        columns[name] = (values, declared[key]) if key in declared else _typed(values)
    flags: list[object] = [
        None if a is None else p is None for a, p in zip(answers, parsed, strict=True)
    ]
    columns[f"{column}_parse_error"] = (flags, "bool")
    return columns


def answer_column(options: MapOptions) -> str:
    """Where the answers' text goes: ``column``, or ``<column>_answer`` when a declared field
    has the answer column's own name (so the field cannot overwrite the text)."""
    named = any(name == options.column for name, _ in options.fields)
    return f"{options.column}_answer" if named else options.column


def _parse(answer: str, options: MapOptions) -> dict[str, object] | None:
    """The answer's JSON object, with declared fields typed; None when it does not fit."""
    try:
        data = parse_json_answer(answer)
        if not isinstance(data, dict):
            return None
        if options.fields:
            return {name: _coerce(data[name], kind) for name, kind in options.fields}
        return {str(key): _scalar(value) for key, value in data.items()}
    except (ValueError, KeyError, TypeError):
        return None


def _coerce(value: object, kind: str) -> object:
    """A JSON value as ``kind``; numbers may arrive as strings, booleans never count as 1."""
    if value is None:
        return None
    if kind == "str":
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValueError(value)
    number = float(value) if isinstance(value, str) else value
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise TypeError(value)
    if kind == "float":
        return float(number)
    if float(number).is_integer():
        return int(number)
    raise ValueError(value)


def _scalar(value: object) -> object:
    """Nested JSON becomes its JSON text: a column of dicts breaks polars and most exports."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, ensure_ascii=False)


def _typed(values: list[object]) -> tuple[list[object], str]:
    """Undeclared JSON keys: the narrowest type every present value fits, else text."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return values, "bool"
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        kind = "int" if all(isinstance(v, int) for v in present) else "float"
        return values, kind
    text: list[object] = [
        v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in values
    ]
    return text, "str"


def write_table(table: _Table, columns: Columns, inplace: bool) -> object:
    """The new columns in a table of the input's own kind (a list gives a list of dicts)."""
    padded = {
        name: (values + [None] * (table.length - len(values)), kind)
        for name, (values, kind) in columns.items()
    }
    source = table.source
    if table.library == "pyarrow":
        return _arrow_with(source, padded)
    if table.library is None:
        return [
            {"item": item, **{name: values[i] for name, (values, _) in padded.items()}}
            for i, item in enumerate(source)
        ]
    if table.library == "pandas":
        pd: Any = importlib.import_module("pandas")  # untyped without pandas-stubs
        dtypes = {"str": "string", "int": "Int64", "float": "Float64", "bool": "boolean"}
        name = source.name if table.series and source.name is not None else "value"
        out = source.to_frame(name) if table.series else source if inplace else source.copy()
        for key, (values, kind) in padded.items():
            out[key] = pd.array(values, dtype=dtypes[kind])  # positional: any index works
        return out
    import polars as pl

    types = {"str": pl.String, "int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean}
    new = [pl.Series(key, values, dtype=types[kind]) for key, (values, kind) in padded.items()]
    if table.series or not inplace:
        base = source.to_frame(source.name or "value") if table.series else source
        return base.with_columns(new)
    for series in new:  # polars changes a frame in place only column by column
        if series.name in source.columns:
            source.replace_column(source.get_column_index(series.name), series)
        else:
            source.hstack([series], in_place=True)
    return source


def _arrow_with(source: Frame, columns: Columns) -> object:
    """A pyarrow table with the new columns (replacing any of the same name), typed."""
    pa: Any = importlib.import_module("pyarrow")
    types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    out = source
    for name, (values, kind) in columns.items():
        array = pa.array(values, type=types[kind])
        where = out.schema.get_field_index(name)
        out = out.set_column(where, name, array) if where >= 0 else out.append_column(name, array)
    return out
