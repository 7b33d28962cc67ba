"""Hostile answers through a real kernel: nothing fetched, nothing lost, nothing left open.

Each answer comes from a cassette the local server replays, so the kernel renders exactly the
text an attacker (or an unlucky model) wrote, and we read what a frontend would receive.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from step_magic.core.cassette import Cassette, RecordedReply
from step_magic.core.request import ChatRequest
from step_magic.server import LocalServer

PROMPT = "Say something odd"
TRACKER = "http://tracker.example/t.png?id=who-opened-this"


def serve_answer(server: LocalServer, tmp_path: Path, answer: str) -> None:
    """Make the server answer ``PROMPT`` (with ``--no-memory``) with exactly ``answer``."""
    cassette = tmp_path / "answer.jsonl"
    request = ChatRequest("step-3.7-flash", ({"role": "user", "content": PROMPT},))
    reply = RecordedReply("Thinking it over.", answer, "stop", None, None, None)
    Cassette(cassette).store(request.cache_key(), request, reply)
    server.config.cassette = str(cassette)


def every_html(messages: list[dict[str, Any]]) -> str:
    """All HTML a frontend would insert, live (widget values) and final (bundles)."""
    found = []
    for message in messages:
        data = message["content"].get("data", {})
        state = data.get("state", {}) if "comm_id" in message["content"] else {}
        found += [state.get("value"), data.get("text/html"), data.get("text/markdown")]
    return "\n".join(text for text in found if isinstance(text, str))


def last_answer(run: Any) -> dict[str, Any]:
    return next(b for b in reversed(run.final_outputs().values()) if "step-magic-answer" in str(b))


def kernel_value(kernel: Any, expression: str) -> Any:
    """``expression`` evaluated in the kernel, as JSON."""
    run = kernel.execute(f"import json; print(json.dumps({expression}))")
    assert run.error() is None, run.error()
    return json.loads(run.stdout())


def test_a_remote_image_is_never_loaded_live_or_saved(
    kernel: Any, server: LocalServer, tmp_path: Path
) -> None:
    serve_answer(server, tmp_path, f"The chart:\n\n![sales chart]({TRACKER})\n\nDone.")
    run = kernel.execute(f"%%step --no-memory\n{PROMPT}", timeout=120)
    assert run.error() is None
    sent = every_html(run.messages)
    assert "<img" not in sent
    assert "![sales chart](" not in sent  # the Markdown copy holds no image syntax either
    html = last_answer(run)["text/html"]
    assert f'<a href="{TRACKER}" rel="noreferrer noopener">' in html.replace("&amp;", "&")
    assert "[image: sales chart — tracker.example]" in html


def test_remote_images_load_when_the_cell_asks_for_them(
    kernel: Any, server: LocalServer, tmp_path: Path
) -> None:
    serve_answer(server, tmp_path, f"![sales chart]({TRACKER})")
    run = kernel.execute(f"%%step --no-memory --remote-images\n{PROMPT}", timeout=120)
    assert run.error() is None
    assert re.search(r'<img src="http://tracker\.example/t\.png', last_answer(run)["text/html"])
    assert kernel_value(kernel, "_step.remote_images") is True


def test_placeholder_lookalikes_are_shown_as_written(
    kernel: Any, server: LocalServer, tmp_path: Path
) -> None:
    answer = "Literal STEPMAGICMATH7END, then $x^2$ and STEPMAGICMATH0END."
    serve_answer(server, tmp_path, answer)
    run = kernel.execute(f"%%step --no-memory\n{PROMPT}", timeout=120)
    assert run.error() is None
    assert (
        "<p>Literal STEPMAGICMATH7END, then $x^2$ and STEPMAGICMATH0END.</p>"
        in (last_answer(run)["text/html"])
    )


def test_a_json_bomb_fails_in_one_line_and_keeps_the_reply(
    kernel: Any, server: LocalServer, tmp_path: Path
) -> None:
    bomb = "[" * 100_000
    serve_answer(server, tmp_path, bomb)
    run = kernel.execute(f"%%step --no-memory --format json\n{PROMPT}", timeout=120)
    error = run.error()
    assert error is not None
    assert error["traceback"] == [
        "\x1b[0;31mAnswerFormatError\x1b[0m: --format json: the answer is not valid JSON "
        "(it is nested too deeply to read)"
    ]
    assert any(bundle.get("text/plain") == bomb for bundle in run.final_outputs().values())
    assert kernel_value(kernel, "len(_step.answer)") == 100_000
    logged = kernel_value(
        kernel,
        "[(c.status, len(c.answer)) for c in "
        "__import__('step_magic.memory.history', fromlist=['History']).History().recent(1)]",
    )
    assert logged == [["complete", 100_000]]


@pytest.mark.slow
def test_open_widget_comms_stay_flat_over_300_calls(kernel: Any, server: LocalServer) -> None:
    count = "len(get_ipython().kernel.comm_manager.comms)"
    call = "get_ipython().run_cell_magic('step', '--no-memory', 'Say hi')"
    kernel.execute(call, timeout=120)
    before = kernel_value(kernel, count)
    run = kernel.execute(f"for _ in range(300):\n    {call}", timeout=600)
    assert run.error() is None
    assert len(run.of_type("comm_open")) >= 300 * 6  # every call did open its widgets
    assert kernel_value(kernel, count) == before
