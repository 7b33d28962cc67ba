"""One prompt over every row of a table: concurrent, rate-limited, resumable, order-preserving.

A batch of hundreds of paid calls must survive what a single call never meets: rate limits
(the lowest StepFun tier allows 5 concurrent requests and 10 a minute), Ctrl-C halfway, a
kernel crash, a key that fails every row. So the main thread only schedules: it submits a row
when a worker is free and the ``rpm`` spacing allows, and otherwise waits for results. Workers
write each finished reply to the reply cache at once, so a re-run answers finished rows from
it and pays only for the rest. Plain Python: no IPython, no display (see ``progress.py``).
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from collections import ChainMap
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from .client import (
    AnswerDelta,
    Finished,
    ReasoningDelta,
    ReplyStream,
    StepAPIError,
    Usage,
    Waiting,
)
from .config import Settings
from .frames import _is_series, _library
from .history import redact_media
from .interpolate import interpolate, parse_reference
from .models import estimate_cost
from .replay import Cassette, RecordedReply
from .request import ChatRequest
from .runner import _interrupts_noted
from .static import parse_json_answer

Reply = tuple[str, str, Usage | None]  # (answer, reasoning, usage)
Call = Callable[[ChatRequest], Reply]
NO_NAMES: Mapping[str, object] = MappingProxyType({})
PROGRESS_SECONDS = 0.25  # at most ~4 progress callbacks a second
GRACE_SECONDS = 10.0  # after Ctrl-C, how long rows in flight may finish (and be kept)
MAX_ERRORS = 3
# Statuses that will fail every other row too (bad key, no balance, no such model): stop.
FATAL_STATUSES = frozenset({401, 402, 403, 404})
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

    def __post_init__(self) -> None:
        bad = [f"{name}:{kind}" for name, kind in self.fields if kind not in FIELD_TYPES]
        problems = {
            "--as needs a column name": not self.column,
            "--concurrency must be at least 1": self.concurrency < 1,
            "--rpm must be positive": self.rpm is not None and self.rpm <= 0,
            "--limit must not be negative": self.limit is not None and self.limit < 0,
            f"--fields types are {', '.join(FIELD_TYPES)}, not {', '.join(bad)}": bool(bad),
        }
        for message, broken in problems.items():
            if broken:
                raise ValueError(message)


@dataclass(frozen=True)
class MapProgress:
    """Counts so far, for a progress display; ``stopping`` once Ctrl-C was pressed."""

    total: int
    done: int
    failed: int
    cached: int
    retrying: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    elapsed: float
    eta: float | None
    stopping: bool = False


@dataclass
class MapSummary:
    """How a map went. ``done`` includes ``cached`` rows; tokens and cost are this run's."""

    rows: int
    done: int = 0
    failed: int = 0
    cached: int = 0
    retried: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = 0.0
    elapsed: float = 0.0
    first_errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    stopped: str | None = None  # why the run stopped early on its own (a fatal error)

    def text(self) -> str:
        """A short human summary: counts, throughput, tokens, cost and what to do next."""
        sent = self.done - self.cached + self.failed
        rate = sent / self.elapsed if self.elapsed > 0 else 0.0
        lines = [
            f"{self.done:,} of {self.rows:,} rows answered ({self.cached:,} from the cache), "
            f"{self.failed:,} failed, {self.retried:,} retries · {self.elapsed:.1f} s, "
            f"{rate:.2f} rows/s",
            f"{self.prompt_tokens:,} prompt + {self.completion_tokens:,} completion tokens"
            + ("" if self.cost is None else f" · ≈ ${self.cost:.4f}"),
        ]
        left = self.rows - self.done - self.failed
        if self.interrupted or self.stopped:
            why = "interrupted" if self.interrupted else f"stopped: {self.stopped}"
            lines.append(f"{why} — {left:,} rows not run; run again to resume from the cache")
        lines += [f"  {error}" for error in self.first_errors]
        return "\n".join(lines)


