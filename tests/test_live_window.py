"""The live panel holds a window over the newest reasoning, so a huge reply stays cheap to draw."""

from __future__ import annotations

import itertools

from step_magic.display.window import LiveWindow


def test_the_panel_restarts_with_a_note_and_the_newest_text_once_it_is_full() -> None:
    window = LiveWindow(limit=100, keep=40)
    assert window.add("a" * 60) is None
    assert window.add("b" * 40) is None  # exactly full
    restart = window.add("c" * 10)
    assert restart is not None
    note, shown = restart.split("\n\n", 1)
    assert note == "… 70 earlier characters are not shown here; the final form has all"
    assert shown == "b" * 30 + "c" * 10  # the newest 40, in order


def test_after_a_restart_the_window_fills_again_before_the_next() -> None:
    window = LiveWindow(limit=100, keep=40)
    restarts = [window.add("x" * 10) for _ in range(100)]  # 1,000 characters in pieces
    points = [i for i, restart in enumerate(restarts) if restart is not None]
    assert points[0] == 10  # the 11th piece overflows the first 100
    assert all(b - a == 7 for a, b in itertools.pairwise(points))  # 40 kept, 70 more
    sent = sum(10 for _ in restarts) + sum(len(r) for r in restarts if r)
    assert sent < 1_000 * 2.5  # each restart re-sends the kept part once: linear in the text
