"""``map_rows``: ``%%step --map`` as a function, with the same cache, retries and resume."""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Callable, Mapping, Sequence, Sized
from pathlib import Path
from typing import Any

from step_magic.api.daskrows import is_dask, map_dask
from step_magic.api.inputs import call_settings
from step_magic.api.prepare import output_schema
from step_magic.batch.cache import ReplyCache, reply_cache
from step_magic.batch.rowcall import Call, note_retry, on_abandon
from step_magic.batch.scheduler import map_rows as schedule
from step_magic.batch.table import NO_NAMES, MapOptions
from step_magic.core.errors import StepInterrupted
from step_magic.core.mapresult import MapProgress, MapSummary
from step_magic.core.outputschema import OutputSchema
from step_magic.core.request import ChatRequest, build_request
from step_magic.core.result import StepResult
from step_magic.core.settings import Settings
from step_magic.display.frontend import QuietView, auto_progress
from step_magic.engine.runner import run_call
from step_magic.memory.history import History


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

    A Dask DataFrame gives a lazy Dask DataFrame: computing it maps each partition on its
    worker, with ``concurrency`` and ``rpm`` shared by the whole cluster (``api.daskrows``).
    """
    if is_dask(frame):  # lazy: each partition is this same map, on its worker
        given = {
            "column": column, "concurrency": concurrency, "rpm": rpm, "limit": limit,
            "inplace": inplace, "reasoning_column": reasoning_column, "fields": fields,
            "json": json, "strict": strict, "cassette": cassette, "history": history,
            "progress": progress, "base_url": base_url, "api_key": api_key, **keywords,
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
        result, summary = run_rows(
            frame,
            prompt,
            settings,
            options,
            cache=cache,
            display=display,
            progress=progress,
            schema=schema,
        )
    finally:
        if store is not None:
            store.close()
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


def row_call(settings: Settings) -> Call:
    """A ``--map`` row's call: the very call ``ask`` makes (``engine.runner.run_call``: the same
    reasoning/answer split, status, deadline, redaction), shown nowhere, reporting its retries
    to the row's progress and stopping when the map abandons it.

    A failed call raises its error, the partial result attached; any other ending is returned
    and the scheduler decides what the row keeps from its status.
    """

    def call(request: ChatRequest) -> StepResult:
        stop: list[int] = []
        on_abandon(lambda: stop.append(signal.SIGINT))
        result, error = run_call(settings, request, _RowView(), stop=stop)
        if error is not None and result.status == "failed":
            raise error
        return result

    return call


class _RowView(QuietView):
    """Shows nothing; a retry is counted in the map's progress instead."""

    def waiting(self, status: str) -> None:
        note_retry()
