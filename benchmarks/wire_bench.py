"""What a ``%%step`` reply costs on the wire: iopub messages and bytes vs the text size.

    python benchmarks/wire_bench.py          # 1k, 10k, 100k chunks; paced 3k; naive cells at 3k
    python benchmarks/wire_bench.py --smoke  # 1k, 5k chunks; paced 300; naive cells at 300

Why: every iopub message travels kernel → Jupyter server → browser and is stored by the
frontend, so a panel that sends one message per chunk, or re-sends what it already sent,
makes long replies slow or quadratic. Counted through a real kernel: every iopub message of
the cell but busy/idle; bytes = JSON of the content plus binary buffers. Targets: messages
bounded by ~20 per second of streaming plus a constant (the constant is a 2-chunk reply's
count), bytes within 3x of the text in all, and the streaming part (every message before the
static form replaces the live panel) within 1.3x of it from 10k chunks: each character
crosses the wire about once while it streams, then once more in the saved form. The
unpaced server streams thousands of chunks a second, far faster than a model, so one more
reply paced at ``--rate`` tokens/s shows the message rate at a model's speed.

Side by side, in the same kernel, over the same SDK stream: the naive approaches a notebook
author would write first, ``Output.append_stdout`` per chunk (ipywidgets re-sends the whole
outputs list each time) and ``with out: print(...)`` per chunk.
"""

from __future__ import annotations

import argparse
import itertools
from collections import Counter
from dataclasses import dataclass

from _common import (
    Kernel,
    TimedRun,
    check_reply,
    kernel,
    local_server,
    message_bytes,
    run,
    split,
    step_cell,
    table,
    verdict,
)

RATE_TARGET = 20.0
BYTES_TARGET = 3.0
LIVE_TARGET = 1.3  # each character crosses the wire about once while it streams
NAIVE = {
    "Output.append_stdout per chunk": "_common.bare_stream({url!r}, sink=_out.append_stdout)",
    "with out: print() per chunk": "_common.bare_stream({url!r}, sink=_common.print_into(_out))",
}
NAIVE_SETUP = "import _common, ipywidgets\n_out = ipywidgets.Output()\ndisplay(_out)\n"


@dataclass(frozen=True)
class Cost:
    """One reply's wire cost; ``seconds`` from sending the cell to its last message."""

    label: str
    chunks: int
    text: int
    seconds: float
    messages: int
    bytes: int
    kinds: Counter[str]
    kind_bytes: Counter[str]
    live: int = 0  # bytes before the static form replaced the live panel: the streaming

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def wire(label: str, chunks: int, run_: TimedRun, text: int) -> Cost:
    """The cost of one executed cell, as the client received it."""
    seconds = run_.arrivals[-1][0] - run_.sent
    kinds: Counter[str] = Counter()
    kind_bytes: Counter[str] = Counter()
    for message in run_.outputs:
        kinds[message["msg_type"]] += 1
        kind_bytes[message["msg_type"]] += message_bytes(message)
    total = sum(kind_bytes.values())
    types = [message["msg_type"] for message in run_.outputs]
    end = types.index("update_display_data") if "update_display_data" in types else len(types)
    live = sum(message_bytes(message) for message in run_.outputs[:end])
    return Cost(label, chunks, text, seconds, len(run_.outputs), total, kinds, kind_bytes, live)


def step_cost(session: Kernel, chunks: int, rate: float = 0) -> Cost:
    """One ``%%step`` reply of ``chunks`` chunks, on its own server (paced at ``rate``)."""
    with local_server(*split(chunks), tokens_per_second=rate) as url:
        run_ = session.execute(step_cell(url))
    text, _ = check_reply(session, chunks)
    label = f"%%step at {rate:.0f} tokens/s" if rate else "%%step"
    return wire(label, chunks, run_, text)


def naive_costs(session: Kernel, chunks: int) -> list[Cost]:
    """The naive cells and ``%%step`` at the same size, over the same server."""
    costs = []
    with local_server(*split(chunks)) as url:
        for label, loop in NAIVE.items():
            run_ = session.execute(NAIVE_SETUP + "_text = " + loop.format(url=url))
            text = session.evaluate("len(_text[0]) + len(_text[1])")
            costs.append(wire(label, chunks, run_, text))
    return [step_cost(session, chunks), *costs]


