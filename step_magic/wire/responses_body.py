"""The request body of a Responses API call (``--api responses``), built from a ``ChatRequest``.

StepFun documents ``POST /v1/responses`` as compatible with OpenAI's Responses API
(step-3.7-flash only). The conversation stays in Chat Completions shape everywhere else
(threads, history, cassettes); only this module knows the Responses layout: the system prompt
as ``instructions``, the turns as ``input`` items (``input_text`` / ``input_image`` parts;
earlier tool calls and results as ``function_call`` / ``function_call_output`` items), effort
as ``reasoning.effort``, the token cap as ``max_output_tokens``, function tools flat. Pure
translation: a request the API cannot carry (video) fails here, before any connection.
"""

from __future__ import annotations

from typing import Any

from step_magic.core.errors import StepAPIError
from step_magic.core.request import ChatRequest, Part

Item = dict[str, Any]


def responses_body(request: ChatRequest) -> dict[str, Any]:
    """The Responses body for ``request``, with only the fields the user set."""
    system = [_text(m.get("content")) for m in request.messages if m["role"] == "system"]
    items: list[Item] = []
    for message in request.messages:
        if message["role"] != "system":
            items.extend(_items(message))
    optional: dict[str, Any] = {
        "instructions": "\n\n".join(system) if system else None,
        "reasoning": None if request.effort is None else {"effort": request.effort},
        "max_output_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "tools": [_tool(spec["function"]) for spec in request.tools] or None,
        "text": None if request.schema is None else {"format": _format(request)},
    }
    body = {"model": request.model, "input": items, "stream": True}
    return body | {name: value for name, value in optional.items() if value is not None}


def _format(request: ChatRequest) -> Item:
    schema = request.schema
    assert schema is not None
    return {"type": "json_schema", "name": schema.name, "schema": dict(schema.schema)}


def schema_in_instructions(body: dict[str, Any], request: ChatRequest) -> dict[str, Any]:
    """``body`` without ``text.format``, the schema asked for in the instructions (for a
    server that refused the field)."""
    bare = {key: value for key, value in body.items() if key != "text"}
    if request.schema is None:
        return bare
    given = bare.get("instructions")
    instruction = request.schema.instruction()
    return bare | {"instructions": f"{given}\n\n{instruction}" if given else instruction}


def _items(message: dict[str, Any]) -> list[Item]:
    """A chat message as the input items it amounts to."""
    if message["role"] == "tool":
        output = _text(message.get("content"))
        return [
            {
                "type": "function_call_output",
                "call_id": message.get("tool_call_id"),
                "output": output,
            }
        ]
    calls = message.get("tool_calls") or ()
    said = message.get("content")
    items: list[Item] = []
    if message["role"] == "assistant":
        if said:
            items.append({"role": "assistant", "content": _text(said)})
        for call in calls:
            function = call["function"]
            items.append(
                {
                    "type": "function_call",
                    "call_id": call["id"],
                    "name": function["name"],
                    "arguments": function["arguments"] or "{}",
                }
            )
        return items
    return [{"role": message["role"], "content": _content(said)}]


def _content(content: str | list[Part] | None) -> str | list[Item]:
    if content is None or isinstance(content, str):
        return content or ""
    return [_part(part) for part in content]


def _part(part: Part) -> Item:
    kind = part.get("type")
    if kind == "text":
        return {"type": "input_text", "text": part["text"]}
    if kind == "image_url":
        image = part.get("image_url") or {}
        item: Item = {"type": "input_image", "image_url": image.get("url", "")}
        if image.get("detail"):
            item["detail"] = image["detail"]
        return item
    raise StepAPIError(f"the Responses API cannot carry {kind} parts; use --api chat for them")


def _tool(function: dict[str, Any]) -> Item:
    """A Chat Completions tool in the Responses API's flat shape."""
    return {
        "type": "function",
        "name": function["name"],
        "description": function.get("description", ""),
        "parameters": function.get("parameters") or {"type": "object", "properties": {}},
    }


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content or () if part.get("type") == "text")


def as_chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A Responses body's conversation in Chat Completions shape (what a dry run shows):
    the instructions first, ``input_text`` / ``input_image`` parts as text and image parts,
    tool calls and results as one line each."""
    instructions = body.get("instructions")
    messages = [{"role": "system", "content": instructions}] if instructions else []
    given = body.get("input")
    for item in [{"role": "user", "content": given}] if isinstance(given, str) else given or ():
        messages.append(_as_chat(item))
    return messages


def _as_chat(item: Item) -> dict[str, Any]:
    kind = item.get("type")
    if kind == "function_call":
        return {
            "role": "assistant",
            "content": f"[called {item.get('name')}({item.get('arguments')})]",
        }
    if kind == "function_call_output":
        return {"role": "tool", "content": str(item.get("output", ""))}
    content = item.get("content")
    if isinstance(content, list):
        content = [_chat_part(part) for part in content]
    return {"role": item.get("role", "user"), "content": content}


def _chat_part(part: Item) -> Part:
    if part.get("type") in ("input_text", "output_text"):
        return {"type": "text", "text": part.get("text", "")}
    if part.get("type") == "input_image":
        image = {"url": part.get("image_url", "")}
        return {
            "type": "image_url",
            "image_url": image | ({"detail": part["detail"]} if "detail" in part else {}),
        }
    return part
