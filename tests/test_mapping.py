"""``map_rows`` against the real local server, through the real ``ReplyStream`` and HTTP client.

The server quotes each prompt in its answer ("You wrote: ..."), so an answer proves which
row it belongs to; its request log proves how many calls were made and when they arrived.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import io
import itertools
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest

from step_magic.api.rows import row_call
from step_magic.batch.cache import CassetteCache
from step_magic.batch.plan import plan_map
from step_magic.batch.rowcall import shared_loop
from step_magic.batch.scheduler import map_rows
from step_magic.batch.table import MapOptions, row_prompts
from step_magic.core.cassette import Cassette, RecordedReply
from step_magic.core.errors import InputError
from step_magic.core.mapresult import MapProgress
from step_magic.core.request import ChatRequest, build_request
from step_magic.core.result import StepResult
from step_magic.core.settings import Settings
from step_magic.display.progress import TerminalProgress, map_dry_run_text
from step_magic.server import LocalServer

from .conftest import TEST_KEY

TITLES = ["Dune", "Emma", "Ulysses", "Beloved", "Middlemarch", "Walden", "Kindred", "Solaris"]
AUTHORS = ["Herbert", "Austen", "Joyce", "Morrison", "Eliot", "Thoreau", "Butler", "Lem"]


def settings_for(server: LocalServer) -> Settings:
    return Settings(model="step-3.7-flash", base_url=server.base_url, api_key=TEST_KEY)


def requester(settings: Settings) -> Callable[[str], ChatRequest]:
    return lambda prompt: build_request(settings, prompt)


def sent_prompts(server: LocalServer) -> list[str]:
    """The user prompt of every chat completion request the server received, in order."""
    return [
        r.body["messages"][-1]["content"]
        for r in server.requests
        if r.path.endswith("/completions")
    ]


def books() -> pd.DataFrame:
    index = [f"b{i}" for i in range(len(TITLES))][::-1]  # not 0..n: answers go by position
    return pd.DataFrame({"title": TITLES, "author": AUTHORS}, index=index)


def records(out: object) -> list[dict[str, Any]]:
    """The rows of any output (pandas, polars, list) as dicts."""
    if isinstance(out, pl.DataFrame):
        return out.to_dicts()
    if isinstance(out, pd.DataFrame):
        return list(out.to_dict("records"))
    assert isinstance(out, list)
    return out


def rows_in_flight() -> int:
    """Tasks on the rows' event loop, besides the one asking."""

    async def count() -> int:
        return len(asyncio.all_tasks()) - 1

    return asyncio.run_coroutine_threadsafe(count(), shared_loop()).result(5)


def interrupt_after(calls: int, inner: Callable[[ChatRequest], StepResult]) -> Any:
    """A call that sends the process a real SIGINT once ``calls`` rows have been answered."""
    lock, done = threading.Lock(), [0]

    def call(request: ChatRequest) -> StepResult:
        reply = inner(request)
        with lock:
            done[0] += 1
            if done[0] == calls:
                os.kill(os.getpid(), signal.SIGINT)
        return reply

    return call


def test_a_pandas_frame_keeps_row_order_whatever_order_replies_finish_in(
    server: LocalServer,
) -> None:
    settings = settings_for(server)
    live, finished = row_call(settings), []

    def slow_first(request: ChatRequest) -> StepResult:  # row 0 waits longest, row 7 least
        prompt = request.messages[-1]["content"]
        row = next(i for i, title in enumerate(TITLES) if f"Book {title} by" in prompt)
        time.sleep(0.03 * (len(TITLES) - row))
        reply = live(request)
        finished.append(prompt)
        return reply

    frame = books()
    out, summary = map_rows(
        frame, "Book {title} by {author}", requester(settings), slow_first, MapOptions("blurb")
    )

    expected = [f"Book {t} by {a}" for t, a in zip(TITLES, AUTHORS, strict=True)]
    assert finished != expected  # later rows finished first...
    assert isinstance(out, pd.DataFrame)
    assert list(out.index) == list(frame.index)  # ...and the output is in row order anyway
    for answer, prompt in zip(out["blurb"], expected, strict=True):
        assert f'You wrote: "{prompt}"' in answer
    assert sorted(sent_prompts(server)) == sorted(expected)  # each row exactly once
    assert "blurb" not in frame.columns  # a copy unless --inplace
    assert (summary.rows, summary.done, summary.failed, summary.cached) == (8, 8, 0, 0)
    assert summary.prompt_tokens > 0
    assert summary.cost is not None
    assert summary.cost > 0
    assert "8 of 8 rows answered" in summary.text()
    assert "rows/s" in summary.text()


