"""``map_rows``: ``%%step --map`` as a function, with the same cache, retries and resume."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
from collections.abc import Callable, Mapping, Sequence, Sized
from pathlib import Path
from typing import Any

from step_magic.api.daskrows import is_dask, map_dask
from step_magic.api.inputs import call_settings
from step_magic.api.prepare import check_fits, output_schema
from step_magic.batch.cache import ReplyCache, reply_cache
from step_magic.batch.filerun import map_file
from step_magic.batch.rowcall import note_retry, on_abandon, on_rows_loop
from step_magic.batch.scheduler import map_rows as schedule
from step_magic.batch.sources import Source, is_lazy
from step_magic.batch.table import NO_NAMES, MapOptions
from step_magic.core.errors import InputError, StepInterrupted
from step_magic.core.mapresult import MapProgress, MapSummary
from step_magic.core.outputschema import OutputSchema
from step_magic.core.request import ChatRequest, build_request
from step_magic.core.result import StepResult
from step_magic.core.settings import Settings
from step_magic.display.frontend import QuietView, auto_progress
from step_magic.engine.asyncrunner import run_call_async
from step_magic.engine.runner import run_call
from step_magic.memory.history import History
from step_magic.wire.asyncstream import shared_connections


def map_rows(
    frame: Any,
    prompt: str,
    *,
    column: str = "answer",
    concurrency: int = 4,
    rpm: float | None = None,
    limit: int | None = None,
    inplace: bool = False,
    reasoning_column: str | None = None,
    fields: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
    json: bool = False,
    strict: bool = False,
    cassette: str | Path | None = None,
    history: bool = True,
    progress: Callable[[MapProgress], None] | None = None,
    display: bool | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    output: str | Path | None = None,
    batch_size: int = 1_000,
    **keywords: Any,
) -> Any:
    """Answer ``prompt`` once per row; return the frame with the answers in ``column``.

    ``{name}`` in the prompt is the row's column ``name`` (``{value}`` for a Series,
    ``{item}`` for a list). Rows run ``concurrency`` at a time, ``rpm`` spaces them, 429/5xx
    are retried; every reply goes to the reply cache (the history, or ``cassette``), so a
    re-run after Ctrl-C or a crash pays only for the rows not done. A row is the call ``ask``
    makes; one that failed, was filtered or did not finish has its error line in
    ``<column>_error`` (a reply cut at the token limit keeps its answer, flagged there).
    ``fields`` ({"name": "int"}) or ``json=True`` parse answers into columns. Other keywords
    are ``ask``'s (``model``, ``effort``, ``system``…).

    A table too big to hold is given as a file (``"reviews.parquet"``, ``.csv``, ``.jsonl`` /
    ``.ndjson``, a str or ``Path``; needs ``pip install 'step-magic[files]'``) or a polars
    ``LazyFrame``, with ``output=`` a file of one of those kinds: it is read ``batch_size`` rows
    at a time and each block's finished rows are written at once, so about ``batch_size`` rows
    are held (plus ``concurrency`` calls in flight), never the table. The output has the
    source's columns, the same new columns, and ``step_row`` (the row's position in the
    source); a re-run with the same output asks only the rows it does not hold answered.
    Returns a ``MapFileSummary`` then. A ``LazyFrame`` without ``output=`` is run in memory
    and a ``LazyFrame`` of the result is returned.

    A Dask DataFrame gives a lazy Dask DataFrame: computing it maps each partition on its
    worker, with ``concurrency`` and ``rpm`` shared by the whole cluster (``api.daskrows``).
    """
    if is_dask(frame):  # lazy: each partition is this same map, on its worker
        given = {
            "column": column, "concurrency": concurrency, "rpm": rpm, "limit": limit,
            "inplace": inplace, "reasoning_column": reasoning_column, "fields": fields,
            "json": json, "strict": strict, "cassette": cassette, "history": history,
            "progress": progress, "base_url": base_url, "api_key": api_key, "output": output,
            **keywords,
        }  # fmt: skip
        return map_dask(frame, prompt, given, map_rows)
    schema = output_schema(keywords.pop("schema", None))
    settings = call_settings(keywords, base_url=base_url, api_key=api_key)
    pairs = tuple(fields.items()) if isinstance(fields, Mapping) else tuple(fields or ())
    if schema is not None and not pairs:  # one typed column per field of the schema
        pairs = schema.columns()
    options = MapOptions(
        column, concurrency, rpm, limit, inplace, reasoning_column, pairs, json, strict,
        schema_sent=schema is not None,
    )  # fmt: skip
    store = History() if history and cassette is None else None
    try:
        cache = reply_cache(Path(cassette).expanduser() if cassette else None, store)
        if output is not None or isinstance(frame, str | Path) or is_lazy(frame):
            return _map_file(
                frame, output, prompt, settings, options, cache, display, progress, schema,
                batch_size,
            )  # fmt: skip
        return map_rows_frame(frame, prompt, settings, options, cache, display, progress, schema)
    finally:
        if store is not None:
            store.close()


def _map_file(
    source: Any,
    output: str | Path | None,
    prompt: str,
    settings: Settings,
    options: MapOptions,
    cache: ReplyCache | None,
    display: bool | None,
    progress: Callable[[MapProgress], None] | None,
    schema: OutputSchema | None,
    batch_size: int,
) -> Any:
    """``map_rows`` for a file or ``LazyFrame`` (see its docstring)."""
    if isinstance(source, str | Path) and output is None:
        raise InputError("a file source needs output= (a .parquet, .csv or .jsonl file)")
    if output is None:  # a LazyFrame, held in memory like a DataFrame
        result = map_rows_frame(source.collect(), prompt, settings, options, cache, display,
                                progress, schema)  # fmt: skip
        return result.lazy()
    if not isinstance(source, str | Path) and not is_lazy(source):
        kind = type(source).__name__
        raise InputError(f"output= takes a file (str or Path) or a LazyFrame, not a {kind}")
    views: list[Any] = []

    def shown(total: int) -> Callable[[MapProgress], None] | None:
        views.append(auto_progress(display, total))
        return _both(progress, views[-1])

    summary = map_file(
        Source.of(source),
        Path(output).expanduser(),
        prompt,
        row_request(settings, schema),
        row_call(settings),
        options,
        cache=cache,
        batch_size=batch_size,
        progress=shown,
    )
    if views and views[0] is not None:
        views[0].finish(summary)
    if summary.interrupted:
        error = StepInterrupted()
        error.result = summary
        raise error
    return summary


def map_rows_frame(
    frame: Any,
    prompt: str,
    settings: Settings,
    options: MapOptions,
    cache: ReplyCache | None,
    display: bool | None,
    progress: Callable[[MapProgress], None] | None,
    schema: OutputSchema | None,
) -> Any:
    """An in-memory map that raises ``StepInterrupted`` (the partial frame attached) on Ctrl-C."""
    result, summary = run_rows(
        frame, prompt, settings, options, cache=cache, display=display, progress=progress,
        schema=schema,
    )  # fmt: skip
    if summary.interrupted:
        error = StepInterrupted()
        error.result = result
        raise error
    return result


def run_rows(
    frame: Any,
    prompt: str,
    settings: Settings,
    options: MapOptions,
    *,
    cache: ReplyCache | None,
    display: bool | None,
    progress: Callable[[MapProgress], None] | None = None,
    namespace: Mapping[str, object] = NO_NAMES,
    schema: OutputSchema | None = None,
) -> tuple[Any, MapSummary]:
    """One map with its progress shown as ``display`` asks: what ``map_rows`` and
    ``%%step --map`` both run once their inputs are checked."""
    rows = len(frame) if isinstance(frame, Sized) else 0
    view = auto_progress(display, min(rows, options.limit) if options.limit is not None else rows)
    result, summary = schedule(
        frame,
        prompt,
        row_request(settings, schema),
        row_call(settings),
        options,
        cache=cache,
        progress=_both(progress, view),
        namespace=namespace,
    )
    if view is not None:
        view.finish(summary)
    return result, summary


def _both(
    callback: Callable[[MapProgress], None] | None, view: Any
) -> Callable[[MapProgress], None] | None:
    targets = [target for target in (callback, view) if target is not None]
    if not targets:
        return None

    def report(progress: MapProgress) -> None:
        for target in targets:
            target(progress)

    return report


def row_request(settings: Settings, schema: OutputSchema | None) -> Callable[[str], ChatRequest]:
    """How a row's prompt becomes its request (the schema, if any, on every row)."""

    def make(prompt: str) -> ChatRequest:
        request = build_request(settings, prompt)
        return request if schema is None else dataclasses.replace(request, schema=schema)

    return make