class ReplyCache(Protocol):
    """Finished replies by request key, so a re-run never pays twice for a row."""

    def lookup(self, key: str) -> Reply | None: ...
    def store(self, key: str, request: ChatRequest, reply: Reply) -> None: ...


class CassetteCache:
    """A ``ReplyCache`` in a cassette file: the same lines ``--replay --cassette`` reads.

    The file is indexed once (a cassette lookup reads the whole file, too slow per row), and
    each reply is appended as soon as it arrives, so a crash loses no finished row.
    """

    def __init__(self, path: Path) -> None:
        self.cassette = Cassette(Path(path))
        self._index: dict[str, RecordedReply] | None = None

    def lookup(self, key: str) -> Reply | None:
        """The recorded reply for ``key``, or None."""
        if self._index is None:  # _entries: Cassette has no public iterator yet
            entries = self.cassette._entries()
            self._index = {e["key"]: RecordedReply.from_json(e["reply"]) for e in entries}
        found = self._index.get(key)
        return None if found is None else (found.answer, found.reasoning, found.usage)

    def store(self, key: str, request: ChatRequest, reply: Reply) -> None:
        """Append one reply (media in the request replaced by references, as Session does)."""
        body = {**request.body(stream=False), "messages": list(redact_media(request.messages))}
        answer, reasoning, usage = reply
        self.cassette.store(key, body, RecordedReply(reasoning, answer, "stop", usage, None, None))


class _RowContext:
    """What a ``call`` may tell its row while it runs: a retry, and how to stop it."""

    def __init__(self) -> None:
        self.retries = 0
        self.abandoned = False
        self._closers: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def on_abandon(self, close: Callable[[], None]) -> None:
        with self._lock:
            if not self.abandoned:
                self._closers.append(close)
                return
        close()

    def abandon(self) -> None:
        with self._lock:
            self.abandoned, closers = True, list(self._closers)
        for close in closers:
            close()


_current = threading.local()


def note_retry() -> None:
    """For ``call`` functions: the row's request is waiting to be retried (429/5xx)."""
    context = getattr(_current, "row", None)
    if context is not None:
        context.retries += 1


def on_abandon(close: Callable[[], None]) -> None:
    """For ``call`` functions: run ``close`` (from another thread) if the row is abandoned."""
    context = getattr(_current, "row", None)
    if context is not None:
        context.on_abandon(close)


def stream_call(settings: Settings) -> Call:
    """A ``call`` on ``client.ReplyStream``: reports retries, stops when abandoned.

    A reply without an answer is a failure (StepAPIError), never an empty cell value.
    """

    def call(request: ChatRequest) -> Reply:
        stream = ReplyStream(settings, request)
        on_abandon(stream.close)
        answer: list[str] = []
        reasoning: list[str] = []
        end: Finished | None = None
        for event in stream:
            if isinstance(event, AnswerDelta):
                answer.append(event.text)
            elif isinstance(event, ReasoningDelta):
                reasoning.append(event.text)
            elif isinstance(event, Waiting):
                note_retry()
            elif isinstance(event, Finished):
                end = event
        if end is None or not answer:
            why = "was cut off" if end is None else f"has no answer (finish {end.finish_reason})"
            raise StepAPIError(f"the reply {why}", trace_id=stream.trace_id)
        return "".join(answer), "".join(reasoning), end.usage

    return call


@dataclass
class _Outcome:
    reply: Reply | None = None
    error: str | None = None
    fatal: bool = False


