"""Tool calling in a chat completion request: the declared tools, ``tool_choice``, the calls
an assistant message carries and the ``tool`` messages that answer them.

Checked the way the OpenAI API checks them, so a client's agent loop that works here sends
requests the real API accepts: a bad tool definition names its index, and a ``tool`` message
must answer a call an earlier assistant message made.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from step_magic.server.errors import invalid_params

TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
CHOICE_MODES = ("auto", "none", "required")
UNANSWERED_CALLS = (
    "An assistant message with 'tool_calls' must be followed by tool messages responding to "
    "each 'tool_call_id'."
)
ORPHAN_TOOL_MESSAGE = (
    "Invalid parameter: messages with role 'tool' must be a response to a preceding message "
    "with 'tool_calls'."
)


@dataclass(frozen=True)
class OfferedTool:
    """One declared function; ``parameters`` is its JSON schema ({} when none was given)."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class ToolChoice:
    """``tool_choice``: a mode ("auto", "none", "required"), or "function" with a name."""

    mode: str = "auto"
    name: str | None = None


AUTO = ToolChoice()


@dataclass(frozen=True)
class PlannedCall:
    """One call an assistant makes; ``arguments`` is JSON text, exactly as sent."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolResult:
    """A ``tool`` message, with the name of the function whose call it answers."""

    call_id: str
    name: str
    text: str


def parse_tools(value: Any) -> tuple[OfferedTool, ...]:
    """The ``tools`` array (absent or null: no tools), or the 400 naming the bad item."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise invalid_params("tools must be an array of tool definitions.")
    return tuple(_tool(index, item) for index, item in enumerate(value))


def _tool(index: int, item: Any) -> OfferedTool:
    where = f"tools[{index}]"
    if not isinstance(item, dict) or item.get("type") != "function":
        raise invalid_params(f'{where} must be an object with type "function" and a function.')
    function = item.get("function")
    if not isinstance(function, dict):
        raise invalid_params(f"{where}.function must be an object with a name.")
    name = function.get("name")
    if not isinstance(name, str) or TOOL_NAME.fullmatch(name) is None:
        raise invalid_params(
            f"{where}.function.name must be 1 to 64 letters, digits, underscores or dashes, "
            f"not {name!r}."
        )
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid_params(f"{where}.function.description must be a string.")
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise invalid_params(f"{where}.function.parameters must be a JSON schema object.")
    return OfferedTool(name, description or "", parameters or {})


def parse_tool_choice(value: Any, tools: Sequence[OfferedTool]) -> ToolChoice:
    """``tool_choice`` (absent or null: "auto"); a named function must be a declared one."""
    if value is None:
        return AUTO
    if value in CHOICE_MODES:
        if value == "required" and not tools:
            raise invalid_params("tool_choice 'required' needs at least one tool in tools.")
        return ToolChoice(str(value))
    function = value.get("function") if isinstance(value, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(value, dict) or value.get("type") != "function" or not isinstance(name, str):
        raise invalid_params(
            "tool_choice must be 'auto', 'none', 'required' or "
            '{"type": "function", "function": {"name": ...}}.'
        )
    if name not in {tool.name for tool in tools}:
        raise invalid_params(f"tool_choice names the function {name!r}, which is not in tools.")
    return ToolChoice("function", name)


def assistant_calls(index: int, item: dict[str, Any]) -> tuple[PlannedCall, ...]:
    """The ``tool_calls`` of message ``index`` (null or absent: none); only assistants call."""
    value = item.get("tool_calls")
    if value is None:
        return ()
    if item.get("role") != "assistant":
        raise invalid_params(f"messages[{index}]: only assistant messages may carry tool_calls.")
    if not isinstance(value, list):
        raise invalid_params(f"messages[{index}].tool_calls must be an array.")
    return tuple(_call(f"messages[{index}].tool_calls[{i}]", call) for i, call in enumerate(value))


def _call(where: str, call: Any) -> PlannedCall:
    function = call.get("function") if isinstance(call, dict) else None
    if isinstance(call, dict) and call.get("type") == "function" and isinstance(function, dict):
        call_id, name, arguments = call.get("id"), function.get("name"), function.get("arguments")
        if isinstance(call_id, str) and isinstance(name, str) and isinstance(arguments, str):
            return PlannedCall(call_id, name, arguments)
    raise invalid_params(
        f'{where} must be {{"id": str, "type": "function", '
        f'"function": {{"name": str, "arguments": str}}}}.'
    )


def tool_call_id(index: int, item: dict[str, Any]) -> str | None:
    """The ``tool_call_id`` of a ``tool`` message (None for other roles), checking its content.

    A tool result is text: a string or text parts, never null or an image.
    """
    if item.get("role") != "tool":
        return None
    call_id = item.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise invalid_params(f"messages[{index}].tool_call_id is required for role 'tool'.")
    content = item.get("content")
    text_parts = isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") == "text" for part in content
    )
    if not isinstance(content, str) and not text_parts:
        raise invalid_params(
            f"messages[{index}].content must be a string or text parts for role 'tool'."
        )
    return call_id
