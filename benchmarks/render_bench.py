"""Rendering hostile answers: time per size, four times the text, side by side with prose.

    python benchmarks/render_bench.py            # 30 KB and 120 KB of each pattern
    python benchmarks/render_bench.py --smoke    # 5 KB and 20 KB

Why: the answer is rendered in the kernel's main thread, where a slow regular expression
cannot be interrupted by Ctrl-C. A quadratic renderer turned 120 KB of ``\\[a`` into 26 s.
For each adversarial pattern (unclosed maths openers, image and link openers, emphasis
runs) the full ``answer_html`` is timed at size n and 4n; linear work gives a ratio near 4,
quadratic near 16. The old maths expression is timed beside the scanner that replaced it,
at n/4 and n (4n would take minutes), and ordinary prose of the same size is a baseline.
Target: every ratio of the renderer under 6.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

from _common import ROOT, median, run, table, verdict

sys.path.insert(0, str(ROOT))
from step_magic.display.markdown import answer_html
from step_magic.display.maths import maths_spans

OLD_MATHS = re.compile(
    r"\$\$.+?\$\$|\\\[.+?\\\]|(?<![\\$\w])\$[^\s$][^$\n]*?(?<![\s\\])\$(?!\w)", re.S
)
PATTERNS = {
    "prose": "The revenue dips in March. ",
    "unclosed \\[": "\\[a",
    "unclosed $$": "$$a",
    "lone $ per line": "$a \n",
    "image openers ![": "![a",
    "link openers [a](": "[a](",
    "emphasis *a_": "*a_",
    "backticks": "`a",
}


def seconds(function: object, text: str, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function(text)  # type: ignore[operator]
        samples.append(time.perf_counter() - started)
    return median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small sizes, one sample")
    options = parser.parse_args()
    small = 5_000 if options.smoke else 30_000
    repeat = 1 if options.smoke else 3
    answer_html("$x$ ```python\nx\n```")  # imports and parser set-up are not rendering
    rows, ratios = [], []
    for name, unit in PATTERNS.items():
        texts = [unit * (size // len(unit)) for size in (small // 4, small, 4 * small)]
        renders = [seconds(answer_html, text, repeat) for text in texts[1:]]
        scan = seconds(lambda t: list(maths_spans(t)), texts[2], repeat)
        old = [seconds(lambda t: list(OLD_MATHS.finditer(t)), text, 1) for text in texts[:2]]
        ratio = renders[1] / max(renders[0], 1e-6)
        ratios.append(ratio)
        rows.append(
            [name, f"{renders[0]:.3f}", f"{renders[1]:.3f}", f"{ratio:.1f}", f"{scan:.4f}",
             f"{old[0]:.3f}", f"{old[1]:.3f}", f"{old[1] / max(old[0], 1e-6):.1f}"]
        )  # fmt: skip
    print(f"== answer_html on n={small:,} and 4n chars of each pattern (seconds)")
    headers = ["pattern", "n", "4n", "ratio", "scan 4n", "old n/4", "old n", "old ratio"]
    print(table(headers, rows))
    worst = max(ratios[1:])  # prose renders in microseconds: its ratio is noise
    print(verdict(worst < 6, "renderer ratio under 6", f"worst ratio {worst:.1f}"))


if __name__ == "__main__":
    run(main)
