"""Time to the first visible reasoning token of ``%%step`` in a real kernel, minus the server's.

    python benchmarks/ttft_bench.py            # 3 fresh kernels (cold calls), 10 warm calls
    python benchmarks/ttft_bench.py --smoke    # 1 fresh kernel, 3 warm calls

Why: a user judges a reasoning model by how soon it visibly starts thinking. Measured from
sending the execute request (as a frontend does, over ZMQ) to the arrival of the first iopub
message carrying reasoning text: for ``%%step`` the live panel's custom widget message (its
script appends the text at once), for the bare loop a ``stream`` message.
The server's own time to first byte, measured with a raw ``http.client`` request in the same
run (interleaved with the calls), is subtracted: what is left is ours (plus the kernel's own
latency, shown on its own row as a ``print`` cell's time to first output).

The first call in a kernel imports openai and ipywidgets; it is reported apart from warm calls,
and again after a 1.5 s pause after ``%load_ext`` (the user typing the first prompt), during
which step-magic warms its call path in the background. The bare loop runs in kernels that
never load step-magic. Targets: under 50 ms of our own; the paused first call at most 0.35x
the bare loop's first call.
"""

from __future__ import annotations

import argparse
import http.client
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from _common import (
    API_KEY,
    HOUSEKEEPING,
    MODEL,
    PROMPT,
    Kernel,
    TimedRun,
    Unmeasurable,
    check_reply,
    kernel,
    local_server,
    median,
    run,
    step_cell,
    table,
    verdict,
)

TARGET_MS = 50.0
REASONING_TOKENS, ANSWER_TOKENS = 300, 100
Message = dict[str, Any]


def server_ttfb(base_url: str) -> float:
    """Seconds from sending a streamed request to the first body bytes, raw HTTP, new socket."""
    url = urlsplit(base_url)
    body = json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": True}
    )
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=30)
    try:
        start = time.perf_counter()
        connection.request("POST", f"{url.path}/chat/completions", body, headers)
        response = connection.getresponse()
        first = response.read1(64)
        elapsed = time.perf_counter() - start
    finally:
        connection.close()
    if response.status != 200 or not first:
        raise Unmeasurable(f"the server answered {response.status} to a raw request")
    return elapsed


def is_any(message: Message) -> bool:
    return True


def is_output(message: Message) -> bool:
    return message["msg_type"] not in HOUSEKEEPING


def is_text(message: Message) -> bool:
    if message["msg_type"] == "comm_msg":  # the live panel's appended reasoning
        return bool(message["content"]["data"].get("content", {}).get("r"))
    return message["msg_type"] == "stream" and bool(message["content"]["text"])


MILESTONES: dict[str, Callable[[Message], bool]] = {
    "first iopub (any)": is_any,
    "first output": is_output,
    "first reasoning text": is_text,
}


def milestones(run_: TimedRun) -> list[float]:
    """Seconds to each milestone of one execution, in ``MILESTONES`` order."""
    return [run_.first(accept) for accept in MILESTONES.values()]


def bare_call(base_url: str) -> str:
    """The baseline cell: the bare SDK loop printing each piece (stdout: a ``stream`` message)."""
    return f"import _common\n_ = _common.bare_stream({base_url!r}, sink=_common.print_now)"


CALLS: dict[str, Callable[[str], str]] = {"%%step": step_cell, "bare SDK loop": bare_call}
# After %load_ext, step-magic warms its call path in the background while the user types.
USER_PAUSE = 1.5
PAUSED = f"first call after a {USER_PAUSE:g} s pause"
PAUSED_RATIO = 0.35
FLOOR = "kernel floor: print('x')"


def client_seconds(base_url: str, samples: int = 5) -> float:
    """Median time to build an ``openai.OpenAI`` client (step-magic builds one per call).

    Runs inside the benchmark kernel: ``import ttft_bench`` works there (PYTHONPATH).
    """
    import openai

    times = []
    for _ in range(samples):
        start = time.perf_counter()
        openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0).close()
        times.append(time.perf_counter() - start)
    return median(times)


def medians(samples: list[list[float]]) -> list[float]:
    """Per-milestone medians of several executions."""
    return [median(column) for column in zip(*samples, strict=True)]


