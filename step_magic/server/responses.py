"""The Responses API of the local server: ``POST /v1/responses`` (OpenAI's shape, as StepFun's).

As for the Messages endpoint, a request is translated into the chat completion body it amounts
to and checked by the chat validation, so the three endpoints accept and refuse the same
things and give the same text for the same question; only the encoding differs. ``input`` is
a string or a list of items (messages with ``input_text`` / ``input_image`` parts,
``function_call`` and ``function_call_output`` items), ``instructions`` the system prompt,
``reasoning.effort`` the effort, ``max_output_tokens`` the cap, function tools flat. StepFun
documents the API for step-3.7-flash only: other known models are refused.

A streamed reply is OpenAI's event sequence: ``response.created``; per output item an
``output_item.added``, its deltas (``reasoning_text``, ``output_text``,
``function_call_arguments``) and an ``output_item.done``; then ``response.completed``, or
``response.incomplete`` with ``incomplete_details.reason`` (``max_output_tokens``,
``content_filter``). Each event has an ``event:`` line and a ``sequence_number``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from itertools import count, islice
from typing import Any

from step_magic.core.models import MODELS
from step_magic.server.completion import MID_STREAM_ERROR, ODD_FIELDS, Completion, Piece
from step_magic.server.errors import ApiError, invalid_params
from step_magic.server.stream import FAULT_PHASE, FAULTS_THAT_END, Step, fault_steps
from step_magic.server.validation import ReceivedChat, parse_chat_request

RESPONSES_PATH = "/v1/responses"
RESPONSES_MODELS = frozenset({"step-3.7-flash"})
ROLES = frozenset({"user", "assistant", "system", "developer"})
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
MALFORMED = b"event: response.output_text.delta\ndata: {not json\n\n"
Event = Callable[[str, dict[str, Any]], bytes]


def parse_responses_request(body: Any) -> tuple[ReceivedChat, dict[str, Any]]:
    """Validate a Responses body; return the chat request it amounts to, and that chat body."""
    if not isinstance(body, dict):
        raise invalid_params("The request body must be a JSON object.")
    model = body.get("model")
    if model in MODELS and model not in RESPONSES_MODELS:
        raise invalid_params(f"The Responses API does not support the model {model}.")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise invalid_params("instructions must be a string.")
    system = [{"role": "system", "content": instructions}] if instructions else []
    chat: dict[str, Any] = {
        "model": model,
        "messages": system + _messages(body.get("input")),
        "stream": body.get("stream", False),
    }
    reasoning = body.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, dict):
        raise invalid_params("reasoning must be an object.")
    if (reasoning or {}).get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]  # type: ignore[index]
    fields = {"max_output_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p"}
    chat |= {chat_name: body[name] for name, chat_name in fields.items() if name in body}
    if body.get("tools") is not None:
        chat["tools"] = _tools(body["tools"])
    if body.get("text") is not None:
        chat["response_format"] = _text_format(body["text"])
    try:
        return parse_chat_request(chat), chat
    except ApiError as error:  # name the fields as this endpoint spells them
        if error.status != 400:
            raise
        renamed = error.message.replace("reasoning_effort", "reasoning.effort")
        renamed = renamed.replace("response_format.json_schema", "text.format")
        renamed = renamed.replace("response_format", "text.format")
        raise invalid_params(renamed.replace("max_tokens", "max_output_tokens")) from None


def _messages(given: Any) -> list[dict[str, Any]]:
    """``input`` as chat messages: function calls join one assistant message, each output is
    a tool message, parts become chat parts (the chat validation checks their URLs)."""
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    if not isinstance(given, list) or not given:
        raise invalid_params("input must be a string or a non-empty array of items.")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(given):
        where = f"input[{index}]"
        if not isinstance(item, dict):
            raise invalid_params(f"{where} must be an object.")
        kind = item.get("type", "message")
        if kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function", "function": _called(item)}
            if messages and messages[-1]["role"] == "assistant" and "tool_calls" in messages[-1]:
                messages[-1]["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else json.dumps(output)
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": text})
        elif kind == "message":
            messages.append(_message(where, item))
        elif kind != "reasoning":  # earlier reasoning items are the client's to resend
            raise invalid_params(f"{where}.type {kind!r} is not an input item this server takes.")
    return messages


def _called(item: dict[str, Any]) -> dict[str, Any]:
    return {"name": item.get("name"), "arguments": item.get("arguments") or "{}"}


def _message(where: str, item: dict[str, Any]) -> dict[str, Any]:
    role = item.get("role")
    if role not in ROLES:
        raise invalid_params(f"{where}.role must be user, assistant, system or developer.")
    content = item.get("content")
    if isinstance(content, list):
        content = [_part(f"{where}.content[{i}]", part) for i, part in enumerate(content)]
    elif not isinstance(content, str):
        raise invalid_params(f"{where}.content must be a string or an array of parts.")
    return {"role": "system" if role == "developer" else role, "content": content}


def _part(where: str, part: Any) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "input_image":
        image = {"url": part.get("image_url")}
        return {"type": "image_url", "image_url": image | _detail(part)}
    raise invalid_params(f"{where} must be an input_text or input_image part.")


def _detail(part: dict[str, Any]) -> dict[str, Any]:
    detail = part.get("detail")
    return {} if detail in (None, "auto") else {"detail": detail}


def _text_format(text: Any) -> dict[str, Any]:
    """``text.format`` as the chat ``response_format`` it amounts to."""
    given = text.get("format") if isinstance(text, dict) else None
    if not isinstance(given, dict):
        raise invalid_params("text.format must be an object.")
    if given.get("type") != "json_schema":
        return {"type": given.get("type")}
    described = {key: given.get(key) for key in ("name", "schema")}
    return {"type": "json_schema", "json_schema": described}


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise invalid_params("tools must be an array of tool definitions.")
    chat = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise invalid_params(f"tools[{index}] must be a function tool; this server runs none.")
        function = {key: tool[key] for key in ("name", "description", "parameters") if key in tool}
        chat.append({"type": "function", "function": function})
    return chat


def response_steps(completion: Completion, fault: str | None) -> Iterator[Step]:
    """The SSE events of one streamed response, in order, with ``fault`` applied."""
    if fault == "empty":
        return
    numbers = count()

    def event(name: str, payload: dict[str, Any]) -> bytes:
        data = {"type": name, "sequence_number": next(numbers), **payload}
        return b"event: %s\ndata: %s\n\n" % (name.encode(), _json(data))

    phase = FAULT_PHASE.get(fault or "")
    strike = completion.phase_middle(phase) if phase else len(completion.pieces)
    output: list[dict[str, Any]] = []
    pieces = _item_events(completion, event, output, strike if fault == "unknown-shape" else -1)
    yield event("response.created", {"response": _response(completion, "in_progress", [])})
    yield from islice(pieces, strike)
    if fault is not None and phase is not None:
        error = event("error", {"code": "server_error", "message": MID_STREAM_ERROR[1]})
        yield from fault_steps(fault, MALFORMED, error)
        if fault in FAULTS_THAT_END:
            return
    yield from pieces
    if fault != "no-done":
        status = "incomplete" if completion.finish_reason in INCOMPLETE else "completed"
        yield event(f"response.{status}", {"response": _response(completion, status, output)})


def _item_events(
    completion: Completion, event: Event, output: list[dict[str, Any]], odd_at: int
) -> Iterator[bytes]:
    """One write per piece, opening an output item when the phase changes or a call opens;
    each item closed (and kept in ``output``) when the next opens or the reply ends."""
    item: dict[str, Any] | None = None
    for index, piece in enumerate(completion.pieces):
        events = []
        if item is None or _opens(piece, item):
            if item is not None:
                events.append(_done(event, output, item))
            item = _new_item(completion, piece, len(output))
            events.append(event("response.output_item.added", _at(item)))
        if index == odd_at:
            events.append(event("response.step_meta", dict(ODD_FIELDS)))
        events.append(_delta(event, item, piece))
        yield b"".join(events)
    if item is not None:
        yield _done(event, output, item)


def _opens(piece: Piece, item: dict[str, Any]) -> bool:
    return piece.phase != item["phase"] or piece.opens is not None


def _new_item(completion: Completion, piece: Piece, index: int) -> dict[str, Any]:
    suffix = hashlib.sha256(f"{completion.id}:{index}".encode()).hexdigest()[:20]
    if piece.opens is not None:
        call_id = piece.opens.id or f"call_{suffix}"
        fields = {"type": "function_call", "call_id": call_id, "name": piece.opens.name}
        return {"phase": piece.phase, "index": index, "id": f"fc_{suffix}", **fields, "text": ""}
    kind = "reasoning" if piece.phase == "reasoning" else "message"
    return {
        "phase": piece.phase,
        "index": index,
        "id": f"{kind[:3]}_{suffix}",
        "type": kind,
        "text": "",
    }


def _delta(event: Event, item: dict[str, Any], piece: Piece) -> bytes:
    item["text"] += piece.text
    where = {"item_id": item["id"], "output_index": item["index"]}
    if item["type"] == "function_call":
        return event("response.function_call_arguments.delta", where | {"delta": piece.text})
    name = "reasoning_text" if item["type"] == "reasoning" else "output_text"
    return event(f"response.{name}.delta", where | {"content_index": 0, "delta": piece.text})


def _done(event: Event, output: list[dict[str, Any]], item: dict[str, Any]) -> bytes:
    output.append(_public(item))
    return event("response.output_item.done", _at(item))


def _at(item: dict[str, Any]) -> dict[str, Any]:
    return {"output_index": item["index"], "item": _public(item)}


def _public(item: dict[str, Any]) -> dict[str, Any]:
    """An output item as the API shows it."""
    text, base = item["text"], {"id": item["id"], "type": item["type"]}
    if item["type"] == "function_call":
        return base | {"call_id": item["call_id"], "name": item["name"], "arguments": text}
    if item["type"] == "reasoning":
        return base | {"summary": [], "content": [{"type": "reasoning_text", "text": text}]}
    part = {"type": "output_text", "text": text, "annotations": []}
    return base | {"role": "assistant", "status": "completed", "content": [part]}


def _response(completion: Completion, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
    """The response object, as ``response.created`` and the final event hold it."""
    reason = INCOMPLETE.get(completion.finish_reason)
    body: dict[str, Any] = {
        "id": "resp_" + completion.id.rpartition("-")[2],
        "object": "response",
        "created_at": completion.created,
        "model": completion.model,
        "status": status,
        "output": output,
        "incomplete_details": {"reason": reason} if status == "incomplete" else None,
    }
    if status != "in_progress":
        reasoning = sum(1 for piece in completion.pieces if piece.phase == "reasoning")
        done = len(completion.pieces)
        body["usage"] = {
            "input_tokens": completion.prompt_tokens,
            "input_tokens_details": {"cached_tokens": completion.cached_tokens},
            "output_tokens": done,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": completion.prompt_tokens + done,
        }
    return body


def response_body(completion: Completion, fault: str | None) -> bytes:
    """The non-streamed response, with the body faults that make sense without a stream."""
    if fault == "malformed":
        return b"{not json"
    output: list[dict[str, Any]] = []
    for _ in _item_events(completion, lambda name, payload: b"", output, -1):
        pass
    status = "incomplete" if completion.finish_reason in INCOMPLETE else "completed"
    body = _response(completion, status, [] if fault == "empty" else output)
    return _json(body | (ODD_FIELDS if fault == "unknown-shape" else {}))


def _json(payload: dict[str, Any]) -> bytes:
    # ASCII escapes, so any text a reply holds (a lone surrogate too) can be sent.
    return json.dumps(payload).encode()
