"""The request body of a Messages API call (``--api messages``), built from a ``ChatRequest``.

The conversation is kept in Chat Completions shape everywhere else (threads, history,
cassettes); only this module knows how the Messages API wants it: the system prompt on top,
image blocks instead of image parts, tool turns as ``tool_use`` / ``tool_result`` blocks
(the signed thinking of a tool-call turn ahead of its calls) or, without tools, plain text.
It is pure translation, apart from the sending in ``messages.py``: a request the API cannot
carry fails here, before any connection is opened.
"""

from __future__ import annotations

import re
from typing import Any

from step_magic.core.errors import StepAPIError
from step_magic.core.request import THINKING_BLOCKS, ChatRequest, Part
from step_magic.core.text import read_json

ANTHROPIC_VERSION = "2023-06-01"
# StepFun requires max_tokens here (Chat Completions does not); the model's usual budget.
DEFAULT_MAX_TOKENS = 8192
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.S)


def messages_body(request: ChatRequest) -> dict[str, Any]:
    """The Messages body for ``request``, with only fields StepFun's reference lists.

    System messages become the top-level ``system``; image parts become image blocks (the
    chat ``detail`` has no counterpart there). Raises ``StepAPIError`` for what the Messages
    API cannot carry (video, ``stepfile://`` images), before anything is sent.
    """
    system = [_text(message) for message in request.messages if message["role"] == "system"]
    if request.schema is not None:  # no structured-output field here: asked for in words
        system.append(request.schema.instruction())
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if message["role"] == "system":
            continue
        role, blocks = _turn(message, tools=bool(request.tools))
        if messages and messages[-1]["role"] == role:  # tool results join the next question
            messages[-1]["content"] = _listed(messages[-1]["content"]) + _listed(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    max_tokens = DEFAULT_MAX_TOKENS if request.max_tokens is None else request.max_tokens
    optional = {
        "system": "\n\n".join(system) if system else None,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "output_config": None if request.effort is None else {"effort": request.effort},
    }
    body = {"model": request.model, "max_tokens": max_tokens, "messages": messages, "stream": True}
    if request.tools:
        body["tools"] = [_tool(spec["function"]) for spec in request.tools]
    return body | {name: value for name, value in optional.items() if value is not None}


def _tool(function: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions tool in the Messages API's words."""
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    return {
        "name": function["name"],
        "description": function.get("description", ""),
        "input_schema": schema,
    }


def _turn(message: dict[str, Any], *, tools: bool) -> tuple[str, str | list[dict[str, Any]]]:
    """A chat message as a Messages turn.

    With tools in the request, calls and results become ``tool_use`` / ``tool_result``
    blocks; without them (a follow-up after a ``--tools`` cell) they become plain text, since
    tool blocks need the tools defined in the same request.
    """
    if tools:
        blocks = _tool_blocks(message)
        if blocks is not None:
            return blocks
    if message["role"] == "tool":
        text = f"[result of tool call {message.get('tool_call_id')}]\n{_text(message)}"
        return "user", [{"type": "text", "text": text}]
    calls = message.get("tool_calls") or ()
    if calls:
        lines = [_text(message)] + [
            f"[called {call['function']['name']}({call['function']['arguments']})]"
            for call in calls
        ]
        return "assistant", "\n".join(line for line in lines if line)
    return message["role"], _blocks(message.get("content"))


def _tool_blocks(message: dict[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """A tool result or an assistant message with calls as blocks; None for other messages."""
    if message["role"] == "tool":
        result = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
        return "user", [result | {"content": _text(message)}]
    calls = message.get("tool_calls") or ()
    if not calls:
        return None
    said = _text(message)
    blocks = _thinking(message)  # Anthropic: the turn's signed thinking comes first
    blocks += [{"type": "text", "text": said}] if said else []
    for call in calls:
        function = call["function"]
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": function["name"],
                "input": read_json(function["arguments"] or "{}"),
            }
        )
    return "assistant", blocks


def _thinking(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The thinking blocks kept with a tool-call turn, exactly as the API sent them."""
    kept = message.get(THINKING_BLOCKS)
    return (
        [dict(block) for block in kept if isinstance(block, dict)] if isinstance(kept, list) else []
    )


def _listed(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content or () if part.get("type") == "text")


def _blocks(content: str | list[Part] | None) -> str | list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return content or ""
    return [_block(part) for part in content]


def _block(part: Part) -> dict[str, Any]:
    if part.get("type") == "text":
        return {"type": "text", "text": part["text"]}
    url = str(part.get("image_url", {}).get("url", "")) if part.get("type") == "image_url" else ""
    if match := _DATA_URL.fullmatch(url):
        source = {"type": "base64", "media_type": match["type"], "data": match["data"]}
        return {"type": "image", "source": source}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    what = "stepfile:// images" if url.startswith("stepfile://") else f"{part.get('type')} parts"
    raise StepAPIError(f"the Messages API cannot carry {what}; use --api chat for them")


def messages_headers(key: str) -> dict[str, str]:
    """Anthropic SDKs (which StepFun's reference uses) send ``x-api-key`` and a version;
    StepFun's keys are Bearer tokens: both are sent."""
    return {
        "x-api-key": key,
        "Authorization": f"Bearer {key}",
        "anthropic-version": ANTHROPIC_VERSION,
    }


def as_chat_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A Messages body's conversation in Chat Completions shape (a dry run shows that):
    the top-level system first, image blocks as image parts."""
    system = body.get("system")
    first = [{"role": "system", "content": system}] if system else []
    turns = [
        {**message, "content": _chat_content(message.get("content"))}
        for message in body.get("messages", ())
    ]
    return first + turns


def _chat_content(content: Any) -> Any:
    if not isinstance(content, list):
        return content
    return [_chat_part(block) for block in content]


def _chat_part(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source")
    if block.get("type") == "image" and isinstance(source, dict):
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type')};base64,{source.get('data', '')}"
        else:
            url = str(source.get("url", ""))
        return {"type": "image_url", "image_url": {"url": url}}
    return block
