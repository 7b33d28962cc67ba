"""What a ``--map`` summary adds up: tokens, cost and failures, row by row, against the server.

The summary is the bill of a batch, so each total must be the exact sum over the rows that
were sent, a cost must be left unknown when one row's price is, and a row that fails keeps a
readable line of why. Each test reads the rows' own results to know what the totals must be.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from step_magic.api.rows import row_call
from step_magic.batch.cache import CassetteCache
from step_magic.batch.rowcall import on_abandon
from step_magic.batch.scheduler import map_rows
from step_magic.batch.table import MapOptions
from step_magic.core.errors import StepAPIError
from step_magic.core.mapresult import MapProgress
from step_magic.core.request import ChatRequest, build_request
from step_magic.core.result import StepResult
from step_magic.core.settings import Settings
from step_magic.server import LocalServer

from .conftest import TEST_KEY


def settings_for(server: LocalServer) -> Settings:
    return Settings(model="step-3.7-flash", base_url=server.base_url, api_key=TEST_KEY)


def recording(call: Callable[[ChatRequest], StepResult]) -> tuple[Callable, list[StepResult]]:
    """``call``, keeping every result it returns (or attaches to the error it raises)."""
    results: list[StepResult] = []
    lock = threading.Lock()

    def wrapped(request: ChatRequest) -> StepResult:
        try:
            result = call(request)
        except StepAPIError as err:
            with lock:
                results.append(err.result)
            raise
        with lock:
            results.append(result)
        return result

    return wrapped, results


def test_the_token_and_cost_totals_are_the_sums_over_every_row(server: LocalServer) -> None:
    settings = settings_for(server)
    call, results = recording(row_call(settings))
    # the same long prompt twice: the second time the server bills most of it as cached
    long = "Summarise this list of rivers: " + ", ".join(["Danube", "Rhine", "Loire"] * 150)
    prompts = [long, "Name a bird.", long]

    seen: list[MapProgress] = []
    started = time.monotonic()
    _, summary = map_rows(
        prompts,
        "{item}",
        lambda prompt: build_request(settings, prompt),
        call,
        MapOptions("a", concurrency=1),
        progress=seen.append,
    )
    took = time.monotonic() - started

    assert len(results) == 3
    usages = [r.usage for r in results]
    assert all(u is not None and u.prompt > 0 and u.completion > 0 for u in usages)
    assert [bool(u and u.cached) for u in usages] == [False, False, True]
    assert summary.prompt_tokens == sum(u.prompt for u in usages if u)
    assert summary.completion_tokens == sum(u.completion for u in usages if u)
    costs = [r.cost for r in results]
    assert all(c is not None for c in costs)
    assert summary.cost == pytest.approx(sum(c for c in costs if c is not None), rel=1e-12)
    assert summary.cost < 0.01  # three short calls cost a fraction of a cent
    assert seen[-1].cost == summary.cost  # the progress line ends on the summary's bill
    assert 0 < summary.elapsed <= took


def test_the_eta_is_the_rows_left_at_the_pace_so_far(server: LocalServer) -> None:
    settings = settings_for(server)
    server.config.first_byte_delay = 0.3  # so the progress ticks between rows
    seen: list[MapProgress] = []
    map_rows(
        list(range(4)), "n={item}", lambda prompt: build_request(settings, prompt),
        row_call(settings), MapOptions("a", concurrency=1), progress=seen.append,
    )  # fmt: skip
    midway = [p for p in seen if 0 < p.done < 4]
    assert midway
    for tick in midway:
        assert tick.eta == pytest.approx((4 - tick.done) * tick.elapsed / tick.done)
    assert seen[0].eta is None  # nothing finished yet: no pace to go by


def test_a_row_with_an_unpriced_model_leaves_the_total_cost_unknown(server: LocalServer) -> None:
    """A total that silently leaves out a row would read as the whole bill: it is unknown
    instead, and the summary names the tokens only. The unpriced row runs first, so priced
    rows after it must not make the total look known again."""
    settings = settings_for(server)

    def make(prompt: str) -> ChatRequest:
        # a fault the server answers normally, under a model name no price table holds
        model = "fault-unknown-shape" if prompt == "first" else settings.model
        return build_request(replace(settings, model=model), prompt)

    _, summary = map_rows(
        ["first", "second", "third"],
        "{item}",
        make,
        row_call(settings),
        MapOptions("a", concurrency=1),
    )

    assert (summary.done, summary.failed) == (3, 0)
    assert summary.prompt_tokens > 0
    assert summary.cost is None
    assert "$" not in summary.text()


def test_a_reply_the_row_cannot_keep_is_still_counted_in_the_bill(server: LocalServer) -> None:
    """A filtered reply is no answer for the row, but its tokens were paid for."""
    settings = settings_for(server)
    call, results = recording(row_call(settings))

    def make(prompt: str) -> ChatRequest:
        model = "fault-content-filter" if prompt == "filtered" else settings.model
        return build_request(replace(settings, model=model), prompt)

    out, summary = map_rows(
        ["fine", "filtered"], "{item}", make, call, MapOptions("a", concurrency=1)
    )

    assert (summary.done, summary.failed) == (1, 1)
    assert summary.prompt_tokens == sum(r.usage.prompt for r in results if r.usage)
    assert summary.completion_tokens == sum(r.usage.completion for r in results if r.usage)
    assert all(r.usage is not None for r in results)
    assert isinstance(out, list)
    assert out[1]["a"] is None
    assert summary.first_errors[0].startswith("row 1: ")


def test_an_ordinary_exception_from_a_call_of_ones_own_fails_the_row_with_its_name(
    server: LocalServer,
) -> None:
    """A caller's own ``call`` may raise anything; the row says what, on one line."""
    settings = settings_for(server)
    live = row_call(settings)

    def call(request: ChatRequest) -> StepResult:
        if "Oslo" in request.messages[-1]["content"]:
            raise LookupError("no row\n  for Oslo")
        return live(request)

    out, summary = map_rows(
        ["Lima", "Oslo"],
        "{item}",
        lambda prompt: build_request(settings, prompt),
        call,
        MapOptions("city", concurrency=1),
    )

    assert isinstance(out, list)
    assert out[1]["city_error"] == "LookupError: no row for Oslo"
    assert out[0]["city_error"] is None
    assert (summary.done, summary.failed, summary.stopped) == (1, 1, None)
    assert summary.first_errors == ["row 1: LookupError: no row for Oslo"]


