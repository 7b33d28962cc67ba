"""The Messages API (Anthropic style) of the local server: ``POST /v1/messages``.

A Messages request is translated into the chat completion body it amounts to and checked by
the chat validation, so both endpoints accept and refuse the same things (models, effort
levels, images to text-only models) and give the same reply text for the same question;
only the encoding differs: a ``thinking`` block (reasoning), then a ``text`` block (answer),
as SSE events that carry an ``event:`` line, or one ``message`` JSON object. Tool use is
the chat's too (see messages_tools): a reply that calls tools has a ``tool_use`` block per
call, its input streamed as ``input_json_delta`` pieces. Faults apply as on the chat
endpoint; ``ServerConfig.reasoning_field`` (a chat dialect) does not.

StepFun documents the request fields (``max_tokens`` required, effort as
``output_config.effort``) and the event names, not its error bodies here: errors found by
this endpoint use Anthropic's shape, while the key check shared with the chat endpoint
answers in StepFun's, so a client has to read both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import chain, islice
from typing import Any

from step_magic.server.completion import MID_STREAM_ERROR, ODD_FIELDS, Completion, Piece
from step_magic.server.errors import ApiError, invalid_params
from step_magic.server.messages_tools import (
    Turn,
    chat_tool_fields,
    check_tool_pairs,
    is_text_block,
    tool_use_blocks,
    tool_use_start,
)
from step_magic.server.stream import FAULT_PHASE, FAULTS_THAT_END, Step, fault_steps
from step_magic.server.validation import ReceivedChat, parse_chat_request

MESSAGES_PATH = "/v1/messages"
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "content_filter": "refusal",
    "tool_calls": "tool_use",
}
BLOCK_TYPES = {"reasoning": ("thinking", "thinking_delta"), "answer": ("text", "text_delta")}
ROLES = frozenset({"user", "assistant"})
UNKNOWN_EVENT = "step_meta"  # an event type no client knows (the unknown-shape fault)
MALFORMED = b"event: content_block_delta\ndata: {not json\n\n"


def parse_messages_request(body: Any) -> tuple[ReceivedChat, dict[str, Any]]:
    """Validate a Messages body; return the chat request it amounts to, and that chat body.

    The chat body is what the reply is derived from (and what a cassette is looked up by),
    so a question asked through either endpoint gets the same text.
    """
    if not isinstance(body, dict):
        raise invalid_params("The request body must be a JSON object.")
    if body.get("max_tokens") is None:
        raise invalid_params("max_tokens is required.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid_params("messages is required and must be a non-empty array.")
    turns = [_message(index, item) for index, item in enumerate(messages)]
    check_tool_pairs(turns)
    chat: dict[str, Any] = {
        "model": body.get("model"),
        "messages": [*_system(body.get("system")), *chain.from_iterable(turns)],
        "max_tokens": body["max_tokens"],
        "stream": body.get("stream", False),
        **chat_tool_fields(body),
    }
    for name in ("temperature", "top_p"):  # not checked (nor by the chat endpoint), but keyed
        if name in body:
            chat[name] = body[name]
    config = body.get("output_config", {})
    if not isinstance(config, dict):
        raise invalid_params("output_config must be an object.")
    if config.get("effort") is not None:
        chat["reasoning_effort"] = config["effort"]
    try:
        return parse_chat_request(chat), chat
    except ApiError as error:  # name the field as this endpoint spells it
        message = error.message.replace("reasoning_effort", "output_config.effort")
        raise invalid_params(message) from None


def _system(value: Any) -> list[dict[str, Any]]:
    """The top-level ``system`` (a string or text blocks) as a chat system message."""
    if value is None:
        return []
    if isinstance(value, list) and all(is_text_block(block) for block in value):
        value = "\n".join(block["text"] for block in value)
    if not isinstance(value, str):
        raise invalid_params("system must be a string or an array of text blocks.")
    return [{"role": "system", "content": value}]


def _message(index: int, item: Any) -> list[dict[str, Any]]:
    """One message as the chat messages it amounts to: tool results become messages of
    their own, ahead of the user's text, as the chat shape has them."""
    if not isinstance(item, dict) or item.get("role") not in ROLES:
        raise invalid_params(f"messages[{index}] must be an object with role user or assistant.")
    content = item.get("content")
    if isinstance(content, str):
        return [{"role": item["role"], "content": content}]
    if not isinstance(content, list):
        raise invalid_params(f"messages[{index}].content must be a string or an array of blocks.")
    turn = Turn(item["role"])
    for block_index, block in enumerate(content):
        where = f"messages[{index}].content[{block_index}]"
        if not turn.take(where, block):
            turn.parts.append(_part(where, block))
    return turn.chat_messages()


def _part(where: str, block: Any) -> dict[str, Any]:
    """A content block as the chat part it stands for; the chat validation checks the URL."""
    if is_text_block(block):
        return {"type": "text", "text": block["text"]}
    source = block.get("source") if isinstance(block, dict) else None
    if not isinstance(block, dict) or block.get("type") != "image" or not isinstance(source, dict):
        raise invalid_params(
            f"{where} must be a text block, an image block with a source, "
            "or a tool_use, tool_result or thinking block."
        )
    if source.get("type") == "base64":
        url: Any = f"data:{source.get('media_type')};base64,{source.get('data')}"
    elif source.get("type") == "url":
        url = source.get("url")
    else:
        raise invalid_params(f"{where}.source.type must be base64 or url.")
    return {"type": "image_url", "image_url": {"url": url}}