def row(cost: Cost, reference: Cost | None = None) -> tuple[object, ...]:
    """A table row; ``reference`` adds the ratios to %%step at the same size."""
    versus: tuple[str, ...] = ()
    if reference is not None:
        versus = (
            f"{cost.messages / reference.messages:.1f}x",
            f"{cost.bytes / reference.bytes:.1f}x",
        )
    return (
        cost.label,
        f"{cost.chunks:,}",
        f"{cost.text:,}",
        f"{cost.seconds:.2f}",
        f"{cost.messages:,}",
        f"{cost.rate:.0f}",
        f"{cost.bytes:,}",
        f"{cost.bytes / cost.text:.2f}",
        f"{cost.live / cost.text:.2f}",
        *versus,
    )


HEADERS = ["cell", "chunks", "text chars", "seconds", "messages", "msg/s", "bytes", "bytes/text",
           "live bytes/text"]  # fmt: skip


def report_sizes(constant: Cost, costs: list[Cost]) -> None:
    """The %%step table, its growth between sizes, the verdicts and the message types."""
    print(f"== %%step on the wire (a 2-chunk reply, the constant: {constant.messages} messages) ==")
    growth = ["-"]
    for small, large in itertools.pairwise(costs):
        if large.label != small.label:
            growth.append("-")
            continue
        growth.append(f"{large.bytes / small.bytes:.1f}x for {large.text / small.text:.1f}x text")
    rows = [(*row(cost), extra) for cost, extra in zip(costs, growth, strict=True)]
    print(table([*HEADERS, "bytes growth"], rows))
    for cost in costs:
        rate = (cost.messages - constant.messages) / cost.seconds
        target = f"≤ {RATE_TARGET:.0f} msg/s of streaming + constant"
        measured = f"{cost.label}, {cost.chunks:,} chunks: {rate:.1f} msg/s"
        print(verdict(rate <= RATE_TARGET, target, measured))
    for cost in costs:
        ratio, beyond = cost.bytes / cost.text, (cost.bytes - constant.bytes) / cost.text
        measured = (
            f"{cost.label}, {cost.chunks:,} chunks: {ratio:.2f}x, {beyond:.2f}x beyond the constant"
        )
        print(verdict(ratio <= BYTES_TARGET, f"bytes ≤ {BYTES_TARGET:.0f}x text", measured))
    for cost in costs:
        live = cost.live / cost.text
        measured = f"{cost.label}, {cost.chunks:,} chunks: {live:.2f}x"
        target = f"streaming bytes ≤ {LIVE_TARGET}x text from 10k chunks"
        print(verdict(live <= LIVE_TARGET or cost.chunks < 10_000, target, measured))
    everything = [constant, *costs]
    kinds = sorted(set().union(*(c.kinds for c in everything)))
    print("\nmessages / kilobytes by type:")
    rows = [
        (c.label, f"{c.chunks:,}", *(f"{c.kinds[k]} / {c.kind_bytes[k] / 1e3:.1f}" for k in kinds))
        for c in everything
    ]
    print(table(["cell", "chunks", *kinds], rows))


def report_naive(naive: list[Cost]) -> None:
    """The naive cells next to %%step at the same size."""
    print(f"\n== naive cells vs %%step, same kernel, same stream: {naive[0].chunks:,} chunks ==")
    headers = [*HEADERS, "messages vs %%step", "bytes vs %%step"]
    print(table(headers, [row(cost, naive[0]) for cost in naive]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--naive-chunks", type=int, default=3_000)
    parser.add_argument("--paced", type=int, default=3_000, help="chunks of the paced reply")
    parser.add_argument("--rate", type=float, default=300, help="tokens/s of the paced reply")
    parser.add_argument("--smoke", action="store_true", help="1k, 5k; naive 300; paced 300")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.naive_chunks, args.paced = [1_000, 5_000], 300, 300

    with kernel() as session:
        step_cost(session, 1_000)  # warm-up: imports and first-call costs
        constant = step_cost(session, 2)
        costs = [step_cost(session, chunks) for chunks in args.sizes]
        costs.append(step_cost(session, args.paced, args.rate))
        naive = naive_costs(session, args.naive_chunks)
    report_sizes(constant, costs)
    report_naive(naive)


if __name__ == "__main__":
    run(main)
