"""CPU time of ``%%step`` per reply vs a bare openai SDK loop over the same reply.

    python benchmarks/overhead_bench.py              # 10,000 chunks, 5 samples, and a kernel
    python benchmarks/overhead_bench.py --smoke      # 1,000 chunks, 2 samples

Why: whatever step-magic does on top of reading the stream (events, a worker thread,
coalescing, rendering) is paid per chunk, so it is compared with the least a notebook user
could write: the SDK stream concatenating ``delta.reasoning`` and ``delta.content``. Both read
the same reply from the same server, which runs in its own process so its CPU time is not
counted. Samples alternate (bare, step, bare, …) and the medians are compared:

- in-process: an IPython ``InteractiveShell`` with the terminal view writing to a null stdout,
  timed with ``time.process_time`` (all threads of this process);
- through a real kernel: the kernel process's CPU time (psutil, all its threads, including
  the one that sends iopub messages) for a ``%%step`` cell vs a cell running the bare loop.

Then one more in-process ``%%step`` run under cProfile (per-thread CPU clock, the main thread
and the stream's worker thread merged) shows where the time goes. Target: ratio ≤ 1.3 at
10,000 chunks.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import (
    API_KEY,
    ROOT,
    Kernel,
    Unmeasurable,
    bare_stream,
    ipython_dir,
    kernel,
    local_server,
    median,
    run,
    split,
    step_cell,
    table,
    verdict,
)

TARGET = 1.3
PROFILE_ROWS = 15


def cpu_seconds(task: Callable[[], object]) -> float:
    """Process CPU time (every thread) spent in ``task``."""
    start = time.process_time()
    task()
    return time.process_time() - start


def alternate(
    samples: int, first: Callable[[], float], second: Callable[[], float]
) -> tuple[float, float]:
    """Run both once to warm up, then ``samples`` times each, interleaved; medians."""
    first(), second()
    pairs = [(first(), second()) for _ in range(samples)]
    return median([a for a, _ in pairs]), median([b for _, b in pairs])


def shell() -> Any:
    """An IPython shell with step_magic loaded (the terminal view, as outside Jupyter)."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    os.environ["STEPFUN_API_KEY"] = API_KEY
    os.environ.pop("STEP_API_KEY", None)
    config = Config()
    config.HistoryManager.enabled = False  # nothing written into the throwaway IPYTHONDIR
    ip = InteractiveShell.instance(config=config)
    ip.run_line_magic("load_ext", "step_magic")
    return ip


def run_step(ip: Any, base_url: str) -> None:
    """One ``%%step`` cell, its terminal output thrown away; ``Unmeasurable`` if it failed."""
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        outcome = ip.run_cell(step_cell(base_url), store_history=False)
    if not outcome.success or ip.user_ns["_step"].status != "complete":
        raise Unmeasurable(f"%%step failed: {outcome.error_in_exec!r}")


def in_process(ip: Any, base_url: str, samples: int) -> tuple[float, float]:
    """Median CPU seconds of (bare loop, %%step) in this process."""
    return alternate(
        samples,
        lambda: cpu_seconds(lambda: bare_stream(base_url)),
        lambda: cpu_seconds(lambda: run_step(ip, base_url)),
    )


def kernel_cpu(session: Kernel, code: str) -> float:
    """CPU seconds the kernel process spent from sending ``code`` to being idle again."""
    import psutil

    process = psutil.Process(session.pid)
    before = process.cpu_times()
    session.execute(code)
    after = process.cpu_times()
    return float((after.user - before.user) + (after.system - before.system))


def in_kernel(base_url: str, samples: int) -> tuple[float, float]:
    """Median kernel CPU seconds of (bare-loop cell, %%step cell)."""
    with kernel(base_url) as session:
        session.execute("import _common")
        bare = f"_reply = _common.bare_stream({base_url!r})"
        return alternate(
            samples,
            lambda: kernel_cpu(session, bare),
            lambda: kernel_cpu(session, step_cell(base_url)),
        )


def profile_step(ip: Any, base_url: str) -> pstats.Stats:
    """cProfile of one ``%%step`` run: the main thread and every thread it starts (the stream
    worker), each on its own CPU clock, merged."""
    threads: list[cProfile.Profile] = []
    original = threading.Thread.run

    def profiled_run(thread: threading.Thread) -> None:
        profile = cProfile.Profile(time.thread_time)
        threads.append(profile)
        profile.runcall(original, thread)

    main = cProfile.Profile(time.thread_time)
    threading.Thread.run = profiled_run  # type: ignore[method-assign,assignment]
    try:
        main.runcall(run_step, ip, base_url)
    finally:
        threading.Thread.run = original  # type: ignore[method-assign]
    stats = pstats.Stats(main)
    for profile in threads:
        stats.add(profile)
    return stats


