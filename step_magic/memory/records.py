"""One logged call as a row: what the history stores and gives back.

A row is built from the request that was sent and the reply that came back (``call_record``),
whichever path made the call (a cell, ``--map``, the Python API), so every row has the same
shape; ``CallRecord.reply()`` turns a row back into a reply to replay.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from step_magic.core.cassette import RecordedReply
from step_magic.core.events import Usage
from step_magic.core.redact import redact_media
from step_magic.core.request import ChatRequest
from step_magic.core.result import StepResult


@dataclass(frozen=True)
class CallRecord:
    """One call as logged: the request (media as references), the reply and its provenance."""

    started_at: float
    model: str
    effort: str | None
    prompt: str
    messages: tuple[dict[str, Any], ...]
    attachments: tuple[str, ...]
    reasoning: str
    answer: str
    status: str
    error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    finish_reason: str | None = None
    trace_id: str | None = None
    completion_id: str | None = None
    elapsed: float | None = None
    first_token: float | None = None
    notebook: str | None = None
    thread: str | None = None
    cache_key: str | None = None
    replayed: bool = False
    cell: str | None = None
    starts_thread: bool = False
    earlier_messages: int = 0  # earlier turns' messages sent too, stored with their own calls
    id: int | None = None

    def reply(self) -> RecordedReply:
        """This call as a reply to play back (usage rebuilt when both token counts were stored)."""
        usage = None
        if self.prompt_tokens is not None and self.completion_tokens is not None:
            total = self.prompt_tokens + self.completion_tokens
            usage = Usage(self.prompt_tokens, self.completion_tokens, total, self.cached_tokens)
        ids = (self.trace_id, self.completion_id)
        return RecordedReply(self.reasoning, self.answer, self.finish_reason, usage, *ids)

    def json_line(self) -> str:
        """This call as one line of JSON, every field, non-ASCII text kept readable."""
        return json.dumps(asdict(self), ensure_ascii=False)


def call_record(
    request: ChatRequest, reply: RecordedReply, key: str | None, **details: Any
) -> CallRecord:
    """The history row of a finished call: the request (media as references), the reply, and
    whatever else the caller knows (``details``: prompt, status, timings, notebook…)."""
    content = request.messages[-1].get("content") if request.messages else None
    usage = reply.usage
    fields = {
        "started_at": time.time(),
        "model": request.model,
        "effort": request.effort,
        "prompt": content if isinstance(content, str) else "",
        "messages": redact_media(request.messages),
        "attachments": (),
        "reasoning": reply.reasoning,
        "answer": reply.answer,
        "status": "complete",
        "prompt_tokens": usage.prompt if usage else None,
        "completion_tokens": usage.completion if usage else None,
        "cached_tokens": usage.cached if usage else None,
        "finish_reason": reply.finish_reason,
        "trace_id": reply.trace_id,
        "completion_id": reply.completion_id,
        "cache_key": key,
    }
    return CallRecord(**{**fields, **details})


def result_record(
    request: ChatRequest, result: StepResult, key: str | None, **details: Any
) -> CallRecord:
    """The history row of a call that ran (a cell, a ``--map`` row, the Python API): how it
    ended, its error and timings, whatever the caller adds in ``details``."""
    fields = {
        "started_at": time.time() - result.elapsed,
        "model": result.model,
        "status": result.status,
        "error": result.error,
        "elapsed": result.elapsed,
        "first_token": result.first_token,
        "replayed": result.replayed,
    }
    return call_record(request, result.recorded(), key, **{**fields, **details})
