"""A table too big to hold, read block by block: a Parquet, CSV or JSON Lines file, or a
polars ``LazyFrame``.

A block is a pyarrow ``Table`` (a polars ``DataFrame`` for a ``LazyFrame``) of ``size`` rows,
the last one shorter: what ``batch.table`` reads rows from, so a file's rows become prompts
exactly as a frame's do. pyarrow is imported only here and only when a file is given; a line
of a CSV or JSON Lines file is bounded, so one runaway line is a one-line error, not a
machine out of memory.
"""

from __future__ import annotations

import importlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from step_magic.core.errors import InputError

FORMATS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MAX_LINE_BYTES = 4_000_000  # ~1M tokens: a row over it could not be a prompt anyway
INSTALL = "pip install 'step-magic[files]'"
READ_BUFFER = 1 << 20

Block = Any  # a pyarrow Table, or a polars DataFrame (neither imported at module level)


def pyarrow() -> Any:
    """pyarrow, or a one-line ``InputError`` saying how to get it."""
    try:
        return importlib.import_module("pyarrow")
    except ImportError:
        raise InputError(f"reading and writing table files needs pyarrow: {INSTALL}") from None


def file_format(path: Path) -> str:
    """``parquet``, ``csv`` or ``jsonl``, from the suffix (an ``InputError`` for another)."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(FORMATS)
        raise InputError(f"{path.name}: a table file ends in {known}, not {path.suffix or '…'}")
    return kind


def is_lazy(frame: object) -> bool:
    """A polars ``LazyFrame`` (polars is not imported to find out)."""
    kind = type(frame)
    return kind.__module__.partition(".")[0] == "polars" and kind.__name__ == "LazyFrame"


@dataclass(frozen=True)
class Source:
    """Where the rows come from: a file of a known format, or a ``LazyFrame``."""

    frame: Any  # the LazyFrame, or None for a file
    path: Path | None = None
    kind: str = "lazy"  # parquet, csv, jsonl or lazy

    @classmethod
    def of(cls, given: object) -> Source:
        """A source from a path (str or ``Path``) or a ``LazyFrame``."""
        if is_lazy(given):
            return cls(given)
        if not isinstance(given, str | Path):
            raise InputError(f"not a table file or LazyFrame: {type(given).__name__}")
        path = Path(given).expanduser()
        kind = file_format(path)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        pyarrow()
        return cls(None, path, kind)

    def rows(self, limit: int | None) -> int:
        """How many rows will be read (at most ``limit``): a Parquet file says so in its
        footer; CSV and JSON Lines are counted in one bounded pass."""
        if self.kind == "lazy":
            import polars as pl

            count = int(self.frame.select(pl.len()).collect().item())
        elif self.kind == "parquet":
            count = _parquet(self.path).metadata.num_rows
        else:
            count = 0
            for size in _row_counts(self.path, self.kind):
                count += size
                if limit is not None and count >= limit:
                    break
        return count if limit is None else min(count, limit)

    def blocks(self, size: int) -> Iterator[Block]:
        """The rows, ``size`` at a time, in order."""
        if self.kind == "lazy":
            yield from _lazy_blocks(self.frame, size)
            return
        assert self.path is not None
        if self.kind == "parquet":
            batches = _parquet(self.path).iter_batches(batch_size=size, use_threads=False)
            yield from _rechunked(batches, size)
        elif self.kind == "csv":
            yield from _rechunked(_csv_batches(self.path), size)
        else:
            yield from _jsonl_blocks(self.path, size)


def _row_counts(path: Path | None, kind: str) -> Iterator[int]:
    """Rows a piece at a time, for counting: a CSV block, a non-blank JSON line."""
    assert path is not None
    if kind == "csv":
        yield from (batch.num_rows for batch in _reading(_csv_batches(path)))
        return
    with path.open("rb") as lines:
        for line in iter(lambda: lines.readline(MAX_LINE_BYTES + 1), b""):
            yield 1 if line.strip() else 0


def _parquet(path: Path | None) -> Any:
    """The file, read a column chunk at a time through a 1 MB buffer: by default pyarrow
    buffers whole row groups ahead (measured: 65 MB of a 60 MB file for a 10-row block)."""
    parquet = importlib.import_module("pyarrow.parquet")
    try:
        return parquet.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER)
    except (OSError, ValueError) as err:  # ArrowInvalid is a ValueError: not a Parquet file
        raise InputError(f"{path}: not a readable Parquet file ({_first_line(err)})") from None


def _rechunked(batches: Iterator[Any], size: int) -> Iterator[Block]:
    """Record batches of any length as tables of exactly ``size`` rows (the last shorter)."""
    pa = pyarrow()
    held: list[Any] = []
    count = 0
    for batch in _reading(batches):
        held.append(batch)
        count += batch.num_rows
        while count >= size:
            table = pa.Table.from_batches(held)
            yield table.slice(0, size)
            rest = table.slice(size)
            held, count = rest.to_batches(), rest.num_rows
    if count:
        yield pa.Table.from_batches(held)


def _reading(batches: Iterator[Any]) -> Iterator[Any]:
    """The batches, with pyarrow's parse and conversion errors as one-line ``InputError``s."""
    pa = pyarrow()
    try:
        yield from batches
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as err:
        raise InputError(f"the table file cannot be read: {_first_line(err)}") from None


