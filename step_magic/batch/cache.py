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
from step_magic.core.result import KEPT, StepResult
from step_magic.memory.history import History
from step_magic.memory.records import result_record


class ReplyCache(Protocol):
    """Finished replies by request key, so a re-run never pays twice for a row.

    ``store`` is given every row that ran, however it ended: the history logs each one (a
    failed row too, as a failed cell is), while only a kept reply is ever looked up again.
    """

    def lookup(self, key: str) -> RecordedReply | None: ...
    def store(self, key: str, request: ChatRequest, result: StepResult) -> None: ...


class HistoryCache:
    """The reply cache backed by the history database, so a re-run resumes with no key file.

    Rows stored here can also be replayed one by one with ``%%step --replay``.
    """

    def __init__(self, history: History) -> None:
        self.history = history

    def lookup(self, key: str) -> RecordedReply | None:
        record = self.history.find_reply(key, truncated=True)
        return None if record is None else record.reply()

    def store(self, key: str, request: ChatRequest, result: StepResult) -> None:
        self.history.record(result_record(request, result, key))


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

    def store(self, key: str, request: ChatRequest, result: StepResult) -> None:
        """Append a kept reply, through the same path as every other recording (a cassette
        holds replies to play back, not failures)."""
        if result.status in KEPT:
            self.cassette.store(key, request, result.recorded())


def reply_cache(cassette: Path | None, history: History | None) -> ReplyCache | None:
    """Where finished rows go: the cassette when one is named, else the history (if on)."""
    if cassette is not None:
        return CassetteCache(cassette)
    return HistoryCache(history) if history is not None else None
