"""Conversation memory: consecutive calls form threads, sent back as context, bounded.

Only what the user asked and what the model answered is kept; the reasoning is never sent
back (it is shown and stored in history, not resent). A turn made by a notebook cell is
identified by the cell, so re-running the cell replaces its turn instead of adding one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from step_magic.core.request import CARRIED, Message, estimate_tokens, message_parts
from step_magic.core.text import bounded
from step_magic.memory.records import CallRecord

DEFAULT_THREAD = "default"
REMEMBERED_RESULT_CHARS = 2_000  # a tool result as later turns see it


@dataclass(frozen=True)
class Turn:
    """One exchange: the user message as sent, what came back, and the tokens it cost.

    ``replies`` is the assistant's answer, preceded by its tool calls and their results
    when it used tools (in the order the API requires). Reasoning is never in it.
    """

    cell: str | None
    user: Message
    replies: tuple[Message, ...]
    tokens: int = 0

    def messages(self, *, keep_media: bool) -> list[Message]:
        """The turn as messages; media become short placeholders unless kept."""
        user = self.user if keep_media else _without_media(self.user)
        return [user, *self.replies]


@dataclass
class Thread:
    """An ordered list of turns with a name (``--chat NAME``)."""

    name: str
    turns: list[Turn] = field(default_factory=list)

    def before(self, cell: str | None) -> list[Turn]:
        """The turns a call from ``cell`` builds on: all, or those before its earlier run."""
        for index, turn in enumerate(self.turns):
            if cell is not None and turn.cell == cell:
                return self.turns[:index]
        return list(self.turns)

    def record(self, turn: Turn) -> None:
        """Add a turn, or replace the earlier turn of the same cell in place."""
        for index, existing in enumerate(self.turns):
            if turn.cell is not None and existing.cell == turn.cell:
                self.turns[index] = turn
                return
        self.turns.append(turn)

    @property
    def tokens(self) -> int:
        """Tokens spent on this thread so far, as the server reported them."""
        return sum(turn.tokens for turn in self.turns)


@dataclass
class Conversations:
    """All threads of a kernel session, by name."""

    threads: dict[str, Thread] = field(default_factory=dict)

    def thread(self, name: str = DEFAULT_THREAD) -> Thread:
        """The thread called ``name``, created empty on first use."""
        return self.threads.setdefault(name, Thread(name))


def turns_from_history(name: str, records: list[CallRecord]) -> Thread:
    """A thread rebuilt from its logged calls, as the session that made them left it.

    The turns start at the last call that started the thread afresh (``--new``,
    ``Chat.reset``), and a cell run again replaces its earlier turn, as in the kernel. Each
    turn is the call's last user message, then what followed it (tool calls and results) and
    the answer; media were logged as references, so they come back as placeholders.
    """
    starts = [index for index, record in enumerate(records) if record.starts_thread]
    thread = Thread(name)
    for record in records[starts[-1] if starts else 0 :]:
        messages = list(record.messages)
        asked = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=None)
        if asked is None:
            continue
        answer = {"role": "assistant", "content": record.answer}
        replies = remembered((*messages[asked + 1 :], answer))
        tokens = (record.prompt_tokens or 0) + (record.completion_tokens or 0)
        thread.record(Turn(record.cell, messages[asked], replies, tokens))
    return thread


def remembered(replies: tuple[Message, ...]) -> tuple[Message, ...]:
    """A call's replies as the thread keeps them: tool results shortened, thinking blocks
    left out (Anthropic drops them from turns before the last anyway).

    A ``--tools df`` exploration can bring back tens of thousands of characters; the model
    has read them in full for its answer, but every later cell would send them again.
    """
    return tuple(_shortened(message) for message in replies)


def _shortened(message: Message) -> Message:
    if any(key in message for key in CARRIED):  # reasoning is not kept: only a loop needs it
        message = {key: value for key, value in message.items() if key not in CARRIED}
    content = message.get("content")
    if message.get("role") != "tool" or not isinstance(content, str):
        return message
    why = "shortened in memory: {total} chars"
    return {**message, "content": bounded(content, REMEMBERED_RESULT_CHARS, why)}


def context_messages(turns: list[Turn], budget_tokens: int) -> tuple[list[Message], int]:
    """Earlier turns as messages, oldest dropped first to fit ``budget_tokens``.

    Returns the messages and how many turns were dropped, so the caller can say so.
    """
    kept = [turn.messages(keep_media=False) for turn in turns]
    dropped = 0
    while kept and estimate_tokens([m for turn in kept for m in turn]) > budget_tokens:
        kept.pop(0)  # whole turns, so a tool result never loses the call it answers
        dropped += 1
    return [message for turn in kept for message in turn], dropped


def _without_media(message: Message) -> Message:
    content = message.get("content")
    if isinstance(content, str):
        return message
    parts = [
        part if part.get("type") == "text" else {"type": "text", "text": _placeholder(part)}
        for part in message_parts(message)
    ]
    return {**message, "content": parts}


def _placeholder(part: Message) -> str:
    kind = "video" if part.get("type") == "video_url" else "image"
    return f"[{kind} shown in an earlier turn, not sent again]"
