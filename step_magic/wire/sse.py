"""Server-sent events, parsed from raw bytes as they arrive: every wire API's stream format.

Every API's reply is read from its raw bytes here (the openai SDK's decoder has no limit on a
line and fails a reply on one bad byte). It is generic (the WHATWG rules, nothing about any
API), so it lives apart from the modules that give the events their meaning.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_LINE_END = re.compile(r"\r\n|\r|\n")


MAX_EVENT_CHARS = 16_000_000  # one event (a delta, an error): far above any real one


class EventTooLarge(ValueError):
    """An event beyond the decoder's limit."""


@dataclass(frozen=True)
class ServerEvent:
    """One dispatched SSE event: its ``event:`` name (default "message") and joined data."""

    name: str
    data: str


class SSEDecoder:
    """Incremental SSE parser after the WHATWG rules, fed whatever the network delivers.

    Handles any line ending (a ``\\r`` ends a line at once; a ``\\n`` right after it, even in
    the next read, is skipped), comments, multi-line ``data``, a byte-order mark, and UTF-8
    sequences and events split across reads; invalid UTF-8 becomes U+FFFD.

    Linear in the size of the stream: only the new text is searched for line ends, and a
    long line's pieces are joined once, when it ends (joining at every read made a 4 MB line
    in 4 KB reads take 12 s). An event over ``max_event_chars`` raises ``EventTooLarge``:
    what a server can make us hold is bounded; the events before it were delivered.
    """

    def __init__(self, max_event_chars: int | None = None) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._pieces: list[str] = []  # the line being read, not yet ended
        self._skip_newline = False  # the last line ended with \r: a \n next is part of it
        self._name = ""
        self._data: list[str] = []
        self._size = 0  # characters of the event's finished data lines
        self._pending = 0  # characters of the line not yet ended
        self._limit = MAX_EVENT_CHARS if max_event_chars is None else max_event_chars
        self._over: EventTooLarge | None = None  # raised after the events parsed before it

    def feed(self, chunk: bytes) -> list[ServerEvent]:
        """The events completed by ``chunk`` (an event over the limit raises at the next
        call, so the events completed before it are delivered first)."""
        self._raise_if_over()
        return self._text(self._utf8.decode(chunk))

    def finish(self) -> list[ServerEvent]:
        """At the end of the body: the last event, even without its closing blank line."""
        self._raise_if_over()
        events = self._text(self._utf8.decode(b"", final=True))
        if self._pieces:
            events += self._line("".join(self._pieces))
            self._pieces, self._pending = [], 0
        return [*events, *self._line("")]

    def _raise_if_over(self) -> None:
        if self._over is not None:
            raise self._over

    def _text(self, text: str) -> list[ServerEvent]:
        if not text:  # an empty read changes nothing (a \r\n split around it stays one)
            return []
        if self._skip_newline and text.startswith("\n"):
            text = text[1:]
        self._skip_newline = False
        events: list[ServerEvent] = []
        start = 0
        for match in _LINE_END.finditer(text):
            line = text[start : match.start()]
            if self._pieces:
                line = "".join(self._pieces) + line
                self._pieces, self._pending = [], 0
            try:
                events += self._line(line)
            except EventTooLarge as over:
                self._over = over
                return events
            start = match.end()
        rest = text[start:]
        if text.endswith("\r"):  # a \r\n split across reads: the \n will be skipped
            self._skip_newline = True
        elif rest:
            self._pieces.append(rest)
            self._pending += len(rest)
            try:
                self._check()
            except EventTooLarge as over:
                self._over = over
        return events

    def _check(self) -> None:
        if self._size + self._pending > self._limit:
            raise EventTooLarge(
                f"an event from the server is over {self._limit:,} characters; the reply "
                "was stopped there"
            )

    def _line(self, line: str) -> list[ServerEvent]:
        if not line:
            event = ServerEvent(self._name or "message", "\n".join(self._data))
            ready = bool(self._data)  # an event without data lines is not dispatched
            self._name, self._data, self._size = "", [], 0
            return [event] if ready else []
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._name = value
        elif field == "data":
            self._data.append(value)
            self._size += len(value) + 1  # an empty data line still adds a newline
            self._check()
        return []  # comments (":…"), id, retry and unknown fields carry nothing we use
