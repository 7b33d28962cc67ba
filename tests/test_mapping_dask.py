"""``map_rows`` over a Dask DataFrame: lazy, mapped partition by partition where the data
lives, each row asked once, one concurrency budget for the whole cluster.

The cluster tests start a real ``distributed`` LocalCluster of worker processes, which ask
the bundled server on 127.0.0.1 over HTTP as any worker would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import step_magic
from step_magic.server import LocalServer

dd = pytest.importorskip("dask.dataframe")
pd = pytest.importorskip("pandas")


def reviews(rows: int) -> Any:
    return pd.DataFrame({"text": [f"review number {n}" for n in range(rows)]})


def records(frame: Any) -> list[dict[str, Any]]:
    """The rows as values (Dask keeps text as pyarrow strings, pandas as objects)."""
    return [{k: str(v) for k, v in row.items()} for row in frame.sort_index().to_dict("records")]


def prompts_seen(server: LocalServer) -> Counter[str]:
    return Counter(request.body["messages"][-1]["content"] for request in server.requests)


def test_the_result_is_lazy_and_computes_to_what_an_in_memory_map_gives(
    api_env: LocalServer, tmp_path: Path
) -> None:
    frame = reviews(12)
    lazy = step_magic.map_rows(
        dd.from_pandas(frame, npartitions=3), "Classify: {text}", column="label"
    )

    assert api_env.requests == []  # nothing is sent before compute()
    assert list(lazy.columns) == ["text", "label", "label_error"]
    mapped = lazy.compute()

    assert len(api_env.requests) == 12
    in_memory = step_magic.map_rows(frame, "Classify: {text}", column="label", history=False)
    assert records(mapped.drop(columns="label_error")) == records(in_memory)


def test_computing_again_asks_nothing_twice(api_env: LocalServer) -> None:
    lazy = step_magic.map_rows(dd.from_pandas(reviews(9), npartitions=3), "Classify: {text}")
    lazy.partitions[:1].compute()  # a run stopped after its first partition
    assert len(api_env.requests) == 3

    lazy.compute()
    lazy.compute()

    seen = prompts_seen(api_env)
    assert len(seen) == 9
    assert set(seen.values()) == {1}


def test_a_concurrency_below_the_threads_holds_for_the_whole_map(
    api_env: LocalServer,
) -> None:
    """Two calls at most across all partitions: the third request can only start once one
    of the first two answered (each takes at least the 0.5 s first-byte delay)."""
    api_env.config.first_byte_delay = 0.5
    lazy = step_magic.map_rows(
        dd.from_pandas(reviews(6), npartitions=6), "Classify: {text}", concurrency=2
    )
    lazy.compute(scheduler="threads", num_workers=6)

    arrived = sorted(request.received_at for request in api_env.requests)
    assert len(arrived) == 6
    assert arrived[2] - arrived[0] >= 0.45
    assert arrived[4] - arrived[2] >= 0.45


def test_more_rows_waiting_for_a_lease_than_threads_still_finish(api_env: LocalServer) -> None:
    """Sixteen rows of two partitions, eight leases: the rows waiting for a lease block
    worker threads of their map, never the loop or the threads that give leases back."""
    lazy = step_magic.map_rows(
        dd.from_pandas(reviews(16), npartitions=2), "Classify: {text}", concurrency=8
    )
    mapped = lazy.compute(scheduler="threads", num_workers=2)

    assert mapped["answer"].notna().all()
    assert len(api_env.requests) == 16


def test_a_failed_row_is_its_error_not_the_whole_compute(api_env: LocalServer) -> None:
    frame = reviews(6)
    lazy = step_magic.map_rows(
        dd.from_pandas(frame, npartitions=3),
        "Classify: {text}",
        model="step-3.5-flash",
        effort=None,
    )
    api_env.config.fault, api_env.config.fault_times = "400", 1  # the first row asked fails
    mapped = lazy.compute(scheduler="threads", num_workers=1).sort_index()

    assert list(mapped.columns) == ["text", "answer", "answer_error"]
    assert mapped["answer_error"].notna().sum() == 1
    assert mapped["answer"].notna().sum() == 5


def test_a_lazy_map_is_built_without_a_key_where_the_graph_is_made(
    api_env: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STEPFUN_API_KEY")
    lazy = step_magic.map_rows(dd.from_pandas(reviews(2), npartitions=1), "Classify: {text}")
    assert list(lazy.columns) == ["text", "answer", "answer_error"]
    assert api_env.requests == []


def test_what_a_lazy_map_cannot_take_is_refused_in_one_line(api_env: LocalServer) -> None:
    frame = dd.from_pandas(reviews(4), npartitions=2)
    with pytest.raises(step_magic.InputError, match="takes no limit"):
        step_magic.map_rows(frame, "Classify: {text}", limit=2)
    with pytest.raises(step_magic.InputError, match="takes no inplace"):
        step_magic.map_rows(frame, "Classify: {text}", inplace=True)
    with pytest.raises(step_magic.InputError, match=r"uses no \{column\} of the rows"):
        step_magic.map_rows(frame, "Classify: {txt}")
    assert api_env.requests == []


@pytest.fixture
def cluster(api_env: LocalServer) -> Iterator[Any]:
    """Two worker processes of two threads, started with the test's environment (the
    server, the key, the history file), and a client that makes them the scheduler."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0"
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client


@pytest.mark.slow  # worker processes of their own
def test_a_cluster_of_processes_asks_every_row_once_and_answers_as_in_memory(
    cluster: Any, api_env: LocalServer
) -> None:
    frame = reviews(24)
    lazy = step_magic.map_rows(
        dd.from_pandas(frame, npartitions=6), "Classify: {text}", column="label", concurrency=4
    )
    mapped = lazy.compute()

    seen = prompts_seen(api_env)
    assert len(seen) == 24
    assert set(seen.values()) == {1}
    in_memory = step_magic.map_rows(frame, "Classify: {text}", column="label", history=False)
    assert records(mapped.drop(columns="label_error")) == records(in_memory)
    api_env.reset()
    again = lazy.compute()  # the workers' history answers it: nothing is asked again
    assert api_env.requests == []
    assert records(again.drop(columns="label_error")) == records(in_memory)


@pytest.mark.slow  # worker processes of their own
def test_a_cluster_with_fewer_leases_than_threads_keeps_the_budget(
    cluster: Any, api_env: LocalServer
) -> None:
    api_env.config.first_byte_delay = 0.5
    lazy = step_magic.map_rows(
        dd.from_pandas(reviews(6), npartitions=6), "Classify: {text}", concurrency=2
    )
    lazy.compute()

    arrived = sorted(request.received_at for request in api_env.requests)
    assert len(arrived) == 6
    assert arrived[2] - arrived[0] >= 0.45  # two leases over four worker threads
