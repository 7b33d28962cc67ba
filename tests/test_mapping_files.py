"""``map_rows`` from a file (or a LazyFrame) into a file, against the real local server.

The server quotes each prompt in its answer, so an answer proves its row; its request log
proves that no row was asked twice across an interrupted run and its re-run. Files are real
files, written and read by pyarrow and polars.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import step_magic
from step_magic.batch.parts import ROW_ID
from step_magic.batch.sources import MAX_LINE_BYTES
from step_magic.core.errors import InputError, StepInterrupted
from step_magic.core.mapresult import MapFileSummary, MapProgress
from step_magic.server import LocalServer

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Classify ({stars} stars): {text}"


def reviews(n: int) -> pl.DataFrame:
    return pl.DataFrame({"text": [f"review number {i}" for i in range(n)], "stars": range(n)})


def write(frame: pl.DataFrame, path: Path) -> Path:
    {".parquet": frame.write_parquet, ".csv": frame.write_csv}.get(path.suffix, frame.write_ndjson)(
        path
    )
    return path


def read(path: Path) -> pl.DataFrame:
    if path.suffix == ".parquet":
        return pl.read_parquet(path)
    if path.suffix == ".csv":
        return pl.read_csv(path)
    return pl.read_ndjson(path)


def asked(server: LocalServer) -> Counter[str]:
    """How many times the server was asked each prompt."""
    return Counter(
        r.body["messages"][-1]["content"]
        for r in server.requests
        if r.path.endswith("/completions")
    )


def expected(frame: pl.DataFrame) -> list[str]:
    return [f"Classify ({s} stars): {t}" for t, s in frame.select("text", "stars").iter_rows()]


def check_output(out: pl.DataFrame, frame: pl.DataFrame) -> None:
    """Every source row once, in order, with its own answer."""
    assert out.columns[:2] == ["text", "stars"]
    assert out[ROW_ID].to_list() == list(range(len(frame)))
    assert out["text"].to_list() == frame["text"].to_list()
    for prompt, answer in zip(expected(frame), out["answer"], strict=True):
        assert f'You wrote: "{prompt}"' in answer


@pytest.mark.parametrize(
    ("source", "output"),
    [
        ("in.parquet", "out.parquet"),
        ("in.csv", "out.jsonl"),
        ("in.jsonl", "out.csv"),
        ("in.ndjson", "out.parquet"),
    ],
)
def test_a_file_maps_into_a_file_of_any_kind(
    api_env: LocalServer, tmp_path: Path, source: str, output: str
) -> None:
    frame = reviews(23)
    src = write(frame, tmp_path / source)
    summary = step_magic.map_rows(
        src if source.endswith("parquet") else str(src), PROMPT,
        output=tmp_path / output, batch_size=5, display=False,
    )  # fmt: skip

    assert isinstance(summary, MapFileSummary)
    assert (summary.rows, summary.done, summary.failed, summary.skipped) == (23, 23, 0, 0)
    assert summary.written
    assert summary.prompt_tokens > 0
    assert summary.cost is not None
    assert "written to" in summary.text()
    check_output(read(tmp_path / output), frame)
    assert set(asked(api_env).values()) == {1}
    assert len(asked(api_env)) == 23
    assert not (tmp_path / f"{output}.parts").exists()


def test_a_rerun_of_a_finished_output_asks_nothing(api_env: LocalServer, tmp_path: Path) -> None:
    src = write(reviews(6), tmp_path / "in.csv")
    out = tmp_path / "out.jsonl"
    step_magic.map_rows(src, PROMPT, output=out, display=False, history=False)
    before = out.read_bytes()

    again = step_magic.map_rows(src, PROMPT, output=out, display=False, history=False)

    assert (again.rows, again.skipped, again.done) == (0, 6, 0)
    assert out.read_bytes() == before  # left as it was
    assert len(api_env.requests) == 6


def interrupting_after(rows: int) -> Any:
    """A progress callback that presses Ctrl-C (a real SIGINT) once ``rows`` rows are done."""

    def progress(seen: MapProgress) -> None:
        if seen.done + seen.failed >= rows and not seen.stopping:
            os.kill(os.getpid(), signal.SIGINT)

    return progress


@pytest.mark.parametrize("seed", [1, 2])
def test_a_run_interrupted_anywhere_resumes_from_the_output_alone(
    api_env: LocalServer, tmp_path: Path, seed: int
) -> None:
    frame = reviews(30)
    src, out = write(frame, tmp_path / "in.parquet"), tmp_path / "out.parquet"
    stop_at = random.Random(seed).randrange(3, 25)
    with pytest.raises(StepInterrupted) as caught:
        step_magic.map_rows(
            src, PROMPT, output=out, batch_size=7, display=False, history=False,
            progress=interrupting_after(stop_at),
        )  # fmt: skip
    first = caught.value.result
    assert isinstance(first, MapFileSummary)
    assert first.interrupted
    assert not first.written
    assert "run again to continue" in first.text()
    assert first.done >= stop_at
    assert not out.exists()

    # no reply cache: only the parts of the output say what is done
    second = step_magic.map_rows(src, PROMPT, output=out, display=False, history=False)

    assert second.skipped == first.done
    assert second.done == 30 - first.done
    check_output(read(out), frame)
    assert set(asked(api_env).values()) == {1}  # no row asked twice, none lost
    assert len(asked(api_env)) == 30


def test_the_reply_cache_also_knows_what_is_done(api_env: LocalServer, tmp_path: Path) -> None:
    frame = reviews(12)
    src, out = write(frame, tmp_path / "in.jsonl"), tmp_path / "out.csv"
    with pytest.raises(StepInterrupted):
        step_magic.map_rows(
            src, PROMPT, output=out, batch_size=4, display=False, progress=interrupting_after(5)
        )
    for part in (tmp_path / "out.csv.parts").iterdir():  # the output lost, the history kept
        part.unlink()

    summary = step_magic.map_rows(src, PROMPT, output=out, batch_size=4, display=False)

    assert summary.skipped == 0
    assert summary.cached >= 5
    check_output(read(out), frame)
    assert set(asked(api_env).values()) == {1}


def test_a_part_cut_short_by_a_crash_does_not_spoil_the_resume(
    api_env: LocalServer, tmp_path: Path
) -> None:
    frame = reviews(20)
    src, out = write(frame, tmp_path / "in.csv"), tmp_path / "out.parquet"
    with pytest.raises(StepInterrupted):
        step_magic.map_rows(
            src, PROMPT, output=out, batch_size=5, display=False, progress=interrupting_after(8)
        )
    folder = tmp_path / "out.parquet.parts"
    newest = max(folder.iterdir(), key=lambda path: path.stat().st_mtime_ns)
    whole = newest.read_bytes()
    newest.write_bytes(whole[: len(whole) // 2])  # a crash mid-write on a non-atomic rename
    (folder / "000000000015-000000000019-dead.parquet.1234.tmp").write_bytes(whole[:100])

    summary = step_magic.map_rows(src, PROMPT, output=out, batch_size=5, display=False)

    assert summary.written
    check_output(read(out), frame)
    assert set(asked(api_env).values()) == {1}  # the cut part's rows came from the history
    assert not folder.exists()


def test_a_row_too_long_for_the_context_fails_alone(api_env: LocalServer, tmp_path: Path) -> None:
    huge = "word " * 260_000  # ~1.3M characters: over the model's 256k-token context
    frame = pl.DataFrame({"text": ["short one", huge, "short two"], "stars": [1, 2, 3]})
    src, out = write(frame, tmp_path / "in.jsonl"), tmp_path / "out.jsonl"

    summary = step_magic.map_rows(src, PROMPT, output=out, display=False, history=False)

    rows = read(out)
    assert summary.failed == 1
    assert summary.done == 2
    assert rows["answer"][1] is None
    assert "tokens, over the" in rows["answer_error"][1]
    assert rows["answer"][0] is not None
    assert rows["answer"][2] is not None
    assert len(asked(api_env)) == 2  # the long row was never sent
    assert any(error.startswith("row 1: ") for error in summary.first_errors)

    # a failed row is asked again by a re-run (it has no answer), and replaces its old copy
    again = step_magic.map_rows(src, PROMPT, output=out, display=False, history=False)
    assert (again.skipped, again.failed) == (2, 1)
    assert read(out)[ROW_ID].to_list() == [0, 1, 2]


def test_limits_and_mistakes_are_one_line_errors(api_env: LocalServer, tmp_path: Path) -> None:
    src = write(reviews(3), tmp_path / "in.parquet")
    (tmp_path / "mine.csv").write_text("a,b\n1,2\n")
    long_line = tmp_path / "long.jsonl"
    long_line.write_text(json.dumps({"text": "x" * (MAX_LINE_BYTES + 10)}) + "\n")
    cases = [
        ({"frame": str(src)}, "needs output="),
        ({"frame": src, "output": tmp_path / "out.xlsx"}, "ends in .parquet"),
        ({"frame": tmp_path / "none.csv", "output": tmp_path / "o.csv"}, "no such file"),
        ({"frame": src, "output": src}, "must not be the source"),
        ({"frame": src, "output": tmp_path / "mine.csv"}, "not written by map_rows"),
        ({"frame": long_line, "output": tmp_path / "o.csv"}, "line 1 is over 4 MB"),
        ({"frame": src, "output": tmp_path / "o.csv", "inplace": True}, "--inplace"),
    ]
    for keywords, message in cases:
        with pytest.raises(InputError, match=message) as caught:
            step_magic.map_rows(prompt=PROMPT, display=False, history=False, **keywords)
        assert "\n" not in str(caught.value)
    assert (tmp_path / "mine.csv").read_text() == "a,b\n1,2\n"  # never overwritten
    assert len(api_env.requests) == 0


def test_a_lazy_frame_streams_into_a_file_or_comes_back_lazy(
    api_env: LocalServer, tmp_path: Path
) -> None:
    frame = reviews(9)
    lazy = frame.lazy().filter(pl.col("stars") < 100)
    summary = step_magic.map_rows(
        lazy, PROMPT, output=tmp_path / "out.parquet", batch_size=4, display=False
    )
    assert summary.done == 9
    check_output(pl.read_parquet(tmp_path / "out.parquet"), frame)

    result = step_magic.map_rows(lazy, PROMPT, display=False, limit=2)
    assert isinstance(result, pl.LazyFrame)
    collected = result.collect()
    assert collected["answer"].null_count() == 7  # rows past --limit, as for a DataFrame
    assert collected["answer"][0] is not None


@pytest.mark.slow  # processes of their own
def test_step_magic_map_from_the_shell(api_env: LocalServer, tmp_path: Path) -> None:
    frame = reviews(7)
    src, out = write(frame, tmp_path / "in.csv"), tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "step_magic.cli", "map", str(src), PROMPT, "-o", str(out)]

    done = subprocess.run(
        [*command, "--concurrency", "2", "--batch-size", "3", "-e", "low"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "7 of 7 rows answered" in done.stderr
    assert f"written to {out}" in done.stderr
    check_output(read(out), frame)
    assert all(r.body.get("reasoning_effort") == "low" for r in api_env.requests)

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0
    assert "7 rows were already in the output" in again.stderr

    bad = subprocess.run(
        [*command[:4], str(tmp_path / "none.parquet"), PROMPT, "-o", str(out)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0
    assert bad.stderr.startswith("step-magic map: ")
    assert "no such file" in bad.stderr


MEMORY_SCRIPT = """
import resource, sys
# imported before measuring (pyarrow's pa.array imports pandas when it is installed)
import openai, pandas, pyarrow as pa, pyarrow.parquet, pyarrow.compute
import step_magic
from step_magic.server import LocalServer, ServerConfig

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

