"""One completion as data (its chunks, finish reason and usage) and its JSON encodings.

The reply is planned completely before the first byte is sent, so streaming and
non-streaming requests give the same text, and faults only decide how it is delivered.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from step_magic.server.config import INLINE_FIELDS, REASONING_FIELDS, ServerConfig
from step_magic.server.errors import ApiError, error_json
from step_magic.server.replies import ReplyTokens
from step_magic.server.tools import PlannedCall
from step_magic.server.validation import ReceivedChat

AGENT = "step-local"
THINK_OPEN = "<think>\n"
THINK_CLOSE = "\n</think>\n\n"
MID_STREAM_ERROR = ("server_error", "The server had an error while generating the reply.")
TOOL_PHASE = "tool"
# Sizes of the pieces a call's JSON arguments stream in, in turn (as real servers cut them).
ARGUMENT_PIECES = (6, 9, 7, 10, 8)

# Extra fields a robust client must ignore (the unknown-shape fault).
ODD_FIELDS: dict[str, Any] = {"meta": {"trace": {"stage": "decode", "shards": [1, 2]}}}


@dataclass(frozen=True)
class Piece:
    """One token of the reply: the phase it belongs to (where faults aim) and its delta key.

    A piece of a tool call (phase "tool") carries the call's index and a piece of its JSON
    arguments; the first piece of a call also ``opens`` it (id and function name). A call
    with an empty id is sent with no ``id`` key at all, as some servers do (chatty-tools).
    """

    phase: str
    field: str
    text: str
    call: int | None = None
    opens: PlannedCall | None = None

    def delta(self) -> dict[str, Any]:
        """The delta fields of this piece, in the OpenAI chunk format."""
        if self.call is None:
            return {self.field: self.text}
        entry: dict[str, Any] = {"index": self.call, "function": {"arguments": self.text}}
        if self.opens is not None:
            entry = {
                "index": self.call,
                **_id_field(self.opens),
                "type": "function",
                "function": {"name": self.opens.name, "arguments": self.text},
            }
        return {self.field: [entry]}


def _id_field(call: PlannedCall) -> dict[str, str]:
    """The ``id`` field of a call, or nothing when it has none (an empty id)."""
    return {"id": call.id} if call.id else {}


@dataclass(frozen=True)
class Completion:
    """Everything needed to send one reply, as a stream or as one JSON body."""

    id: str
    created: int
    model: str
    prompt_tokens: int
    cached_tokens: int
    pieces: tuple[Piece, ...]
    finish_reason: str
    reasoning_field: str

    def usage(self, completion_tokens: int) -> dict[str, int]:
        """Usage after ``completion_tokens`` chunks; ``cached_tokens`` only on a cache hit."""
        usage = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }
        if self.cached_tokens:
            usage["cached_tokens"] = self.cached_tokens
        return usage

    def phase_middle(self, phase: str) -> int:
        """Index of the piece halfway through ``phase`` (or the end when it is empty).

        "answer" stands for whatever follows the reasoning, so the faults aimed at the
        answer strike in the middle of the tool calls of a reply that calls tools.
        """
        phases = {"answer", TOOL_PHASE} if phase == "answer" else {phase}
        indexes = [i for i, piece in enumerate(self.pieces) if piece.phase in phases]
        return indexes[len(indexes) // 2] if indexes else len(self.pieces)

    def tool_calls(self) -> list[dict[str, Any]]:
        """The calls the pieces make, whole, as a non-streamed message holds them."""
        calls: dict[int, dict[str, Any]] = {}
        for piece in self.pieces:
            if piece.call is None:
                continue
            if piece.opens is not None:
                function = {"name": piece.opens.name, "arguments": ""}
                calls[piece.call] = {
                    **_id_field(piece.opens),
                    "type": "function",
                    "function": function,
                }
            calls[piece.call]["function"]["arguments"] += piece.text
        return [calls[index] for index in sorted(calls)]


def reasoning_field(request: ReceivedChat, config: ServerConfig) -> str:
    """The delta key of reasoning: the config imitates other servers, else the request asks."""
    if config.reasoning_field not in REASONING_FIELDS:
        raise ApiError(
            500,
            "server_error",
            f"ServerConfig.reasoning_field must be one of {', '.join(REASONING_FIELDS)}.",
        )
    if config.reasoning_field != "reasoning":
        return config.reasoning_field
    return "reasoning_content" if request.deepseek_style else "reasoning"


def plan_completion(
    request: ReceivedChat,
    reply: ReplyTokens,
    fault: str | None,
    field: str,
    usage: tuple[int, int],
) -> Completion:
    """Shape ``reply`` by the fault and ``max_tokens``; ``usage`` is (prompt, cached) tokens.

    The faults that cut the answer cut the tool calls of a reply that calls tools. Answer
    text a tool-call reply has (chatty-tools) comes before the calls, as servers send it.
    """
    after = [Piece("answer", "content", t) for t in reply.answer] + _tool_pieces(reply.tool_calls)
    finish = "tool_calls" if reply.tool_calls else "stop"
    if fault == "reasoning-only":
        after, finish = [], "stop"
    elif fault in ("length", "content-filter"):
        after = after[: len(after) // 2]
        finish = "length" if fault == "length" else "content_filter"
    pieces = _reasoning_pieces(reply.reasoning, field) + after
    if request.max_tokens is not None and len(pieces) > request.max_tokens:
        pieces = pieces[: request.max_tokens]
        finish = "length"
    return Completion(
        id=f"chatcmpl-{uuid.uuid4().hex}",
        created=int(time.time()),
        model=request.model,
        prompt_tokens=usage[0],
        cached_tokens=usage[1],
        pieces=tuple(pieces),
        finish_reason=finish,
        reasoning_field=field,
    )


def _reasoning_pieces(reasoning: tuple[str, ...], field: str) -> list[Piece]:
    if field in INLINE_FIELDS and reasoning:
        opening = (THINK_OPEN,) if field == "think" else ()
        reasoning = (*opening, *reasoning, THINK_CLOSE)
    reasoning_key = "content" if field in INLINE_FIELDS else field
    return [Piece("reasoning", reasoning_key, text) for text in reasoning]


def _tool_pieces(calls: tuple[PlannedCall, ...]) -> list[Piece]:
    """Each call: a piece that opens it (empty arguments), then its arguments a few at a time."""
    pieces: list[Piece] = []
    for index, call in enumerate(calls):
        pieces.append(Piece(TOOL_PHASE, "tool_calls", "", index, call))
        pieces.extend(
            Piece(TOOL_PHASE, "tool_calls", text, index) for text in split_arguments(call.arguments)
        )
    return pieces


def split_arguments(arguments: str) -> list[str]:
    """Cut JSON arguments into pieces of 6 to 10 characters; they join back exactly."""
    pieces: list[str] = []
    start = 0
    while start < len(arguments):
        size = ARGUMENT_PIECES[len(pieces) % len(ARGUMENT_PIECES)]
        pieces.append(arguments[start : start + size])
        start += size
    return pieces


class ChunkEncoder:
    """Encodes the chunks of one completion as JSON bytes.

    ``before_end`` is what ``finish_reason`` and ``delta.role`` hold before the last chunk
    ("" or None, both seen from StepFun).
    """

    def __init__(
        self, completion: Completion, before_end: str | None, *, usage_on_chunks: bool = True
    ) -> None:
        self.completion = completion
        self.before_end = before_end
        self.usage_on_chunks = usage_on_chunks

    def token(self, index: int, odd: bool = False) -> bytes:
        """The chunk carrying piece ``index``; ``odd`` adds nested fields nobody declared."""
        piece = self.completion.pieces[index]
        role = "assistant" if index == 0 else self.before_end
        delta: dict[str, Any] = {"role": role, **piece.delta()}
        if odd:
            delta.update(ODD_FIELDS)
        return self._encode(delta, self.before_end, index + 1, ODD_FIELDS if odd else {})

    def final(self) -> bytes:
        """The last chunk: empty delta, the finish reason and the final usage."""
        count = len(self.completion.pieces)
        return self._encode({}, self.completion.finish_reason, count, {})

    def without_choices(self, sent: int) -> bytes:
        """A chunk with ``choices: []`` (seen from some servers around usage reports)."""
        chunk = self._chunk([], sent)
        # ASCII escapes, so any text a reply holds (a lone surrogate too) can be sent.
        return json.dumps(chunk).encode()

    def usage_report(self) -> bytes:
        """OpenAI's last chunk when usage was asked for: ``choices: []`` and the totals."""
        chunk = self._chunk([], len(self.completion.pieces))
        chunk["usage"] = self.completion.usage(len(self.completion.pieces))
        return json.dumps(chunk).encode()

    def null_delta(self, sent: int) -> bytes:
        """A chunk whose ``delta`` is null."""
        choice = {"index": 0, "delta": None, "finish_reason": self.before_end}
        return json.dumps(self._chunk([choice], sent)).encode()

    def _encode(
        self, delta: dict[str, Any], finish: str | None, sent: int, extra: dict[str, Any]
    ) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, **extra}
        chunk = self._chunk([choice], sent)
        chunk.update(extra)
        return json.dumps(chunk).encode()

    def _chunk(self, choices: list[Any], sent: int) -> dict[str, Any]:
        return {
            "id": self.completion.id,
            "object": "chat.completion.chunk",
            "created": self.completion.created,
            "model": self.completion.model,
            "choices": choices,
            "usage": self.completion.usage(sent) if self.usage_on_chunks else None,
            "agent": AGENT,
        }


