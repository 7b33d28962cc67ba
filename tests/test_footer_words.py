"""The words of the footer: what a price and an unusual ending read like to a person."""

from __future__ import annotations

import pytest

from step_magic.core.events import Usage
from step_magic.core.result import StepResult
from step_magic.core.text import dollars
from step_magic.display.static import footer_text


@pytest.mark.parametrize(
    ("cost", "shown"),
    [(0.0, "$0"), (0.00000115, "< $0.0001"), (0.0001, "≈ $0.0001"), (0.01234, "≈ $0.0123")],
)
def test_a_tiny_cost_is_not_shown_as_free(cost: float, shown: str) -> None:
    assert dollars(cost) == shown


def test_a_one_token_reply_says_its_cost_is_below_a_hundredth_of_a_cent() -> None:
    result = StepResult("step-3.5-flash", None, answer="Hi", usage=Usage(1, 1, 2))
    assert "< $0.0001" in footer_text(result)
    assert "$0.0000" not in footer_text(result)


@pytest.mark.parametrize(
    ("status", "reasoning", "answer", "notice"),
    [
        ("interrupted", "Let me think", "", "interrupted while the model was thinking — no answer"),
        ("interrupted", "", "", "interrupted before any text arrived"),
        ("interrupted", "Hmm", "Half an ans", "interrupted — the reply above is partial"),
        ("failed", "Hmm", "", "incomplete — no answer arrived; the reasoning above is partial"),
        ("failed", "", "", "no reply: the call failed before any text arrived"),
        ("failed", "", "Half", "incomplete — the reply above is partial"),
    ],
)
def test_a_stopped_reply_names_what_is_partial(
    status: str, reasoning: str, answer: str, notice: str
) -> None:
    result = StepResult("step-3.7-flash", "high", answer, reasoning, status=status)
    assert result.notice is not None
    assert result.notice.startswith(notice)
    assert "reply above is partial" not in result.notice or answer
