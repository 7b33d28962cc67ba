"""The model's Markdown, made safe to show: rendered to HTML by a real parser, never by regex.

Jupyter renders trusted Markdown and HTML without sanitising, so markup from the model must
not reach the page. ``answer_html`` renders with markdown-it (CommonMark) with raw HTML
disabled (it is shown as text) and its link validation (``javascript:`` and friends dropped,
entity tricks decoded first); maths is set aside before parsing and put back escaped, so
MathJax still typesets it. ``safe_markdown`` is the text/markdown fallback for frontends that
prefer Markdown: everything outside fenced code is escaped.
"""

from __future__ import annotations

import contextlib
import functools
import html
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

_MATH = re.compile(r"\$\$.+?\$\$|\\\[.+?\\\]|(?<![\\$\w])\$[^\s$][^$\n]*?(?<![\s\\])\$(?!\w)", re.S)
_PLACEHOLDER = "STEPMAGICMATH{}END"
_PLACEHOLDER_RE = re.compile(r"STEPMAGICMATH(\d+)END")
_SCHEME = re.compile(r"(?i)(javascript|vbscript|data|file)(\s*):")


@functools.cache
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "highlight": _highlight}).enable(
        ["table", "strikethrough"]
    )


_PRE = (
    '<pre style="background: var(--jp-cell-editor-background, #f7f7f7); padding: 0.6em 0.8em;'
    ' margin: 0.4em 0 0.8em; border-radius: 3px; overflow-x: auto">'
)


def _highlight(code: str, language: str, attrs: Any) -> str:
    """Fenced code in a visible box, coloured by Pygments (inline styles survive anywhere).

    A result starting with ``<pre`` is used as is by markdown-it; everything from the
    model in it is escaped here (Pygments escapes its tokens).
    """
    body = html.escape(code)
    if language:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound

        with contextlib.suppress(ClassNotFound):
            body = highlight(
                code, get_lexer_by_name(language), HtmlFormatter(nowrap=True, noclasses=True)
            )
    language_class = f' class="language-{html.escape(language)}"' if language else ""
    return f"{_PRE}<code{language_class}>{body}</code></pre>\n"


def answer_html(markdown: str) -> str:
    """Safe HTML for an answer: no raw HTML, no script links, maths left for MathJax."""
    maths: list[str] = []

    def set_aside(match: re.Match[str]) -> str:
        maths.append(match.group(0))
        return _PLACEHOLDER.format(len(maths) - 1)

    rendered = _parser().render(_MATH.sub(set_aside, markdown))
    return _PLACEHOLDER_RE.sub(lambda m: html.escape(maths[int(m.group(1))]), rendered)


def safe_markdown(markdown: str) -> str:
    """Markdown whose prose is escaped (``<``, ``&``, link schemes); fenced code untouched.

    Fences are found by the parser; everything else, inline code included, is escaped, so
    a frontend that renders this Markdown cannot be made to insert markup or script links.
    """
    lines = markdown.splitlines(keepends=True)
    keep = [False] * len(lines)
    for token in _parser().parse(markdown):
        if token.type == "fence" and token.map:
            start, end = token.map
            for index in range(start + 1, min(end, len(lines)) - 1):
                keep[index] = True  # the code between the fence lines
    return "".join(
        line if kept else _escape_prose(line) for line, kept in zip(lines, keep, strict=True)
    )


def _escape_prose(text: str) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;")
    return _SCHEME.sub("\\1\\2\u200b:", escaped)