def map_rows(
    frame: object,
    template: str,
    make_request: Callable[[str], ChatRequest],
    call: Call,
    options: MapOptions,
    *,
    cache: ReplyCache | None = None,
    progress: Callable[[MapProgress], None] | None = None,
    namespace: Mapping[str, object] = NO_NAMES,
) -> tuple[object, MapSummary]:
    """Answer ``template`` for each row; return the frame with the new column(s) and a summary.

    Every prompt and request is built before anything is sent, so a bad reference costs
    nothing. Ctrl-C stops submitting, lets rows in flight finish for ``GRACE_SECONDS`` (a
    second Ctrl-C abandons them at once) and returns what finished.
    """
    table = _read_table(frame, template, options, namespace)
    if options.inplace and (table.library is None or table.series):
        raise ValueError("--inplace needs a DataFrame: a Series or list gives a new table")
    requests = [make_request(prompt) for prompt in table.prompts]
    run = _Run(requests, call, options, cache, progress)
    run.execute()
    replies = [outcome.reply if outcome else None for outcome in run.outcomes]
    columns = _new_columns(options, replies, run.errors(), table.columns)
    return _write_table(table, columns, options.inplace), run.summary(len(requests))


class _Run:
    """The scheduling loop of one ``map_rows``, and the counts it keeps."""

    def __init__(
        self,
        requests: list[ChatRequest],
        call: Call,
        options: MapOptions,
        cache: ReplyCache | None,
        progress: Callable[[MapProgress], None] | None,
    ) -> None:
        self.requests, self.call, self.options = requests, call, options
        self.cache, self.progress = cache, progress
        self.started = time.monotonic()
        self.outcomes: list[_Outcome | None] = [None] * len(requests)
        self.contexts: dict[int, _RowContext] = {}
        self.counts = MapSummary(rows=len(requests))
        self.cost_known = True
        self.reported = float("-inf")
        self.next_start = self.started

    def execute(self) -> None:
        pending = [i for i in range(len(self.requests)) if not self._from_cache(i)][::-1]
        running: dict[Future[None], int] = {}
        pool = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="step-map")
        try:
            with _interrupts_noted() as interrupts:
                while (pending or running) and not interrupts and not self.counts.stopped:
                    while pending and len(running) < self.options.concurrency and self._may_start():
                        i = pending.pop()
                        self.contexts[i] = context = _RowContext()
                        running[pool.submit(self._answer, i, context)] = i
                    self._collect(running, self._wait_limit(bool(pending), len(running)))
                self.counts.interrupted = bool(interrupts)
                deadline = time.monotonic() + GRACE_SECONDS
                while running and len(interrupts) < 2 and time.monotonic() < deadline:
                    self._collect(running, PROGRESS_SECONDS)
        finally:
            for i in running.values():
                self.contexts[i].abandon()
            pool.shutdown(wait=False, cancel_futures=True)
            self._report(force=True)

    def _from_cache(self, i: int) -> bool:
        reply = self.cache.lookup(self.requests[i].cache_key()) if self.cache else None
        if reply is not None:
            self.outcomes[i] = _Outcome(reply=reply)
            self.counts.done += 1
            self.counts.cached += 1
        return reply is not None

    def _may_start(self) -> bool:
        """The ``rpm`` cap as even spacing: a burst could still trip a per-minute window."""
        now = time.monotonic()
        if now < self.next_start:
            return False
        self.next_start = max(now, self.next_start) + (
            60 / self.options.rpm if self.options.rpm else 0
        )
        return True

    def _wait_limit(self, pending: bool, running: int) -> float:
        if pending and running < self.options.concurrency:
            return min(PROGRESS_SECONDS, max(self.next_start - time.monotonic(), 0.0))
        return PROGRESS_SECONDS

    def _answer(self, i: int, context: _RowContext) -> None:
        """Worker: one row's call; the reply goes to the cache before anything else."""
        _current.row = context
        try:
            reply = self.call(self.requests[i])
        except Exception as err:
            status = getattr(err, "status", None)
            fatal = isinstance(err, StepAPIError) and status in FATAL_STATUSES
            text = str(err) if isinstance(err, StepAPIError) else f"{type(err).__name__}: {err}"
            outcome = _Outcome(error=" ".join(text.split()), fatal=fatal)
        else:
            outcome = _Outcome(reply=reply)
            if self.cache is not None:
                try:
                    self.cache.store(self.requests[i].cache_key(), self.requests[i], reply)
                except OSError as err:
                    outcome.error = f"not cached: {err}"
        finally:
            _current.row = None
        if outcome.reply is not None or not context.abandoned:
            self.outcomes[i] = outcome

    def _collect(self, running: dict[Future[None], int], timeout: float) -> None:
        finished, _ = wait(running, timeout=timeout, return_when=FIRST_COMPLETED)
        for future in finished:
            i = running.pop(future)
            outcome = self.outcomes[i]
            if outcome is None:  # a BaseException other than Exception ended the call
                outcome = self.outcomes[i] = _Outcome(error=repr(future.exception()))
            self._count(i, outcome)
        self._report(force=False)

    def _count(self, i: int, outcome: _Outcome) -> None:
        counts = self.counts
        counts.retried += self.contexts[i].retries
        if outcome.error is not None and len(counts.first_errors) < MAX_ERRORS:
            counts.first_errors.append(f"row {i}: {outcome.error}")
        if outcome.reply is None:
            counts.failed += 1
            if outcome.fatal:
                counts.stopped = outcome.error
            return
        counts.done += 1
        usage = outcome.reply[2]
        if usage is not None:
            counts.prompt_tokens += usage.prompt
            counts.completion_tokens += usage.completion
            cost = estimate_cost(
                self.requests[i].model, usage.prompt, usage.completion, usage.cached or 0
            )
            self.cost_known &= cost is not None
            counts.cost = (counts.cost or 0.0) + (cost or 0.0) if self.cost_known else None

    def _report(self, *, force: bool) -> None:
        now = time.monotonic()
        if self.progress is None or (not force and now - self.reported < PROGRESS_SECONDS):
            return
        self.reported = now
        c, elapsed = self.counts, now - self.started
        finished = c.done - c.cached + c.failed
        left = c.rows - c.done - c.failed
        retrying = sum(
            1 for i, x in self.contexts.items() if x.retries and self.outcomes[i] is None
        )
        eta = left * elapsed / finished if finished else None
        self.progress(
            MapProgress(
                c.rows,
                c.done,
                c.failed,
                c.cached,
                retrying,
                c.prompt_tokens,
                c.completion_tokens,
                c.cost,
                elapsed,
                eta,
                c.interrupted,
            )
        )

    def errors(self) -> list[str | None]:
        return [o.error if o and o.reply is None else None for o in self.outcomes]

    def summary(self, rows: int) -> MapSummary:
        self.counts.rows = rows
        self.counts.elapsed = time.monotonic() - self.started
        return self.counts


