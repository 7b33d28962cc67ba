"""Replay: a recorded reply played back as a live one, at a realistic pace.

A teacher records a lesson at home (``%step_record lesson.jsonl``) and replays it on the
projector with no key and no network (``--replay --cassette lesson.jsonl``); the file format
lives in ``core.cassette``, which the bundled server reads too.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

from step_magic.core.cassette import RecordedReply
from step_magic.core.events import AnswerDelta, Event, Finished, ReasoningDelta

_TOKEN = re.compile(r"\S+\s*|\s+")


class ReplayStream:
    """Events of a recorded reply, paced like a live one (``tokens_per_second`` 0: at once).

    Same interface as ``wire.chat.ReplyStream``, so the runner and views cannot tell them apart
    (a cassette's text was cleaned when it was read, in ``RecordedReply.from_json``).
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
