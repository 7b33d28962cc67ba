"""Throughput of ``map_rows`` against a server that takes 200 ms to answer each request.

    python benchmarks/map_bench.py            # 1,000 rows at concurrency 1, 4 and 16
    python benchmarks/map_bench.py --smoke    # 40 rows, a few seconds

With a fixed latency L, ``c`` requests at a time can at best answer ``c / L`` rows a second
(a little less when the last wave is partial: the ideal counts whole waves). Each run is
reported as a ratio of that ideal, so the figure says what the scheduling, the
openai client and the threads cost, whatever the machine. Then the same rows with a reply
cache (what writing it costs), and again from the full cache (what a resumed run costs).
The server runs in its own process (``python -m step_magic.server`` has no flag for the first
byte delay, so a few lines here start ``LocalServer`` with one).
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from _common import API_KEY, MODEL, Unmeasurable, local_server, run, table, verdict

from step_magic.api.rows import row_call
from step_magic.batch.cache import CassetteCache
from step_magic.batch.scheduler import map_rows
from step_magic.batch.table import MapOptions
from step_magic.core.mapresult import MapSummary
from step_magic.core.request import build_request
from step_magic.core.settings import Settings

LATENCY = 0.2
TARGET = 0.8  # of the ideal c / L


def timed_map(
    settings: Settings, rows: int, concurrency: int, cache: CassetteCache | None = None
) -> MapSummary:
    """Map ``rows`` distinct prompts; ``Unmeasurable`` unless every row was answered."""
    _, summary = map_rows(
        list(range(rows)),
        "Row {item}: say something short.",
        lambda prompt: build_request(settings, prompt),
        row_call(settings),
        MapOptions("answer", concurrency=concurrency),
        cache=cache,
    )
    if summary.done != rows:
        raise Unmeasurable(f"{rows - summary.done} rows unanswered: {summary.first_errors}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="40 rows instead of 1,000")
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args()
    rows = args.rows or (40 if args.smoke else 1_000)

    with local_server(20, 20, first_byte_delay=LATENCY) as base_url:
        settings = Settings(model=MODEL, base_url=base_url, api_key=API_KEY)
        timed_map(settings, 1, 1)  # import openai and warm the TLS context: not measured
        results = []
        for concurrency in (1, 4, 16):
            summary = timed_map(settings, rows, concurrency)
            ideal = rows / (math.ceil(rows / concurrency) * LATENCY)  # c / L, whole waves
            throughput = rows / summary.elapsed
            results.append((concurrency, summary.elapsed, throughput, ideal))
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "map.jsonl"
            filling = timed_map(settings, rows, 16, CassetteCache(path))
            resumed = timed_map(settings, rows, 16, CassetteCache(path))

    print(f"== map_rows throughput, {rows:,} rows, server latency {LATENCY * 1000:.0f} ms")
    print(
        table(
            ["concurrency", "seconds", "rows/s", "ideal rows/s", "ratio"],
            [(c, f"{t:.2f}", f"{r:.1f}", f"{i:.1f}", f"{r / i:.2f}") for c, t, r, i in results],
        )
    )
    print(f"\n== reply cache, {rows:,} rows at concurrency 16")
    uncached = results[-1][1]
    print(
        table(
            ["run", "seconds", "vs no cache"],
            [
                ("no cache", f"{uncached:.2f}", "1.00"),
                (
                    "filling the cache",
                    f"{filling.elapsed:.2f}",
                    f"{filling.elapsed / uncached:.2f}",
                ),
                (
                    "resumed, all cached",
                    f"{resumed.elapsed:.3f}",
                    f"{resumed.elapsed / uncached:.3f}",
                ),
            ],
        )
    )
    if resumed.cached != rows:
        raise Unmeasurable(f"the resumed run sent {rows - resumed.cached} requests again")
    print()
    for concurrency, _, throughput, ideal in results:
        print(
            verdict(
                throughput >= TARGET * ideal,
                f"concurrency {concurrency} ≥ {TARGET:.0%} of ideal",
                f"{throughput / ideal:.2f}",
            )
        )


if __name__ == "__main__":
    run(main)
