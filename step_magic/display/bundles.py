"""The MIME bundles step-magic displays, built without displaying them.

``display.views`` shows these bundles in a finished cell's place; building them is kept apart
so that displaying stays in the module that imports ``IPython.display`` and ``ipywidgets``, and
so scripts can turn a finished ``StepResult`` into what a notebook would save without a kernel.
The HTML itself (escaped model text) comes from ``static.py`` and ``markdown.py``.
"""

from __future__ import annotations

import json
from typing import Any

from step_magic.core.answers import code_blocks, parse_json_answer
from step_magic.core.result import StepResult
from step_magic.display import markdown, static

Bundle = dict[str, Any]


def reasoning_bundle(result: StepResult, key: str | None = None) -> Bundle:
    """The finished reasoning: a ``<details>`` block, with a short plain-text stand-in
    (``key``: the live panel it replaces, see ``static.reasoning_html``)."""
    if not (result.reasoning or result.tool_calls):
        return {"text/plain": ""}
    summary = static.reasoning_summary(result)
    lines = (
        [f"[reasoning: {len(result.reasoning):,} chars — {summary}]"] if result.reasoning else []
    )
    lines += static.tool_lines(result)
    return {"text/html": static.reasoning_html(result, key), "text/plain": "\n".join(lines)}


def answer_bundle(result: StepResult) -> Bundle:
    """The answer in its ``--format``: Markdown, text, JSON or code.

    Markdown goes out as safe HTML (what every frontend prefers) with an escaped Markdown
    copy for tools that want Markdown; the model's raw text never becomes markup. Whatever
    the text, this returns: an answer the renderer cannot handle is shown as escaped text
    (losing a reply to a rendering bug would be worse than showing it plainly).
    """
    try:
        return _formatted(result)
    except Exception:  # RecursionError, or a bug of ours or a library's
        return {"text/html": _plain_div(result.answer), "text/plain": result.answer}


def _formatted(result: StepResult) -> Bundle:
    answer, form = result.answer, result.display_format
    if form == "text":
        return {"text/plain": answer}
    if form == "json":
        try:
            data = parse_json_answer(answer)
        except ValueError:
            return {"text/plain": answer}
        return {"application/json": data, "text/plain": json.dumps(data, indent=2)}
    if form == "code":
        blocks = code_blocks(answer)
        answer = "\n".join(f"```{lang}\n{code}```\n" for lang, code in blocks) or answer
    remote = result.remote_images
    return {
        "text/html": answer_div(answer, remote_images=remote),
        "text/markdown": markdown.safe_markdown(answer, remote_images=remote),
    }


def answer_div(text: str, *, remote_images: bool = False) -> str:
    """Answer Markdown as safe HTML, in the wrapper both the live and the saved form use;
    escaped plain text if it cannot be rendered."""
    try:
        body = markdown.answer_html(text, remote_images=remote_images)
    except Exception:  # see answer_bundle
        return _plain_div(text)
    return f'<div class="step-magic-answer">{body}</div>'


def _plain_div(text: str) -> str:
    return (
        '<div class="step-magic-answer"><pre style="white-space: pre-wrap">'
        f"{static.escape(text)}</pre></div>"
    )


def result_bundle(result: StepResult) -> Bundle:
    """The static form as one bundle, for frontends that show an object by its
    ``_repr_mimebundle_`` (marimo, VS Code, terminal IPython): the three parts' HTML in order,
    the answer's Markdown, and plain text with the answer between the reasoning's summary
    and the footer."""
    parts = [reasoning_bundle(result), answer_bundle(result), footer_bundle(result)]
    html = "".join(
        part.get("text/html") or _plain_div(part.get("text/plain", ""))
        for part in parts
        if part.get("text/html") or part.get("text/plain")
    )
    plain = [parts[0].get("text/plain", ""), parts[1].get("text/plain", result.answer)]
    bundle: Bundle = {
        "text/html": html,
        "text/plain": "\n\n".join(p for p in [*plain, parts[2]["text/plain"]] if p),
    }
    if "text/markdown" in parts[1]:
        bundle["text/markdown"] = parts[1]["text/markdown"]
    return bundle


def footer_bundle(result: StepResult) -> Bundle:
    """Provenance line, with the notice for anything but a normal finish."""
    return {"text/html": static.footer_html(result), "text/plain": static.footer_text(result)}
