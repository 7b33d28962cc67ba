"""The live answer is split into finished Markdown blocks without breaking code or lists."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from step_magic.display.mdblocks import BlockSplitter


def feed_all(pieces: list[str]) -> tuple[list[str], str]:
    splitter = BlockSplitter()
    blocks: list[str] = []
    for piece in pieces:
        blocks.extend(splitter.feed(piece))
    return blocks, splitter.tail


def test_a_paragraph_is_finished_once_the_next_one_starts() -> None:
    blocks, tail = feed_all(["# Title\n\nFirst para", "graph.\n\nSecond"])
    assert blocks == ["# Title\n\n", "First paragraph.\n\n"]
    assert tail == "Second"


def test_blank_lines_inside_a_code_fence_do_not_split_it() -> None:
    code = "```python\nx = 1\n\n\ny = 2\n```\n\nAfter.\n"
    blocks, tail = feed_all(list(code))
    assert blocks == ["```python\nx = 1\n\n\ny = 2\n```\n\n"]
    assert tail == "After.\n"


def test_an_indented_continuation_stays_with_its_list_item() -> None:
    blocks, tail = feed_all(["- item\n\n  continued\n\nNext\n"])
    assert blocks == ["- item\n\n  continued\n\n"]
    assert tail == "Next\n"


@given(st.lists(st.text(alphabet="ab `~#-\n", max_size=30), max_size=20))
def test_blocks_and_tail_always_add_up_to_the_text(pieces: list[str]) -> None:
    blocks, tail = feed_all(pieces)
    text = "".join(pieces)
    assert "".join(blocks) + tail == text or text.strip() == ""