def test_the_summary_lists_the_first_three_failures_and_counts_every_flagged_row(
    server: LocalServer,
) -> None:
    """Rows cut at the token limit keep their answers and are flagged, not listed as failures;
    of the failures only the first three are quoted, so a summary stays short."""
    settings = settings_for(server)
    faults = {"b": "fault-length", "c": "fault-451", "d": "fault-length"}
    faults |= {"e": "fault-451", "f": "fault-451", "g": "fault-451"}

    def make(prompt: str) -> ChatRequest:
        return build_request(replace(settings, model=faults.get(prompt, settings.model)), prompt)

    out, summary = map_rows(
        list("abcdefgh"), "{item}", make, row_call(settings), MapOptions("a", concurrency=1)
    )

    assert (summary.done, summary.failed, summary.flagged) == (4, 4, 2)
    assert [e.split(":")[0] for e in summary.first_errors] == ["row 2", "row 4", "row 5"]
    assert all("API error 451" in e for e in summary.first_errors)
    assert "2 flagged in the error column" in summary.text()
    assert isinstance(out, list)
    assert [row["a"] is not None for row in out] == [True, True, False, True] + [False] * 3 + [True]


def test_a_reply_that_cannot_be_cached_is_kept_and_flagged(
    server: LocalServer, tmp_path: Path
) -> None:
    """The cache's folder vanishes mid-run (here a file takes its name): the rows keep their
    answers, and their error column says a re-run would pay for them again."""
    settings = settings_for(server)
    live = row_call(settings)
    folder = tmp_path / "cache"

    def call(request: ChatRequest) -> StepResult:
        folder.write_text("not a folder")  # after the lookups, before the first store
        return live(request)

    out, summary = map_rows(
        ["Lima"],
        "{item}",
        lambda prompt: build_request(settings, prompt),
        call,
        MapOptions("city"),
        cache=CassetteCache(folder / "rows.jsonl"),
    )

    assert isinstance(out, list)
    assert "You wrote" in out[0]["city"]
    assert out[0]["city_error"].startswith("not cached: [Errno ")
    assert (summary.done, summary.failed, summary.flagged) == (1, 0, 1)


def test_a_reply_cut_at_the_token_limit_that_cannot_be_cached_says_both(
    server: LocalServer, tmp_path: Path
) -> None:
    """Two notes in one error column, one after the other: the reply's own (cut off) and the
    cache's (a re-run would pay for it again)."""
    settings = replace(settings_for(server), model="fault-length")
    live = row_call(settings)
    folder = tmp_path / "cache"

    def call(request: ChatRequest) -> StepResult:
        folder.write_text("not a folder")
        return live(request)

    out, summary = map_rows(
        ["Lima"], "{item}", lambda prompt: build_request(settings, prompt), call,
        MapOptions("city"), cache=CassetteCache(folder / "rows.jsonl"),
    )  # fmt: skip

    assert isinstance(out, list)
    assert out[0]["city"]  # the part that arrived is kept
    notice, cache_note = out[0]["city_error"].split("; ", 1)
    assert notice == "cut off: the reply reached the token limit (finish_reason=length)"
    assert cache_note.startswith("not cached: [Errno ")
    assert (summary.done, summary.flagged) == (1, 1)


