"""A call as an iterator of typed events (``step_magic.stream``), for code instead of a screen.

The runner shows a reply through a view; ``EventRelay`` is a view that turns what it is shown
into events on a queue, read by another thread as they come: reasoning and answer text
(coalesced like the display's updates, at most ten a second), retries, tool calls and their
results, the usage, and last the finished ``StepResult``. Every event has a ``kind`` and, where
it carries text, ``text``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import ClassVar

from step_magic.core.events import AnswerDelta, ReasoningDelta, Rethought, TextEvent, Usage
from step_magic.core.result import StepResult
from step_magic.core.toolrecords import ToolRecord, outcome_text, signature


class Retrying(TextEvent):
    """The server asked us to wait (429/5xx before any text); ``text`` says how long."""

    kind = "waiting"


@dataclass(frozen=True)
class ToolEvent:
    """A tool call starts (``kind`` "tool_call", ``text`` is ``name(arguments)``) or ends
    ("tool_result", ``text`` says how in a few words: ``0.02 s → 42``, ``error: …``)."""

    kind: str
    record: ToolRecord

    @property
    def text(self) -> str:
        if self.kind == "tool_call":
            return signature(self.record, limit=None)
        return outcome_text(self.record)


@dataclass(frozen=True)
class UsageReported:
    """The tokens the call used, summed over its model turns."""

    kind: ClassVar[str] = "usage"
    usage: Usage


@dataclass(frozen=True)
class Done:
    """The call ended: ``result`` holds everything, ``error`` why it failed (or None)."""

    kind: ClassVar[str] = "done"
    result: StepResult
    error: BaseException | None = None

    @property
    def text(self) -> str:
        return self.result.answer


StreamEvent = ReasoningDelta | AnswerDelta | Rethought | Retrying | ToolEvent | UsageReported | Done


class _Relay:
    """A view that queues events instead of showing them (see the module docstring); where
    they are queued is the subclass's."""

    def put(self, item: StreamEvent | BaseException) -> None:
        raise NotImplementedError

    def start(self, status: str) -> None:
        """Nothing to show before the first text."""

    def waiting(self, status: str) -> None:
        self.put(Retrying(status))

    def update(self, reasoning: str, answer: str, elapsed: float) -> None:
        if reasoning:
            self.put(ReasoningDelta(reasoning))
        if answer:
            self.put(AnswerDelta(answer))

    def rethink(self) -> None:
        """Code reading the events moves the answer text it got so far to the reasoning."""
        self.put(Rethought())

    def tool(self, record: ToolRecord) -> None:
        """A call starts (``running``) or ends; the record is copied, it changes later."""
        kind = "tool_call" if record.status == "running" else "tool_result"
        self.put(ToolEvent(kind, ToolRecord(**vars(record))))

    def finish(self, result: StepResult) -> None:
        """The runner's last word; ``Done`` follows once the session has kept the call."""
        if result.usage is not None:
            self.put(UsageReported(result.usage))

    def done(self, result: StepResult, error: BaseException | None) -> None:
        self.put(Done(result, error))

    def failed(self, error: BaseException) -> None:
        """The call could not run at all (a bug or bad input found late): re-raised to the
        reader."""
        self.put(error)


class EventRelay(_Relay):
    """The events for a reader on another thread (``step_magic.stream``)."""

    def __init__(self) -> None:
        self.events: queue.Queue[StreamEvent | BaseException] = queue.Queue()

    def put(self, item: StreamEvent | BaseException) -> None:
        """Queue an event for the reader (any thread)."""
        self.events.put(item)

    def __iter__(self) -> Iterator[StreamEvent]:
        """Events until ``Done``, then the call's error (if it failed) raised, carrying the
        partial result: a loop over the events fails as a call would. An error the call
        could not turn into a result is raised at once."""
        while True:
            item = _event(self.events.get())
            yield item
            if _ended(item):
                return


class AsyncEventRelay(_Relay):
    """The same events for ``async for`` on an event loop (``step_magic.stream_async``).

    The call runs as a task on the loop, so most events are queued from the loop itself;
    a tool's start and end come from the worker thread the tool runs in, and are handed to
    the loop thread-safely.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        """Made on the loop's thread, for that loop."""
        self._loop = loop
        self._thread = threading.get_ident()
        self.queue: asyncio.Queue[StreamEvent | BaseException] = asyncio.Queue()

    def put(self, item: StreamEvent | BaseException) -> None:
        if threading.get_ident() == self._thread:
            self.queue.put_nowait(item)
        else:
            self._loop.call_soon_threadsafe(self.queue.put_nowait, item)

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        """As ``EventRelay.__iter__``: events until ``Done``, then the call's error raised."""
        while True:
            item = _event(await self.queue.get())
            yield item
            if _ended(item):
                return


def _event(item: StreamEvent | BaseException) -> StreamEvent:
    """A queued event, or the error the call could not turn into a result, raised."""
    if isinstance(item, BaseException):
        raise item
    return item


def _ended(item: StreamEvent) -> bool:
    """True after ``Done``; a failed call's error (with its partial result) raised there."""
    if isinstance(item, Done):
        if item.error is not None:
            raise item.error
        return True
    return False
