"""``StepResult``: what one call produced, as a plain object the user's code can use.

It is bound to ``_step`` (and ``-o NAME``) after every call; displaying it shows the same static
form the cell was left with (``display.frontend`` teaches IPython how).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from step_magic.core import rendering
from step_magic.core.cassette import RecordedReply
from step_magic.core.events import Usage
from step_magic.core.models import estimate_cost
from step_magic.core.toolrecords import ToolRecord

NOTICES = {
    "complete": None,
    "interrupted": "interrupted — the reply above is partial",
    "failed": "incomplete — the reply above is partial (the error follows)",
    "truncated": "cut off: the reply reached the token limit (finish_reason=length)",
    "filtered": "stopped by the content filter (finish_reason=content_filter)",
    "incomplete": "incomplete — the stream ended without a finish reason",
    "no-answer": "the model finished thinking but gave no answer",
    "max-steps": "stopped at the --max-steps limit: the model still wanted to call tools",
}
# The endings whose reply is kept: it joins the conversation, the reply cache and a --map column.
KEPT = frozenset({"complete", "truncated"})
# The same endings when no answer had arrived: (without reasoning, with reasoning)
_UNANSWERED = {
    "failed": (
        "no reply: the call failed before any text arrived (the error follows)",
        "incomplete — no answer arrived; the reasoning above is partial (the error follows)",
    ),
    "interrupted": (
        "interrupted before any text arrived",
        "interrupted while the model was thinking — no answer was given",
    ),
}


@dataclass
class StepResult:
    """The reasoning, the answer and the provenance of one ``%%step`` call."""

    model: str
    effort: str | None
    answer: str = ""
    reasoning: str = ""
    status: str = "complete"
    error: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    trace_id: str | None = None
    completion_id: str | None = None
    elapsed: float = 0.0
    first_token: float | None = None
    thinking_time: float | None = None
    messages: tuple[dict[str, Any], ...] = ()
    exchange: tuple[dict[str, Any], ...] = ()
    tool_calls: tuple[ToolRecord, ...] = ()
    steps: int = 1
    attachments: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    thread: str | None = None
    replayed: bool = False
    display_format: str = "markdown"
    parsed: Any = None  # with schema=: the answer validated (a model instance, a dataclass…)
    remote_images: bool = False  # the answer's images from other hosts are shown, not linked
    reasoning_open: bool = field(default=False, repr=False)
    # the cell (request id) whose live panel became this result's static form: a cell that
    # ends in ``step_magic.ask(...)`` must not show the same reply a second time
    shown_in: str | None = field(default=None, repr=False, compare=False)

    @property
    def complete(self) -> bool:
        """True when the model finished normally and gave an answer."""
        return self.status == "complete"

    @property
    def notice(self) -> str | None:
        """A short sentence for anything other than a normal, finished reply."""
        if self.status in ("failed", "interrupted") and not self.answer.strip():
            # "the reply above is partial" would point at an answer nobody sees
            return _UNANSWERED[self.status][bool(self.reasoning)]
        return NOTICES.get(self.status, self.status)

    @property
    def cost(self) -> float | None:
        """Estimated price in USD from the model's price table, when usage is known."""
        if self.usage is None:
            return None
        return estimate_cost(
            self.model, self.usage.prompt, self.usage.completion, self.usage.cached or 0
        )

    def recorded(self) -> RecordedReply:
        """This call as a reply to keep and play back (cassettes, the ``--map`` cache)."""
        ids = (self.trace_id, self.completion_id)
        return RecordedReply(self.reasoning, self.answer, self.finish_reason, self.usage, *ids)

    def _ipython_display_(self) -> None:
        """IPython shows the static form, or only a line where this very cell's live view
        already became it (``r = %step ...`` ends a cell with the result)."""
        rendering.show("result", self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The static form (reasoning, answer, footer) for any frontend: safe HTML, the
        answer as Markdown, and plain text that holds the answer."""
        return rendering.mimebundle("result", self, self.answer)

    def __str__(self) -> str:
        return self.answer


def classify(
    finish_reason: str | None,
    answer: str,
    reasoning: str,
    *,
    interrupted: bool,
    failed: bool,
    unanswered: bool = False,
) -> str:
    """Name how a call ended, from what arrived; the order of the checks matters: a Ctrl-C
    or a failure outranks tool calls left unanswered at ``--max-steps`` (``unanswered``),
    which outrank whatever the last turn's finish reason says."""
    if interrupted:
        return "interrupted"
    if failed:
        return "failed"
    if unanswered:
        return "max-steps"
    if finish_reason == "length":
        return "truncated"
    if finish_reason == "content_filter":
        return "filtered"
    if not finish_reason:
        return "incomplete"
    if reasoning and not answer.strip():
        return "no-answer"
    return "complete"