def row_call(settings: Settings) -> RowCall:
    """A ``--map`` row's call (see ``RowCall``)."""
    return RowCall(settings)


class RowCall:
    """A ``--map`` row's call: the very call ``ask`` makes (``engine.runner``'s plan, reader
    and conclusion: the same reasoning/answer split, status, deadline, redaction), shown
    nowhere, reporting its retries to the row's progress and stopping when the map abandons
    it. The scheduler runs ``acall``, a task of the rows' one event loop, so a map of
    hundreds of rows in flight holds no thread per row; called directly it runs on the
    calling thread (``engine.runner.run_call``).

    A failed call raises its error, the partial result attached; any other ending is returned
    and the scheduler decides what the row keeps from its status.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def __call__(self, request: ChatRequest) -> StepResult:
        check_fits(request)  # as ask refuses it: a row's error, sent nowhere
        stop: list[int] = []
        on_abandon(lambda: stop.append(signal.SIGINT))
        result, error = run_call(self._settings, request, _RowView(), stop=stop)
        return _kept(result, error)

    async def acall(self, request: ChatRequest) -> StepResult:
        """The same call on the running event loop (cancelling it abandons the row); the
        rows of every map share the loop's open connections."""
        check_fits(request)
        sharing = shared_connections() if on_rows_loop() else contextlib.nullcontext()
        with sharing:
            result, error = await run_call_async(self._settings, request, _RowView())
        return _kept(result, error)


def _kept(result: StepResult, error: BaseException | None) -> StepResult:
    """The result, or the error of a failed call (the partial result rides on it)."""
    if error is not None and result.status == "failed":
        raise error
    return result


class _RowView(QuietView):
    """Shows nothing; a retry is counted in the map's progress instead."""

    def waiting(self, status: str) -> None:
        note_retry()
