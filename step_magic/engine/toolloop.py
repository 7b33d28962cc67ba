"""One round of the tool loop: run the calls the model asked for, in the kernel, in order.

The calls of one turn run one after another on the kernel's main thread, where the user's
functions expect to run (plots, widgets, non-thread-safe libraries), even when the model
asked for them in parallel. Each result, or the error the function raised, goes back to
the model as a ``tool`` message so it can continue or correct itself. Ctrl-C interrupts the
running function or the confirmation question and stops the loop.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from step_magic.core.interrupts import interrupts_raised
from step_magic.core.request import REASONING_DETAILS, THINKING_BLOCKS, ChatRequest, Message
from step_magic.core.toolrecords import ToolCall, ToolRecord, preview, signature
from step_magic.tools.toolbox import Outcome, Toolbox

DEFAULT_MAX_STEPS = 8
DECLINED = "Not run: the user declined this call."
MAX_CALLS_PER_TURN = 16
TOO_MANY = f"Not run: at most {MAX_CALLS_PER_TURN} calls per turn; ask for the rest next turn."

Confirm = Callable[[str], bool]


class ToolView(Protocol):
    """The part of a view that shows tool calls as they start and end."""

    def tool(self, record: ToolRecord) -> None: ...


@dataclass
class ToolLoop:
    """The tools of a call, how many model turns it may take, and who approves each call."""

    toolbox: Toolbox
    max_steps: int = DEFAULT_MAX_STEPS
    confirm: Confirm | None = None
    records: list[ToolRecord] = field(default_factory=list)
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def run_calls(
        self,
        request: ChatRequest,
        content: str,
        calls: Sequence[ToolCall],
        view: ToolView,
        interrupts: list[int],
        *,
        step: int,
        reasoning_at: int,
        thinking: Sequence[dict[str, str]] = (),
        details: Sequence[dict[str, Any]] = (),
    ) -> ChatRequest:
        """Run ``calls``; return the request for the next turn (with the calls and results).

        ``content`` is the text the model wrote along with the calls: it stays in the
        assistant message, its reasoning does not (reasoning is never sent back), except
        as the signed ``thinking`` blocks the Messages API requires back unchanged, and
        OpenRouter's ``reasoning_details`` (``details``), which it asks for back the same way.
        """
        assistant: Message = {
            "role": "assistant",
            "content": content,
            "tool_calls": [call.entry() for call in calls],
        }
        if thinking:
            assistant[THINKING_BLOCKS] = [dict(block) for block in thinking]
        if details:
            assistant[REASONING_DETAILS] = [dict(detail) for detail in details]
        messages: list[Message] = [*request.messages, assistant]
        for number, call in enumerate(calls):
            said = content if number == 0 else ""
            record = ToolRecord(call.name, call.arguments, call.id, step, reasoning_at, said=said)
            with self._lock:  # (``stop`` from the event loop's thread)
                if interrupts:  # a Ctrl-C between two calls stops the next one too
                    break
                self.records.append(record)
            if number >= MAX_CALLS_PER_TURN:  # every call needs an answer, even unrun ones
                record.status = f"not run (over {MAX_CALLS_PER_TURN} calls in one turn)"
                messages.append({"role": "tool", "tool_call_id": call.id, "content": TOO_MANY})
                continue
            view.tool(record)
            started = time.monotonic()
            ran = self._run(call, interrupts)
            record.duration = time.monotonic() - started
            if ran is None or record.status == "interrupted":  # Ctrl-C, or ``stop``
                record.status = "interrupted"
                view.tool(record)
                break
            record.status, outcome = ran
            record.preview = preview(outcome.text)
            view.tool(record)
            messages.append({"role": "tool", "tool_call_id": call.id, "content": outcome.text})
        return dataclasses.replace(request, messages=tuple(messages))

    def stop(self, interrupts: list[int]) -> None:
        """Stop from another thread (an ``ask_async`` cancelled while a tool runs in a worker
        thread, which cannot be stopped): no further call starts, and the running one is
        interrupted in the result now, whatever it returns later."""
        with self._lock:
            interrupts.append(signal.SIGINT)
            for record in self.records:
                if record.status == "running":
                    record.status = "interrupted"

    def _run(self, call: ToolCall, interrupts: list[int]) -> tuple[str, Outcome] | None:
        """How the call went (ok, error, declined) and its outcome; None when Ctrl-C stopped
        it (or its question)."""
        with interrupts_raised(interrupts):
            if self.confirm is not None and not self.confirm(question(call)):
                return "declined", Outcome(DECLINED, True)
            outcome = self.toolbox.call(call.name, call.arguments)
            return ("error" if outcome.failed else "ok"), outcome
        return None


def not_run(calls: Sequence[ToolCall], step: int, at: int) -> list[ToolRecord]:
    """Calls the model asked for after its last allowed turn: listed, never run."""
    status = "not run (--max-steps reached)"
    return [ToolRecord(c.name, c.arguments, c.id, step, at, status=status) for c in calls]


def question(call: ToolCall) -> str:
    """What ``--confirm`` asks before a call."""
    return f"Run {signature(call, limit=None)}? [y/N] "
