"""The read-only DataFrame tools on a big frame: time per call next to the bare pandas call.

    python benchmarks/tools_bench.py               # 10,000,000 rows, 20 columns
    python benchmarks/tools_bench.py --rows 100000 --repeat 1   # smoke run, a few seconds

Each row runs one ``--tools df`` call the way the loop does (JSON arguments in, checked,
the bounded Markdown text out) and, in the same process, the one pandas expression that
answers the same question and returns a Python object (no text). The ratio is tool time /
pandas time: what checking the arguments, choosing fast paths and writing a bounded table
cost over pandas itself. "chars" is what the model reads; the frame as CSV is printed last
for scale (what `--with` could never send).
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable
from typing import Any

import pandas as pd
from context_bench import best_of, build_frame

from step_magic.tools.frametools import frame_tools
from step_magic.tools.toolbox import Toolbox

CSV_SAMPLE_ROWS = 10_000


def cases(frame: pd.DataFrame) -> list[tuple[str, dict[str, Any], Callable[[], object]]]:
    """(tool, arguments, the bare pandas call answering the same question)."""
    return [
        ("columns", {}, lambda: (frame.dtypes, frame.isna().sum())),
        ("describe", {"column": "f0"}, lambda: frame["f0"].describe()),
        ("value_counts", {"column": "city"}, lambda: frame["city"].value_counts(dropna=False)),
        (
            "group_by",
            {"by": ["segment"], "agg": "mean", "column": "f1"},
            lambda: frame.groupby("segment", observed=True)["f1"].mean(),
        ),
        (
            "filter",
            {"conditions": [{"column": "i0", "op": ">", "value": 990}], "limit": 20},
            lambda: frame[frame["i0"] > 990].head(20),
        ),
        ("sort", {"by": "f2", "descending": True, "n": 10}, lambda: frame.nlargest(10, "f2")),
        ("sample", {"n": 10}, lambda: frame.sample(10, random_state=0)),
        ("correlation", {"a": "f3", "b": "f4"}, lambda: frame["f3"].corr(frame["f4"])),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    frame = build_frame(args.rows)
    box = Toolbox(frame_tools("df", frame), budget_chars=8_000)
    print(f"== --tools df on {args.rows:,} rows × {frame.shape[1]} columns (best of {args.repeat})")
    print(f"{'tool':<14}{'tool s':>9}{'pandas s':>10}{'ratio':>8}{'chars':>8}")
    for op, arguments, bare in cases(frame):
        call = functools.partial(box.call, f"df_{op}", json.dumps(arguments))
        tool_time, outcome = best_of(args.repeat, call)
        if outcome.failed:
            raise SystemExit(f"df_{op} failed: {outcome.text}")
        pandas_time, _ = best_of(args.repeat, bare)
        ratio = tool_time / pandas_time if pandas_time else float("inf")
        print(f"{op:<14}{tool_time:>9.3f}{pandas_time:>10.3f}{ratio:>8.1f}{len(outcome.text):>8,}")
    sample = frame.head(CSV_SAMPLE_ROWS).to_csv(index=False)
    whole = len(sample) * len(frame) // min(len(frame), CSV_SAMPLE_ROWS)
    print(f"the frame as CSV: ≈ {whole:,} chars (≈ {whole // 4:,} tokens), vs 256K context")


if __name__ == "__main__":
    main()