def test_a_polars_frame_in_place_with_a_reasoning_column(server: LocalServer) -> None:
    settings = settings_for(server)
    frame = pl.DataFrame({"title": TITLES[:4], "year": [1965, 1815, 1922, 1987]})
    options = MapOptions("blurb", inplace=True, reasoning_column="why")
    out, _ = map_rows(frame, "{title} ({year})", requester(settings), row_call(settings), options)

    assert out is frame
    assert frame.columns == ["title", "year", "blurb", "why"]
    for title, year, answer, why in frame.iter_rows():
        assert f'You wrote: "{title} ({year})"' in answer
        assert "The request is for step-3.7-flash" in why
    assert len(sent_prompts(server)) == 4


@pytest.mark.parametrize(
    ("items", "kind"),
    [
        (pd.Series(["Oslo", "Lima", "Pune"], name="city"), pd.DataFrame),
        (pl.Series("city", ["Oslo", "Lima", "Pune"]), pl.DataFrame),
        (["Oslo", "Lima", "Pune"], list),
    ],
    ids=["pandas-series", "polars-series", "list"],
)
def test_a_series_or_list_maps_each_item(server: LocalServer, items: Any, kind: type) -> None:
    settings = settings_for(server)
    out, summary = map_rows(
        items,
        "Describe {value}, or {item}",
        requester(settings),
        row_call(settings),
        MapOptions("about", limit=2),
    )

    assert isinstance(out, kind)
    rows = records(out)
    assert [row.get("city", row.get("item")) for row in rows] == ["Oslo", "Lima", "Pune"]
    assert 'You wrote: "Describe Oslo, or Oslo"' in rows[0]["about"]
    assert 'You wrote: "Describe Lima, or Lima"' in rows[1]["about"]
    assert rows[2]["about"] is None  # past --limit
    assert summary.rows == 2
    assert len(sent_prompts(server)) == 2


def test_requests_overlap_up_to_the_concurrency_and_no_further(server: LocalServer) -> None:
    settings = settings_for(server)
    map_rows(["warm"], "{item}", requester(settings), row_call(settings), MapOptions("a"))
    server.reset()
    server.config.first_byte_delay = 0.5
    live, lock, active, peak = row_call(settings), threading.Lock(), [0], [0]

    def counted(request: ChatRequest) -> StepResult:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            return live(request)
        finally:
            with lock:
                active[0] -= 1

    started = time.monotonic()
    _out, summary = map_rows(
        list(range(8)), "n={item}", requester(settings), counted, MapOptions("a", concurrency=4)
    )
    elapsed = time.monotonic() - started

    assert peak[0] == 4
    assert elapsed >= 1.0  # two waves of 0.5 s: never a fifth at once
    arrived = sorted(request.received_at for request in server.requests)
    assert arrived[3] - arrived[0] < 0.5  # four at the server before any reply could end
    assert summary.done == 8
    assert len(sent_prompts(server)) == 8


def test_a_plain_function_runs_as_many_rows_at_once_as_the_concurrency_asks(
    server: LocalServer,
) -> None:
    """More rows in flight than a thread pool's default size (here 12, on any machine): each
    of the 12 calls waits until all 12 have started."""
    settings = settings_for(server)
    live, together = row_call(settings), threading.Barrier(12, timeout=20)

    def call(request: ChatRequest) -> StepResult:  # no ``acall``: rows on worker threads
        together.wait()
        return live(request)

    _out, summary = map_rows(
        list(range(12)), "n={item}", requester(settings), call, MapOptions("a", concurrency=12)
    )
    assert (summary.done, summary.failed) == (12, 0)


