"""``--dry-run``: exactly what would be sent, readable, with size and token estimates.

Text parts are shown in full (escaped); images as thumbnails of the data URL that would be
sent, which step-magic itself encoded, so it is safe to put in ``src``.
"""

from __future__ import annotations

import json
from typing import Any

from step_magic.core.request import estimate_tokens, message_parts
from step_magic.display.static import escape


def _data_size(url: str) -> str:
    size = len(url.partition(",")[2]) * 3 // 4
    return f"{size / 1024:,.0f} KiB" if size < 1024 * 1024 else f"{size / 2**20:,.1f} MiB"


def _settings(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in ("messages", "tools")}


def _tool_lines(body: dict[str, Any]) -> list[str]:
    """Each tool offered as ``name(a, b?) — description``; ``?`` marks optional parameters.

    The full schemas go out as JSON; ``_step.messages`` and the history keep them.
    """
    lines = []
    for spec in body.get("tools", ()):
        function = spec.get("function", {})
        parameters = function.get("parameters", {})
        required = set(parameters.get("required", ()))
        names = [
            name if name in required else f"{name}?" for name in parameters.get("properties", {})
        ]
        summary = (function.get("description") or "").strip().splitlines()[:1]
        described = f" — {summary[0]}" if summary else ""
        lines.append(f"{function.get('name')}({', '.join(names)}){described}")
    return lines


def dry_run_text(body: dict[str, Any]) -> str:
    """The request as plain text (terminal, text/plain)."""
    lines = [
        f"Dry run — nothing sent. {json.dumps(_settings(body))}",
        f"Estimated prompt: ≈ {estimate_tokens(body['messages']):,} tokens",
    ]
    tools = _tool_lines(body)
    if tools:
        lines += ["--- tools the model may call", *tools]
    for message in body["messages"]:
        lines.append(f"--- {message['role']}")
        for part in message_parts(message):
            lines.append(_part_text(part))
    return "\n".join(lines)


def _part_text(part: dict[str, Any]) -> str:
    kind = part.get("type")
    if kind == "text":
        return str(part["text"])
    if kind == "image_url":
        image = part["image_url"]
        return f"[image, {_data_size(image['url'])}, detail {image.get('detail', 'low')}]"
    if kind == "video_url":
        return f"[video, {_data_size(part['video_url']['url'])}]"
    return f"[{kind} part]"


def dry_run_html(body: dict[str, Any]) -> str:
    """The request as escaped HTML, images as thumbnails."""
    rows = [
        f"<p><b>Dry run — nothing sent.</b> <code>{escape(json.dumps(_settings(body)))}</code>"
        f" · estimated prompt ≈ {estimate_tokens(body['messages']):,} tokens</p>"
    ]
    tools = _tool_lines(body)
    if tools:
        items = "".join(f"<li><code>{escape(line)}</code></li>" for line in tools)
        rows.append(f"<div><b>tools the model may call</b><ul>{items}</ul></div>")
    for message in body["messages"]:
        rows.append(f"<div><b>{escape(message['role'])}</b></div>")
        rows.extend(_part_html(part) for part in message_parts(message))
    return f'<div class="step-magic-dry-run">{"".join(rows)}</div>'


def _part_html(part: dict[str, Any]) -> str:
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
