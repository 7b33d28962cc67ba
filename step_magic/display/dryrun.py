"""``--dry-run``: exactly what would be sent, readable, with size and token estimates.

The body is the one the chosen API would receive (``wire.transport.request_body``): Chat
Completions parts or Messages API blocks, with the system prompt inside the messages or on
top. Text is shown in full (escaped); images as thumbnails of the data URL that would be
sent, which step-magic itself encoded, so it is safe to put in ``src``.
"""

from __future__ import annotations

import json
from typing import Any

from IPython.display import display

from step_magic.core.request import estimate_tokens, message_parts
from step_magic.display.static import escape
from step_magic.wire.apis import wire_api

Part = dict[str, Any]
_NOT_SETTINGS = ("messages", "tools", "system", "input", "instructions")


def _data_size(url: str) -> str:
    size = len(url.partition(",")[2]) * 3 // 4
    return f"{size / 1024:,.0f} KiB" if size < 1024 * 1024 else f"{size / 2**20:,.1f} MiB"


def _settings(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in _NOT_SETTINGS}


def _messages(body: dict[str, Any], api: str) -> list[dict[str, Any]]:
    """The conversation in Chat Completions shape, however the API lays it out."""
    return wire_api(api).conversation(body)


def _estimate(body: dict[str, Any], api: str) -> int:
    return estimate_tokens([{"content": message_parts(m)} for m in _messages(body, api)])


def _tool_lines(body: dict[str, Any]) -> list[str]:
    """Each tool offered as ``name(a, b?) — description``; ``?`` marks optional parameters.

    The full schemas go out as JSON; ``_step.messages`` and the history keep them. Chat
    tools nest under ``function`` with ``parameters``; Messages tools are flat with
    ``input_schema``.
    """
    lines = []
    for spec in body.get("tools", ()):
        function = spec.get("function", spec)
        parameters = function.get("parameters") or function.get("input_schema") or {}
        required = set(parameters.get("required", ()))
        names = [
            name if name in required else f"{name}?" for name in parameters.get("properties", {})
        ]
        summary = (function.get("description") or "").strip().splitlines()[:1]
        described = f" — {summary[0]}" if summary else ""
        lines.append(f"{function.get('name')}({', '.join(names)}){described}")
    return lines


def _summary(body: dict[str, Any], endpoint: str | None) -> str:
    """Where the request would go, and its settings (everything but the messages and tools)."""
    where = f"{endpoint} " if endpoint else ""
    return where + json.dumps(_settings(body))


def dry_run_text(body: dict[str, Any], endpoint: str | None = None, api: str = "chat") -> str:
    """The request as plain text (terminal, text/plain)."""
    lines = [
        f"Dry run — nothing sent. {_summary(body, endpoint)}",
        f"Estimated prompt: ≈ {_estimate(body, api):,} tokens",
    ]
    tools = _tool_lines(body)
    if tools:
        lines += ["--- tools the model may call", *tools]
    for message in _messages(body, api):
        lines.append(f"--- {message['role']}")
        lines.extend(_part_text(part) for part in message_parts(message))
    return "\n".join(lines)


def _part_text(part: Part) -> str:
    kind = part.get("type")
    if kind == "text":
        return str(part["text"])
    if kind == "image_url":
        image = part["image_url"]
        detail = f", detail {image['detail']}" if "detail" in image else ""
        return f"[image, {_data_size(image['url'])}{detail}]"
    if kind == "video_url":
        return f"[video, {_data_size(part['video_url']['url'])}]"
    return f"[{kind} part] {json.dumps(part, ensure_ascii=False)}"


def dry_run_html(body: dict[str, Any], endpoint: str | None = None, api: str = "chat") -> str:
    """The request as escaped HTML, images as thumbnails."""
    rows = [
        f"<p><b>Dry run — nothing sent.</b> <code>{escape(_summary(body, endpoint))}</code>"
        f" · estimated prompt ≈ {_estimate(body, api):,} tokens</p>"
    ]
    tools = _tool_lines(body)
    if tools:
        items = "".join(f"<li><code>{escape(line)}</code></li>" for line in tools)
        rows.append(f"<div><b>tools the model may call</b><ul>{items}</ul></div>")
    for message in _messages(body, api):
        rows.append(f"<div><b>{escape(message['role'])}</b></div>")
        rows.extend(_part_html(part) for part in message_parts(message))
    return f'<div class="step-magic-dry-run">{"".join(rows)}</div>'


def _part_html(part: Part) -> str:
    if part.get("type") == "image_url":
        image = part["image_url"]
        url = str(image["url"])
        thumbnail = (
            f'<img src="{escape(url)}" style="max-width: 160px; max-height: 120px"> '
            if url.startswith("data:image/")
            else ""
        )
        return f"<div>{thumbnail}{escape(_part_text(part))}</div>"
    return f'<pre style="white-space: pre-wrap">{escape(_part_text(part))}</pre>'


def show_dry_run(body: dict[str, Any], endpoint: str | None = None, api: str = "chat") -> None:
    """Display the request that ``--dry-run`` did not send (and where it would have gone)."""
    bundle = {
        "text/html": dry_run_html(body, endpoint, api),
        "text/plain": dry_run_text(body, endpoint, api),
    }
    display(bundle, raw=True)