def completion_body(completion: Completion, fault: str | None) -> bytes:
    """The non-streaming reply, with the body-level faults that make sense without a stream."""
    if fault == "malformed":
        return b"{not json"
    if fault == "error-event":
        return error_json(*MID_STREAM_ERROR)
    body = {
        "id": completion.id,
        "object": "chat.completion",
        "created": completion.created,
        "model": completion.model,
        "choices": [] if fault == "empty" else [_choice(completion)],
        "usage": completion.usage(len(completion.pieces)),
        "agent": AGENT,
    }
    if fault == "unknown-shape":
        body.update(ODD_FIELDS)
    return json.dumps(body).encode()


def _choice(completion: Completion) -> dict[str, Any]:
    fields = (
        ["content"]
        if completion.reasoning_field in INLINE_FIELDS
        else ["content", completion.reasoning_field]
    )
    texts: dict[str, list[str]] = {field: [] for field in fields}
    for piece in completion.pieces:
        if piece.call is None:
            texts[piece.field].append(piece.text)
    message: dict[str, Any] = {
        "role": "assistant",
        **{field: "".join(parts) for field, parts in texts.items()},
    }
    calls = completion.tool_calls()
    if calls:  # as OpenAI sends it: no text, so null content (chatty-tools has text)
        message["content"] = message["content"] or None
        message["tool_calls"] = calls
    return {"index": 0, "message": message, "finish_reason": completion.finish_reason}
