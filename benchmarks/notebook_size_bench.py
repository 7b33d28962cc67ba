"""Size of a saved notebook holding one long ``%%step`` reply, and how often its text is in it.

    python benchmarks/notebook_size_bench.py          # ~100,000-char reasoning, ~10,000 answer
    python benchmarks/notebook_size_bench.py --smoke  # ~10,000 and ~1,000

Why: a reply's text should be stored once, in its static form. nbclient (like papermill)
saves the state of every widget the kernel opened, closed ones included, so a live panel
left holding the reasoning would store it a second time in ``metadata.widgets`` (render.py
clears finished Output widgets for that reason). Executed with nbclient, saved with nbformat;
reported: bytes on disk vs the text, where the bytes are, and how many times three slices of
the reasoning (start, middle, end) occur in the file. The reasoning must occur exactly once.
The answer is stored twice by design (``text/markdown`` and its ``text/plain`` fallback).

Tokens are words of about six characters: a short probe reply measures the server's
characters per token, and the lengths asked for are derived from it.
"""

from __future__ import annotations

import argparse
import html as html_module
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from _common import (
    API_KEY,
    PROMPT,
    Unmeasurable,
    bare_stream,
    local_server,
    run,
    step_cell,
    table,
    verdict,
)

PROBE_TOKENS = 2_000
SLICE_CHARS = 60
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def chars_per_token(reasoning: bool) -> float:
    """Characters per token of the server's reasoning (or answer) filler, from a probe reply."""
    tokens = (PROBE_TOKENS, 1) if reasoning else (1, PROBE_TOKENS)
    with local_server(*tokens) as url:
        text = bare_stream(url)[0 if reasoning else 1]
    return len(text) / PROBE_TOKENS


def execute(base_url: str, path: Path) -> Any:
    """Run ``%load_ext`` and one ``%%step`` cell with nbclient; save and reload the notebook."""
    import nbformat
    from nbclient import NotebookClient

    cells = ["%load_ext step_magic", step_cell(base_url)]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    os.environ["STEPFUN_API_KEY"] = API_KEY
    os.environ.pop("STEP_API_KEY", None)
    NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    nbformat.write(notebook, path)
    return nbformat.read(path, as_version=4)


def reply_text(notebook: Any) -> tuple[str, str]:
    """The reasoning and the answer as saved (the answer's Markdown copy, unescaped)."""
    outputs = notebook.cells[1].outputs
    if len(outputs) != 3:
        raise Unmeasurable(f"expected reasoning, answer and footer, got {len(outputs)} outputs")
    answer = html_module.unescape(outputs[1]["data"]["text/markdown"]).replace("\u200b", "")
    return reasoning_from_html(outputs[0]["data"]["text/html"]), answer


def reasoning_from_html(html: str) -> str:
    """The reasoning text inside the saved ``<details>`` block, unescaped."""
    match = re.search(r"<details[^>]*>.*?</summary>(.*)</details>", html, re.DOTALL)
    if match is None:
        raise Unmeasurable("no <details> block in the saved reasoning output")
    inner = re.sub(r"<[^>]+>", "", match.group(1))
    return html_module.unescape(inner)


def slices(text: str) -> list[str]:
    """Three slices (start, middle, end) of plain words, identical in JSON and in HTML."""
    found = []
    for start in (0, len(text) // 2, max(len(text) - 4 * SLICE_CHARS, 0)):
        match = re.compile(rf"[A-Za-z ,.]{{{SLICE_CHARS}}}").search(text, start)
        if match is None:
            raise Unmeasurable("the reasoning has no plain slice to look for")
        found.append(match.group(0))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reasoning-chars", type=int, default=100_000)
    parser.add_argument("--answer-chars", type=int, default=10_000)
    parser.add_argument("--smoke", action="store_true", help="10,000 and 1,000 characters")
    args = parser.parse_args()
    if args.smoke:
        args.reasoning_chars, args.answer_chars = 10_000, 1_000

    reasoning_tokens = round(args.reasoning_chars / chars_per_token(reasoning=True))
    answer_tokens = round(args.answer_chars / chars_per_token(reasoning=False))
    server = local_server(reasoning_tokens, answer_tokens)
    with tempfile.TemporaryDirectory() as folder, server as url:
        path = Path(folder) / "long-reply.ipynb"
        notebook = execute(url, path)
        raw = path.read_text(encoding="utf-8")
    reasoning, answer = reply_text(notebook)
    text = len(reasoning) + len(answer)
    widgets = len(json.dumps(notebook.metadata.get("widgets", {})))
    step_outputs = len(json.dumps(notebook.cells[1].outputs))

    print(f"== saved notebook: {PROMPT!r}, {reasoning_tokens:,} + {answer_tokens:,} tokens ==")
    rows = [
        ("reasoning + answer text", f"{text:,}", "1.00x"),
        ("whole .ipynb on disk", f"{len(raw.encode()):,}", f"{len(raw.encode()) / text:.2f}x"),
        ("  %%step cell outputs (JSON)", f"{step_outputs:,}", f"{step_outputs / text:.2f}x"),
        ("  metadata.widgets (JSON)", f"{widgets:,}", f"{widgets / text:.2f}x"),
    ]
    print(table(["what", "bytes", "vs text"], rows))
    counts = [raw.count(piece) for piece in slices(reasoning)]
    answer_counts = [raw.count(piece) for piece in slices(answer)]
    print(f"reasoning {len(reasoning):,} chars, answer {len(answer):,} chars")
    print(f"reasoning slices (start, middle, end) found {counts} times in the file")
    print(f"answer slices found {answer_counts} times (text/html + text/markdown)")
    print(verdict(counts == [1, 1, 1], "reasoning stored once", f"{counts}"))


if __name__ == "__main__":
    run(main)
