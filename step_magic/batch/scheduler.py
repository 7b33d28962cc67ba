"""One prompt over every row of a table: concurrent, rate-limited, resumable, order-preserving.

A batch of hundreds of paid calls must survive what a single call never meets: rate limits
(the lowest StepFun tier allows 5 concurrent requests and 10 a minute), Ctrl-C halfway, a
kernel crash, a key that fails every row. So the main thread only schedules: it submits a row
when a worker is free and the ``rpm`` spacing allows, and otherwise waits for results. Workers
write each finished reply to the reply cache at once, so a re-run answers finished rows from
it and pays only for the rest. Plain Python: no IPython, no display (see ``progress.py``).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from step_magic.batch.cache import ReplyCache
from step_magic.batch.rowcall import ROW_GATE, AsyncCall, Call, RowContext, shared_loop
from step_magic.batch.table import NO_NAMES, MapOptions, new_columns, read_table, write_table
from step_magic.core.cassette import RecordedReply
from step_magic.core.errors import InputError, StepAPIError
from step_magic.core.events import Usage
from step_magic.core.interrupts import interrupts_noted
from step_magic.core.mapresult import MapProgress, MapSummary
from step_magic.core.models import estimate_cost
from step_magic.core.request import ChatRequest
from step_magic.core.result import KEPT, NOTICES, StepResult, classify

PROGRESS_SECONDS = 0.25  # at most ~4 progress callbacks a second
GRACE_SECONDS = 10.0  # after Ctrl-C, how long rows in flight may finish (and be kept)
MAX_ERRORS = 3
# Statuses that will fail every other row too (bad key, no balance, no such model): stop.
FATAL_STATUSES = frozenset({401, 402, 403, 404})


@dataclass
class _Outcome:
    """How a row ended: the reply its columns keep (None when it has none), and a line for
    ``<column>_error`` when it failed or, like a reply cut at the token limit, is doubtful."""

    reply: RecordedReply | None = None
    error: str | None = None
    fatal: bool = False
    usage: Usage | None = None  # what the call cost, kept or not (a filtered reply is paid for)


def _outcome(result: StepResult) -> _Outcome:
    """A row's outcome from its call's result: only a kept ending (complete, truncated) keeps
    its answer, as only those join a conversation; any other ending is the row's error."""
    reply = result.recorded() if result.status in KEPT else None
    return _Outcome(reply=reply, error=result.error or result.notice, usage=result.usage)


def _failure(err: Exception) -> _Outcome:
    status = getattr(err, "status", None)
    fatal = isinstance(err, StepAPIError) and status in FATAL_STATUSES
    text = str(err) if isinstance(err, StepAPIError) else f"{type(err).__name__}: {err}"
    return _Outcome(error=" ".join(text.split()), fatal=fatal)


