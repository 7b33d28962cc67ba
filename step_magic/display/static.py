"""The static, kernel-free form of a reply: escaped HTML, safe Markdown and the footer.

A saved notebook must read well without a kernel, and a trusted notebook runs any script in
its HTML outputs, so everything the model wrote is escaped here before it becomes HTML.
These are pure string functions; ``display.views`` decides where they are displayed. The answer's
Markdown is made safe in ``markdown.py``.
"""

from __future__ import annotations

import html

from step_magic.core.result import StepResult
from step_magic.core.text import dollars, seconds
from step_magic.core.toolrecords import ToolRecord, outcome_text, signature


def escape(text: str) -> str:
    """HTML-escape text the model wrote (quotes too, so it is safe in attributes)."""
    return html.escape(text, quote=True)


def thinking_status(chars: int, elapsed: float) -> str:
    """Header of the reasoning panel while the model thinks."""
    return f"Thinking… {chars:,} chars · {seconds(elapsed)}"


def reasoning_summary(result: StepResult) -> str:
    """Header of the finished reasoning panel."""
    calls = len(result.tool_calls)
    counted = f"{calls} tool call{'s' if calls > 1 else ''}" if calls else ""
    if not result.reasoning:
        return counted
    took = result.thinking_time if result.thinking_time is not None else result.elapsed
    # stopped while answering, the thinking itself was complete
    stopped_thinking = result.status == "interrupted" and not result.answer
    verb = "Interrupted after thinking" if stopped_thinking else "Thought"
    summary = f"{verb} for {seconds(took)} · {len(result.reasoning):,} chars"
    return f"{summary} · {counted}" if counted else summary


def tool_lines(result: StepResult) -> list[str]:
    """The calls as plain lines, each turn's words to the user before its calls."""
    lines = []
    for record in result.tool_calls:
        if record.said:
            lines.append(f"“{record.said}”")
        lines.append(tool_line(record))
    return lines


def tool_line(record: ToolRecord) -> str:
    """One tool call as the panel and the saved form list it."""
    line = f"⚙ {signature(record)}"
    return line if record.status == "running" else f"{line} — {outcome_text(record)}"


# The reasoning's box, the same live (display/static/reasoning.js takes it from the panel's
# ``body_style``) and saved, so the one replaces the other without moving the page. Its size
# is the content font's, not a percentage: a widget's text and a rendered output's differ.
REASONING_BODY_STYLE = (
    "white-space: pre-wrap; font-family: var(--jp-content-font-family, inherit); "
    "font-size: calc(0.9 * var(--jp-content-font-size1, 14px)); opacity: 0.8; "
    "max-height: 32em; overflow: auto; "
    "border-left: 3px solid #ccc; padding-left: 0.8em"
)
CHUNK = 8_000


def reasoning_html(result: StepResult, key: str | None = None) -> str:
    """The reasoning as a static ``<details>`` block (open if the user had opened it).

    Tool calls appear where they happened in the reasoning. ``key`` names the live panel
    this block replaces (its script opens and scrolls the block as the reader left it).
    """
    attrs = " open" if result.reasoning_open else ""
    marked = "" if key is None else f' data-step-call="{escape(key)}"'
    # without its leading newlines, as the live panel shows it (views.NotebookView.update)
    reasoning = result.reasoning.lstrip("\n")
    shift = len(result.reasoning) - len(reasoning)
    pieces, start = [], 0
    for record in sorted(result.tool_calls, key=lambda record: record.at):
        at = max(record.at - shift, 0)
        pieces.append(_text_html(reasoning[start:at]))
        start = max(start, at)
        if record.said:  # the text the model wrote with these calls, before the final answer
            pieces.append(f'<div class="step-magic-said">“{escape(record.said)}”</div>')
        pieces.append(
            '<div class="step-magic-tool" style="font-family: monospace; opacity: 1; '
            f'margin: 0.4em 0">{escape(tool_line(record))}</div>'
        )
    pieces.append(_text_html(reasoning[start:]))
    return (
        f'<details class="step-magic-reasoning"{attrs}>'
        f"<summary>{escape(reasoning_summary(result))}</summary>"
        f'<div{marked} style="{REASONING_BODY_STYLE}">{"".join(pieces)}</div></details>'
    )


