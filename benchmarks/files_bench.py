"""Peak memory of ``map_rows`` from a Parquet file into another, against the file's size.

    python benchmarks/files_bench.py            # 10,000 rows of 10 kB (~100 MB of Parquet)
    python benchmarks/files_bench.py --smoke    # 1,000 rows (~10 MB), a minute

A 10 GB-class input is simulated by a file of wide rows that do not compress (random hex), so
its size on disk is its size in memory. Each measurement runs in a fresh process and reports
its peak resident memory (``ru_maxrss``) and pyarrow's peak allocation: every row mapped into
an output file at ``batch_size`` 100 and 1,000, and half the rows at 1,000; the floor (the
same process mapping 10 rows: the imports, the openai client, the native code paths); and the
baseline, the file read whole with ``pyarrow.parquet.read_table`` (what holding it costs).
The server runs in its own process with two-token replies, so the figures are the map's own.

The bound: the rows held are one block (``batch_size`` rows) with its prompts, replies and new
columns, plus one row group of the source being decoded and one part being written or joined;
so the peak above the floor is a few times one block's bytes (``batch_size`` × the row's
width; target ≤ 12×) and does not follow the number of rows (all rows against half of them:
target ≤ 1.25×).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import API_KEY, ROOT, Unmeasurable, local_server, run, table, verdict

ROW_BYTES = 10_000
ROW_GROUP = 1_000
BLOCKS = 12  # the peak above the floor, in blocks of batch_size rows
GROWTH = 1.25  # every row against half of them

CHILD = """
import json, resource, sys, time
import openai, pandas, pyarrow as pa, pyarrow.parquet  # pa.array imports pandas if installed
import step_magic

source, output, base_url, batch, limit = sys.argv[1:6]
start = time.monotonic()
if batch == "whole":
    rows = pyarrow.parquet.read_table(source).num_rows
else:
    summary = step_magic.map_rows(
        source, "Sum up: {title}", output=output, batch_size=int(batch),
        limit=None if limit == "all" else int(limit), concurrency=16,
        base_url=base_url, api_key=sys.argv[6], display=False, history=False,
    )
    rows = summary.done
print(json.dumps({
    "rows": rows,
    "seconds": time.monotonic() - start,
    "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "arrow": pa.default_memory_pool().max_memory(),
}))
"""


def write_source(path: Path, rows: int) -> None:
    """``rows`` rows: a short title (the prompt) and a body of ``ROW_BYTES`` random hex."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema({"title": pa.string(), "body": pa.string()})
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, ROW_GROUP):
            count = min(ROW_GROUP, rows - start)
            titles = [f"title {i}" for i in range(start, start + count)]
            bodies = [os.urandom(ROW_BYTES // 2).hex() for _ in range(count)]
            writer.write_table(pa.table({"title": titles, "body": bodies}))


def measure(source: Path, folder: Path, base_url: str, batch: str, limit: str) -> dict[str, float]:
    """One run in a fresh process: its rows, seconds, peak RSS and pyarrow peak."""
    output = folder / f"out-{batch}-{limit}-{time.monotonic_ns()}.parquet"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(output), base_url, batch, limit, API_KEY],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=3_600,
    )
    if done.returncode != 0:
        raise Unmeasurable(f"the {batch} run failed: {done.stderr.strip().splitlines()[-1:]}")
    result: dict[str, float] = json.loads(done.stdout)
    output.unlink(missing_ok=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="1,000 rows instead of 10,000")
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args()
    rows = args.rows or (1_000 if args.smoke else 10_000)

    with tempfile.TemporaryDirectory() as name, local_server(2, 2) as base_url:
        folder = Path(name)
        source = folder / "wide.parquet"
        write_source(source, rows)
        size = source.stat().st_size
        floor = measure(source, folder, base_url, "100", "10")
        whole = measure(source, folder, base_url, "whole", "all")
        runs = {batch: measure(source, folder, base_url, batch, "all") for batch in ("100", "1000")}
        half = measure(source, folder, base_url, "1000", str(rows // 2))

    mb = 1e6
    print(f"== map_rows from a {size / mb:,.0f} MB Parquet file ({rows:,} rows of 10 kB)")
    lines = [
        ("floor: 10 rows mapped", floor, floor["peak"]),
        ("baseline: read_table, whole", whole, whole["peak"]),
        *((f"every row, batch_size {batch}", r, r["peak"]) for batch, r in runs.items()),
        ("half the rows, batch_size 1000", half, half["peak"]),
    ]
    print(
        table(
            ["run", "rows", "seconds", "peak RSS MB", "above floor MB", "pyarrow peak MB"],
            [
                (
                    label,
                    f"{r['rows']:,.0f}",
                    f"{r['seconds']:.1f}",
                    f"{peak / mb:.0f}",
                    f"{(peak - floor['peak']) / mb:.0f}",
                    f"{r['arrow'] / mb:.1f}",
                )
                for label, r, peak in lines
            ],
        )
    )
    for batch, r in runs.items():
        if r["rows"] != rows:
            raise Unmeasurable(f"batch_size {batch}: {rows - r['rows']:.0f} rows unanswered")
    above = runs["1000"]["peak"] - floor["peak"]
    block = min(1_000, rows) * ROW_BYTES
    growth = above / max(half["peak"] - floor["peak"], 1)
    print()
    print(verdict(above <= BLOCKS * block, f"peak above the floor ≤ {BLOCKS} blocks of 1,000 "
                  "rows", f"{above / block:.1f} blocks"))  # fmt: skip
    print(verdict(growth <= GROWTH, f"all rows ≤ {GROWTH}× half of them", f"{growth:.2f}×"))


if __name__ == "__main__":
    run(main)