def test_a_slow_row_does_not_hold_back_the_rows_beside_it(server: LocalServer) -> None:
    """A slot is refilled as soon as its row ends, not when the slowest row in flight does."""
    settings = settings_for(server)
    live, ended = row_call(settings), {}

    def call(request: ChatRequest) -> StepResult:
        prompt = request.messages[-1]["content"]
        if prompt == "n=slow":
            time.sleep(2)
        result = live(request)
        ended[prompt] = time.monotonic()
        return result

    items = ["slow", *range(10)]
    map_rows(items, "n={item}", requester(settings), call, MapOptions("a", concurrency=2))
    assert max(ended[f"n={i}"] for i in range(10)) < ended["n=slow"]


def test_a_row_that_exits_is_that_rows_error(server: LocalServer) -> None:
    """A BaseException other than Exception (``sys.exit`` in a caller's function) ends its
    row only."""
    settings = settings_for(server)
    live = row_call(settings)

    def call(request: ChatRequest) -> StepResult:
        if request.messages[-1]["content"] == "n=1":
            raise SystemExit(3)
        return live(request)

    out, summary = map_rows(list(range(3)), "n={item}", requester(settings), call, MapOptions("a"))
    assert (summary.done, summary.failed) == (2, 1)
    assert [row["a_error"] for row in records(out)] == [None, "SystemExit(3)", None]


TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="none")


def test_a_plain_function_sees_the_callers_context_variables(server: LocalServer) -> None:
    settings = settings_for(server)
    live, seen = row_call(settings), []

    def call(request: ChatRequest) -> StepResult:
        seen.append(TENANT.get())
        return live(request)

    token = TENANT.set("acme")
    try:
        map_rows(list(range(3)), "n={item}", requester(settings), call, MapOptions("a"))
    finally:
        TENANT.reset(token)
    assert seen == ["acme"] * 3


def test_inplace_needs_a_data_frame_not_an_arrow_table(server: LocalServer) -> None:
    import pyarrow as pa

    settings = settings_for(server)
    with pytest.raises(InputError, match="--inplace needs a DataFrame"):
        map_rows(
            pa.table({"city": ["Lima"]}), "{city}", requester(settings), row_call(settings),
            MapOptions("a", inplace=True),
        )  # fmt: skip
    assert server.requests == []


def test_rows_are_sent_from_the_first_down_on_named_worker_threads(server: LocalServer) -> None:
    """So a run stopped halfway has answered the top of the table, which a reader checks
    first; and a stack dump of a stuck kernel shows which threads are the map's."""
    settings = settings_for(server)
    live, threads = row_call(settings), set()

    def call(request: ChatRequest) -> StepResult:
        threads.add(threading.current_thread().name)
        return live(request)

    map_rows(list(range(6)), "n={item}", requester(settings), call, MapOptions("a", concurrency=1))

    assert sent_prompts(server) == [f"n={i}" for i in range(6)]
    assert threads == {"step-map_0"}


def test_rpm_spaces_the_requests_evenly(server: LocalServer) -> None:
    settings = settings_for(server)
    options = MapOptions("a", concurrency=4, rpm=240)  # one every 0.25 s
    started = time.time()
    map_rows(list(range(5)), "n={item}", requester(settings), row_call(settings), options)

    # A busy machine can only delay a request, so the i-th one never arrives before i × 0.25 s
    # (comparing neighbours would not do: a late one makes the next gap look short).
    arrivals = sorted(r.received_at for r in server.requests if r.path.endswith("/completions"))
    assert len(arrivals) == 5
    assert all(at - started >= 0.25 * i - 0.01 for i, at in enumerate(arrivals)), arrivals
    assert arrivals[-1] - started < 10  # and the spacing is not a crawl


