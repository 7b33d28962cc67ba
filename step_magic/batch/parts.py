"""A map's output file, built from parts so that a crash or Ctrl-C loses nothing finished.

While a file map runs, each block's finished rows go to a Parquet file of their own in
``<output>.parts/``, written under a temporary name, flushed to disk and renamed: a part is
there whole or not at all, whatever moment a crash picks (a leftover temporary file is deleted,
an unreadable part is dropped and its rows asked again, the reply cache answering them). When
every row is done the parts are joined, in row order, into the output in its own format
(Parquet, CSV or JSON Lines), written the same way, and the folder is removed.

The parts folder is what a re-run reads when it is there; if only the output is, the output is
read back into parts first (so a row that failed there is asked again, like any row without an
answer). Every row carries its position in the source in ``step_row``: that is how a re-run
knows which rows are done, and how rows asked again replace their earlier, failed, copies.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from step_magic.batch.sources import Block, Source, file_format, pyarrow
from step_magic.core.errors import InputError

ROW_ID = "step_row"
TEMPORARY = ".tmp"


@dataclass(frozen=True)
class Part:
    """One part file and the first and last source rows it holds (from its name)."""

    first: int
    last: int
    path: Path

    @classmethod
    def named(cls, path: Path) -> Part | None:
        first, _, rest = path.stem.partition("-")
        last = rest.partition("-")[0]
        if not (first.isdigit() and last.isdigit()):
            return None
        return cls(int(first), int(last), path)


class Parts:
    """The parts folder of one output: what is done, new parts, and the join at the end."""

    def __init__(self, output: Path, batch_size: int) -> None:
        self.output, self.batch_size = output, batch_size
        self.folder = output.with_name(output.name + ".parts")
        self.kind = file_format(output)
        self.parts: list[Part] = []
        self.adopted = False  # the parts were read back from an earlier output

    def open(self) -> None:
        """Find the parts (reading the output back into parts when only it is there)."""
        if not self.output.parent.is_dir():
            raise InputError(f"{self.output}: no such folder {self.output.parent}")
        if not self.folder.is_dir() and self.output.exists():
            self._adopt()
        self.folder.mkdir(exist_ok=True)
        self.parts = []
        for path in sorted(self.folder.iterdir()):
            if path.name.endswith(TEMPORARY):  # a write a crash interrupted
                path.unlink()
            elif (part := Part.named(path)) is not None and _readable(path):
                self.parts.append(part)
            elif part is not None:  # cut short on a filesystem that does not rename atomically
                path.unlink()

    def done(self, first: int, end: int, answer: str) -> set[int]:
        """The rows in ``[first, end)`` that some part holds with an answer."""
        found: set[int] = set()
        for part in self.parts:
            if part.first < end and part.last >= first:
                found.update(row for row in _answered(part.path, answer) if first <= row < end)
        return found

    def count_done(self, rows: int, answer: str) -> int:
        """How many of the first ``rows`` rows have an answer already."""
        found = 0
        for part in self.parts:
            if part.first < rows:
                found += sum(1 for row in set(_answered(part.path, answer)) if row < rows)
        return found

    def write(self, table: Block, rows: list[int]) -> None:
        """A block's finished rows (``rows``: their positions in the source) as a new part."""
        pa, pq = pyarrow(), importlib.import_module("pyarrow.parquet")
        ids = pa.array(rows, type=pa.int64())
        where = table.schema.get_field_index(ROW_ID)
        table = (
            table.set_column(where, ROW_ID, ids) if where >= 0 else table.append_column(ROW_ID, ids)
        )
        path = self.folder / f"{min(rows):012d}-{max(rows):012d}-{uuid.uuid4().hex[:8]}.parquet"
        with _atomic(path) as handle:
            pq.write_table(table, handle)
        self.parts.append(Part(min(rows), max(rows), path))

    def join(self) -> None:
        """Write the output from the parts, in row order, then remove the folder."""
        groups = _overlapping(sorted(self.parts, key=lambda part: (part.first, part.path.name)))
        schema = _unified([_schema(part.path) for part in self.parts])
        with _atomic(self.output) as handle:
            writer = _Writer(self.kind, handle, schema)
            for group in groups:
                writer.write(_newest_per_row([_conformed(part.path, schema) for part in group]))
            writer.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def discard(self) -> None:
        """Drop parts read back from an output that stays as it was (nothing new was run)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def _adopt(self) -> None:
        """Read an earlier output of ours back into parts, a block at a time."""
        source = Source.of(self.output)
        self.folder.mkdir()
        self.adopted = True
        for block in source.blocks(self.batch_size):
            if ROW_ID not in block.column_names:
                shutil.rmtree(self.folder, ignore_errors=True)
                raise InputError(
                    f"{self.output} exists and was not written by map_rows (no {ROW_ID} "
                    "column): choose another output, or remove it"
                )
            self.write(block, block.column(ROW_ID).to_pylist())


def _readable(path: Path) -> bool:
    try:
        importlib.import_module("pyarrow.parquet").ParquetFile(path).close()
    except (OSError, ValueError):
        return False
    return True


def _answered(path: Path, answer: str) -> list[int]:
    """The rows of a part that have an answer (a row that failed has none)."""
    pq, pc = importlib.import_module("pyarrow.parquet"), importlib.import_module("pyarrow.compute")
    if answer not in pq.read_schema(path).names:
        return []
    table = pq.read_table(path, columns=[ROW_ID, answer])
    rows: list[int] = table.column(ROW_ID).filter(pc.is_valid(table.column(answer))).to_pylist()
    return rows


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Any]:
    """A binary file that appears at ``path`` only once it is whole and on disk."""
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}{TEMPORARY}")
    try:
        with temporary.open("wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as err:
        raise InputError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        temporary.unlink(missing_ok=True)


def _overlapping(parts: list[Part]) -> list[list[Part]]:
    """Parts grouped where their row ranges meet (a block resumed, a row asked again), so
    each group can be put in row order alone: one group is about one block of rows."""
    groups: list[list[Part]] = []
    last = -1
    for part in parts:
        if groups and part.first <= last:
            groups[-1].append(part)
        else:
            groups.append([part])
        last = max(last, part.last) if len(groups[-1]) > 1 else part.last
    return groups


def _schema(path: Path) -> Any:
    return importlib.import_module("pyarrow.parquet").read_schema(path)


def _unified(schemas: list[Any]) -> Any:
    """One schema for every part: a column a block did not have is null there, and a column
    two blocks typed differently (an undeclared JSON key: int in one, text in another) is
    widened (int to float), or made text."""
    pa = pyarrow()
    fields: dict[str, Any] = {}
    for schema in schemas:
        for field in schema:
            known = fields.get(field.name)
            fields[field.name] = field if known is None else _wider(pa, known, field)
    return pa.schema(list(fields.values()))


def _wider(pa: Any, one: Any, other: Any) -> Any:
    try:
        both = pa.unify_schemas(
            [pa.schema([one]), pa.schema([other])], promote_options="permissive"
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.field(one.name, pa.string())
    return both.field(0)


def _conformed(path: Path, schema: Any) -> Block:
    """A part read with every column of ``schema``, in its order and types."""
    pa = pyarrow()
    table = importlib.import_module("pyarrow.parquet").read_table(path)
    columns = [
        table.column(field.name).cast(field.type)
        if field.name in table.column_names
        else pa.nulls(table.num_rows, field.type)
        for field in schema
    ]
    return pa.table(columns, schema=schema)


def _newest_per_row(tables: list[Block]) -> Block:
    """The group's rows in row order; a row in several parts (failed, then asked again) is
    kept from the newest part, which is the last one given."""
    pa, pc = pyarrow(), importlib.import_module("pyarrow.compute")
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    if len(tables) == 1:
        return table
    order = pa.array(range(table.num_rows), type=pa.int64())
    table = table.append_column("__order", order).sort_by(
        [(ROW_ID, "ascending"), ("__order", "descending")]
    )
    ids = table.column(ROW_ID).combine_chunks()
    first = pa.concat_arrays(
        [pa.array([True]), pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1))]
    )
    return table.filter(first).drop_columns(["__order"])


class _Writer:
    """One output format's writer: ``write`` a table of rows, then ``close``."""

    def __init__(self, kind: str, handle: Any, schema: Any) -> None:
        self.kind, self.handle = kind, handle
        if kind == "parquet":
            self.inner = importlib.import_module("pyarrow.parquet").ParquetWriter(handle, schema)
        elif kind == "csv":
            self.inner = importlib.import_module("pyarrow.csv").CSVWriter(handle, schema)
        else:
            self.text = _Text(handle)

    def write(self, table: Block) -> None:
        if self.kind == "jsonl":
            for batch in table.to_batches(max_chunksize=1_000):
                for row in batch.to_pylist():
                    self.text.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        else:
            self.inner.write_table(table)

    def close(self) -> None:
        if self.kind == "jsonl":
            self.text.flush()
        else:
            self.inner.close()


class _Text:
    """UTF-8 text onto a binary handle the caller closes (a ``TextIOWrapper`` would close it)."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def write(self, text: str) -> int:
        return int(self.handle.write(text.encode("utf-8")))

    def flush(self) -> None:
        self.handle.flush()
