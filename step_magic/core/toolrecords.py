"""The tool calls a model asks for, and the record of what each call did.

A call (``ToolCall``) is assembled by the wire, run by the engine, shown by the display and
kept in the result, so its type lives here where all of them can see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from step_magic.core.text import read_json

PREVIEW_CHARS = 160


@dataclass(frozen=True)
class ToolCall:
    """One call the model asked for; ``arguments`` is the JSON text exactly as written."""

    id: str
    name: str
    arguments: str

    def entry(self) -> dict[str, Any]:
        """The call as it goes back in the assistant message's ``tool_calls``.

        Arguments that are not a JSON object (empty, cut, invalid) go back as ``{}``: some
        servers parse them and fail the whole request, every turn of the thread after it.
        The tool message that answers the call says what was wrong with them.
        """
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": _object_json(self.arguments)},
        }


def _object_json(text: str) -> str:
    try:
        value = read_json(text)
    except ValueError:
        return "{}"
    return text if isinstance(value, dict) else "{}"


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
    said: str = ""  # what the model wrote along with this turn's calls (on the first one)


def signature(call: ToolCall | ToolRecord, limit: int | None = PREVIEW_CHARS) -> str:
    """``name(a=1, b='x')`` from the model's JSON arguments (the raw text if it is not JSON).

    ``limit`` shortens the arguments for the panel; ``None`` shows them whole (``--confirm``
    must not hide the argument that matters past a cut).
    """
    try:
        arguments: Any = read_json(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        arguments = None
    if isinstance(arguments, dict):
        inner = ", ".join(f"{key}={value!r}" for key, value in arguments.items())
    else:
        inner = call.arguments
    return f"{call.name}({inner if limit is None else _shorten(inner, limit)})"


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
