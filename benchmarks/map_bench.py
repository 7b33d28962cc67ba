"""Throughput of ``map_rows`` against a server that takes 200 ms to answer each request.

    python benchmarks/map_bench.py            # 1,000 rows at concurrency 1, 4 and 16, then
                                              # against an asyncio loop at 4, 16, 64, 256
    python benchmarks/map_bench.py --smoke    # 40 rows, a few seconds

With a fixed latency L, ``c`` requests at a time can at best answer ``c / L`` rows a second
(a little less when the last wave is partial: the ideal counts whole waves). Each run is
reported as a ratio of that ideal, so the figure says what the scheduling, the
openai client and the threads cost, whatever the machine. Then the same rows with a reply
cache (what writing it costs), and again from the full cache (what a resumed run costs).
The server runs in its own process, so its CPU is not counted.

Then the baseline a user would otherwise write: ``asyncio`` + ``AsyncOpenAI`` + a
``Semaphore``, streaming each reply and keeping its reasoning and answer. Both map the same
rows at concurrency 4, 16, 64 and 256, alternating, in one run: rows a second as a share of
the ideal, and this process's CPU per row (all threads: ``time.process_time``). The physical
floor is the ideal ``c / L`` for throughput; for CPU, reading the raw lines with ``json``
(about a tenth of the SDK's per-chunk cost, see ``framing_bench.py``). Target: at least 0.9x
the loop's throughput at no more than 0.5x its CPU per row, at every concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
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


def sdk_loop(base_url: str, rows: int, concurrency: int) -> float:
    """The hand-written baseline: every row streamed with ``AsyncOpenAI`` under a
    ``Semaphore``, reasoning and answer kept; its wall seconds (``Unmeasurable`` unless every
    row answered)."""
    import openai

    async def main() -> list[tuple[str, str]]:
        client = openai.AsyncOpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(n: int) -> tuple[str, str]:
            async with gate:
                stream = await client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": f"Row {n}: say something short."}],
                    stream=True,
                )
                reasoning, answer = [], []
                async for chunk in stream:
                    for choice in chunk.choices:
                        delta = choice.delta
                        thought = (delta.model_extra or {}).get("reasoning")
                        if thought:
                            reasoning.append(thought)
                        if delta.content:
                            answer.append(delta.content)
                return "".join(reasoning), "".join(answer)

        try:
            return await asyncio.gather(*(one(n) for n in range(rows)))
        finally:
            await client.close()

    started = time.monotonic()
    replies = asyncio.run(main())
    if not all(answer for _, answer in replies):
        raise Unmeasurable("the asyncio loop left rows unanswered")
    return time.monotonic() - started


def against_the_loop(base_url: str, rows: int, levels: tuple[int, ...]) -> list[str]:
    """``map_rows`` and the asyncio loop side by side at each concurrency; the verdicts."""
    settings = Settings(model=MODEL, base_url=base_url, api_key=API_KEY)
    sdk_loop(base_url, 4, 4)  # import and warm the async client: not measured
    lines, verdicts = [], []
    for concurrency in levels:
        count = max(rows, 4 * concurrency)
        ideal = count / (math.ceil(count / concurrency) * LATENCY)
        cpu = time.process_time()
        loop_seconds = sdk_loop(base_url, count, concurrency)
        loop_cpu = time.process_time() - cpu
        cpu = time.process_time()
        ours = timed_map(settings, count, concurrency).elapsed
        our_cpu = time.process_time() - cpu
        speed = (count / ours) / (count / loop_seconds)
        cpu_ratio = our_cpu / loop_cpu
        lines.append(
            (
                concurrency,
                count,
                f"{count / loop_seconds / ideal:.2f}",
                f"{count / ours / ideal:.2f}",
                f"{speed:.2f}",
                f"{loop_cpu / count * 1000:.2f}",
                f"{our_cpu / count * 1000:.2f}",
                f"{cpu_ratio:.2f}",
            )
        )
        verdicts.append(
            verdict(
                speed >= 0.9 and cpu_ratio <= 0.5,
                f"concurrency {concurrency}: ≥ 0.9x the loop's rows/s at ≤ 0.5x its CPU/row",
                f"{speed:.2f}x at {cpu_ratio:.2f}x",
            )
        )
    print(f"\n== map_rows vs asyncio + AsyncOpenAI + Semaphore, latency {LATENCY * 1000:.0f} ms")
    headers = ["concurrency", "rows", "loop/ideal", "ours/ideal", "rows/s ratio"]
    headers += ["loop CPU ms/row", "our CPU ms/row", "CPU ratio"]
    print(table(headers, lines))
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="40 rows instead of 1,000")
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args()
    rows = args.rows or (40 if args.smoke else 1_000)
    levels = (4, 16) if args.smoke else (4, 16, 64, 256)

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
        against = against_the_loop(base_url, rows, levels)

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
    for line in against:
        print(line)
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