def _text_html(text: str) -> str:
    """Escaped text; a long one in blocks the browser lays out only when they are in view
    (``content-visibility``), so an open million-character reasoning opens at once."""
    parts = chunks(text)
    if len(parts) < 2:
        return escape(text)
    return "".join(
        '<div class="step-magic-chunk" style="content-visibility: auto; '
        f'contain-intrinsic-size: {estimate(part)}">{escape(part)}</div>'
        for part in parts
    )


def chunks(text: str) -> list[str]:
    """``text`` cut where the live panel's script cuts it, so both lay out alike: after the
    first newline at or past ``CHUNK - 1`` of each block (a cut that does not show), else at
    ``2 * CHUNK``, never between the two halves of one character. Counted, as the script
    counts, in UTF-16 units (a character beyond the BMP, an emoji or a maths letter, is two).
    """
    data = text.encode("utf-16-le", "surrogatepass")
    length = len(data) // 2
    parts, start = [], 0
    while start < length:
        end = _chunk_end(data, start, length)
        parts.append(data[2 * start : 2 * end].decode("utf-16-le", "surrogatepass"))
        start = end
    return parts


def _chunk_end(data: bytes, start: int, length: int) -> int:
    """Where the block starting at unit ``start`` ends (see ``chunks``)."""
    limit = start + 2 * CHUNK
    found = data.find(b"\n\x00", 2 * (start + CHUNK - 1), 2 * min(limit, length))
    while found != -1 and found % 2:  # a match across two units is no newline
        found = data.find(b"\n\x00", found + 1, 2 * min(limit, length))
    if found != -1:
        return found // 2 + 1
    if limit >= length:
        return length
    high = data[2 * limit - 1]  # the last unit's high byte (little-endian)
    return limit - 1 if 0xD8 <= high <= 0xDB else limit


def estimate(text: str) -> str:
    """A block's height before it is drawn, as the live panel's script guesses it."""
    lines = text.count("\n") + 1 + len(text) // 100
    return f"auto {lines * 3 // 2}em"


def footer_items(result: StepResult) -> list[str]:
    """Provenance of the call: model, effort, tokens, cost, timings, ids (plain text)."""
    items = [result.model, f"effort {result.effort}" if result.effort else "default effort"]
    usage = result.usage
    if usage is not None:
        tokens = f"{usage.prompt:,} in + {usage.completion:,} out tokens"
        if usage.cached:
            tokens += f" ({usage.cached:,} cached)"
        items.append(tokens)
    cost = result.cost
    if cost is not None:
        items.append(dollars(cost))
    if result.first_token is not None:
        items.append(f"first token {seconds(result.first_token)}")
    items.append(f"total {seconds(result.elapsed)}")
    if result.steps > 1:
        items.append(f"{result.steps} model turns")
    if result.replayed:
        items.append("replayed")
    if result.thread:
        items.append(f"chat {result.thread}")
    if result.attachments:
        items.append("with " + ", ".join(result.attachments))
    return items + list(result.notes)


def _ids(result: StepResult) -> list[tuple[str, str]]:
    ids = [("trace id", result.trace_id), ("id", result.completion_id)]
    return [(label, value) for label, value in ids if value]


def footer_text(result: StepResult) -> str:
    """The footer as one plain line (terminal, text/plain, logs)."""
    items = footer_items(result) + [f"{label} {value}" for label, value in _ids(result)]
    line = " · ".join(items)
    notice = result.notice
    return f"⚠ {notice}\n{line}" if notice else line


def footer_html(result: StepResult) -> str:
    """The footer as escaped HTML; ids in ``<code>`` so a click selects them for copying."""
    items = [escape(item) for item in footer_items(result)]
    items += [
        f'{label} <code style="user-select: all">{escape(value)}</code>'
        for label, value in _ids(result)
    ]
    line = f'<div style="font-size: 85%; opacity: 0.75">{" · ".join(items)}</div>'
    notice = result.notice
    if notice:
        # the text keeps the theme's own colour (an orange was 3.8:1 on a dark theme); the
        # bar beside it carries the warning colour
        warning = (
            '<div style="font-weight: 600; border-left: 3px solid var(--jp-warn-color0, #b45309);'
            f' padding-left: 0.5em">⚠ {escape(notice)}</div>'
        )
        line = warning + line
    return f'<div class="step-magic-footer">{line}</div>'
