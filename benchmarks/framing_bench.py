"""How reading a stream scales with the size of one event, and of the prompt.

Two promises of issue 26, measured side by side in one run instead of asserted in timed
tests:

- the SSE decoder of the Messages and Responses APIs (``wire.sse.SSEDecoder``) is linear in
  the size of one ``data:`` line fed in 4 KB network reads. Baseline: the openai SDK's own
  decoder (``openai._streaming.SSEDecoder``, linear since 2.x), on the same bytes. The floor:
  one ``bytes.decode`` of the whole line. Target: the ratio of 4n to n stays under 6 (a
  quadratic decoder gives ~16), and within 3x of the SDK's at 4n.
- a prompt of the whole context (1,024,000 characters) goes through the chat path in time
  linear in its size. Baseline: a quarter of it, in the same run. Target: ratio under 8.

    python benchmarks/framing_bench.py            # 1 MB and 4 MB lines
    python benchmarks/framing_bench.py --smoke    # 64 KB and 256 KB
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from _common import API_KEY, MODEL, local_server, verdict

READ = 4096


def line_of(chars: int) -> bytes:
    return b'data: {"type": "content_block_delta", "delta": {"text": "' + b"a" * chars + b'"}}\n\n'


def ours(data: bytes) -> int:
    from step_magic.wire.sse import SSEDecoder

    decoder = SSEDecoder()
    count = 0
    for start in range(0, len(data), READ):
        count += len(decoder.feed(data[start : start + READ]))
    return count + len(decoder.finish())


def sdk(data: bytes) -> int:
    from openai._streaming import SSEDecoder

    pieces = (data[start : start + READ] for start in range(0, len(data), READ))
    return sum(1 for _ in SSEDecoder().iter_bytes(pieces))


def floor(data: bytes) -> int:
    return len(data.decode("utf-8")) and 1


def best(run: Callable[[bytes], int], data: bytes, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        assert run(data) == 1
        times.append(time.perf_counter() - started)
    return min(times)


def prompt_seconds(base_url: str, chars: int, repeat: int) -> float:
    from step_magic.core.request import build_request
    from step_magic.core.settings import Settings
    from step_magic.wire.chatwire import ReplyStream

    settings = Settings(MODEL, base_url, API_KEY, timeout=120)
    request = build_request(settings, ("word " * (chars // 5 + 1))[:chars])
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        list(ReplyStream(settings, request))
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes, one repeat")
    args = parser.parse_args()
    small = 64_000 if args.smoke else 1_000_000
    repeat = 1 if args.smoke else 3
    print(f"== one SSE line in {READ:,}-byte reads (best of {repeat})")
    print(f"{'decoder':<28}{'n':>12}{'4n':>12}{'4n/n':>8}")
    figures = {}
    for name, run in (("step-magic wire.sse", ours), ("openai SDK (baseline)", sdk),
                      ("bytes.decode (floor)", floor)):  # fmt: skip
        run(line_of(10))  # warm-up: the imports
        one, four = (best(run, line_of(size), repeat) for size in (small, 4 * small))
        figures[name] = (one, four)
        print(f"{name:<28}{one * 1000:>10.1f}ms{four * 1000:>10.1f}ms{four / one:>8.1f}")
    one, four = figures["step-magic wire.sse"]
    print(verdict(four / one < 6, "decoder 4n/n < 6", f"{four / one:.1f}"))
    versus = four / figures["openai SDK (baseline)"][1]
    print(verdict(versus < 3, "within 3x of the SDK at 4n", f"{versus:.2f}x"))
    chars = 64_000 if args.smoke else 1_024_000
    with local_server(reasoning_tokens=5, answer_tokens=5) as base_url:
        prompt_seconds(base_url, 1_000, 1)  # warm-up: imports, first connection
        quarter = prompt_seconds(base_url, chars // 4, repeat)
        full = prompt_seconds(base_url, chars, repeat)
    print(f"== a prompt through the chat path (median of {repeat})")
    print(f"{chars // 4:>10,} chars {quarter * 1000:>8.1f} ms")
    print(f"{chars:>10,} chars {full * 1000:>8.1f} ms   ratio {full / quarter:.1f}")
    print(verdict(full / quarter < 8, "prompt 4x size < 8x time", f"{full / quarter:.1f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