def test_a_row_that_finishes_as_the_map_gives_up_on_it_is_still_cached(
    server: LocalServer, tmp_path: Path
) -> None:
    """A row whose reply was complete when the map abandoned it (here: the map's progress
    callback failed) was paid for, so the cache keeps it and a re-run does not ask again."""
    settings = settings_for(server)
    live = row_call(settings)
    cassette = tmp_path / "rows.jsonl"

    def call(request: ChatRequest) -> StepResult:
        result = live(request)
        given_up = threading.Event()
        on_abandon(given_up.set)
        given_up.wait(10)
        return result

    def progress(_: MapProgress) -> None:
        raise RuntimeError("the progress display broke")

    with pytest.raises(RuntimeError, match="display broke"):
        map_rows(
            ["Lima"], "{item}", lambda prompt: build_request(settings, prompt), call,
            MapOptions("city"), cache=CassetteCache(cassette), progress=progress,
        )  # fmt: skip

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (
        cassette.exists() and cassette.read_text().endswith("\n")
    ):  # the worker stores the row after the map has returned
        time.sleep(0.05)
    sent = len(server.requests)
    out, summary = map_rows(
        ["Lima"], "{item}", lambda prompt: build_request(settings, prompt), live,
        MapOptions("city"), cache=CassetteCache(cassette),
    )  # fmt: skip
    assert (summary.cached, len(server.requests)) == (1, sent)
    assert isinstance(out, list)
    assert "You wrote" in out[0]["city"]


def test_a_map_that_fails_returns_at_once_while_a_row_runs_on(server: LocalServer) -> None:
    """A plain function that ignores being abandoned keeps its worker thread; the map does
    not wait for it (the thread ends on its own)."""
    settings = settings_for(server)
    release = threading.Event()

    def call(request: ChatRequest) -> StepResult:
        release.wait(20)
        raise RuntimeError("released")

    def progress(_: MapProgress) -> None:
        raise RuntimeError("the progress display broke")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="display broke"):
        map_rows(
            ["Lima"], "{item}", lambda prompt: build_request(settings, prompt), call,
            MapOptions("city"), progress=progress,
        )  # fmt: skip
    elapsed = time.monotonic() - started
    release.set()
    assert elapsed < 10


def test_a_rerun_reports_cached_failed_retrying_and_billed_rows_as_its_summary_does(
    server: LocalServer, tmp_path: Path
) -> None:
    """The second run of a table answers most rows from the cache. Its progress line ends on
    the summary's own figures: rows from the cache count as done but cost nothing, a row cut
    at the token limit stays flagged, a row waiting to be retried shows while it waits."""
    settings = settings_for(server)
    server.config.retry_after = 0.6
    faults = {"b": "fault-length", "c": "fault-451", "g": "fault-429x1"}

    def make(prompt: str) -> ChatRequest:
        return build_request(replace(settings, model=faults.get(prompt, settings.model)), prompt)

    def run(items: list[str]) -> tuple[Any, Any, list[MapProgress], list[StepResult]]:
        call, results = recording(row_call(settings))
        seen: list[MapProgress] = []
        out, summary = map_rows(
            items,
            "{item}",
            make,
            call,
            MapOptions("a", concurrency=1),
            cache=CassetteCache(tmp_path / "rows.jsonl"),
            progress=seen.append,
        )
        return out, summary, seen, results

    first, _, _, _ = run(list("abcdef"))
    out, summary, seen, results = run(list("abcdefg"))

    assert (summary.rows, summary.cached, summary.done, summary.failed) == (7, 5, 6, 1)
    assert (summary.flagged, summary.retried) == (1, 1)
    assert out[1]["a_error"] == first[1]["a_error"] is not None  # still flagged
    assert len(results) == 2  # only c and g were sent
    assert summary.prompt_tokens == sum(r.usage.prompt for r in results if r.usage) > 0
    final = seen[-1]
    assert final == MapProgress(
        total=7,
        done=6,
        failed=1,
        cached=5,
        retrying=0,
        prompt_tokens=summary.prompt_tokens,
        completion_tokens=summary.completion_tokens,
        cost=summary.cost,
        elapsed=final.elapsed,
        eta=0.0,
        stopping=False,
    )
    assert 0 < final.elapsed <= summary.elapsed
    assert any(p.retrying == 1 for p in seen)  # g, while it waited out the 429
    for p in seen:  # the rows left, at the pace of the rows sent so far (not the cached)
        sent, left = p.done - p.cached + p.failed, p.total - p.done - p.failed
        assert p.eta == (pytest.approx(left * p.elapsed / sent) if sent else None)
    assert any(p.eta and p.eta > 0 for p in seen)