def test_rate_limited_rows_are_retried_and_all_answered(server: LocalServer) -> None:
    settings = settings_for(server)
    server.config.fault, server.config.fault_times, server.config.retry_after = "429", 3, 0.05
    out, summary = map_rows(
        list(range(6)),
        "n={item}",
        requester(settings),
        row_call(settings),
        MapOptions("a", concurrency=3),
    )

    assert all(f'You wrote: "n={i}"' in row["a"] for i, row in enumerate(records(out)))
    assert len(sent_prompts(server)) == 9  # 6 rows + 3 retries
    assert (summary.done, summary.failed, summary.retried) == (6, 0, 3)


@pytest.mark.parametrize(("fault", "times"), [("429", 20), ("503", 6)])
def test_a_server_refusing_under_load_gets_every_row_answered_once(
    server: LocalServer, fault: str, times: int
) -> None:
    """Rows in flight together meet a run of 429s (with Retry-After) or 503s (backed off):
    each refused request is sent again (and only those), every row ends answered."""
    settings = settings_for(server)
    server.config.fault, server.config.fault_times, server.config.retry_after = fault, times, 0.05
    out, summary = map_rows(
        list(range(48)), "n={item}", requester(settings), row_call(settings),
        MapOptions("a", concurrency=24),
    )  # fmt: skip

    assert (summary.done, summary.failed, summary.retried) == (48, 0, times)
    assert all(f'You wrote: "n={i}"' in row["a"] for i, row in enumerate(records(out)))
    assert len(sent_prompts(server)) == 48 + times


def test_a_failed_row_keeps_its_error_and_the_others_their_answers(server: LocalServer) -> None:
    settings = settings_for(server)

    def make(prompt: str) -> ChatRequest:
        model = "fault-451" if "Beloved" in prompt else settings.model
        return build_request(replace(settings, model=model), prompt)

    out, summary = map_rows(books(), "{title}", make, row_call(settings), MapOptions("a"))

    assert isinstance(out, pd.DataFrame)
    failed = out[out["a"].isna()]
    assert list(failed["title"]) == ["Beloved"]
    assert "API error 451 from 127.0.0.1:" in failed["a_error"].iloc[0]
    assert out["a_error"].isna().sum() == 7
    assert (summary.done, summary.failed) == (7, 1)
    assert summary.first_errors[0].startswith("row 3: API error 451 from 127.0.0.1:")


def test_an_error_every_row_would_get_stops_the_run(server: LocalServer) -> None:
    settings = replace(settings_for(server), model="fault-401")
    _out, summary = map_rows(
        list(range(20)),
        "{item}",
        requester(settings),
        row_call(settings),
        MapOptions("a", concurrency=2),
    )

    assert len(sent_prompts(server)) <= 2
    assert summary.stopped is not None
    assert "401" in summary.stopped
    assert summary.done == 0
    assert "rows not run" in summary.text()


def test_answers_parse_into_typed_columns_and_misfits_are_flagged(
    server: LocalServer, tmp_path: Path
) -> None:
    settings = settings_for(server)
    frame = pd.DataFrame({"review": ["great", "dull", "odd", "meh"]})
    options = MapOptions("raw", fields=(("label", "str"), ("score", "float"), ("stars", "int")))
    template = "Rate: {review}"
    answers = [
        '{"label": "good", "score": 0.9, "stars": 5}',
        '```json\n{"label": "bad", "score": "0.2", "stars": 1.0}\n```',
        '{"label": "odd", "score": 0.5, "stars": 2.5}',  # 2.5 stars is not an int
    ]  # the fourth row gets the simulator's prose
    serve_recorded(server, tmp_path, frame, template, requester(settings), options, answers)

    out, _ = map_rows(frame, template, requester(settings), row_call(settings), options)

    assert isinstance(out, pd.DataFrame)
    assert list(out["raw_parse_error"]) == [False, False, True, True]
    assert out["label"].tolist()[:2] == ["good", "bad"]
    assert out["score"].tolist()[:2] == [0.9, 0.2]
    assert str(out["stars"].dtype) == "Int64"
    assert out["stars"].tolist()[:2] == [5, 1]
    assert out["raw"].iloc[2] == answers[2]  # the misfit keeps its text
    assert "Answer with only a JSON object" in sent_prompts(server)[0]


