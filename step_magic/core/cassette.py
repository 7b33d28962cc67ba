"""Cassettes: recorded calls in a JSON-lines file, keyed by the request's stable hash.

A teacher records a lesson at home and replays it on the projector with no key and no network;
the bundled server can serve the same file to any client. A cassette holds no key and no media
(images are referenced by hash), so it can be committed beside the notebook. The format lives in
the core because both ends of the wire read it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from step_magic.core.errors import ReplayError
from step_magic.core.events import Usage
from step_magic.core.redact import redact_media
from step_magic.core.request import ChatRequest
from step_magic.core.text import clean_text, read_json

_USAGE_FIELDS = {item.name for item in fields(Usage)}


@dataclass(frozen=True)
class RecordedReply:
    """What a call produced, enough to play it back."""

    reasoning: str
    answer: str
    finish_reason: str | None
    usage: Usage | None
    trace_id: str | None
    completion_id: str | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (usage as a nested object)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> RecordedReply:
        """Read back what ``to_json`` wrote; unknown fields are ignored.

        ValueError naming the field when a value has the wrong type: a cassette is a file
        people edit and share, and a wrong shape must be one clear line, not a traceback.
        Its text is cleaned as a live reply's is (an escape sequence in a shared file must
        no more reach a terminal or a table than one from a server); null text is empty.
        Checked by hand rather than by a pydantic model: six fields, and the messages can
        say exactly what a person editing the file must fix.
        """
        if not isinstance(data, dict):
            raise ValueError(f"the reply is {_kind(data)}, not an object")
        return cls(
            reasoning=clean_text(_text(data, "reasoning", "") or ""),
            answer=clean_text(_text(data, "answer", "") or ""),
            finish_reason=_text(data, "finish_reason", None),
            usage=_usage(data.get("usage")),
            trace_id=_text(data, "trace_id", None),
            completion_id=_text(data, "completion_id", None),
        )


def _text(data: dict[str, Any], name: str, default: str | None) -> Any:
    value = data.get(name, default)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} is {_kind(value)}, not text")
    return value


def _usage(value: object) -> Usage | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"usage is {_kind(value)}, not an object")
    counts: dict[str, int] = {}
    for name in _USAGE_FIELDS:
        count = value.get(name)
        if count is None:
            continue
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"usage.{name} is {_kind(count)}, not a token count")
        counts[name] = count
    missing = sorted({"prompt", "completion", "total"} - counts.keys())
    if missing:
        raise ValueError(f"usage has no {', '.join(missing)}")
    return Usage(**counts)


def _kind(value: object) -> str:
    """What a JSON value is, for a message: ``the number 5``, ``a list``, ``the text '12'``."""
    if isinstance(value, bool | int | float):
        return f"the number {value!r}" if not isinstance(value, bool) else f"{value!r}".lower()
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return {list: "a list", dict: "an object", type(None): "null"}.get(type(value), "a value")


class Cassette:
    """A JSON-lines file of recorded calls; later recordings of the same request win."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = _lock_for(path)

    def lookup(self, key: str) -> RecordedReply | None:
        """The reply recorded for ``key``, or None (also when the file does not exist yet)."""
        return self.replies().get(key)

    def replies(self) -> dict[str, RecordedReply]:
        """Every recorded reply by key, read once (later recordings of a request win).

        ReplayError naming the file and line for a line that is not a recorded call.
        """
        found = {}
        for number, entry in self._entries():
            try:
                if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                    raise ValueError("it is not a recorded call (no key)")
                found[entry["key"]] = RecordedReply.from_json(entry.get("reply"))
            except ValueError as err:
                raise ReplayError(f"{self.path}:{number}: {err}") from None
        return found

    def __len__(self) -> int:
        return sum(1 for _ in self._entries())

    def store(self, key: str, request: ChatRequest, reply: RecordedReply) -> None:
        """Append one call, its media replaced by references (a cassette holds no images)."""
        body = {**request.body(stream=False), "messages": list(redact_media(request.messages))}
        line = json.dumps({"key": key, "request": body, "reply": reply.to_json()})
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+b") as file:
                _drop_cut_line(file)
                file.write(line.encode("utf-8") + b"\n")

    def _entries(self) -> Iterator[tuple[int, object]]:
        """``(line number, parsed JSON)`` of every line."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as err:
            raise ReplayError(f"cannot read the cassette {self.path}: {err.strerror}") from None
        lines = text.splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield number, read_json(line)
            except ValueError:  # not JSON, or JSON nested beyond reading
                if number == len(lines) and not text.endswith("\n"):
                    return  # a recording cut short by a crash: that call is simply not there
                raise ReplayError(f"{self.path}:{number} is not a cassette line") from None


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    """One lock per file, shared by every ``Cassette`` of it: background calls recording
    to the same file at once must not read each other's half-written line as cut short."""
    key = path.expanduser().resolve()
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(key, threading.Lock())


def _drop_cut_line(file: Any) -> None:
    """Remove a last line that a crash cut short, so the next recording starts cleanly."""
    end = file.seek(0, 2)
    if not end:
        return
    file.seek(end - 1)
    if file.read(1) == b"\n":
        return
    file.seek(0)
    file.truncate(file.read().rfind(b"\n") + 1)
