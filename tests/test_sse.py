"""The SSE decoder's limit on one event, at its exact boundary.

``max_event_chars`` bounds what a server can make us hold: an event's data up to the limit
is delivered whole, one character more stops the reply. The limit is the same for the
first event of a stream and for later ones, and for a line that arrives whole and one that
the network delivers in pieces (a piece held while its line has not ended counts as it is,
field name included).
"""

from __future__ import annotations

import pytest

from step_magic.wire.sse import EventTooLarge, ServerEvent, SSEDecoder

LIMIT = 100


def test_an_event_of_exactly_the_limit_is_delivered_one_more_character_is_refused() -> None:
    # Each data line counts its text and the newline that joins it: 99 + 1 is the limit.
    at_limit = SSEDecoder(max_event_chars=LIMIT)
    assert at_limit.feed(b"data: " + b"x" * 99 + b"\n\n") == [ServerEvent("message", "x" * 99)]
    over = SSEDecoder(max_event_chars=LIMIT)
    assert over.feed(b"data: " + b"x" * 100 + b"\n\n") == []
    with pytest.raises(EventTooLarge, match="over 100 characters; the reply was stopped there"):
        over.finish()


def test_the_limit_is_the_same_for_every_event_of_a_stream() -> None:
    decoder = SSEDecoder(max_event_chars=LIMIT)
    event = b"data: " + b"x" * 99 + b"\n\n"
    assert decoder.feed(event * 3) == [ServerEvent("message", "x" * 99)] * 3


def test_a_line_held_in_pieces_may_reach_the_limit_before_it_ends() -> None:
    decoder = SSEDecoder(max_event_chars=LIMIT)
    assert decoder.feed(b"data: " + b"x" * 94) == []  # 100 characters held, line not ended
    assert decoder.feed(b"\n\n") == [ServerEvent("message", "x" * 94)]
    # the next event has the whole limit again, however the one before arrived
    assert decoder.feed(b"data: " + b"y" * 99 + b"\n\n") == [ServerEvent("message", "y" * 99)]
    too_long = SSEDecoder(max_event_chars=LIMIT)
    assert too_long.feed(b"data: " + b"x" * 95) == []  # 101: refused at the next read
    with pytest.raises(EventTooLarge):
        too_long.feed(b"\n\n")


def test_a_line_over_the_limit_is_refused_while_it_still_arrives_in_small_reads() -> None:
    """What a server can make us hold is bounded before the line ends, not after."""
    decoder = SSEDecoder(max_event_chars=LIMIT)
    line = b"data: " + b"x" * 200  # never ended: a server that sends one endless line
    pieces = [line[i : i + 10] for i in range(0, len(line), 10)]
    assert reads_until_refused(decoder, pieces) == 12  # 110 held after 11 reads: refused


def reads_until_refused(decoder: SSEDecoder, pieces: list[bytes]) -> int | None:
    """How many reads the decoder took before refusing one (None: it never did)."""
    for number, piece in enumerate(pieces, start=1):
        try:
            decoder.feed(piece)
        except EventTooLarge:
            return number
    return None
