"""The steps of a streamed reply: SSE events, plus the stalls and drops faults ask for.

Kept apart from the socket code so the order of events for every fault is readable in one
place; the handler only writes bytes, waits on ``STALL`` and cuts the connection on ``DROP``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from itertools import islice

from step_magic.server.completion import MID_STREAM_ERROR, ChunkEncoder, Completion
from step_magic.server.errors import error_json


class Action(enum.Enum):
    """What the handler does instead of writing an event."""

    STALL = "stall"
    DROP = "drop"


Step = bytes | Action

DONE = b"data: [DONE]\n\n"
MALFORMED = b"data: {not json\n\n"

# Where in the reply each mid-stream fault strikes, and whether the stream goes on after it.
FAULT_PHASE = {
    "stall-mid": "reasoning",
    "drop-reasoning": "reasoning",
    "malformed": "reasoning",
    "error-event": "reasoning",
    "unknown-shape": "reasoning",
    "drop-answer": "answer",
}
FAULTS_THAT_END = frozenset({"drop-reasoning", "drop-answer", "error-event"})


def event(payload: bytes) -> bytes:
    """Wrap a JSON payload as one SSE event."""
    return b"data: " + payload + b"\n\n"


def stream_steps(
    completion: Completion,
    fault: str | None,
    before_end: str | None,
    *,
    include_usage: bool = False,
) -> Iterator[Step]:
    """Yield the steps of the reply in order, with ``fault`` applied.

    StepFun puts the usage on every chunk; with ``usage-on-request`` the reply follows
    OpenAI's semantics instead: no usage unless ``include_usage``, then one last chunk with
    ``choices: []`` that carries it.
    """
    if fault == "empty":
        yield DONE
        return
    on_request = fault == "usage-on-request"
    encoder = ChunkEncoder(completion, before_end, usage_on_chunks=not on_request)
    phase = FAULT_PHASE.get(fault or "")
    strike = completion.phase_middle(phase) if phase else len(completion.pieces)
    odd_at = strike if fault == "unknown-shape" else -1
    tokens = (event(encoder.token(i, odd=i == odd_at)) for i in range(len(completion.pieces)))
    if fault == "unknown-shape":
        yield event(encoder.without_choices(0))
    yield from islice(tokens, strike)
    if fault is not None and phase is not None:
        error = event(error_json(*MID_STREAM_ERROR))
        yield from fault_steps(fault, MALFORMED, error, event(encoder.null_delta(strike)))
        if fault in FAULTS_THAT_END:
            return
    yield from tokens
    yield event(encoder.final())
    if on_request and include_usage:
        yield event(encoder.usage_report())
    if fault != "no-done":
        yield DONE


def fault_steps(
    fault: str, malformed: bytes, error_event: bytes, odd: bytes | None = None
) -> Iterator[Step]:
    """What a mid-stream fault does where it strikes, given its events in one API's words
    (the Messages API has no ``odd`` chunk shape)."""
    if fault == "stall-mid":
        yield Action.STALL
    elif fault in ("drop-reasoning", "drop-answer"):
        yield Action.DROP
    elif fault == "malformed":
        yield malformed
    elif fault == "error-event":
        yield error_event
    elif fault == "unknown-shape" and odd is not None:
        yield odd
