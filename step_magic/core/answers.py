"""What an answer holds besides prose: its fenced code blocks, and JSON when it should be JSON.

``--code``, ``--format json`` and ``--map --fields`` read answers this way; only the fences
matter here, so the parser is a plain CommonMark one with raw HTML off, as the renderer's is.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from step_magic.core.text import read_json

if TYPE_CHECKING:
    from markdown_it import MarkdownIt


@functools.cache
def _fence_parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def code_blocks(markdown: str) -> list[tuple[str, str]]:
    """The fenced code blocks of an answer, as (language, code) pairs, in order."""
    return [
        (token.info.strip(), token.content)
        for token in _fence_parser().parse(markdown)
        if token.type == "fence"
    ]


def parse_json_answer(answer: str) -> object:
    """The answer as JSON, accepting one fenced block around it; ValueError if it is not."""
    blocks = code_blocks(answer)
    text = (
        blocks[0][1] if len(blocks) == 1 and not answer.strip().startswith(("{", "[")) else answer
    )
    return read_json(text)
