"""Tool use on the Messages endpoint: Anthropic's tool shapes, translated to and from chat.

The chat machinery already plans tool calls and checks that every call is answered; this
module only translates, so both endpoints call the same tools with the same arguments and
quote the same results. Requests: ``tools`` and ``tool_choice`` become their chat
equivalents, ``tool_use`` blocks an assistant's ``tool_calls`` and ``tool_result`` blocks
``tool`` messages. Replies: a call becomes a ``tool_use`` block with an id of its own.

The pairing of calls and results is checked here once more, before the chat check, only so
a 400 names the message as the client numbered it (the chat check counts the system prompt
and each result as messages) and reads like Anthropic's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from step_magic.server.completion import Completion
from step_magic.server.errors import ApiError, invalid_params
from step_magic.server.tools import TOOL_NAME

TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
CLIENT_TOOL_TYPES = (None, "custom")  # other types are server tools (web search, …)
BLOCK_ROLES = {
    "tool_use": "assistant",
    "thinking": "assistant",
    "redacted_thinking": "assistant",
    "tool_result": "user",
}
THINKING_FIELDS = {"thinking": "thinking", "redacted_thinking": "data"}
TOOL_USE_PREFIX = "toolu_"
UNANSWERED = (
    "tool_use ids were found without tool_result blocks immediately after: {ids}. Each "
    "tool_use block must have a corresponding tool_result block in the next message."
)
UNEXPECTED = (
    "unexpected tool_use_id found in tool_result blocks: {ids}. Each tool_result block must "
    "have a corresponding tool_use block in the previous message."
)


def is_text_block(block: Any) -> bool:
    """Whether ``block`` is a well-formed text block (the one block every place accepts)."""
    return (
        isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    )


def chat_tool_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The ``tools`` and ``tool_choice`` of a chat body, from those of a Messages body.

    ``tool_choice.disable_parallel_tool_use`` is checked but has no effect: the reply
    planner knows no such switch, so two tools offered are still called at once.
    """
    fields: dict[str, Any] = {}
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid_params("tools must be an array of tool definitions.")
        fields["tools"] = [_tool(index, item) for index, item in enumerate(tools)]
        _check_unique([tool["function"]["name"] for tool in fields["tools"]])
    if body.get("tool_choice") is not None:
        names = {tool["function"]["name"] for tool in fields.get("tools", [])}
        fields["tool_choice"] = _tool_choice(body["tool_choice"], names)
    return fields


def _tool(index: int, item: Any) -> dict[str, Any]:
    """One client tool as a chat function; its ``input_schema`` is the function's parameters."""
    where = f"tools[{index}]"
    if not isinstance(item, dict):
        raise invalid_params(f"{where} must be an object with a name and an input_schema.")
    if item.get("type") not in CLIENT_TOOL_TYPES:
        raise invalid_params(
            f"{where}.type {item.get('type')!r} is a server tool, which this server does not "
            'run; define client tools (no type, or "custom") with an input_schema.'
        )
    name = item.get("name")
    if not isinstance(name, str) or TOOL_NAME.fullmatch(name) is None:
        raise invalid_params(
            f"{where}.name must be 1 to 64 letters, digits, underscores or dashes, not {name!r}."
        )
    function: dict[str, Any] = {"name": name}
    if item.get("description") is not None:
        if not isinstance(item["description"], str):
            raise invalid_params(f"{where}.description must be a string.")
        function["description"] = item["description"]
    schema = item.get("input_schema")
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise invalid_params(f'{where}.input_schema must be a JSON schema with "type": "object".')
    return {"type": "function", "function": {**function, "parameters": schema}}


def _check_unique(names: list[str]) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise invalid_params(f"Tool names must be unique: {', '.join(repeated)}.")


def _tool_choice(value: Any, names: set[str]) -> Any:
    """A Messages ``tool_choice`` as the chat one: auto, required (any), none or named."""
    kind = value.get("type") if isinstance(value, dict) else None
    if isinstance(value, dict) and not isinstance(
        value.get("disable_parallel_tool_use", False), bool
    ):
        raise invalid_params("tool_choice.disable_parallel_tool_use must be a boolean.")
    if kind in TOOL_CHOICES:
        if kind == "any" and not names:
            raise invalid_params('tool_choice {"type": "any"} needs at least one tool in tools.')
        return TOOL_CHOICES[kind]
    name = value.get("name") if kind == "tool" else None
    if not isinstance(name, str):
        raise invalid_params(
            'tool_choice must be {"type": "auto"}, {"type": "any"}, {"type": "none"} or '
            '{"type": "tool", "name": ...}.'
        )
    if name not in names:
        raise invalid_params(f"tool_choice names the tool {name!r}, which is not in tools.")
    return {"type": "function", "function": {"name": name}}