def _csv_batches(path: Path) -> Iterator[Any]:
    """pyarrow's streaming CSV reader, one block of bytes at a time (column types are found
    in the first block), fed through ``_BoundedLines``: pyarrow would otherwise grow a block
    to hold any row, however long."""
    csv = importlib.import_module("pyarrow.csv")
    options = csv.ReadOptions(block_size=MAX_LINE_BYTES)
    with path.open("rb") as raw:
        reader = csv.open_csv(_BoundedLines(raw, path.name), read_options=options)
        try:
            yield from reader
        finally:
            reader.close()


class _BoundedLines(io.RawIOBase):
    """A file read as it is, refusing (one-line ``InputError``) a line over the bound."""

    def __init__(self, raw: BinaryIO, name: str) -> None:
        self.raw, self.name = raw, name
        self.run = 0  # bytes since the last newline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        pieces = data.split(b"\n")
        longest = max([self.run + len(pieces[0]), *(len(piece) for piece in pieces[1:])])
        if longest > MAX_LINE_BYTES:
            raise InputError(f"{self.name}: a line is over {MAX_LINE_BYTES // 1_000_000} MB")
        self.run = len(pieces[-1]) if len(pieces) > 1 else self.run + len(data)
        buffer[: len(data)] = data
        return len(data)


def _jsonl_blocks(path: Path, size: int) -> Iterator[Block]:
    """Lines read one at a time (each bounded) into tables of ``size`` rows; blank lines
    are skipped, anything but a JSON object is a one-line error naming its line."""
    rows: list[dict[str, Any]] = []
    with path.open("rb") as lines:
        for number, line in enumerate(iter(lambda: lines.readline(MAX_LINE_BYTES + 1), b""), 1):
            if len(line) > MAX_LINE_BYTES:
                limit = f"{MAX_LINE_BYTES // 1_000_000} MB"
                raise InputError(f"{path.name}: line {number} is over {limit}")
            if not line.strip():
                continue
            rows.append(_json_row(line, path, number))
            if len(rows) == size:
                yield _table_of(rows, path)
                rows = []
    if rows:
        yield _table_of(rows, path)


def _json_row(line: bytes, path: Path, number: int) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except ValueError as err:
        raise InputError(f"{path.name}: line {number} is not JSON ({err})") from None
    if not isinstance(row, dict):
        raise InputError(f"{path.name}: line {number} is not a JSON object")
    return row


def _table_of(rows: list[dict[str, Any]], path: Path) -> Block:
    """Rows as a table with every key any of them has (missing values are nulls)."""
    pa = pyarrow()
    names = list(dict.fromkeys(key for row in rows for key in row))
    try:
        return pa.table({name: [row.get(name) for row in rows] for name in names})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise InputError(f"{path.name}: {_first_line(err)}") from None


def _lazy_blocks(frame: Any, size: int) -> Iterator[Block]:
    """polars streams the query (its streaming engine) and hands over ``size``-row frames."""
    yield from frame.collect_batches(chunk_size=size, lazy=True)


def _first_line(err: BaseException) -> str:
    return " ".join(str(err).split("\n", 1)[0].split())
