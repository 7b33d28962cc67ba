"""Where ``--map`` keeps each finished reply, so a re-run pays only for the rows not yet done.

A batch of paid calls is interrupted, crashes or meets a failing key halfway; the replies it
already got must not be bought again. The scheduler (``batch.scheduler``) only needs a lookup and a
store by request key; these are the two places that can hold them: the history database (the
default, so resuming needs no file) and a cassette file (``--cassette``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from step_magic.core.cassette import Cassette, RecordedReply
from step_magic.core.request import ChatRequest
from step_magic.memory.history import History
from step_magic.memory.records import call_record


class ReplyCache(Protocol):
    """Finished replies by request key, so a re-run never pays twice for a row."""

    def lookup(self, key: str) -> RecordedReply | None: ...
    def store(self, key: str, request: ChatRequest, reply: RecordedReply) -> None: ...


class HistoryCache:
    """The reply cache backed by the history database, so a re-run resumes with no key file.

    Rows stored here can also be replayed one by one with ``%%step --replay``.
    """

    def __init__(self, history: History) -> None:
        self.history = history

    def lookup(self, key: str) -> RecordedReply | None:
        record = self.history.find_reply(key)
        return None if record is None else record.reply()

    def store(self, key: str, request: ChatRequest, reply: RecordedReply) -> None:
        self.history.record(call_record(request, reply, key))


class CassetteCache:
    """A ``ReplyCache`` in a cassette file: the same lines ``--replay --cassette`` reads.

    The file is indexed once (a cassette lookup reads the whole file, too slow per row), and
    each reply is appended as soon as it arrives, so a crash loses no finished row; a line a
    crash cut short is handled by ``Cassette`` itself, for replay and recording alike.
    """

    def __init__(self, path: Path) -> None:
        self.cassette = Cassette(Path(path))
        self._index: dict[str, RecordedReply] | None = None

    def lookup(self, key: str) -> RecordedReply | None:
        """The recorded reply for ``key``, or None."""
        if self._index is None:
            self._index = self.cassette.replies()
        return self._index.get(key)

    def store(self, key: str, request: ChatRequest, reply: RecordedReply) -> None:
        """Append one reply, through the same path as every other recording."""
        self.cassette.store(key, request, reply)


def reply_cache(cassette: Path | None, history: History | None) -> ReplyCache | None:
    """Where finished rows go: the cassette when one is named, else the history (if on)."""
    if cassette is not None:
        return CassetteCache(cassette)
    return HistoryCache(history) if history is not None else None
