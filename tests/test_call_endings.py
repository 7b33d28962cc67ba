"""How a call's ending is named (``StepResult.status``), from what arrived.

The order matters: a Ctrl-C outranks a failure, both outrank tool calls left unanswered at
``--max-steps``, and those outrank whatever the last turn's finish reason says. A reply cut
at the token limit or filtered keeps that name even without an answer.
"""

from __future__ import annotations

import pytest

from step_magic.core.result import NOTICES, classify

ENDINGS = [
    # finish reason, answer, reasoning, interrupted, failed, unanswered -> status
    ("stop", "Paris.", "", True, True, True, "interrupted"),
    ("stop", "Paris.", "", False, True, True, "failed"),
    ("stop", "Paris.", "", False, False, True, "max-steps"),
    ("length", "Par", "", False, False, True, "max-steps"),
    ("length", "Par", "", False, False, False, "truncated"),
    ("length", "", "hmm", False, False, False, "truncated"),
    ("content_filter", "", "", False, False, False, "filtered"),
    (None, "Par", "", False, False, False, "incomplete"),
    ("", "Par", "", False, False, False, "incomplete"),
    ("stop", " \n", "I thought hard", False, False, False, "no-answer"),
    ("stop", "", "", False, False, False, "complete"),
    ("stop", "Paris.", "I thought", False, False, False, "complete"),
]


@pytest.mark.parametrize(
    ("finish", "answer", "reasoning", "interrupted", "failed", "unanswered", "status"), ENDINGS
)
def test_a_calls_ending_is_named_by_the_first_rule_that_holds(
    finish: str | None,
    answer: str,
    reasoning: str,
    interrupted: bool,
    failed: bool,
    unanswered: bool,
    status: str,
) -> None:
    named = classify(
        finish, answer, reasoning, interrupted=interrupted, failed=failed, unanswered=unanswered
    )

    assert named == status


def test_tool_calls_left_unanswered_are_explained_to_the_user() -> None:
    assert "--max-steps" in NOTICES["max-steps"]
