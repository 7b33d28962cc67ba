"""The kernel's own cost per call as one conversation grows, against a bare SDK loop.

    python benchmarks/session_bench.py              # 300 calls each
    python benchmarks/session_bench.py --smoke      # 40 calls each

Why: each call of a conversation sends the turns before it, and step-magic also records each
call in the history, renders it, and keeps the thread. If any of that grows with the length
of the session (a history row holding the whole thread, say), call 300 costs far more than
call 1. The baseline is what a notebook user would write: an openai SDK loop in the same
kernel that appends each turn to a list and sends the list, streaming the reply. Calls
alternate (``%%step``, bare, ``%%step``, …) against one server process; for each, the kernel
process's CPU time (psutil, every thread) is taken. The physical floor is the bare loop's
own growth: the request body grows with the conversation for both.

Reported: the mean CPU per call over the first and the last tenth of the calls, their ratio
(growth), for both, and the history file's size at the end. Target: step-magic's growth at
most 1.3x the bare loop's.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from statistics import mean

from _common import API_KEY, MODEL, kernel, local_server, run, table, verdict

TARGET = 1.3
WARM_UP = 3
BARE_SETUP = """
import openai
_bare_client = openai.OpenAI(base_url={base_url!r}, api_key={key!r}, max_retries=0)
_bare_thread = []

def _bare_ask(prompt):
    _bare_thread.append({{"role": "user", "content": prompt}})
    stream = _bare_client.chat.completions.create(
        model={model!r}, messages=_bare_thread, stream=True
    )
    answer = []
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                answer.append(choice.delta.content)
    _bare_thread.append({{"role": "assistant", "content": "".join(answer)}})
"""


def measure(calls: int) -> None:
    import psutil

    with (
        tempfile.TemporaryDirectory(prefix="step-bench-session-") as folder,
        local_server(reasoning_tokens=60, answer_tokens=40) as base_url,
    ):
        history = Path(folder) / "history.sqlite3"
        os.environ["STEP_MAGIC_HISTORY"] = str(history)
        with kernel(base_url) as session:
            session.execute(BARE_SETUP.format(base_url=base_url, key=API_KEY, model=MODEL))
            process = psutil.Process(session.pid)

            def cpu(code: str) -> float:
                before = process.cpu_times()
                session.execute(code)
                after = process.cpu_times()
                return (after.user - before.user) + (after.system - before.system)

            for number in range(WARM_UP):  # imports and first renders are not per-call costs
                session.execute(f"%%step --no-reasoning\nWarm-up {number}")
                session.execute(f"_bare_ask('Warm-up {number}')")
            step, bare = [], []
            for number in range(calls):
                question = f"Question {number}: what comes after {number}?"
                step.append(cpu(f"%%step --no-reasoning\n{question}"))
                bare.append(cpu(f"_bare_ask({question!r})"))
            turns = session.evaluate("len(_step.messages)")
        size = _checkpointed_size(history)
    tenth = max(calls // 10, 3)
    rows, growth = [], {}
    for name, samples in (("%%step", step), ("bare SDK loop", bare)):
        # means, not medians: the kernel's CPU clock ticks in 10 ms steps
        first, last = mean(samples[:tenth]), mean(samples[-tenth:])
        growth[name] = last / first
        rows.append(
            [name, f"{first * 1000:.1f} ms", f"{last * 1000:.1f} ms", f"{last / first:.2f}x"]
        )
    print(f"== kernel CPU per call over {calls} calls of one conversation "
          f"({turns} messages sent with the last)")  # fmt: skip
    print(table(["loop", f"first {tenth}", f"last {tenth}", "growth"], rows))
    print(
        f"history file after {calls} calls: {size / 1e6:.2f} MB ({size / calls:,.0f} bytes a call)"
    )
    ratio = growth["%%step"] / growth["bare SDK loop"]
    print(verdict(ratio <= TARGET, f"growth ≤ {TARGET}x the bare loop's", f"{ratio:.2f}x"))


def _checkpointed_size(history: Path) -> int:
    """The history file's size once its write-ahead log is folded in (WAL mode keeps recent
    pages in ``-wal`` beside it, whose size says more about checkpoints than about data)."""
    import sqlite3

    connection = sqlite3.connect(history)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return history.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--smoke", action="store_true", help="40 calls")
    args = parser.parse_args()
    measure(40 if args.smoke else args.calls)


if __name__ == "__main__":
    run(main)
