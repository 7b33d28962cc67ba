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
    def from_json(cls, data: dict[str, Any]) -> RecordedReply:
        """Read back what ``to_json`` wrote; unknown fields are ignored."""
        usage = data.get("usage")
        known = {k: v for k, v in usage.items() if k in _USAGE_FIELDS} if usage else {}
        return cls(
            reasoning=str(data.get("reasoning", "")),
            answer=str(data.get("answer", "")),
            finish_reason=data.get("finish_reason"),
            usage=Usage(**known) if isinstance(usage, dict) else None,
            trace_id=data.get("trace_id"),
            completion_id=data.get("completion_id"),
        )


class Cassette:
    """A JSON-lines file of recorded calls; later recordings of the same request win."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def lookup(self, key: str) -> RecordedReply | None:
        """The reply recorded for ``key``, or None (also when the file does not exist yet)."""
        return self.replies().get(key)

    def replies(self) -> dict[str, RecordedReply]:
        """Every recorded reply by key, read once (later recordings of a request win)."""
        return {
            entry["key"]: RecordedReply.from_json(entry["reply"])
            for entry in self._entries()
            if "key" in entry and isinstance(entry.get("reply"), dict)
        }

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

    def _entries(self) -> Iterator[dict[str, Any]]:
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
                yield json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines) and not text.endswith("\n"):
                    return  # a recording cut short by a crash: that call is simply not there
                raise ReplayError(f"{self.path}:{number} is not a cassette line") from None


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