# --- the table: rows in, prompts, typed columns out ---------------------------------------

Frame = Any  # pandas/polars objects, untyped: neither library is imported at module level
Columns = dict[str, tuple[list[object], str]]  # name -> (values of mapped rows, type)
_TYPE_WORDS = {"int": "integer", "float": "number", "str": "string", "bool": "true/false"}


@dataclass(frozen=True)
class _Table:
    source: Frame
    library: str | None  # "pandas" or "polars"; None for a list
    series: bool
    length: int  # every row of the input: rows past --limit get nulls
    columns: frozenset[str]
    prompts: list[str]


def format_instruction(options: MapOptions) -> str:
    """What is appended to each prompt so answers can be parsed into columns (or nothing)."""
    if options.fields:
        keys = ", ".join(f'"{name}" ({_TYPE_WORDS[kind]})' for name, kind in options.fields)
        return f"\n\nAnswer with only a JSON object with the keys {keys}."
    return "\n\nAnswer with only a JSON object." if options.json_output else ""


def row_prompts(
    frame: object, template: str, options: MapOptions, namespace: Mapping[str, object] = NO_NAMES
) -> list[str]:
    """The prompt of each row (up to ``--limit``), exactly as ``map_rows`` would send it."""
    return _read_table(frame, template, options, namespace).prompts


