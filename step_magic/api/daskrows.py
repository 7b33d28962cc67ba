"""``map_rows`` over a Dask DataFrame: lazy, each partition mapped where it lives.

A Dask frame's partitions are pandas frames; each is mapped by the in-memory ``map_rows``
on whichever worker holds it, so a row is the same call with the same columns, errors, cache
and history as anywhere else. The result is a lazy Dask frame whose partitions gain the new
columns; nothing is sent until it is computed.

**One budget for the cluster.** ``concurrency`` is for the whole cluster, not per partition:
every row call holds one of ``concurrency`` leases of a cluster-wide ``distributed.Semaphore``
while it runs (a process-wide one when the partitions run in one process without
``distributed``), however many partitions run at once, so no more than ``concurrency``
calls are ever in flight. ``rpm`` is shared out: when the frame is mapped, the worker
threads that can run partitions at once are counted (the ``distributed`` client's, else this
machine's cores) and each partition spaces its calls at ``rpm / threads``.

**Each row once.** Every finished row is written to the reply cache of the worker that asked
it (the history, or a ``cassette`` the workers can reach), so computing the result again, or
after an interrupted or failed compute, asks only the rows not answered yet.

Dask is an optional extra (``pip install 'step-magic[dask]'``): this module is imported only
when such a frame is passed, and it imports Dask only then.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

from step_magic.batch.rowcall import ROW_GATE
from step_magic.batch.table import MapOptions, row_prompts
from step_magic.core.errors import InputError

MapRows = Callable[..., Any]

_LOCAL_GATES: dict[str, threading.BoundedSemaphore] = {}
_WORKER_GATES: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def is_dask(frame: object) -> bool:
    """A Dask DataFrame or Series, known without importing Dask."""
    return type(frame).__module__.split(".")[0] == "dask" and hasattr(frame, "map_partitions")


def map_dask(frame: Any, prompt: str, keywords: dict[str, Any], map_rows: MapRows) -> Any:
    """The lazy Dask frame of ``map_rows(frame, prompt, **keywords)`` (see the module);
    ``map_rows`` is the in-memory map each partition runs, on its worker."""
    refused = {"inplace", "output", "progress"} & {k for k, v in keywords.items() if v}
    if refused:
        names = ", ".join(sorted(refused))
        raise InputError(f"a Dask frame is mapped lazily: it takes no {names}")
    if keywords.get("limit") is not None:
        raise InputError("a Dask frame takes no limit: map frame.head(n, compute=False) instead")
    # the prompt checked against a row of dask's made-up values, and the columns the result
    # will have from the same map of no rows: bad input fails now, and no call is made
    if keywords.get("json") and not (keywords.get("fields") or keywords.get("schema")):
        raise InputError(
            "a Dask frame's columns must be known before it runs: give fields= or schema= "
            "rather than json=True"
        )
    strict = bool(keywords.get("strict"))
    row_prompts(frame._meta_nonempty.head(1), prompt, MapOptions("answer", strict=strict))
    columns = _columns(frame, prompt, keywords, map_rows)
    rpm = keywords.get("rpm")
    each = {**keywords, "rpm": rpm / _threads() if rpm else None, "display": False}
    gate = (f"step-magic-{uuid.uuid4().hex}", int(keywords.get("concurrency") or 4))
    return frame.map_partitions(
        _partition, map_rows, prompt, each, gate, list(columns.columns), meta=columns
    )


def _columns(frame: Any, prompt: str, keywords: dict[str, Any], map_rows: MapRows) -> Any:
    """The empty frame of the result's columns: the same map of no rows (no call is made,
    so no key is needed where the graph is built: the workers' is used), and always the
    error column, which a partition only has when one of its rows failed."""
    quiet = {**keywords, "history": False, "display": False, "cassette": None}
    meta = map_rows(frame._meta, prompt, **{**quiet, "api_key": keywords.get("api_key") or "-"})
    column = keywords.get("column") or "answer"
    error = f"{column}_error"
    if error not in meta.columns:
        meta[error] = meta[column]
    return meta


def _threads() -> int:
    """How many partitions the scheduler in use runs at once."""
    try:
        from distributed import get_client

        return max(sum(get_client().nthreads().values()), 1)  # type: ignore[no-untyped-call]
    except (ImportError, ValueError):  # no distributed client: the local threads
        return os.cpu_count() or 1


def _partition(
    part: Any,
    map_rows: MapRows,
    prompt: str,
    keywords: dict[str, Any],
    gate: tuple[str, int],
    columns: list[str],
) -> Any:
    """One partition, on its worker: the in-memory map, each row call holding a lease (on
    a worker thread of the map: see ``batch.scheduler``), in the columns of the result."""
    token = ROW_GATE.set(_lease(*gate))
    try:
        out = map_rows(part, prompt, **keywords)
    finally:
        ROW_GATE.reset(token)
    for name in columns:
        if name not in out.columns:  # no row of this partition failed
            out[name] = None
    return out[columns]


def _lease(name: str, leases: int) -> Any:
    """One of ``leases`` cluster-wide leases (``distributed.Semaphore``, one per worker and
    map), or a process-wide one when the partitions run in this process without
    ``distributed``."""
    try:
        from distributed import Semaphore, get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        with _LOCK:
            gate = _LOCAL_GATES.setdefault(name, threading.BoundedSemaphore(leases))
        return gate
    with _LOCK:  # one per worker: each holds a lease-refresh callback on the worker's loop
        kept = _WORKER_GATES.setdefault(
            (worker.address, name),
            Semaphore(leases, name),  # type: ignore[no-untyped-call]
        )
    return kept
