"""How long a call waits for the next event: the flush schedule and the deadline.

``TurnReader.wait`` is handed the time, so these tests need no clock. Text that arrived is
shown when its flush is due even if the server then goes quiet; with nothing to show, the
reader still wakes every ``IDLE_SECONDS`` to notice a Ctrl-C; and no wait runs past the
call's deadline, which ends the call with an error saying so.
"""

from __future__ import annotations

import pytest

from step_magic.core.events import AnswerDelta, ReasoningDelta
from step_magic.core.settings import Settings
from step_magic.display.frontend import QuietView
from step_magic.engine.buffer import ReplyBuffer
from step_magic.engine.runner import FLUSH_SECONDS, IDLE_SECONDS, TurnReader

STARTED = 1000.0


def reader(
    *pending: ReasoningDelta | AnswerDelta, flushed_at: float, deadline: float | None = None
) -> TurnReader:
    """A reader whose buffer was last shown at ``flushed_at`` and holds ``pending`` since."""
    progress = ReplyBuffer(started=STARTED, last_flush=flushed_at)
    for event in pending:
        progress.add(event, flushed_at)
    settings = Settings(
        model="step-3.7-flash",
        base_url="http://127.0.0.1:9/v1",
        api_key="sk-test",
        deadline=deadline,
    )
    return TurnReader(progress, QuietView(), settings)


def test_with_nothing_to_show_the_reader_wakes_only_to_notice_a_ctrl_c() -> None:
    assert reader(flushed_at=STARTED).wait(STARTED + 5) == IDLE_SECONDS


@pytest.mark.parametrize(
    "pending",
    [ReasoningDelta("Let me think"), AnswerDelta("Revenue dips")],
    ids=["reasoning", "answer"],
)
def test_text_that_arrived_is_shown_when_its_flush_is_due_even_if_nothing_follows(
    pending: ReasoningDelta | AnswerDelta,
) -> None:
    waiting = reader(pending, flushed_at=STARTED + 2).wait(STARTED + 2 + FLUSH_SECONDS / 4)

    assert waiting == pytest.approx(FLUSH_SECONDS * 3 / 4)


def test_an_overdue_flush_is_shown_at_once() -> None:
    waiting = reader(AnswerDelta("late"), flushed_at=STARTED).wait(STARTED + 3)

    assert waiting == 0


def test_no_wait_runs_past_the_deadline() -> None:
    waiting = reader(flushed_at=STARTED, deadline=2.0).wait(STARTED + 2 - IDLE_SECONDS / 4)

    assert waiting == pytest.approx(IDLE_SECONDS / 4)


def test_once_the_deadline_passed_the_call_ends_with_an_error_that_says_so() -> None:
    late = reader(AnswerDelta("half an answer"), flushed_at=STARTED, deadline=2.0)

    assert late.wait(STARTED + 2) is None
    assert late.error is not None
    assert late.error.detail == "the call passed the deadline of 2 s it was given (--deadline)"