def _cancel(future: Future[None]) -> None:
    """Cancel a row's task (the loop closes its connection; ``_settle`` keeps nothing)."""
    future.cancel()


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
    numbers: Sequence[int] | None = None,
) -> tuple[object, MapSummary]:
    """Answer ``template`` for each row; return the frame with the new column(s) and a summary.

    ``numbers`` are the rows' numbers that errors name (default: their positions): a block
    of a file names its rows by their place in the file.
    Every prompt and request is built before anything is sent, so a bad reference costs
    nothing. Ctrl-C stops submitting, lets rows in flight finish for ``GRACE_SECONDS`` (a
    second Ctrl-C abandons them at once) and returns what finished.
    """
    table = read_table(frame, template, options, namespace)
    if options.inplace and (table.library in (None, "pyarrow") or table.series):
        raise InputError("--inplace needs a DataFrame: a Series or list gives a new table")
    requests = [make_request(prompt) for prompt in table.prompts]
    run = _Run(requests, call, options, cache, progress)
    run.numbers = numbers
    run.execute()
    replies = [outcome.reply if outcome else None for outcome in run.outcomes]
    columns = new_columns(options, replies, run.errors(), table.columns)
    return write_table(table, columns, options.inplace), run.summary()


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
        self.contexts: dict[int, RowContext] = {}
        self.counts = MapSummary(rows=len(requests))
        self.cost_known = True
        self.reported = float("-inf")
        self.next_start = self.started
        self.numbers: Sequence[int] | None = None

    def execute(self) -> None:
        pending = [i for i in range(len(self.requests)) if not self._from_cache(i)][::-1]
        running: dict[Future[None], int] = {}
        pool = ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="step-map")
        try:
            with interrupts_noted() as interrupts:
                while (pending or running) and not interrupts and not self.counts.stopped:
                    while pending and len(running) < self.options.concurrency and self._may_start():
                        i = pending.pop()
                        self.contexts[i] = context = RowContext()
                        running[self._start(pool, i, context)] = i
                    self._collect(running, self._wait_limit(bool(pending), len(running)))
                self.counts.interrupted = bool(interrupts)
                deadline = time.monotonic() + GRACE_SECONDS
                while running and len(interrupts) < 2 and time.monotonic() < deadline:
                    self._collect(running, PROGRESS_SECONDS)
        finally:  # also on an error (from ``progress``, say): no call may outlive the map
            for i in running.values():
                self.contexts[i].abandon()
            pool.shutdown(wait=False, cancel_futures=True)
        self._report(force=True)

    def _from_cache(self, i: int) -> bool:
        reply = self.cache.lookup(self.requests[i].cache_key()) if self.cache else None
        if reply is not None:  # a reply cut at the token limit stays flagged on a re-run
            ending = classify(
                reply.finish_reason, reply.answer, reply.reasoning, interrupted=False, failed=False
            )
            self.outcomes[i] = _Outcome(reply=reply, error=NOTICES.get(ending), usage=reply.usage)
            self.counts.flagged += NOTICES.get(ending) is not None
            self.counts.done += 1
            self.counts.cached += 1
        return reply is not None

    def _may_start(self) -> bool:
        """The ``rpm`` cap as even spacing: a burst could still trip a per-minute window."""
        now = time.monotonic()
        if now < self.next_start:
            return False
        self.next_start = now + (60 / self.options.rpm if self.options.rpm else 0)
        return True

    def _wait_limit(self, pending: bool, running: int) -> float:
        if pending and running < self.options.concurrency:
            return min(PROGRESS_SECONDS, max(self.next_start - time.monotonic(), 0.0))
        return PROGRESS_SECONDS

    def _start(self, pool: ThreadPoolExecutor, i: int, context: RowContext) -> Future[None]:
        """Start row ``i``: a task of the rows' event loop for a call that has an ``acall``
        (``api.rows.row_call``), else on a worker thread in a copy of this context; a row
        under a ``ROW_GATE`` (a Dask map's lease) too, as taking the lease may block."""
        acall = getattr(self.call, "acall", None)
        if acall is None or ROW_GATE.get() is not None:  # a lease may block: not on the loop
            row = contextvars.copy_context()
            return pool.submit(row.run, self._answer, i, context)
        task = self._answer_async(i, context, acall)
        future = asyncio.run_coroutine_threadsafe(task, shared_loop())
        context.on_abandon(lambda: _cancel(future))
        return future

    def _answer(self, i: int, context: RowContext) -> None:
        """Worker: one row's call; the cache hears of it before anything else, however it
        ended (the history logs failed rows too; only kept replies are looked up again)."""
        try:
            result = context.run(self.call, self.requests[i])
        except Exception as err:
            self._settle(i, context, None, err)
        else:
            self._settle(i, context, result, None)

    async def _answer_async(self, i: int, context: RowContext, acall: AsyncCall) -> None:
        """``_answer`` as a task of the rows' event loop; what it settles (the reply cache
        written, maybe SQLite waiting on a lock) is done in a thread, never on the loop."""
        try:
            result = await context.arun(acall, self.requests[i])
        except Exception as err:
            await asyncio.to_thread(self._settle, i, context, None, err)
        else:
            await asyncio.to_thread(self._settle, i, context, result, None)

    def _settle(
        self, i: int, context: RowContext, result: StepResult | None, err: Exception | None
    ) -> None:
        """How row ``i`` ended, whichever way it ran: its outcome, and the reply cache told."""
        request = self.requests[i]
        if err is not None:
            result, outcome = getattr(err, "result", None), _failure(err)
            outcome.usage = getattr(result, "usage", None)  # what arrived was billed
        else:
            assert result is not None
            outcome = _outcome(result)
        if context.abandoned and outcome.reply is None:
            return  # stopped by Ctrl-C: neither an answer nor a failure of the row
        if self.cache is not None and isinstance(result, StepResult):
            try:
                self.cache.store(request.cache_key(), request, result)
            except OSError as err:
                outcome.error = "; ".join(filter(None, (outcome.error, f"not cached: {err}")))
        self.outcomes[i] = outcome

    def _collect(self, running: dict[Future[None], int], timeout: float) -> None:
        if not running:  # waiting for the rpm spacing: wait() on no futures returns at once
            time.sleep(timeout)
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
        failed = outcome.reply is None
        if failed and outcome.error is not None and len(counts.first_errors) < MAX_ERRORS:
            number = i if self.numbers is None else self.numbers[i]
            counts.first_errors.append(f"row {number}: {outcome.error}")
        counts.flagged += not failed and outcome.error is not None
        if outcome.reply is None:
            counts.failed += 1
            if outcome.fatal:
                counts.stopped = outcome.error
        else:
            counts.done += 1
        self._add_usage(i, outcome.usage)

    def _add_usage(self, i: int, usage: Usage | None) -> None:
        counts = self.counts
        if usage is None:
            return
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
        return [o.error if o else None for o in self.outcomes]

    def summary(self) -> MapSummary:
        self.counts.elapsed = time.monotonic() - self.started
        return self.counts
