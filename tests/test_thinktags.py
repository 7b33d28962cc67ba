"""Inline <think> reasoning is separated exactly, however the stream is cut into pieces."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from step_magic.wire.thinktags import ThinkTagSplitter


def split(pieces: list[str]) -> tuple[str, str]:
    splitter = ThinkTagSplitter()
    reasoning, answer = "", ""
    for piece in [*pieces, None]:
        think, text = splitter.finish() if piece is None else splitter.feed(piece)
        reasoning += think
        answer += text
    return reasoning, answer


def cut(text: str, points: list[int]) -> list[str]:
    bounds = sorted({0, len(text), *(p % (len(text) + 1) for p in points)})
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def test_reasoning_in_think_tags_is_separated_from_the_answer() -> None:
    assert split(["<think>weigh options</think>", "The answer."]) == (
        "weigh options",
        "The answer.",
    )


def test_tags_split_across_chunks_are_still_recognised() -> None:
    assert split(["<thi", "nk>a</th", "ink>", "b"]) == ("a", "b")


def test_an_answer_that_mentions_the_tag_later_is_left_alone() -> None:
    text = "Use <think> tags like this: <think>x</think>"
    assert split([text]) == ("", text)


def test_an_unclosed_think_block_stays_reasoning() -> None:
    assert split(["<think>still going"]) == ("still going", "")


def test_plain_content_passes_through_untouched() -> None:
    assert split(["Hello", " world"]) == ("", "Hello world")


text_without_tags = st.text().filter(lambda s: "<think>" not in s and "</think>" not in s)


cut_points = st.lists(st.integers(0, 10**6))


@given(reasoning=text_without_tags, answer=text_without_tags, points=cut_points)
def test_any_split_of_a_think_stream_gives_back_exactly_what_was_sent(
    reasoning: str, answer: str, points: list[int]
) -> None:
    stream = f"<think>{reasoning}</think>{answer}"
    assert split(cut(stream, points)) == (reasoning, answer)


@given(answer=text_without_tags, points=cut_points)
def test_any_split_of_plain_content_gives_back_exactly_the_answer(
    answer: str, points: list[int]
) -> None:
    got_reasoning, got_answer = split(cut(answer, points))
    if answer.lstrip().startswith("<think"):
        return  # a prefix of the tag: covered by the tests above
    assert (got_reasoning, got_answer) == ("", answer)
