"""Tool calls as they arrive in a stream, and the record of each call the panel shows.

In a Chat Completions stream a tool call comes in pieces: a first delta with its index, id
and function name, then its JSON arguments a few characters at a time. ``ToolCallCollector``
puts the pieces together per index, tolerating servers that repeat the id or name in every
delta or leave the index out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

PREVIEW_CHARS = 160


@dataclass(frozen=True)
class ToolCall:
    """One call the model asked for; ``arguments`` is the JSON text exactly as written."""

    id: str
    name: str
    arguments: str

    def entry(self) -> dict[str, Any]:
        """The call as it goes back in the assistant message's ``tool_calls``."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass
class _Partial:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallCollector:
    """Assemble streamed ``delta.tool_calls`` pieces into whole calls."""

    def __init__(self) -> None:
        self._calls: dict[int, _Partial] = {}
        self._last = -1

    def feed(self, pieces: Any) -> None:
        """Add the ``tool_calls`` of one delta (a list of SDK objects or dicts, or None)."""
        for piece in pieces or ():
            index = _get(piece, "index")
            call_id = _get(piece, "id")
            if not isinstance(index, int):  # some servers omit it: a new id starts a call
                index = self._last + 1 if call_id or self._last < 0 else self._last
            self._last = index
            partial = self._calls.setdefault(index, _Partial())
            if isinstance(call_id, str) and call_id and not partial.id:
                partial.id = call_id
            function = _get(piece, "function")
            name = _get(function, "name")
            if isinstance(name, str) and name and not partial.name:
                partial.name = name
            arguments = _get(function, "arguments")
            if isinstance(arguments, str):
                partial.arguments.append(arguments)

    def calls(self) -> tuple[ToolCall, ...]:
        """The calls so far, in index order; a call without an id gets a stable one."""
        return tuple(
            ToolCall(
                partial.id or f"call_{index}", partial.name, "".join(partial.arguments).strip()
            )
            for index, partial in sorted(self._calls.items())
            if partial.name
        )


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


@dataclass
class ToolRecord:
    """What one call did, for the panel, the saved form and ``_step.tool_calls``.

    ``at`` is how much reasoning had arrived when the call was made, so the saved form can
    show each call where it happened in the model's train of thought.
    """

    name: str
    arguments: str
    call_id: str
    step: int
    at: int
    status: str = "running"  # running, ok, error, declined, interrupted
    preview: str = ""
    duration: float = 0.0


def signature(call: ToolCall | ToolRecord) -> str:
    """``name(a=1, b='x')`` from the model's JSON arguments (the raw text if it is not JSON)."""
    try:
        arguments: Any = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        arguments = None
    if isinstance(arguments, dict):
        inner = ", ".join(f"{key}={value!r}" for key, value in arguments.items())
    else:
        inner = call.arguments
    return f"{call.name}({_shorten(inner, PREVIEW_CHARS)})"


def preview(text: str) -> str:
    """The start of a result on one line, for the panel."""
    return _shorten(" ".join(text.split()), PREVIEW_CHARS)


def outcome_text(record: ToolRecord) -> str:
    """How a finished call went, in a few words: ``0.02 s → 42``, ``error: …``."""
    took = f"{record.duration:.2f} s"
    if record.status == "ok":
        return f"{took} → {record.preview}"
    if record.status == "error":
        return f"failed after {took}: {record.preview.removeprefix('Error: ')}"
    return record.status


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
