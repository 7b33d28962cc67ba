"""Time ``--with`` preparation against what a user would otherwise run, in the same process.

    python benchmarks/context_bench.py              # 10,000,000 rows, 20 columns
    python benchmarks/context_bench.py --rows 100000  # smoke run, a few seconds

Rows of the table: ``summarize_frame`` vs ``df.describe()`` on the same frame, and
``encode_image`` of a 4000x3000 photo-like image vs PIL's own ``save`` to PNG. Each time is the
best of ``--repeat`` runs; the ratio is baseline time / step-magic time.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import pandas as pd
from PIL import Image

from step_magic.context.images import encode_image
from step_magic.frames.summary import summarize_frame

T = TypeVar("T")


def build_frame(rows: int) -> pd.DataFrame:
    """14 float, 3 int, a categorical, a string and a datetime column."""
    rng = np.random.default_rng(0)
    columns: dict[str, object] = {f"f{i}": rng.standard_normal(rows) for i in range(14)}
    columns |= {f"i{i}": rng.integers(0, 1_000, rows) for i in range(3)}
    codes = rng.integers(0, 5, rows)
    columns["segment"] = pd.Categorical.from_codes(codes, ["a", "b", "c", "d", "e"])
    columns["city"] = np.array(["Paris", "Lyon", "Nice", "Lille", None], dtype=object)[codes]
    columns["when"] = pd.date_range("2020-01-01", periods=rows, freq="s")
    return pd.DataFrame(columns)


def build_photo(width: int = 4000, height: int = 3000) -> Image.Image:
    """A noisy gradient, which compresses like a photograph."""
    rng = np.random.default_rng(0)
    red = np.linspace(0, 200, width, dtype=np.uint8)[None, :, None]
    green = np.linspace(0, 200, height, dtype=np.uint8)[:, None, None]
    noise = rng.integers(0, 50, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(noise + (red // 2 + green // 2))


def best_of(repeat: int, task: Callable[[], T]) -> tuple[float, T]:
    """The fastest of ``repeat`` runs, and the task's result."""
    times = []
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        result = task()
        times.append(time.perf_counter() - start)
    return min(times), result


def png_bytes(image: Image.Image) -> int:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.tell()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    frame = build_frame(args.rows)
    photo = build_photo()
    built = time.perf_counter() - start
    print(f"built a {args.rows:,}x20 frame and a 4000x3000 image in {built:.1f}s")

    summary_s, summary = best_of(
        args.repeat, lambda: summarize_frame(frame, name="df", budget_chars=24_000)
    )
    describe_s, _ = best_of(args.repeat, frame.describe)
    encode_s, encoded = best_of(args.repeat, lambda: encode_image(photo))
    png_s, png_size = best_of(args.repeat, lambda: png_bytes(photo))

    rows = [
        ("summarize_frame vs df.describe()", summary_s, describe_s, f"{len(summary.text):,} chars"),
        ("encode_image vs PIL save(PNG)", encode_s, png_s, f"{encoded.nbytes:,} vs {png_size:,} B"),
    ]
    print(f"\n{'task':34} {'step-magic':>11} {'baseline':>10} {'ratio':>8}  output")
    for task, ours, baseline, output in rows:
        print(f"{task:34} {ours:10.3f}s {baseline:9.3f}s {baseline / ours:7.1f}x  {output}")


if __name__ == "__main__":
    main()
