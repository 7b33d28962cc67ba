"""Record and replay: answer a request from a recorded reply, at a realistic pace.

A teacher records a lesson at home (``%step_record lesson.jsonl``) and replays it on the
projector with no key and no network (``--replay --cassette lesson.jsonl``). A cassette is a
JSON-lines file, one recorded call per line, keyed by the request's stable hash; it holds no
key and no media (images are referenced by hash), so it can be committed beside the notebook.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from step_magic.core.errors import OneLineError
from step_magic.core.events import AnswerDelta, Event, Finished, ReasoningDelta, Usage
from step_magic.memory.history import CallRecord

_TOKEN = re.compile(r"\S+\s*|\s+")
_USAGE_FIELDS = {item.name for item in fields(Usage)}


class ReplayError(OneLineError):
    """Nothing recorded for this request, or a cassette that cannot be read."""


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
    def from_record(cls, record: CallRecord) -> RecordedReply:
        """A history row as a reply (usage rebuilt when both token counts were stored)."""
        usage = None
        if record.prompt_tokens is not None and record.completion_tokens is not None:
            total = record.prompt_tokens + record.completion_tokens
            usage = Usage(
                record.prompt_tokens, record.completion_tokens, total, record.cached_tokens
            )
        return cls(
            record.reasoning,
            record.answer,
            record.finish_reason,
            usage,
            record.trace_id,
            record.completion_id,
        )

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

    def store(self, key: str, request: dict[str, Any], reply: RecordedReply) -> None:
        """Append one call; ``request`` must already have its media replaced by references."""
        line = json.dumps({"key": key, "request": request, "reply": reply.to_json()})
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


class ReplayStream:
    """Events of a recorded reply, paced like a live one (``tokens_per_second`` 0: at once).

    Same interface as ``client.ReplyStream``, so the runner and views cannot tell them apart.
    """

    def __init__(self, reply: RecordedReply, tokens_per_second: float) -> None:
        self._reply = reply
        self._delay = 1 / tokens_per_second if tokens_per_second > 0 else 0.0
        self._stopped = threading.Event()
        self.trace_id = reply.trace_id
        self.completion_id = reply.completion_id

    def close(self) -> None:
        """Stop playing (Ctrl-C)."""
        self._stopped.set()

    def __iter__(self) -> Iterator[Event]:
        for kind, text in (("reasoning", self._reply.reasoning), ("answer", self._reply.answer)):
            for token in _TOKEN.findall(text):
                if self._stopped.wait(self._delay) if self._delay else self._stopped.is_set():
                    return
                yield ReasoningDelta(token) if kind == "reasoning" else AnswerDelta(token)
        reply = self._reply
        yield Finished(reply.finish_reason, reply.usage, reply.trace_id, reply.completion_id)