def test_a_field_named_like_the_answer_column_leaves_the_answers_text_beside_it(
    server: LocalServer, tmp_path: Path
) -> None:
    """``column="label"`` with a ``label`` field: the field fills ``label``, the text is kept."""
    settings = settings_for(server)
    frame = pd.DataFrame({"review": ["great", "meh"]})
    options = MapOptions("label", fields=(("label", "str"), ("confidence", "float")))
    answers = ['{"label": "good", "confidence": 0.9}']  # the second row gets prose
    serve_recorded(server, tmp_path, frame, "Rate: {review}", requester(settings), options, answers)

    out, _ = map_rows(frame, "Rate: {review}", requester(settings), row_call(settings), options)

    assert isinstance(out, pd.DataFrame)
    assert out["label"].tolist()[0] == "good"
    assert out["label_parse_error"].tolist() == [False, True]
    assert out["label_answer"].iloc[0] == answers[0]
    assert out["label_answer"].iloc[1]  # the row that did not parse keeps its raw answer


def test_json_keys_that_clash_with_the_runs_own_columns_are_renamed(
    server: LocalServer, tmp_path: Path
) -> None:
    settings = settings_for(server)
    frame = pd.DataFrame({"review": ["great"]})
    options = MapOptions("label", json_output=True)
    answers = ['{"label": "good", "label_error": "none", "stars": 5}']
    serve_recorded(server, tmp_path, frame, "Rate: {review}", requester(settings), options, answers)

    out, _ = map_rows(frame, "Rate: {review}", requester(settings), row_call(settings), options)

    assert isinstance(out, pd.DataFrame)
    assert out["label"].iloc[0] == answers[0]  # the answer's text is where it always is
    assert out["label_field"].iloc[0] == "good"
    assert out["label_error_field"].iloc[0] == "none"
    assert "label_error" not in out.columns  # no row failed: no error column
    assert out["stars"].iloc[0] == 5


def test_a_declared_field_may_not_take_a_column_the_run_writes_itself() -> None:
    with pytest.raises(InputError, match="--fields label_answer: the run writes"):
        MapOptions("label", fields=(("label_answer", "str"),))


def test_json_answers_become_columns_in_polars(server: LocalServer, tmp_path: Path) -> None:
    settings = settings_for(server)
    frame = pl.DataFrame({"city": ["Oslo", "Lima", "Pune"]})
    options = MapOptions("raw", json_output=True)
    answers = ['{"country": "Norway", "big": false}', '{"country": "Peru", "big": true}']
    serve_recorded(server, tmp_path, frame, "{city}", requester(settings), options, answers)

    out, _ = map_rows(frame, "{city}", requester(settings), row_call(settings), options)

    assert isinstance(out, pl.DataFrame)
    assert out["country"].to_list() == ["Norway", "Peru", None]
    assert out["big"].dtype == pl.Boolean
    assert out["big"].to_list() == [False, True, None]
    assert out["raw_parse_error"].to_list() == [False, False, True]


def serve_recorded(
    server: LocalServer,
    tmp_path: Path,
    frame: object,
    template: str,
    make: Callable[[str], ChatRequest],
    options: MapOptions,
    answers: list[str],
) -> None:
    """Make the server answer the first rows' requests with ``answers`` (a cassette)."""
    cassette = Cassette(tmp_path / "served.jsonl")
    for prompt, answer in zip(row_prompts(frame, template, options), answers, strict=False):
        request = make(prompt)
        reply = RecordedReply("Thinking.", answer, "stop", None, None, None)
        cassette.store(request.cache_key(), request, reply)
    server.config.cassette = str(cassette.path)