with LocalServer(ServerConfig(tokens_per_second=1_000_000)) as server:
    def run(output, limit):
        return step_magic.map_rows(
            sys.argv[1], "Sum up: {title}", output=output, limit=limit, batch_size=10,
            base_url=server.base_url, api_key="any", display=False, history=False,
        )
    run(sys.argv[2] + ".warm.parquet", 5)  # the first use of each native code path
    before = peak()
    summary = run(sys.argv[2], 60)
print(summary.done, pa.default_memory_pool().max_memory(), peak() - before)
"""


@pytest.mark.slow
def test_a_big_file_is_never_held_whole(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = tmp_path / "wide.parquet"
    with pq.ParquetWriter(source, pa.schema({"title": pa.string(), "body": pa.string()})) as w:
        for start in range(0, 1_000, 100):  # 1,000 rows of 30 kB in row groups of 100
            body = [os.urandom(15_000).hex() for _ in range(100)]  # does not compress
            rows = [f"title {i}" for i in range(start, start + 100)]
            w.write_table(pa.table({"title": rows, "body": body}))
    assert source.stat().st_size > 29_000_000

    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(source), str(tmp_path / "out.parquet")],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    rows, arrow_peak, rss_growth = (int(x) for x in done.stdout.split())
    assert rows == 60
    # one row group (3 MB) read through a 1 MB buffer and a block of 10 rows: not 30 MB
    assert arrow_peak < 15_000_000
    assert rss_growth < 25_000_000