def where(file: str, line: int, name: str) -> str:
    """A short readable location for a profile entry."""
    if file == "~":
        return name
    path = Path(file)
    if path.is_relative_to(ROOT):
        short = str(path.relative_to(ROOT))
    elif "site-packages/" in file:
        short = file.split("site-packages/")[-1]
    else:
        short = path.name
    return f"{short}:{line}({name})"


def package(file: str) -> str:
    """Which code a profile entry belongs to: step_magic, a library, the stdlib, C builtins."""
    if file == "~":
        return "C builtins (called from all of these)"
    if Path(file).is_relative_to(ROOT / "step_magic"):
        return "step_magic"
    if "site-packages/" in file:
        return file.split("site-packages/")[-1].split("/")[0].removesuffix(".py")
    return "Python stdlib"


def package_table(stats: pstats.Stats) -> str:
    """Own CPU time summed per package: what step-magic adds vs what the SDK costs anyway."""
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for _, _, tt, _, _ in entries.values()) or 1.0
    shares: dict[str, float] = {}
    for (file, _, _), (_, _, tt, _, _) in entries.items():
        shares[package(file)] = shares.get(package(file), 0.0) + tt
    ranked = sorted(shares.items(), key=lambda item: item[1], reverse=True)
    return table(["code", "own %"], [(name, f"{tt / total:.0%}") for name, tt in ranked])


def profile_table(stats: pstats.Stats, *, by: str, rows: int) -> str:
    """Top ``rows`` entries by cumulative ("cum") or own ("self") CPU time."""
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for _, _, tt, _, _ in entries.values()) or 1.0
    column = 3 if by == "cum" else 2
    ranked = sorted(entries.items(), key=lambda item: item[1][column], reverse=True)[:rows]
    body = [
        (where(*func), f"{ct * 1e3:.0f}", f"{ct / total:.0%}", f"{tt * 1e3:.0f}", nc)
        for func, (_, nc, tt, ct, _) in ranked
    ]
    return table([f"function (by {by})", "cum ms", "cum %", "self ms", "calls"], body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=10_000, help="chunks per reply")
    parser.add_argument("--samples", type=int, default=5, help="samples of each, median kept")
    parser.add_argument("--no-kernel", action="store_true", help="skip the real-kernel rows")
    parser.add_argument("--smoke", action="store_true", help="1,000 chunks, 2 samples (CI)")
    args = parser.parse_args()
    if args.smoke:
        args.chunks, args.samples = 1_000, 2
    if args.chunks < 2 or args.samples < 1:
        parser.error("--chunks must be at least 2 and --samples at least 1")

    with local_server(*split(args.chunks)) as base_url, ipython_dir():
        ip = shell()
        rows = [("in-process (IPython shell)", *in_process(ip, base_url, args.samples))]
        if not args.no_kernel:
            rows.append(("real kernel (ipykernel)", *in_kernel(base_url, args.samples)))
        stats = profile_step(ip, base_url)

    print(f"== %%step CPU vs bare SDK loop: {args.chunks:,} chunks, median of {args.samples} ==")
    body = [
        (
            where_,
            f"{bare * 1e3:.0f}",
            f"{step * 1e3:.0f}",
            f"{bare / args.chunks * 1e6:.1f}",
            f"{(step - bare) / args.chunks * 1e6:.1f}",
            f"{step / bare:.2f}x",
        )
        for where_, bare, step in rows
    ]
    headers = ["where", "bare ms", "%%step ms", "bare µs/chunk", "added µs/chunk", "ratio"]
    print(table(headers, body))
    for where_, bare, step in rows:
        ratio = step / bare
        print(verdict(ratio <= TARGET, f"ratio ≤ {TARGET} ({where_})", f"{ratio:.2f}x"))
    print(f"\n== where %%step spends CPU: cProfile of one in-process run, top {PROFILE_ROWS} ==")
    print("(main thread and stream worker merged, per-thread CPU clock; profiling inflates ms)")
    print(profile_table(stats, by="cum", rows=PROFILE_ROWS))
    print("\n== own CPU time by package ==")
    print(package_table(stats))
    print("\n== largest own costs ==")
    print(profile_table(stats, by="self", rows=10))


if __name__ == "__main__":
    run(main)