def test_ctrl_c_keeps_finished_rows_and_a_rerun_resumes_without_repeats(
    server: LocalServer, tmp_path: Path
) -> None:
    settings = settings_for(server)
    server.config.first_byte_delay = 0.1
    cache = tmp_path / "map.jsonl"
    items = [f"item {i}" for i in range(10)]
    options = MapOptions("a", concurrency=2)
    call = interrupt_after(3, row_call(settings))

    first, summary = map_rows(
        items, "{item}", requester(settings), call, options, cache=CassetteCache(cache)
    )

    assert summary.interrupted
    assert 3 <= summary.done <= 4, summary.text()
    answered = [row["item"] for row in records(first) if row["a"] is not None]
    assert len(answered) == summary.done
    assert "interrupted" in summary.text()
    assert sorted(sent_prompts(server)) == sorted(answered)
    assert len(Cassette(cache)) == summary.done

    server.reset()
    second, again = map_rows(
        items,
        "{item}",
        requester(settings),
        row_call(settings),
        options,
        cache=CassetteCache(cache),
    )

    assert not set(sent_prompts(server)) & set(answered)  # nothing paid for twice
    assert len(sent_prompts(server)) == 10 - len(answered)
    assert (again.done, again.cached, again.interrupted) == (10, len(answered), False)
    assert all(f'You wrote: "{row["item"]}"' in row["a"] for row in records(second))


def test_a_cache_cut_short_by_a_crash_still_resumes(server: LocalServer, tmp_path: Path) -> None:
    settings = settings_for(server)
    path = tmp_path / "map.jsonl"
    items = ["a", "b", "c"]
    options = MapOptions("out")
    map_rows(
        items,
        "{item}",
        requester(settings),
        row_call(settings),
        options,
        cache=CassetteCache(path),
    )
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + lines[2][:40])  # killed while writing the third
    server.reset()

    out, summary = map_rows(
        items,
        "{item}",
        requester(settings),
        row_call(settings),
        options,
        cache=CassetteCache(path),
    )

    assert (summary.cached, len(sent_prompts(server))) == (2, 1)
    assert all(row["out"] for row in records(out))
    # The cut line is dropped and the row asked again is recorded on a line of its own, so
    # the file stays one that --replay --cassette reads whole.
    assert len(path.read_text().splitlines()) == 3
    assert len(Cassette(path).replies()) == 3


def test_rows_in_flight_are_tasks_of_one_loop_not_a_thread_each(server: LocalServer) -> None:
    """Sixty-four rows in flight at once: the rows' one event loop holds them all; no worker
    thread per row, no reading thread per reply (the in-process server's threads aside)."""
    settings = settings_for(server)
    server.config.first_byte_delay = 0.5
    ours: set[str] = set()
    in_flight = threading.Event()

    def sample() -> None:  # until every row was sent, and so all 64 were in flight
        while not in_flight.is_set():
            ours.update(t.name for t in threading.enumerate() if "process_request" not in t.name)
            if len(server.requests) >= 64:
                in_flight.set()
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, summary = map_rows(
        list(range(64)), "n={item}", requester(settings), row_call(settings),
        MapOptions("a", concurrency=64),
    )  # fmt: skip
    in_flight.set()
    sampler.join()

    assert summary.done == 64
    assert "step-magic-rows" in ours
    assert not [name for name in ours if name.startswith("step-map") or "_pump" in name]


def test_rows_reuse_the_connections_of_the_rows_in_flight(server: LocalServer) -> None:
    """As an ``AsyncOpenAI`` client does: 24 rows three at a time open about three
    connections (and, against the real API, three TLS handshakes), not 24."""
    settings = settings_for(server)
    _, summary = map_rows(
        list(range(24)), "n={item}", requester(settings), row_call(settings),
        MapOptions("a", concurrency=3),
    )  # fmt: skip
    assert summary.done == 24
    connections = {request.peer for request in server.requests}
    assert len(connections) <= 6  # three, and a few more if a reply ends as the next starts


