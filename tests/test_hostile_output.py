"""Whatever the model writes, nothing it wrote can run in the page, live or saved.

The local server serves a recorded reply full of hostile and odd text (a cassette), and a real
kernel renders it; we inspect every message a frontend would receive.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from step_magic.core.cassette import Cassette, RecordedReply
from step_magic.core.request import ChatRequest
from step_magic.server import LocalServer

PROMPT = "Say something odd"
HUGE_LINE = "A" * 1_000_000
REASONING = (
    "<script>window.__pwned=1</script></details><!-- comment --><img src=x onerror=alert(1)>"
    "\x00\x07 NUL and bell, a lone surrogate \ud800, RTL \u202eevil\u202c שלום عربي\n\n" + HUGE_LINE
)
ANSWER = (
    '# Title\n\n<script>window.__pwned=2</script>\n\n<img src=x onerror="alert(1)">\n\n'
    "[click me](javascript:alert(1))\n\n<details><summary>x</summary>inner</details>\n\n"
    "```html\n<script>shown as code</script>\n```\n\nInline `<b>code</b>` and a NUL \x00.\n"
)


@pytest.fixture
def hostile(kernel: Any, server: LocalServer, tmp_path: Path) -> list[dict[str, Any]]:
    cassette = tmp_path / "hostile.jsonl"
    request = ChatRequest("step-3.7-flash", ({"role": "user", "content": PROMPT},))
    reply = RecordedReply(REASONING, ANSWER, "stop", None, None, None)
    Cassette(cassette).store(request.cache_key(), request, reply)
    server.config.cassette = str(cassette)
    run = kernel.execute(f"%%step --no-memory\n{PROMPT}", timeout=120)
    assert run.error() is None
    return run.messages


def html_sent(messages: list[dict[str, Any]]) -> list[str]:
    """Every piece of HTML the frontend would insert: what the live panel's script puts in
    as HTML (``b`` and ``t`` of its messages, also as kept in ``head``), widget values and
    text/html bundles."""
    found = []
    for message in messages:
        content = message["content"]
        data = content.get("data", {}) if "comm_id" in content else {}
        state = data.get("state", {})
        if isinstance(state.get("value"), str):
            found.append(state["value"])
        panel = [data.get("content", {}), *state.get("head", {}).get("messages", [])]
        found += [piece.get(key, "") for piece in panel for key in ("b", "t")]
        found.append(content.get("data", {}).get("text/html", "") if "data" in content else "")
    return [html for html in found if html]


def panel_text(messages: list[dict[str, Any]]) -> str:
    """The reasoning the live panel's script was sent (it inserts it as text)."""
    return "".join(
        m["content"]["data"].get("content", {}).get("r", "")
        for m in messages
        if m["msg_type"] == "comm_msg"
    )


def markdown_sent(messages: list[dict[str, Any]]) -> list[str]:
    return [
        m["content"]["data"]["text/markdown"]
        for m in messages
        if m["msg_type"] in ("display_data", "update_display_data")
        and "text/markdown" in m["content"]["data"]
    ]


def outside_code(markdown: str) -> str:
    without_fences = re.sub(r"```.*?```", "", markdown, flags=re.S)
    return re.sub(r"`[^`]*`", "", without_fences)


def test_no_html_we_send_contains_live_markup_from_the_model(
    hostile: list[dict[str, Any]],
) -> None:
    for html in html_sent(hostile):
        assert "<script" not in html
        assert "<img" not in html
        assert "<!--" not in html
        assert "\x00" not in html


def test_the_saved_reasoning_block_is_escaped_and_whole(hostile: list[dict[str, Any]]) -> None:
    details = next(h for h in html_sent(hostile) if h.startswith("<details"))
    assert details.count("</details>") == 1
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;&lt;/details&gt;" in details
    assert "\ufffd" in details  # NUL, bell and the lone surrogate became U+FFFD
    assert "\u202eevil\u202c שלום عربي" in details  # real text is kept as it is
    # the huge line is laid out in blocks (see static.chunks), each escaped, none lost
    blocks = re.sub(r'</div><div class="step-magic-chunk"[^>]*>', "", details)
    assert HUGE_LINE in blocks


def test_the_answer_renders_its_markdown_with_the_models_markup_as_text(
    hostile: list[dict[str, Any]],
) -> None:
    answer = next(h for h in reversed(html_sent(hostile)) if "step-magic-answer" in h)
    assert "<h1>Title</h1>" in answer
    assert "&lt;script&gt;window.__pwned=2&lt;/script&gt;" in answer
    assert "<code>&lt;b&gt;code&lt;/b&gt;</code>" in answer
    assert "javascript:" not in answer.replace("[click me](javascript:alert(1))", "")
    assert '<code class="language-html"' in answer


def test_the_markdown_copy_escapes_all_prose_and_keeps_fenced_code(
    hostile: list[dict[str, Any]],
) -> None:
    final = markdown_sent(hostile)[-1]
    assert "<script>shown as code</script>" in final  # fenced code stays exactly as written
    for markdown in markdown_sent(hostile):
        prose = outside_code(markdown)
        assert "<" not in prose.replace("&lt;", "")
        assert "](javascript:" not in prose


def test_text_streamed_into_the_panel_is_plain_text(hostile: list[dict[str, Any]]) -> None:
    streamed = panel_text(hostile)
    assert "<script>window.__pwned=1</script>" in streamed  # shown as text, not markup
    assert "\x00" not in streamed