class Samples:
    """Milestones per row label, and the server TTFB samples interleaved with the calls."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.rows: dict[str, list[list[float]]] = {}
        self.ttfbs: list[float] = []

    def floor(self, session: Kernel) -> None:
        """The kernel's own latency: a ``print`` cell's time to its output."""
        self.rows.setdefault(FLOOR, []).append(milestones(session.execute("print('x')")))

    def call(self, session: Kernel, call: str, phase: str) -> None:
        """One call's milestones, then one server TTFB sample."""
        marks = milestones(session.execute(CALLS[call](self.base_url)))
        if call == "%%step":
            check_reply(session, REASONING_TOKENS + ANSWER_TOKENS)
        self.rows.setdefault(f"{call}, {phase}", []).append(marks)
        self.ttfbs.append(server_ttfb(self.base_url))


def measure(base_url: str, cold: int, warm: int) -> tuple[Samples, float]:
    """First calls in fresh kernels (each kind in its own), then warm calls in one kernel;
    also the time to build an openai client in that warm kernel."""
    samples = Samples(base_url)
    for _ in range(cold):
        for call in CALLS:  # the bare loop's kernel does not load step-magic (nor warm up)
            with kernel(base_url, load=call == "%%step") as session:
                samples.floor(session)
                samples.call(session, call, "first call")
            with kernel(base_url, load=call == "%%step") as session:
                time.sleep(USER_PAUSE)  # the user types the first prompt
                samples.floor(session)
                samples.call(session, call, PAUSED)
    with kernel(base_url) as session:
        samples.call(session, "%%step", "warm-up")
        for _ in range(warm):
            samples.floor(session)
            for call in CALLS:
                samples.call(session, call, "warm")
        client = session.evaluate(f"__import__('ttft_bench').client_seconds({base_url!r})")
    samples.rows.pop("%%step, warm-up")
    return samples, client


def report_row(label: str, samples: Samples, ttfb: float) -> tuple[object, ...]:
    """Milestones in ms, ours (text - server TTFB), and %%step against the bare loop."""
    marks = medians(samples.rows[label])
    kind, _, phase = label.partition(", ")
    ours = f"{(marks[-1] - ttfb) * 1e3:.1f}" if phase else "-"
    versus = "-"
    if kind == "%%step":
        bare = medians(samples.rows[f"bare SDK loop, {phase}"])[-1]
        versus = f"{(marks[-1] - bare) * 1e3:+.1f} ms, {marks[-1] / bare:.2f}x"
    count = len(samples.rows[label])
    return (f"{label} (n={count})", *(f"{m * 1e3:.1f}" for m in marks), ours, versus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=3, help="fresh kernels per kind of call")
    parser.add_argument("--warm", type=int, default=10, help="warm calls of each kind")
    parser.add_argument("--smoke", action="store_true", help="1 fresh kernel each, 3 warm calls")
    args = parser.parse_args()
    if args.smoke:
        args.cold, args.warm = 1, 3

    with local_server(REASONING_TOKENS, ANSWER_TOKENS) as base_url:
        server_ttfb(base_url)  # warm the server's own code paths
        samples, client = measure(base_url, args.cold, args.warm)
    ttfb = median(samples.ttfbs)

    print(f"== time to first visible token (ms, median; server TTFB {ttfb * 1e3:.1f} ms) ==")
    headers = ["call (samples)", *MILESTONES, "text - TTFB", "%%step vs bare"]
    print(table(headers, [report_row(label, samples, ttfb) for label in sorted(samples.rows)]))
    print(f"of which openai.OpenAI() construction: {client * 1e3:.1f} ms (one per call)")
    for phase in ("first call", "warm"):
        ours = (medians(samples.rows[f"%%step, {phase}"])[-1] - ttfb) * 1e3
        target = f"{phase} < {TARGET_MS:.0f} ms of our own"
        print(verdict(ours < TARGET_MS, target, f"{ours:.1f} ms"))
    paused = medians(samples.rows[f"%%step, {PAUSED}"])[-1]
    bare = medians(samples.rows["bare SDK loop, first call"])[-1]
    ratio = paused / bare
    target = f"{PAUSED} <= {PAUSED_RATIO}x the bare loop's first call"
    print(verdict(ratio <= PAUSED_RATIO, target, f"{ratio:.2f}x"))


if __name__ == "__main__":
    run(main)