def test_an_abandoned_row_leaves_the_shared_connections_usable(server: LocalServer) -> None:
    settings = settings_for(server)
    server.config.first_byte_delay = 20
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
    threading.Timer(0.6, os.kill, (os.getpid(), signal.SIGINT)).start()
    _, abandoned = map_rows(
        list(range(4)), "{item}", requester(settings), row_call(settings), MapOptions("a")
    )
    assert abandoned.interrupted
    server.config.first_byte_delay = 0
    _, summary = map_rows(
        list(range(8)), "again {item}", requester(settings), row_call(settings), MapOptions("a")
    )
    assert (summary.done, summary.failed) == (8, 0)


def test_a_second_ctrl_c_abandons_rows_in_flight_at_once(server: LocalServer) -> None:
    settings = settings_for(server)
    server.config.first_byte_delay = 20
    for delay in (0.3, 0.6):
        threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT)).start()

    started = time.monotonic()
    seen: list[MapProgress] = []
    out, summary = map_rows(
        list(range(4)), "{item}", requester(settings), row_call(settings), MapOptions("a"),
        progress=seen.append,
    )  # fmt: skip

    assert time.monotonic() - started < 3
    assert summary.interrupted
    assert seen[-1].stopping  # the last progress line says the run was stopped
    deadline = time.monotonic() + 5  # and the rows' tasks are cancelled, not left waiting
    while rows_in_flight() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert rows_in_flight() == 0
    assert (summary.done, summary.failed) == (0, 0)
    assert [row["a"] for row in records(out)] == [None] * 4
    assert "a_error" not in records(out)[0]  # abandoned is not failed


def test_progress_is_reported_a_few_times_a_second_at_most(server: LocalServer) -> None:
    settings = settings_for(server)
    server.config.first_byte_delay = 0.05
    seen: list[tuple[float, MapProgress]] = []
    terminal = io.StringIO()
    line = TerminalProgress(16, stream=terminal)

    def record(progress: MapProgress) -> None:
        seen.append((time.monotonic(), progress))
        line(progress)

    _, summary = map_rows(
        list(range(16)),
        "{item}",
        requester(settings),
        row_call(settings),
        MapOptions("a", concurrency=2),
        progress=record,
    )
    line.finish(summary)

    times = [at for at, _ in seen]
    # The last call reports the end and may come sooner.
    assert all(b - a >= 0.24 for a, b in itertools.pairwise(times[:-1]))
    assert len(seen) <= 4 * summary.elapsed + 2
    final = seen[-1][1]
    assert (final.total, final.done, final.eta) == (16, 16, 0.0)
    assert final.prompt_tokens == summary.prompt_tokens > 0
    assert terminal.getvalue().startswith("\r")
    assert "16 / 16 rows" in terminal.getvalue()
    assert terminal.getvalue().endswith(summary.text() + "\n")


def test_dry_run_shows_the_first_prompt_and_an_estimate_without_sending(
    server: LocalServer,
) -> None:
    settings = settings_for(server)
    options = MapOptions("a", limit=5, rpm=10)
    template = "Summarise {title} by {author}"
    plan = plan_map(books(), template, requester(settings), options, body=ChatRequest.body)
    text = map_dry_run_text(plan)

    assert "5 requests, one per row" in text
    assert "10 a minute: ≥ 30.0 s" in text
    assert "Summarise Dune by Herbert" in text
    assert "Emma" not in text
    assert "tokens in all" in text
    assert "$" in text
    assert sent_prompts(server) == []


def test_mistakes_are_refused_before_anything_is_sent(server: LocalServer) -> None:
    settings = settings_for(server)
    make, call = requester(settings), row_call(settings)
    with pytest.raises(InputError, match="uses no"):
        map_rows(books(), "Summarise {titel}", make, call, MapOptions("a"))
    with pytest.raises(InputError, match="--inplace needs a DataFrame"):
        map_rows(["x"], "{item}", make, call, MapOptions("a", inplace=True))
    with pytest.raises(InputError, match="--fields types"):
        MapOptions("a", fields=(("n", "integer"),))
    with pytest.raises(InputError, match="not a dict"):
        map_rows({"a": 1}, "{item}", make, call, MapOptions("a"))
    assert sent_prompts(server) == []


