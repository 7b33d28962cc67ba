"""Settings of the local server and the record of what it received.

``ServerConfig`` is deliberately mutable: tests flip a fault or a pacing value between two
calls on a running server instead of restarting it. ``ReceivedRequest`` is frozen so a test
can hold on to a snapshot without it changing underneath.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REDACTED = "Bearer <redacted>"
# "think-close": inline reasoning closed by </think> with no opening tag (R1-style templates
# put the <think> in the prompt).
REASONING_FIELDS = ("reasoning", "reasoning_content", "think", "think-close")
INLINE_FIELDS = ("think", "think-close")

# Header names whose values are secrets; compared in lower case.
_SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key"})


@dataclass
class ServerConfig:
    """How the local server behaves; every field may be changed while it runs.

    ``api_key`` None accepts any non-empty bearer token. ``reasoning_tokens`` and
    ``answer_tokens`` set exact reply lengths in tokens (chunks) instead of the defaults
    derived from the effort. ``fault`` applies to every chat completion request, or only to
    the next ``fault_times`` of them. ``reasoning_field`` imitates other compatible servers:
    "reasoning" (StepFun), "reasoning_content" (DeepSeek style) or "think" (inline
    ``<think>…</think>`` in the content). ``finish_reason_before_end`` is what
    ``finish_reason`` (and ``delta.role`` after the first chunk) holds before the last
    chunk: StepFun has been seen sending both "" and null. ``cassette`` names a JSON-lines
    file recorded by ``%step_record``: requests found in it get the recorded reply.
    """

    api_key: str | None = None
    tokens_per_second: float = 0
    reasoning_tokens: int | None = None
    answer_tokens: int | None = None
    first_byte_delay: float = 0
    fault: str | None = None
    fault_times: int | None = None
    stall_seconds: float = 30
    retry_after: float = 1
    reasoning_field: str = "reasoning"
    finish_reason_before_end: str | None = ""
    cassette: str | None = None


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the server saw it, with secrets redacted.

    Header names are lower-cased (HTTP header names are case-insensitive, and clients differ
    in how they spell them). ``body`` is the parsed JSON, or None when there was no body or
    it was not JSON.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    received_at: float
    peer: str = ""  # the client's address and port: one per connection (keep-alive reuse)


def redact_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Return lower-cased headers with every credential replaced, so no key is ever stored."""
    return {
        name.lower(): REDACTED if name.lower() in _SECRET_HEADERS else value
        for name, value in headers
    }