def error_body(error: ApiError) -> bytes:
    """An error in Anthropic's shape, keeping StepFun's error types."""
    return _json({"type": "error", "error": {"type": error.error_type, "message": error.message}})


def message_steps(completion: Completion, fault: str | None) -> Iterator[Step]:
    """The SSE events of one streamed message, in order, with ``fault`` applied."""
    if fault == "empty":
        return  # headers, then a body with no event at all
    phase = FAULT_PHASE.get(fault or "")
    strike = completion.phase_middle(phase) if phase else len(completion.pieces)
    pieces = _piece_events(completion, strike if fault == "unknown-shape" else -1)
    start = _message_object(completion, [], None) | {"usage": _input_usage(completion)}
    yield _event("message_start", {"message": start})
    yield _event("ping", {})
    yield from islice(pieces, strike)
    if fault is not None and phase is not None:
        error = {"error": {"type": MID_STREAM_ERROR[0], "message": MID_STREAM_ERROR[1]}}
        yield from fault_steps(fault, MALFORMED, _event("error", error))
        if fault in FAULTS_THAT_END:
            return
    yield from pieces
    stop = {"stop_reason": STOP_REASONS[completion.finish_reason], "stop_sequence": None}
    usage = {"output_tokens": len(completion.pieces)}
    yield _event("message_delta", {"delta": stop, "usage": usage})
    if fault != "no-done":
        yield _event("message_stop", {})


def _piece_events(completion: Completion, odd_at: int) -> Iterator[bytes]:
    """One write per piece (opening its block when the phase changes or a call opens), then
    the last stop."""
    block = -1
    phase: str | None = None
    for index, piece in enumerate(completion.pieces):
        events = []
        if piece.phase != phase or piece.opens is not None:
            if phase is not None:
                events.append(_event("content_block_stop", {"index": block}))
            block, phase = block + 1, piece.phase
            start = {"index": block, "content_block": _block_start(completion, piece)}
            events.append(_event("content_block_start", start))
        extra = ODD_FIELDS if index == odd_at else {}
        if extra:
            events.append(_event(UNKNOWN_EVENT, dict(extra)))
        events.append(
            _event("content_block_delta", {"index": block, "delta": _delta(piece), **extra})
        )
        yield b"".join(events)
    if phase is not None:
        yield _event("content_block_stop", {"index": block})


def _block_start(completion: Completion, piece: Piece) -> dict[str, Any]:
    """The empty block a piece opens: a call's id and name, or thinking or text."""
    if piece.opens is not None and piece.call is not None:
        return tool_use_start(piece.opens.id, piece.opens.name, completion, piece.call)
    kind = BLOCK_TYPES[piece.phase][0]
    return {"type": kind, kind: ""}


def _delta(piece: Piece) -> dict[str, str]:
    """A piece's delta; a call's opening piece sends "" first, as Anthropic does."""
    if piece.call is not None:
        return {"type": "input_json_delta", "partial_json": piece.text}
    kind, delta = BLOCK_TYPES[piece.phase]
    return {"type": delta, kind: piece.text}


def message_body(completion: Completion, fault: str | None) -> bytes:
    """The non-streamed message, with the body faults that make sense without a stream."""
    if fault == "malformed":
        return b"{not json"
    if fault == "error-event":
        return error_body(ApiError(500, *MID_STREAM_ERROR))
    blocks: list[dict[str, Any]] = []
    for phase, (kind, _) in BLOCK_TYPES.items():
        text = "".join(piece.text for piece in completion.pieces if piece.phase == phase)
        if text and fault != "empty":
            blocks.append({"type": kind, kind: text})
    if fault != "empty":
        blocks.extend(tool_use_blocks(completion))
    body = _message_object(completion, blocks, STOP_REASONS[completion.finish_reason])
    body["usage"] = _input_usage(completion) | {"output_tokens": len(completion.pieces)}
    return _json(body | (ODD_FIELDS if fault == "unknown-shape" else {}))


def _message_object(completion: Completion, content: list[Any], stop: str | None) -> dict[str, Any]:
    """The message object (without usage), as message_start and a non-streamed reply hold it."""
    return {
        "id": "msg_" + completion.id.rpartition("-")[2],
        "type": "message",
        "role": "assistant",
        "model": completion.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
    }


def _input_usage(completion: Completion) -> dict[str, int]:
    """Prompt usage as Anthropic counts it: ``input_tokens`` leaves out the cache reads."""
    usage = {"input_tokens": completion.prompt_tokens - completion.cached_tokens}
    if completion.cached_tokens:
        usage["cache_read_input_tokens"] = completion.cached_tokens
    return usage | {"output_tokens": 0}


def _event(name: str, payload: dict[str, Any]) -> bytes:
    """One SSE event whose ``event:`` line repeats the payload's ``type``, as Anthropic sends."""
    return b"event: %s\ndata: %s\n\n" % (name.encode(), _json({"type": name, **payload}))


def _json(payload: dict[str, Any]) -> bytes:
    # ASCII escapes, so any text a reply holds (a lone surrogate too) can be sent.
    return json.dumps(payload).encode()
