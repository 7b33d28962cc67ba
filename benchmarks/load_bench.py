"""What ``%load_ext step_magic`` costs in a fresh process, vs IPython alone (and a peer).

    python benchmarks/load_bench.py                                    # 15 samples each
    python benchmarks/load_bench.py --peer-python /tmp/peer/bin/python # also jupyter_ai_magics
    python benchmarks/load_bench.py --smoke                            # 3 samples

Why: every notebook that loads the extension pays this at startup, whether or not it ever
calls the model, so loading must not import openai, widgets or data libraries. Each sample is
a new interpreter that creates an ``InteractiveShell`` and then runs ``%load_ext`` (or
nothing, the baseline); samples alternate and medians are compared. Reported: the whole
process's wall time, the ``load_ext`` call timed inside the process, the modules it added,
and the ``-X importtime`` entries of what the load imported. With ``--peer-python``, the
same is measured for ``%load_ext jupyter_ai_magics`` with that interpreter (install it in a
throwaway venv: ``python -m venv /tmp/peer && /tmp/peer/bin/pip install jupyter-ai-magics``).
Target: under 50 ms of our own.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass

from _common import Unmeasurable, ipython_dir, median, run, table, verdict

TARGET_MS = 50.0
MARK = "--load_ext starts here--"
CHILD = f"""
import json, sys, time
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
before = len(sys.modules)
print({MARK!r}, file=sys.stderr, flush=True)
start = time.perf_counter()
if sys.argv[1]:
    ip.run_line_magic("load_ext", sys.argv[1])
seconds = time.perf_counter() - start
heavy = [name for name in ("openai", "ipywidgets", "pandas", "matplotlib") if name in sys.modules]
print(json.dumps({{"seconds": seconds, "modules": len(sys.modules) - before, "heavy": heavy}}))
"""
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


@dataclass(frozen=True)
class Sample:
    """One fresh process: its wall time and what it reported about the load."""

    wall: float
    load: float
    modules: int
    heavy: tuple[str, ...]


def sample(python: str, extension: str) -> Sample:
    """Start ``python``, create a shell, load ``extension`` ("" loads nothing)."""
    start = time.perf_counter()
    done = subprocess.run(
        [python, "-c", CHILD, extension], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise Unmeasurable(f"{python} could not load {extension or 'IPython'}: {done.stderr}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return Sample(wall, report["seconds"], report["modules"], tuple(report["heavy"]))


def compare(python: str, extension: str, samples: int) -> tuple[list[Sample], list[Sample]]:
    """(baseline, loaded) samples, alternating, after one warm-up of each."""
    sample(python, ""), sample(python, extension)
    pairs = [(sample(python, ""), sample(python, extension)) for _ in range(samples)]
    return [a for a, _ in pairs], [b for _, b in pairs]


def import_times(
    python: str, extension: str, rows: int
) -> tuple[float, list[tuple[str, str, str]]]:
    """Total own import time of what ``load_ext`` imported, and its top entries (cumulative)."""
    command = [python, "-X", "importtime", "-c", CHILD, extension]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    after = done.stderr.partition(MARK)[2]
    entries = [
        (int(own), int(cumulative), len(indent) // 2, name)
        for own, cumulative, indent, name in IMPORT_LINE.findall(after)
    ]
    if not entries:
        raise Unmeasurable(f"no -X importtime output for {extension}: {done.stderr[-500:]}")
    top = sorted(entries, key=lambda entry: entry[1], reverse=True)[:rows]
    body = [
        (f"{'  ' * depth}{name}", f"{cum / 1e3:.1f}", f"{own / 1e3:.1f}")
        for own, cum, depth, name in top
    ]
    return sum(own for own, *_ in entries) / 1e6, body


def summary(label: str, alone: list[Sample], loaded: list[Sample]) -> tuple[object, ...]:
    """One table row: medians, our own cost and the ratio to IPython alone."""
    base, full = median([s.wall for s in alone]), median([s.wall for s in loaded])
    load = median([s.load for s in loaded])
    heavy = ", ".join(sorted(set().union(*(s.heavy for s in loaded)))) or "none"
    return (
        label,
        f"{base * 1e3:.0f}",
        f"{full * 1e3:.0f}",
        f"{(full - base) * 1e3:.0f}",
        f"{load * 1e3:.1f}",
        f"{full / base:.2f}x",
        loaded[0].modules,
        heavy,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=15, help="processes of each kind")
    parser.add_argument("--peer-python", help="interpreter with jupyter-ai-magics installed")
    parser.add_argument("--peer-extension", default="jupyter_ai_magics")
    parser.add_argument("--smoke", action="store_true", help="3 samples")
    args = parser.parse_args()
    if args.smoke:
        args.samples = 3

    with ipython_dir():
        ours = compare(sys.executable, "step_magic", args.samples)
        imported, top = import_times(sys.executable, "step_magic", 12)
        peer = (
            compare(args.peer_python, args.peer_extension, args.samples)
            if args.peer_python
            else None
        )

    print(f"== %load_ext in a fresh process (ms, median of {args.samples}) ==")
    headers = ["extension", "IPython alone", "+ load_ext", "own (diff)", "load_ext call", "ratio"]
    rows = [summary("step_magic", *ours)]
    if peer is not None:
        rows.append(summary(f"{args.peer_extension} (peer)", *peer))
    print(table([*headers, "modules added", "heavy imports"], rows))
    own_ms = median([s.load for s in ours[1]]) * 1e3
    print(verdict(own_ms < TARGET_MS, f"< {TARGET_MS:.0f} ms of our own", f"{own_ms:.1f} ms"))
    if peer is None:
        print("peer not measured (pass --peer-python with jupyter-ai-magics installed)")
    else:
        ratio = median([s.load for s in peer[1]]) * 1e3 / own_ms
        print(f"peer load_ext / step_magic load_ext: {ratio:.1f}x")
    print(f"\n== -X importtime of %load_ext step_magic: {imported * 1e3:.1f} ms of imports ==")
    print(table(["module (by cumulative)", "cumulative ms", "self ms"], top))


if __name__ == "__main__":
    run(main)