@dataclass
class Turn:
    """The blocks of one message, sorted into what the chat shape keeps apart.

    Chat carries calls beside the text (``tool_calls``) and results as messages of their
    own, so a message's blocks are collected first and turned into chat messages at the end.
    """

    role: str
    parts: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)

    def take(self, where: str, block: Any) -> bool:
        """Sort in a tool or thinking block; False for any other block (text, image)."""
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in BLOCK_ROLES:
            return False
        if BLOCK_ROLES[kind] != self.role:
            raise invalid_params(f"{where}: {kind} blocks belong in {BLOCK_ROLES[kind]} messages.")
        if kind == "tool_use":
            self.calls.append(_tool_call(where, block))
        elif kind == "tool_result":
            if self.parts:  # as Anthropic requires, so a client sending it meets the 400 here
                raise invalid_params(f"{where}: tool_result blocks must come before other blocks.")
            self.results.append(_tool_message(where, block))
        elif not isinstance(block.get(THINKING_FIELDS[kind]), str):
            raise invalid_params(f"{where}.{THINKING_FIELDS[kind]} must be a string.")
        return True  # thinking is dropped: chat sends no earlier reasoning back either

    def chat_messages(self) -> list[dict[str, Any]]:
        """The results as ``tool`` messages, then the message itself (unless only results)."""
        if self.role == "user":
            user = {"role": "user", "content": self.parts}
            return [*self.results, user] if self.parts or not self.results else self.results
        message: dict[str, Any] = {"role": "assistant", "content": self.parts}
        if self.calls:
            message["content"] = self.parts or None  # as OpenAI sends a call without text
            message["tool_calls"] = self.calls
        return [message]


def _tool_call(where: str, block: dict[str, Any]) -> dict[str, Any]:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
    if not (isinstance(call_id, str) and call_id and isinstance(name, str) and name):
        raise invalid_params(f"{where}: a tool_use block needs a string id and name.")
    if not isinstance(arguments, dict):
        raise invalid_params(f"{where}.input must be an object.")
    function = {"name": name, "arguments": json.dumps(arguments)}
    return {"id": call_id, "type": "function", "function": function}


def _tool_message(where: str, block: dict[str, Any]) -> dict[str, Any]:
    """A ``tool_result`` block as a ``tool`` message; ``is_error`` has no chat equivalent."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise invalid_params(f"{where}.tool_use_id must be a non-empty string.")
    if not isinstance(block.get("is_error", False), bool):
        raise invalid_params(f"{where}.is_error must be a boolean.")
    content = block.get("content")
    if content is None:
        content = ""
    elif isinstance(content, list) and all(is_text_block(part) for part in content):
        content = [{"type": "text", "text": part["text"]} for part in content]
    elif not isinstance(content, str):
        raise invalid_params(f"{where}.content must be a string or an array of text blocks.")
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def check_tool_pairs(turns: list[list[dict[str, Any]]]) -> None:
    """Each message's results answer exactly the calls of the message before it.

    ``turns`` holds the chat messages of each Messages message, so errors name the index
    the client sent.
    """
    asked: list[str] = []
    for index, turn in enumerate(turns):
        answered = [message["tool_call_id"] for message in turn if message["role"] == "tool"]
        missing = [call_id for call_id in asked if call_id not in answered]
        if missing:
            raise _pair_error(index - 1, UNANSWERED, missing)
        unexpected = [
            call_id
            for position, call_id in enumerate(answered)
            if call_id not in asked or call_id in answered[:position]
        ]
        if unexpected:
            raise _pair_error(index, UNEXPECTED, unexpected)
        asked = [call["id"] for message in turn for call in message.get("tool_calls", ())]
    if asked:
        raise _pair_error(len(turns) - 1, UNANSWERED, asked)


def _pair_error(index: int, template: str, ids: list[str]) -> ApiError:
    return invalid_params(f"messages[{index}]: " + template.format(ids=", ".join(ids)))


def tool_use_id(call_id: str, completion: Completion, index: int) -> str:
    """The ``toolu_`` id of call ``index``: derived from the chat call id, so the same request
    gets the same ids, or from the completion when the call has none (chatty-tools)."""
    digest = hashlib.sha256(f"{call_id or completion.id}:{index}".encode()).hexdigest()
    return TOOL_USE_PREFIX + digest[:24]


def tool_use_start(call_id: str, name: str, completion: Completion, index: int) -> dict[str, Any]:
    """The ``content_block`` of a ``content_block_start`` opening a call: input comes later."""
    return {
        "type": "tool_use",
        "id": tool_use_id(call_id, completion, index),
        "name": name,
        "input": {},
    }


def tool_use_blocks(completion: Completion) -> list[dict[str, Any]]:
    """The ``tool_use`` blocks of a non-streamed message, with the parsed ``input``."""
    blocks = []
    for index, call in enumerate(completion.tool_calls()):
        function = call["function"]
        block = tool_use_start(call.get("id", ""), function["name"], completion, index)
        blocks.append(block | {"input": _input(function["arguments"])})
    return blocks


def _input(arguments: str) -> dict[str, Any]:
    """Parsed arguments; {} for none ("") or for JSON cut short (stop_reason says so)."""
    try:
        value = json.loads(arguments) if arguments else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