def _read_table(
    frame: Frame, template: str, options: MapOptions, namespace: Mapping[str, object]
) -> _Table:
    """Each row as a namespace: its columns and ``row`` (``{row["a b"]}``), or an item as
    ``value`` / ``item``; row names hide kernel names. A prompt that uses no row name would
    send the same request for every row, which is never what a paid batch wants."""
    library, series = _library(frame), _is_series(frame)
    if library is None and not isinstance(frame, list | tuple):
        raise TypeError(f"--map takes a DataFrame, Series or list, not a {type(frame).__name__}")
    count = len(frame) if options.limit is None else min(options.limit, len(frame))
    if library is None or series:
        items = list(frame[:count]) if library is None else frame.head(count).to_list()
        rows: list[dict[str, object]] = [{"value": item, "item": item} for item in items]
        names: frozenset[str] = frozenset()
    else:
        head = frame.head(count)
        records = head.to_dicts() if library == "polars" else head.to_dict("records")
        rows = [{**{str(k): v for k, v in rec.items()}, "row": rec} for rec in records]
        names = frozenset(str(name) for name in frame.columns)
    prompts: list[str] = []
    outer = dict(namespace)
    for row in rows:
        done = interpolate(template, ChainMap(row, outer), strict=options.strict)
        if not prompts and not any(_root(ref) in row for ref in done.used):
            raise ValueError(f"the prompt uses no {{column}} of the rows: use one of {_some(row)}")
        prompts.append(done.text + format_instruction(options))
    return _Table(frame, library, series, len(frame), names, prompts)


def _root(ref: str) -> str | None:
    parsed = parse_reference(ref)
    return parsed[0] if parsed else None


def _some(row: Mapping[str, object]) -> str:
    return ", ".join(f"{{{name}}}" for name in list(row)[:5])


def _new_columns(
    options: MapOptions,
    replies: list[Reply | None],
    errors: list[str | None],
    existing: frozenset[str],
) -> Columns:
    """The answer column, and the reasoning, error, parsed and parse-error columns asked for.

    An answer that does not parse keeps its text and is flagged, never dropped: the user
    decides what to do with it. The error column also appears when an earlier run left one.
    """
    answers = [reply[0] if reply else None for reply in replies]
    column = options.column
    columns: Columns = {column: (list(answers), "str")}
    if options.reasoning_column:
        columns[options.reasoning_column] = ([r[1] if r else None for r in replies], "str")
    if any(errors) or f"{column}_error" in existing:
        columns[f"{column}_error"] = (list(errors), "str")
    if not (options.fields or options.json_output):
        return columns
    parsed = [None if answer is None else _parse(answer, options) for answer in answers]
    declared = dict(options.fields)
    keys = list(declared) or list(dict.fromkeys(key for p in parsed if p for key in p))
    for key in keys:
        values = [p.get(key) if p else None for p in parsed]
        columns[key] = (values, declared[key]) if key in declared else _typed(values)
    flags: list[object] = [
        None if a is None else p is None for a, p in zip(answers, parsed, strict=True)
    ]
    columns[f"{column}_parse_error"] = (flags, "bool")
    return columns


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
    return [v if v is None or isinstance(v, str) else json.dumps(v) for v in values], "str"


def _write_table(table: _Table, columns: Columns, inplace: bool) -> object:
    """The new columns in a table of the input's own kind (a list gives a list of dicts)."""
    padded = {
        name: (values + [None] * (table.length - len(values)), kind)
        for name, (values, kind) in columns.items()
    }
    source = table.source
    if table.library is None:
        return [
            {"item": item, **{name: values[i] for name, (values, _) in padded.items()}}
            for i, item in enumerate(source)
        ]
    if table.library == "pandas":
        pd: Any = importlib.import_module("pandas")  # untyped without pandas-stubs
        dtypes = {"str": None, "int": "Int64", "float": "Float64", "bool": "boolean"}
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
