"""Where ``--map`` keeps each finished reply, so a re-run pays only for the rows not yet done.

A batch of paid calls is interrupted, crashes or meets a failing key halfway; the replies it
already got must not be bought again. The scheduler (``batch.scheduler``) only needs a lookup and a
store by request key; these are the two places that can hold them: the history database (the
default, so resuming needs no file) and a cassette file (``--cassette``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from step_magic.batch.table import Reply
from step_magic.core.cassette import Cassette, RecordedReply
from step_magic.core.redact import redact_media
from step_magic.core.request import ChatRequest
from step_magic.memory.history import CallRecord, History


class ReplyCache(Protocol):
    """Finished replies by request key, so a re-run never pays twice for a row."""

    def lookup(self, key: str) -> Reply | None: ...
    def store(self, key: str, request: ChatRequest, reply: Reply) -> None: ...


class HistoryCache:
    """The reply cache backed by the history database, so a re-run resumes with no key file.

    Rows stored here can also be replayed one by one with ``%%step --replay``.
    """

    def __init__(self, history: History) -> None:
        self.history = history

    def lookup(self, key: str) -> Reply | None:
        record = self.history.find_reply(key)
        if record is None:
            return None
        reply = record.reply()
        return reply.answer, reply.reasoning, reply.usage

    def store(self, key: str, request: ChatRequest, reply: Reply) -> None:
        answer, reasoning, usage = reply
        content = request.messages[-1].get("content")
        self.history.record(
            CallRecord(
                started_at=time.time(),
                model=request.model,
                effort=request.effort,
                prompt=content if isinstance(content, str) else "",
                messages=request.messages,
                attachments=(),
                reasoning=reasoning,
                answer=answer,
                status="complete",
                prompt_tokens=usage.prompt if usage else None,
                completion_tokens=usage.completion if usage else None,
                cached_tokens=usage.cached if usage else None,
                cache_key=key,
            )
        )


class CassetteCache:
    """A ``ReplyCache`` in a cassette file: the same lines ``--replay --cassette`` reads.

    The file is indexed once (a cassette lookup reads the whole file, too slow per row), and
    each reply is appended as soon as it arrives, so a crash loses no finished row; a line a
    crash cut short is handled by ``Cassette`` itself, for replay and recording alike.
    """

    def __init__(self, path: Path) -> None:
        self.cassette = Cassette(Path(path))
        self._index: dict[str, RecordedReply] | None = None

    def lookup(self, key: str) -> Reply | None:
        """The recorded reply for ``key``, or None."""
        if self._index is None:
            self._index = self.cassette.replies()
        found = self._index.get(key)
        return None if found is None else (found.answer, found.reasoning, found.usage)

    def store(self, key: str, request: ChatRequest, reply: Reply) -> None:
        """Append one reply (media in the request replaced by references, as Session does)."""
        body = {**request.body(stream=False), "messages": list(redact_media(request.messages))}
        answer, reasoning, usage = reply
        self.cassette.store(key, body, RecordedReply(reasoning, answer, "stop", usage, None, None))


def reply_cache(cassette: Path | None, history: History | None) -> ReplyCache | None:
    """Where finished rows go: the cassette when one is named, else the history (if on)."""
    if cassette is not None:
        return CassetteCache(cassette)
    return HistoryCache(history) if history is not None else None
