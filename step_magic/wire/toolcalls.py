"""Tool calls as they arrive in a stream, assembled from their pieces.

In a Chat Completions stream a tool call comes in pieces: a first delta with its index, id
and function name, then its JSON arguments a few characters at a time. ``ToolCallCollector``
puts the pieces together per index, tolerating servers that repeat the id or name in every
delta or leave the index out. What it holds is bounded: a turn's calls together carry at
most ``MAX_ARGUMENT_CHARS`` characters of arguments.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from step_magic.core.text import clean_text
from step_magic.core.toolrecords import ToolCall
from step_magic.wire.sse import MAX_EVENT_CHARS, EventTooLarge

MAX_ARGUMENT_CHARS = MAX_EVENT_CHARS  # a turn's tool calls together: one event's worth


@dataclass
class _Partial:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)
    # For servers that send no id: unique, since a thread holds many turns' calls.
    made_up_id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")


class ToolCallCollector:
    """Assemble streamed ``delta.tool_calls`` pieces into whole calls.

    A piece belongs to the call with its id when it has one (some gateways number every call
    0, others leave the index out and repeat the id), else to the call at its index, else to
    the call the previous piece went to.
    """

    def __init__(self) -> None:
        self._calls: list[_Partial] = []
        self._by_id: dict[str, _Partial] = {}
        self._by_index: dict[int, _Partial] = {}
        self._current: _Partial | None = None
        self._chars = 0

    def feed(self, pieces: Any) -> None:
        """Add the ``tool_calls`` of one delta (a list of SDK objects or dicts, or None).

        EventTooLarge once the arguments pass ``MAX_ARGUMENT_CHARS``: a server streaming
        arguments for ever would otherwise be held in full.
        """
        for piece in pieces or ():
            index = _get(piece, "index")
            call_id = _get(piece, "id")
            partial = self._find(
                index if isinstance(index, int) else None,
                call_id if isinstance(call_id, str) and call_id else None,
            )
            function = _get(piece, "function")
            name = _get(function, "name")
            if isinstance(name, str) and name and not partial.name:
                partial.name = name
            arguments = _get(function, "arguments")
            if isinstance(arguments, str):
                partial.arguments.append(arguments)
                self._chars += len(arguments)
                if self._chars > MAX_ARGUMENT_CHARS:
                    raise EventTooLarge(
                        f"the tool calls' arguments are over {MAX_ARGUMENT_CHARS:,} characters;"
                        " the reply was stopped there"
                    )
            self._current = partial

    def _find(self, index: int | None, call_id: str | None) -> _Partial:
        if call_id is not None:
            known = self._by_id.get(call_id)
            if known is not None:
                return known
            at_index = self._by_index.get(index) if index is not None else None
            if at_index is not None and not at_index.id:  # the id came after the first piece
                at_index.id = call_id
                self._by_id[call_id] = at_index
                return at_index
            return self._new(index, call_id)
        if index is not None:
            return self._by_index.get(index) or self._new(index, None)
        return self._current or self._new(None, None)

    def _new(self, index: int | None, call_id: str | None) -> _Partial:
        partial = _Partial(id=call_id or "")
        self._calls.append(partial)
        if call_id is not None:
            self._by_id[call_id] = partial
        if index is not None:
            self._by_index[index] = partial
        return partial

    def calls(self) -> tuple[ToolCall, ...]:
        """The calls so far, in the order they began, cleaned (a name or argument may reach a
        terminal or a ``--confirm`` question); a call without an id gets one."""
        return tuple(
            ToolCall(
                clean_text(partial.id) or partial.made_up_id,
                clean_text(partial.name),
                clean_text("".join(partial.arguments)),
            )
            for partial in self._calls
            if partial.name
        )


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)
