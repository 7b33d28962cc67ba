"""Cassettes: recorded calls in a JSON-lines file, keyed by the request's stable hash.

A teacher records a lesson at home and replays it on the projector with no key and no network;
the bundled server can serve the same file to any client. A cassette holds no key and no media
(images are referenced by hash), so it can be committed beside the notebook. The format lives in
the core because both ends of the wire read it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from step_magic.core.errors import ReplayError
from step_magic.core.events import Usage
from step_magic.core.redact import redact_media
from step_magic.core.request import ChatRequest, own_messages, request_key
from step_magic.core.text import clean_text, read_json

_USAGE_FIELDS = {item.name for item in fields(Usage)}
MAX_LINE_BYTES = 64_000_000  # one recorded call; a longer line is refused unread
_BLOCK = 65_536  # read backwards a block at a time for a crash's cut line


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

    def to_replay(self) -> Cassette:
        """This cassette, to replay from: ReplayError when the file does not exist (while
        recording, a missing file is only one not written yet)."""
        if not self.path.exists():
            raise ReplayError(f"no cassette at {self.path}: no such file")
        return self

    def lookup(self, key: str, asked: Mapping[str, Any] | None = None) -> RecordedReply | None:
        """The reply recorded for ``key``, or None (also when the file does not exist yet).

        With ``asked`` (the request's body), a miss falls back to a call that asked the same
        question (``_question``): a lesson recorded after other cells, whose requests
        carry those cells' turns, still replays in a fresh kernel. Of several such calls (a
        follow-up such as "Which is the largest?" asked in two conversations) the one whose
        earlier turns end most like the asked ones wins, then the newest. The file is read
        line by line, keeping only the best match, so replaying one call from a large
        cassette holds one line at a time, not the whole file.
        """
        question = _question(asked) if asked is not None else None
        found = best = None
        best_shared = -1
        for line_key, reply, request in self._lines():
            if line_key == key:
                found = reply
            elif question is not None and (recorded := _question(request)) is not None:
                shared = _shared_tail(question[1], recorded[1])
                if recorded[0] == question[0] and shared >= best_shared:
                    best, best_shared = reply, shared
        return found or best

    def replies(self) -> dict[str, RecordedReply]:
        """Every recorded reply by key, read once (later recordings of a request win).

        ReplayError naming the file and line for a line that is not a recorded call.
        """
        return {key: reply for key, reply, _ in self._lines()}

    def _lines(self) -> Iterator[tuple[str, RecordedReply, object]]:
        """Every line as ``(key, reply, request)``, each checked; ReplayError naming a bad
        line (the request is as recorded: anything, for a hand-written line)."""
        for number, entry in self._entries():
            try:
                if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
                    raise ValueError("it is not a recorded call (no key)")
                yield (
                    entry["key"],
                    RecordedReply.from_json(entry.get("reply")),
                    entry.get("request"),
                )
            except ValueError as err:
                raise ReplayError(f"{self.path}:{number}: {err}") from None

    def __len__(self) -> int:
        return sum(1 for _ in self._entries())

    def store(self, key: str, request: ChatRequest, reply: RecordedReply) -> None:
        """Append one call, its media replaced by references (a cassette holds no images).

        OSError when the line would be over ``MAX_LINE_BYTES``: a line no replay could read
        is not written.
        """
        body = {**request.body(stream=False), "messages": list(redact_media(request.messages))}
        line = json.dumps({"key": key, "request": body, "reply": reply.to_json()}).encode()
        if len(line) >= MAX_LINE_BYTES:  # with its newline, over the limit
            raise OSError(
                f"the call is {len(line):,} bytes as a line, over the {MAX_LINE_BYTES:,} a "
                "cassette line may hold: it was not recorded"
            )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a+b") as file:
                _drop_cut_line(file)
                file.write(line + b"\n")

    def _entries(self) -> Iterator[tuple[int, object]]:
        """``(line number, parsed JSON)`` of every line, read one line at a time.

        ReplayError for a path that is not a regular file (a FIFO would block forever, a
        directory cannot be read), a line that is not UTF-8 or not JSON, or one over
        ``MAX_LINE_BYTES`` (it is not held whole to find out); a last line a crash cut short
        (no newline), of any length, is skipped.
        """
        try:
            file = self._open()
        except FileNotFoundError:
            return
        except OSError as err:
            raise ReplayError(f"cannot read the cassette {self.path}: {err.strerror}") from None
        with file:
            number = 0
            while raw := file.readline(MAX_LINE_BYTES + 1):
                number += 1
                if len(raw) > MAX_LINE_BYTES:
                    if not _rest_of_line(file):
                        return  # a recording cut short by a crash: that call is not there
                    raise ReplayError(
                        f"{self.path}:{number} is over {MAX_LINE_BYTES:,} bytes, more than a "
                        "recorded call holds"
                    )
                if not raw.strip():
                    continue
                try:
                    yield number, read_json(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    raise ReplayError(f"{self.path}:{number} is not UTF-8 text") from None
                except ValueError:  # not JSON, or JSON nested beyond reading
                    if not raw.endswith(b"\n") and not file.read(1):
                        return  # a recording cut short by a crash: that call is not there
                    raise ReplayError(f"{self.path}:{number} is not a cassette line") from None

    def _open(self) -> Any:
        path = self.path
        if path.exists() and not (path.is_file() or path.is_dir()):  # a FIFO, a device
            raise ReplayError(f"the cassette {path} is not a regular file")
        return path.open("rb")


def _question(body: object) -> tuple[str, tuple[dict[str, Any], ...]] | None:
    """The key of a request's own question (``request_key`` of its body keeping only the
    leading system messages, the last user message and what followed: ``own_messages``,
    media as the cassette keeps them), and the earlier turns' messages it leaves out. None
    for a body that is not a request (a hand-written line)."""
    messages = body.get("messages") if isinstance(body, Mapping) else None
    if not isinstance(messages, list | tuple) or not all(isinstance(m, dict) for m in messages):
        return None
    own, earlier = own_messages(redact_media(messages))
    return request_key({**body, "messages": list(own)}), earlier  # type: ignore[dict-item]


def _shared_tail(first: Sequence[object], second: Sequence[object]) -> int:
    """How many items the two sequences end with in common."""
    shared = 0
    while shared < min(len(first), len(second)) and first[-1 - shared] == second[-1 - shared]:
        shared += 1
    return shared


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    """One lock per file, shared by every ``Cassette`` of it: background calls recording
    to the same file at once must not read each other's half-written line as cut short."""
    key = path.expanduser().resolve()
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(key, threading.Lock())


def _rest_of_line(file: Any) -> bool:
    """Read past the rest of a long line a block at a time; whether it ended (a newline)
    rather than the file."""
    while piece := file.readline(_BLOCK):
        if piece.endswith(b"\n"):
            return True
    return False


def _drop_cut_line(file: Any) -> None:
    """Remove a last line that a crash cut short, so the next recording starts cleanly: the
    file is cut after its last newline, found reading back a block at a time (in a file
    that ends with one, the first block finds it and nothing changes)."""
    position = end = file.seek(0, 2)
    while position > 0:
        start = max(position - _BLOCK, 0)
        file.seek(start)
        newline = file.read(position - start).rfind(b"\n")
        if newline >= 0:
            if start + newline + 1 < end:  # a file that ends whole is left alone: another
                file.truncate(start + newline + 1)  # process may be appending to it
            return
        position = start
    if end:
        file.truncate(0)
