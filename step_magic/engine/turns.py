"""How the model turns of one call went: the ids and usage they reported, why the loop stopped.

Kept apart from the runner that drives the turns: this is the call's bookkeeping, which
decides what a result says when a turn ends normally, fails or is cut short.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from step_magic.core.errors import StepAPIError
from step_magic.core.events import Finished, ReplySource, Usage
from step_magic.core.request import ChatRequest
from step_magic.core.toolrecords import ToolCall

# More tokens than any model's context and reply could hold: a server's bug, not a count.
MAX_TOKENS = 10**9
NAME_CHARS = 60  # a tool name as a note quotes it
IMPLAUSIBLE_USAGE = "the server reported an impossible token count: usage and cost left out"


def unoffered(names: list[str], *, any_offered: bool) -> str:
    """The one-line note for calls of tools that were not offered (names shortened)."""
    flat = [" ".join(name.split()) for name in names[:5]]  # one line, whatever a model sent
    shown = ", ".join(name if len(name) <= NAME_CHARS else name[:NAME_CHARS] + "…" for name in flat)
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    which = "not among the tools offered" if any_offered else "but no tools were offered"
    return f"the model called {shown}{more}, {which}: not run"


def plausible(usage: Usage) -> bool:
    """Whether the counts could be real (a count of 10**30 would not fit the history)."""
    counts = (usage.prompt, usage.completion, usage.total, usage.cached or 0)
    return all(isinstance(n, int) and 0 <= n <= MAX_TOKENS for n in counts)


@dataclass
class Turns:
    """How the model turns of one call went: usage summed, why the loop stopped."""

    request: ChatRequest
    prompt_messages: int  # how many messages the first request had
    finished: Finished | None = None
    error: StepAPIError | None = None
    usage: Usage | None = None
    steps: int = 0
    unanswered: tuple[ToolCall, ...] = ()  # calls left when --max-steps ran out
    ids: tuple[str | None, str | None] = (None, None)  # the latest trace and completion ids
    notes: list[str] = field(default_factory=list)  # what the wire did differently (each once)
    implausible: bool = False  # a turn reported an impossible token count

    def add(
        self, finished: Finished | None, error: StepAPIError | None, source: ReplySource
    ) -> None:
        """Note one turn; a turn cut short (Ctrl-C, a dropped connection) keeps the ids and
        the usage its stream had already received: the tokens were billed."""
        self.steps += 1
        self.finished, self.error = finished, error
        seen = [item for item in (finished, error, source) if item is not None]
        trace = next((s.trace_id for s in seen if s.trace_id), None)
        completion = next((c for s in seen if (c := getattr(s, "completion_id", None))), None)
        self.ids = (trace or self.ids[0], completion or self.ids[1])
        for note in getattr(source, "notes", ()):
            if note not in self.notes:
                self.notes.append(note)
        if finished is not None:
            self._note_unoffered(finished.tool_calls)
        usage = finished.usage if finished is not None else getattr(source, "usage", None)
        if usage is not None and not plausible(usage):
            self.implausible = True  # no total is shown rather than a total that is too low
        if self.implausible:
            if IMPLAUSIBLE_USAGE not in self.notes:
                self.notes.append(IMPLAUSIBLE_USAGE)
            self.usage = usage = None
        if usage is not None:
            self.usage = usage if self.usage is None else self.usage.plus(usage)

    def _note_unoffered(self, calls: tuple[ToolCall, ...]) -> None:
        """Calls of tools the request did not offer: the tool loop answers them with an
        error, a call without tools never runs them; either way the result says so."""
        offered = {spec.get("function", {}).get("name") for spec in self.request.tools}
        names = list(dict.fromkeys(call.name for call in calls if call.name not in offered))
        if names:
            note = unoffered(names, any_offered=bool(offered))
            if note not in self.notes:
                self.notes.append(note)

    def calls(self) -> tuple[ToolCall, ...]:
        """The calls to run now: none from a turn cut off by the token limit or the filter,
        whose last call's arguments may be cut in the middle."""
        finished = self.finished
        if finished is None or finished.finish_reason in ("length", "content_filter"):
            return ()
        return finished.tool_calls
