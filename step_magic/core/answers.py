"""What an answer holds besides prose: its fenced code blocks, JSON when it should be JSON,
and its headings.

``--code``, ``--format json`` and ``--map --fields`` read answers this way, and a transcript
nests an answer's headings under its own; only the block structure matters here, so the parser
is a plain CommonMark one with raw HTML off, as the renderer's is.
"""

from __future__ import annotations

import functools
from itertools import pairwise
from typing import TYPE_CHECKING

from step_magic.core.text import read_json

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token


@functools.cache
def _block_parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def code_blocks(markdown: str) -> list[tuple[str, str]]:
    """The fenced code blocks of an answer, as (language, code) pairs, in order."""
    return [
        (token.info.strip(), token.content)
        for token in _block_parser().parse(markdown)
        if token.type == "fence"
    ]


def as_section(markdown: str, under: int) -> str:
    """``markdown`` made to stand inside a section headed at level ``under``, so that neither
    its headings nor an open code block take over what follows: its headings move down (the
    highest becomes ``under + 1``, the others keep their depth below it, 6 at most), and a
    fence left open (an answer cut at the token limit, a stray fence) is closed. A ``#`` in
    a code block or a quote is not a heading of the document, and stays."""
    lines = markdown.replace("\r\n", "\n").split("\n")
    tokens = _block_parser().parse("\n".join(lines))
    fences = [token for token in tokens if token.type == "fence" and token.map]
    unclosed = fences[-1].markup if fences and not _closed(fences[-1], lines) else None
    headings = [
        (int(token.tag[1:]), token.map, title.content)
        for token, title in pairwise(tokens)
        if token.type == "heading_open" and token.level == 0 and token.map
    ]
    shift = under + 1 - min((level for level, _, _ in headings), default=under + 1)
    for level, (start, end), title in reversed(headings if shift > 0 else []):
        lines[start:end] = ["#" * min(level + shift, 6) + " " + title]  # setext: two lines
    return "\n".join([*lines, unclosed] if unclosed else lines)


def _closed(fence: Token, lines: list[str]) -> bool:
    """Whether the fence's last line closes it (an open one runs to the end of the text)."""
    assert fence.map is not None
    start, end = fence.map
    last = lines[end - 1].strip()
    return end - 1 > start and last.startswith(fence.markup) and set(last) == {fence.markup[0]}


def parse_json_answer(answer: str) -> object:
    """The answer as JSON, accepting one fenced block around it; ValueError if it is not."""
    blocks = code_blocks(answer)
    text = (
        blocks[0][1] if len(blocks) == 1 and not answer.strip().startswith(("{", "[")) else answer
    )
    return read_json(text)