def test_a_kernel_interrupt_leaves_a_static_summary_and_a_resumable_cache(
    kernel: Any, server: LocalServer, tmp_path: Path
) -> None:
    server.config.first_byte_delay = 0.3
    code = f"""
import os, pandas as pd
from step_magic.core.settings import Settings
from step_magic.core.request import build_request
from step_magic.batch.cache import CassetteCache
from step_magic.api.rows import row_call
from step_magic.batch.scheduler import map_rows
from step_magic.batch.table import MapOptions
from step_magic.display.progress import NotebookProgress
s = Settings("step-3.7-flash", os.environ["STEPFUN_BASE_URL"], os.environ["STEPFUN_API_KEY"])
bar = NotebookProgress(12)
out, summary = map_rows(
    pd.DataFrame({{"n": range(12)}}), "Row {{n}}", lambda p: build_request(s, p),
    row_call(s), MapOptions("a", concurrency=2),
    cache=CassetteCache({str(tmp_path / "c.jsonl")!r}), progress=bar)
bar.finish(summary)
"""
    run = kernel.execute(code, interrupt_after="comm_open", timeout=30)
    assert run.error() is None
    assert "IntProgress" in "".join(run.comm_models().values())
    (final,) = run.final_outputs().values()
    assert "application/vnd.jupyter.widget-view+json" not in final
    assert "interrupted" in final["text/html"]
    assert "interrupted" in final["text/plain"]
    first = len(sent_prompts(server))
    assert 1 <= first < 12

    server.reset()
    again = kernel.execute(code + "print(summary.cached, summary.done)")
    assert again.stdout().endswith(f"{first} 12\n")
    assert len(sent_prompts(server)) == 12 - first


def test_a_server_stalling_after_the_end_of_a_reply_does_not_hold_the_row(
    server: LocalServer,
) -> None:
    """The rest of a body is read after ``[DONE]`` so the connection can be reused, but not
    waited for: a server that stalls there only loses its connection."""
    from .sse_peer import RESPONSE_HEAD, SSEPeer

    content = b'data: {"id":"c","choices":[{"delta":{"content":"Hi."},"finish_reason":"stop"}]}\n\n'
    reply = RESPONSE_HEAD + content + b"data: [DONE]\n\n"  # at once; then a 3 s stall
    with SSEPeer([b": still here\n\n"], head=reply, pause=3) as peer:
        settings = dataclasses.replace(settings_for(server), base_url=peer.base_url)
        started = time.monotonic()
        out, summary = map_rows(
            ["a"], "{item}", requester(settings), row_call(settings), MapOptions("a")
        )
        took = time.monotonic() - started
    assert (summary.done, records(out)[0]["a"]) == (1, "Hi.")
    assert took < 2.5


def test_rows_sharing_connections_share_no_cookies(server: LocalServer) -> None:
    """One client serves every map of the process (any key, any server): a cookie one
    reply sets is never sent with another row."""
    from .http_handler import Handler, serving, url_of

    class SetsCookies(Handler):
        def do_POST(self) -> None:
            self.body()
            self.server.cookies.append(self.headers.get("Cookie"))  # type: ignore[attr-defined]
            self.answer("ok", Set_Cookie="session=from-the-first-reply; Path=/")

    cookie_server = serving(SetsCookies, cookies=[])
    url = url_of(cookie_server)
    settings = dataclasses.replace(settings_for(server), base_url=url)
    try:
        _, summary = map_rows(
            list(range(6)), "{item}", requester(settings), row_call(settings),
            MapOptions("a", concurrency=2),
        )  # fmt: skip
    finally:
        cookie_server.shutdown()
        cookie_server.server_close()
    assert summary.done == 6
    assert cookie_server.cookies == [None] * 6  # type: ignore[attr-defined]
