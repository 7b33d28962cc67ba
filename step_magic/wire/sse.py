"""Server-sent events, parsed from raw bytes as they arrive: the Messages API's wire format.

The Chat Completions path leaves SSE to the openai SDK; the Messages API path has no SDK,
so it needs its own parser. It is generic (the WHATWG rules, nothing about any API), so it
lives apart from ``messages.py``, which gives the events their meaning.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class ServerEvent:
    """One dispatched SSE event: its ``event:`` name (default "message") and joined data."""

    name: str
    data: str


class SSEDecoder:
    """Incremental SSE parser after the WHATWG rules, fed whatever the network delivers.

    Handles any line ending (a ``\\r`` at the end of a read is held back in case ``\\n``
    follows), comments, multi-line ``data``, a byte-order mark, and UTF-8 sequences and
    events split across reads.
    """

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._pending = ""
        self._name = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[ServerEvent]:
        """The events completed by ``chunk``."""
        return self._lines(self._pending + self._utf8.decode(chunk))

    def finish(self) -> list[ServerEvent]:
        """At the end of the body: the last event, even without its closing blank line."""
        events = self._lines(self._pending + self._utf8.decode(b"", final=True) + "\n")
        return [*events, *self._line("")]

    def _lines(self, text: str) -> list[ServerEvent]:
        held = "\r" if text.endswith("\r") else ""
        *lines, self._pending = _LINE_END.split(text.removesuffix("\r"))
        self._pending += held
        return [event for line in lines for event in self._line(line)]

    def _line(self, line: str) -> list[ServerEvent]:
        if not line:
            event = ServerEvent(self._name or "message", "\n".join(self._data))
            ready = bool(self._data)  # an event without data lines is not dispatched
            self._name, self._data = "", []
            return [event] if ready else []
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._name = value
        elif field == "data":
            self._data.append(value)
        return []  # comments (":…"), id, retry and unknown fields carry nothing we use
