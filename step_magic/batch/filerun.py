"""A map over a table that is never held whole: a file or a ``LazyFrame`` in, a file out.

The source is read ``batch_size`` rows at a time (``batch.sources``); each block's rows not yet
in the output are run by the scheduler, exactly as the rows of a frame are (the same prompts,
calls, reply cache, retries, Ctrl-C), and its finished rows are written as a part of the output
at once (``batch.parts``). At most one block is held, with its prompts, replies and new
columns: memory follows ``batch_size`` and the width of a row, not the length of the file.

A block's rows all finish before the next block starts, so the last few rows of each block run
below ``concurrency``: one block is many times the concurrency (``batch_size`` 1,000 against 4
to 64 calls at once), so the cost is a few percent at most.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from step_magic.batch.cache import ReplyCache
from step_magic.batch.parts import Parts
from step_magic.batch.rowcall import Call
from step_magic.batch.scheduler import map_rows as schedule
from step_magic.batch.sources import Block, Source
from step_magic.batch.table import MapOptions, answer_column, is_arrow
from step_magic.core.errors import InputError
from step_magic.core.interrupts import interrupts_noted
from step_magic.core.mapresult import MapFileSummary, MapProgress, MapSummary
from step_magic.core.request import ChatRequest

Progress = Callable[[MapProgress], None]


def map_file(
    source: Source,
    output: Path,
    template: str,
    make_request: Callable[[str], ChatRequest],
    call: Call,
    options: MapOptions,
    *,
    cache: ReplyCache | None,
    batch_size: int,
    progress: Callable[[int], Progress | None] = lambda total: None,
) -> MapFileSummary:
    """Map ``template`` over ``source`` into ``output``, resuming what is there.

    ``progress`` is given the number of rows to run and returns the callback that hears how
    they go (a display is made once that number is known). The summary counts this run's rows;
    the rows the output already held are ``skipped``.
    """
    if options.inplace:
        raise InputError("--inplace needs a DataFrame in memory: a file map writes a new file")
    if batch_size < 1:
        raise InputError("batch_size must be at least 1")
    if source.path is not None and source.path.resolve() == output.resolve():
        raise InputError(f"{output}: the output must not be the source")
    parts = Parts(output, batch_size)
    parts.open()
    rows = source.rows(options.limit)
    answer = answer_column(options)
    skipped = parts.count_done(rows, answer)
    summary = MapFileSummary(rows=rows - skipped, output=str(output), skipped=skipped)
    run = _FileRun(summary, progress(rows - skipped))
    block_options = dataclasses.replace(options, limit=None)
    wrote = False
    with interrupts_noted() as interrupts:
        for first, block in _limited(source.blocks(batch_size), rows):
            if interrupts or summary.interrupted or summary.stopped:
                summary.interrupted = summary.interrupted or bool(interrupts)
                break
            done = parts.done(first, first + len(block), answer)
            numbers = [first + i for i in range(len(block)) if first + i not in done]
            if not numbers:
                continue
            out, part = schedule(
                _rows(block, [n - first for n in numbers]),
                template,
                make_request,
                call,
                block_options,
                cache=cache,
                progress=run.reporter(),
                numbers=numbers,
            )
            wrote |= _keep_finished(parts, out, numbers, options)
            run.add(part)
        summary.interrupted = summary.interrupted or bool(interrupts)
    finished = not (summary.interrupted or summary.stopped)
    if finished and (wrote or not parts.adopted):
        parts.join()
    elif finished:  # an output read back, nothing new: it stays as it was
        parts.discard()
    summary.written = finished
    run.finish()
    return summary


def _limited(blocks: Iterator[Block], rows: int) -> Iterator[tuple[int, Block]]:
    """Each block with the position of its first row, cut at ``rows`` (``limit``)."""
    first = 0
    for block in blocks:
        if first >= rows:
            return
        yield first, block.slice(0, rows - first) if first + len(block) > rows else block
        first += len(block)


def _rows(block: Block, positions: list[int]) -> Block:
    """The block's rows at ``positions`` (all of them: the block itself)."""
    if len(positions) == len(block):
        return block
    return block.take(positions) if is_arrow(block) else block[positions]


def _keep_finished(parts: Parts, out: Any, numbers: list[int], options: MapOptions) -> bool:
    """Write the rows that finished (answered or failed) as a part; rows Ctrl-C left unasked
    have neither an answer nor an error, and are asked by the next run."""
    table = out if is_arrow(out) else out.to_arrow()
    answers = table.column(answer_column(options)).to_pylist()
    error = f"{options.column}_error"
    errors = (
        table.column(error).to_pylist() if error in table.column_names else [None] * len(answers)
    )
    keep = [i for i, (a, e) in enumerate(zip(answers, errors, strict=True)) if a is not None or e]
    if not keep:
        return False
    kept = table if len(keep) == table.num_rows else table.take(keep)  # take copies
    parts.write(kept, [numbers[i] for i in keep])
    return True


class _FileRun:
    """The counts of the whole file run, summed over its blocks, and its progress."""

    def __init__(self, summary: MapFileSummary, progress: Progress | None) -> None:
        self.summary, self.progress = summary, progress
        self.started = time.monotonic()

    def add(self, part: MapSummary) -> None:
        """A block's summary into the total."""
        total = self.summary
        for name in ("done", "failed", "flagged", "cached", "retried"):
            setattr(total, name, getattr(total, name) + getattr(part, name))
        total.prompt_tokens += part.prompt_tokens
        total.completion_tokens += part.completion_tokens
        both = (total.cost, part.cost)
        total.cost = None if None in both else (total.cost or 0.0) + (part.cost or 0.0)
        total.first_errors = (total.first_errors + part.first_errors)[:3]
        total.interrupted, total.stopped = part.interrupted, part.stopped
        total.elapsed = time.monotonic() - self.started

    def reporter(self) -> Progress | None:
        """A block's progress, reported as the whole run's."""
        if self.progress is None:
            return None
        target, base = self.progress, dataclasses.replace(self.summary)

        def report(block: MapProgress) -> None:
            done, failed = base.done + block.done, base.failed + block.failed
            cached = base.cached + block.cached
            elapsed = time.monotonic() - self.started
            sent = done - cached + failed
            left = self.summary.rows - done - failed
            cost = None if base.cost is None or block.cost is None else base.cost + block.cost
            target(MapProgress(
                self.summary.rows, done, failed, cached, block.retrying,
                base.prompt_tokens + block.prompt_tokens,
                base.completion_tokens + block.completion_tokens,
                cost, elapsed, left * elapsed / sent if sent else None, block.stopping,
            ))  # fmt: skip

        return report

    def finish(self) -> None:
        self.summary.elapsed = time.monotonic() - self.started
