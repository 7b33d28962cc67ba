"""The text of a reply as it arrives, and the part of it the view has not been shown yet.

The runner adds every delta here and flushes on a timer, so the view gets a few updates a
second however many chunks arrive. With tools, one call spans several model turns: their
reasoning runs on in the same buffer, a paragraph per turn; the answer is the final turn's
text, while the text of earlier turns (said along with tool calls) is shown as it arrives and
kept with those calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from step_magic.core.events import AnswerDelta, ReasoningDelta


class TextView(Protocol):
    """What a flush needs from a view."""

    def update(self, reasoning: str, answer: str, elapsed: float) -> None: ...


@dataclass
class ReplyBuffer:
    """Text received so far, what the view has not seen yet, and the timings."""

    started: float
    reasoning: list[str] = field(default_factory=list)
    answer: list[str] = field(default_factory=list)
    pending_reasoning: list[str] = field(default_factory=list)
    pending_answer: list[str] = field(default_factory=list)
    first_token: float | None = None
    first_answer: float | None = None
    last_flush: float = float("-inf")
    step_start: int = 0  # where this model turn's answer begins in ``answer``
    reasoning_chars: int = 0
    reasoning_turn_start: int = 0  # reasoning_chars when this model turn began
    received: int = 0  # characters of text the server sent in all, over every model turn

    def add(self, event: ReasoningDelta | AnswerDelta, now: float) -> None:
        """Take one delta; the view sees it at the next flush."""
        if self.first_token is None:
            self.first_token = now - self.started
        if isinstance(event, ReasoningDelta):
            text = event.text
            if self.reasoning_turn_start == self.reasoning_chars and self.reasoning_chars:
                text = "\n\n" + text  # the next turn's thinking starts a new paragraph
            self.reasoning.append(text)
            self.pending_reasoning.append(text)
            self.reasoning_chars += len(text)
            return
        if self.first_answer is None:
            self.first_answer = now - self.started
        shown = event.text
        if len(self.answer) == self.step_start and "".join(self.answer).strip():
            shown = "\n\n" + shown  # on screen, a new turn's text starts a new paragraph
        self.answer.append(event.text)
        self.pending_answer.append(shown)

    def rethink(self, now: float) -> None:
        """This turn's answer so far was reasoning (``Rethought``): it moves over, and the
        view is shown it again as reasoning at the next flush."""
        moved = "".join(self.answer[self.step_start :])
        del self.answer[self.step_start :]
        self.pending_answer.clear()
        self.first_answer = None
        if moved:
            self.add(ReasoningDelta(moved), now)

    def next_step(self) -> None:
        """A tool round ended: the next model turn's text starts here."""
        self.step_start = len(self.answer)
        self.reasoning_turn_start = self.reasoning_chars
        self.first_answer = None  # thinking lasts until the final turn starts answering

    def step_answer(self) -> str:
        """The answer text of the current model turn only (the final answer, at the end)."""
        return "".join(self.answer[self.step_start :])

    def flush(self, view: TextView, now: float) -> None:
        """Hand the view what it has not seen yet (nothing when nothing is new)."""
        if self.pending_reasoning or self.pending_answer:
            reasoning, answer = "".join(self.pending_reasoning), "".join(self.pending_answer)
            self.pending_reasoning.clear()
            self.pending_answer.clear()
            view.update(reasoning, answer, now - self.started)
        self.last_flush = now
