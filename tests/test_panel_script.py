"""The live panel's own script, run for real in Node.js: the message protocol recovers what
was sent before the script loaded, and the reasoning is cut into blocks exactly where the
saved form (``display/static.py``) cuts it, for any text split into any pieces.

Node runs the same module text the widget ships (``panel.script``), with its internal
functions exported for the test; a browser runs it in the browser tests.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from step_magic.display.panel import script
from step_magic.display.static import CHUNK, chunks

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed: the script's tests")

HARNESS = """
import * as panel from "./panel.mjs";
import { readFileSync, writeFileSync } from "node:fs";

function fakeModel(state) {
  const handlers = {};
  return {
    get: (key) => state[key],
    set: (key, value) => { state[key] = value; },
    on: (event, fn) => { (handlers[event] ||= []).push(fn); },
    off() {}, send() {},
    emit: (event, ...args) => (handlers[event] || []).forEach((fn) => fn(...args)),
  };
}

function cut(pieces) {  // the write loop of renderReasoning, without the DOM
  const blocks = [];
  let chunk = null;
  for (let text of pieces) {
    while (text) {
      if (chunk === null) chunk = "";
      const end = panel.chunkEnd(chunk, text);
      chunk += end === -1 ? text : text.slice(0, end);
      text = end === -1 ? "" : text.slice(end);
      if (end !== -1) { blocks.push(chunk); chunk = null; }
    }
  }
  if (chunk) blocks.push(chunk);
  return blocks;
}

const task = JSON.parse(readFileSync(process.argv[2], "utf8"));
const out = {};
if (task.protocol) {
  const state = { key: task.protocol.key, head: task.protocol.head };
  const model = fakeModel(state);
  panel.default.initialize({ model });
  for (const step of task.protocol.steps) {
    if (step.custom) model.emit("msg:custom", step.custom);
    if (step.head) { state.head = step.head; model.emit("change:head"); }
  }
  const store = panel.storeOf(model);
  out.protocol = { reasoning: store.reasoning, gap: store.gap };
}
if (task.cuts) out.cuts = task.cuts.map(cut);
writeFileSync(process.argv[3], JSON.stringify(out));
"""


def run_script(tmp_path: Path, task: dict[str, Any]) -> Any:
    module = script("protocol.js", "reasoning.js")
    (tmp_path / "panel.mjs").write_text(module + "\nexport { storeOf, chunkEnd };\n")
    (tmp_path / "run.mjs").write_text(HARNESS)
    (tmp_path / "task.json").write_text(json.dumps(task))
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(tmp_path / "run.mjs"), str(tmp_path / "task.json"), str(tmp_path / "out.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads((tmp_path / "out.json").read_text())


def message(n: int) -> dict[str, Any]:
    return {"n": n, "r": f"<{n}>"}


def test_a_closed_head_fills_what_was_sent_before_the_script_loaded(tmp_path: Path) -> None:
    """Loaded after messages 1 and 2 were sent: they come back with the closed head."""
    head = {"messages": [message(0)], "closed": False}
    steps = [{"custom": message(n)} for n in (3, 4, 5)]
    steps.append({"head": {"messages": [message(n) for n in range(6)], "closed": True}})
    steps.append({"custom": message(6)})
    got = run_script(tmp_path, {"protocol": {"key": "a", "head": head, "steps": steps}})
    assert got["protocol"] == {"reasoning": "<0><1><2><3><4><5><6>", "gap": 0}


def test_what_no_head_kept_is_said_to_be_missing_and_the_rest_goes_on(tmp_path: Path) -> None:
    head = {"messages": [message(0), message(1)], "closed": True}
    steps = [{"custom": message(n)} for n in (4, 5)]  # 2 and 3 were sent before it loaded
    got = run_script(tmp_path, {"protocol": {"key": "b", "head": head, "steps": steps}})
    assert got["protocol"] == {"reasoning": "<0><1><4><5>", "gap": 1}


def random_text(rng: random.Random) -> str:
    alphabet = ["a", "b", " ", "\n", "é", "😀", "\U0001d465", "\n\n"]  # an emoji, a maths x
    weights = [30, 20, 10, 1, 2, 2, 2, 1]
    size = rng.choice([100, CHUNK - 2, 2 * CHUNK + 3, 5 * CHUNK])
    return "".join(rng.choices(alphabet, weights, k=size))


def pieces_of(text: str, rng: random.Random) -> list[str]:
    cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(0, 40))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def test_the_live_blocks_are_the_saved_blocks_for_any_text_in_any_pieces(
    tmp_path: Path,
) -> None:
    rng = random.Random(28)
    texts = [random_text(rng) for _ in range(60)]
    texts += ["😀" * (CHUNK + 5), "a" * (2 * CHUNK - 1) + "😀" + "b" * 10, "\n" * (3 * CHUNK)]
    cases = [pieces_of(text, rng) for text in texts]
    got = run_script(tmp_path, {"cuts": cases})["cuts"]
    for text, pieces, live in zip(texts, cases, got, strict=True):
        assert "".join(pieces) == text
        assert live == chunks(text)
        assert not any("\ud800" <= block[-1:] <= "\udbff" for block in live)  # no half
