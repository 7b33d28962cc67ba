"""Every benchmark runs in its small configuration and prints its table.

No timing is asserted here (machines are noisy; the figures live in benchmarks/README.md):
only that each script measures at all, exits 0 and prints the lines its readers look for.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .browser import CHROMIUM

ROOT = Path(__file__).resolve().parent.parent
KERNEL = pytest.mark.kernel  # the scripts start their own kernels, in subprocesses
pytestmark = pytest.mark.slow

SMOKE_RUNS = [
    pytest.param(
        ["overhead_bench.py", "--smoke"],
        ["== %%step CPU vs bare SDK loop", "ratio", "real kernel", "== own CPU time by package"],
        marks=KERNEL,
        id="overhead",
    ),
    pytest.param(
        ["ttft_bench.py", "--smoke"],
        ["== time to first visible token", "%%step, warm", "after a 1.5 s pause", "0.35x"],
        marks=KERNEL,
        id="ttft",
    ),
    pytest.param(
        ["wire_bench.py", "--smoke"],
        ["== %%step on the wire", "bytes/text", "== naive cells vs %%step", "bytes vs %%step"],
        marks=KERNEL,
        id="wire",
    ),
    pytest.param(
        ["load_bench.py", "--smoke"],
        ["== %load_ext in a fresh process", "ratio", "peer not measured", "-X importtime"],
        id="load",
    ),
    pytest.param(
        ["notebook_size_bench.py", "--smoke"],
        ["== saved notebook", "vs text", "reasoning slices", "target reasoning stored once"],
        marks=KERNEL,
        id="notebook-size",
    ),
    pytest.param(
        ["framing_bench.py", "--smoke"],
        ["== one SSE line", "openai SDK (baseline)", "target decoder 4n/n", "== a prompt"],
        id="framing",
    ),
    pytest.param(
        ["session_bench.py", "--smoke"],
        [
            "== kernel CPU per call over 40 calls",
            "bare SDK loop",
            "history file after 40 calls",
            "target growth",
        ],
        marks=KERNEL,
        id="session",
    ),
    pytest.param(
        ["map_bench.py", "--smoke"],
        ["concurrency", "resumed, all cached", "target concurrency 4"],
        id="map",
    ),
    pytest.param(
        ["files_bench.py", "--smoke"],
        ["floor: 10 rows mapped", "every row, batch_size 1000", "target all rows"],
        id="files",
    ),
    pytest.param(
        ["context_bench.py", "--rows", "100000", "--repeat", "1"],
        ["ratio", "summarize_frame vs df.describe()", "encode_image vs PIL save(PNG)"],
        id="context",
    ),
    pytest.param(
        ["panel_bench.py", "--smoke"],
        ["== page main thread while 4,000 chunks", "panel open", "print loop", "ratio longest"],
        marks=(
            KERNEL,
            pytest.mark.browser,
            pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing"),
        ),
        id="panel",
    ),
    pytest.param(
        ["answer_panel_bench.py", "--smoke"],
        ["== page main thread while an answer of 400", "Markdown loop", "doubled frames"],
        marks=(
            KERNEL,
            pytest.mark.browser,
            pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing"),
        ),
        id="answer-panel",
    ),
    pytest.param(
        ["render_bench.py", "--smoke"],
        ["== answer_html on n=5,000", "unclosed \\[", "old ratio", "target renderer ratio"],
        id="render",
    ),
    pytest.param(
        ["tools_bench.py", "--rows", "100000", "--repeat", "1"],
        ["== --tools df on 100,000 rows", "ratio", "correlation", "the frame as CSV"],
        id="tools",
    ),
]


@pytest.mark.parametrize(("command", "expected"), SMOKE_RUNS)
def test_benchmark_runs_in_smoke_mode(command: list[str], expected: list[str]) -> None:
    script, *flags = command
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,  # a smoke run on 2 busy cores (with suites beside it) took over 240 s
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for line in expected:
        assert line in done.stdout, f"{line!r} missing from:\n{done.stdout}"
