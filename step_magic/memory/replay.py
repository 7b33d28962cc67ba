"""Replay: a recorded reply played back as a live one, at a realistic pace.

A teacher records a lesson at home (``%step_record lesson.jsonl``) and replays it on the
projector with no key and no network (``--replay --cassette lesson.jsonl``); the file format
lives in ``core.cassette``, which the bundled server reads too.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator

from step_magic.core.cassette import RecordedReply
from step_magic.core.events import AnswerDelta, Event, Finished, ReasoningDelta

_TOKEN = re.compile(r"\S+\s*|\s+")
MAX_REPLAY_SECONDS = 60.0  # a long recording plays faster rather than for hours
STEP_SECONDS = 0.02  # tokens due within this are sent together: one event, not thousands


class ReplayStream:
    """Events of a recorded reply, paced like a live one (``tokens_per_second`` 0: at once),
    and never for longer than ``MAX_REPLAY_SECONDS`` (a 50 MB answer at 200 tokens/s would
    take hours).

    Same interface as ``wire.chatwire.ReplyStream``, so the runner and views cannot tell them apart
    (a cassette's text was cleaned when it was read, in ``RecordedReply.from_json``).
    """

    def __init__(self, reply: RecordedReply, tokens_per_second: float) -> None:
        self._reply = reply
        self._rate = tokens_per_second
        self._stopped = threading.Event()
        self.trace_id = reply.trace_id
        self.completion_id = reply.completion_id

    def close(self) -> None:
        """Stop playing (Ctrl-C)."""
        self._stopped.set()

    def __iter__(self) -> Iterator[Event]:
        for item in self._paced():
            if isinstance(item, float):
                if self._stopped.wait(item):
                    return
            elif self._stopped.is_set():
                return
            else:
                yield item

    async def __aiter__(self) -> AsyncIterator[Event]:
        """The same on an event loop (cancelling the task stops it)."""
        for item in self._paced():
            if isinstance(item, float):
                await asyncio.sleep(item)
            else:
                yield item

    def _paced(self) -> Iterator[Event | float]:
        """The events, with the seconds to wait before the next as floats in between."""
        parts: list[tuple[type[ReasoningDelta] | type[AnswerDelta], list[str]]] = [
            (ReasoningDelta, _TOKEN.findall(self._reply.reasoning)),
            (AnswerDelta, _TOKEN.findall(self._reply.answer)),
        ]
        total = sum(len(tokens) for _, tokens in parts)
        delay = 0.0
        if self._rate > 0 and total:  # at the pace asked, but never longer than the cap
            delay = min(1 / self._rate, MAX_REPLAY_SECONDS / total)
        started, sent = time.monotonic(), 0
        for kind, tokens in parts:
            batch: list[str] = []
            for token in tokens:
                ahead = started + sent * delay - time.monotonic()
                if ahead > STEP_SECONDS:
                    if batch:
                        yield kind("".join(batch))
                        batch = []
                    yield ahead
                batch.append(token)
                sent += 1
            if batch:
                yield kind("".join(batch))
        reply = self._reply
        yield Finished(reply.finish_reason, reply.usage, reply.trace_id, reply.completion_id)
