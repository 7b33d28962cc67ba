"""``Chat``: a conversation from Python, with the memory rules of consecutive ``%%step`` cells.

Earlier prompts and answers are sent as context, the reasoning never is; the oldest turns are
left out when the thread would not fit the model's context. A named chat is kept in the
history, so ``Chat("lesson")`` in a new process (or ``%%step --chat lesson`` in a new kernel)
continues where it stopped, as ``llm -c`` does.

The asks of one chat run one after another, as the turns of a conversation do: two
``ask_async`` awaited together (or two threads calling ``ask``) give two turns, the second
sent with the first's answer, never two turns that each ignore the other. (A stream's request
is built when ``stream`` is called, so bad input is refused at once: start it after the
turns it should see have ended.)
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

from step_magic.api.calls import events, events_async, run, run_async
from step_magic.api.inputs import check_keywords
from step_magic.api.keywords import CALL_KEYWORDS
from step_magic.api.prepare import prepare
from step_magic.core.redact import redact_url
from step_magic.core.result import StepResult
from step_magic.engine.relay import StreamEvent
from step_magic.engine.session import Session
from step_magic.memory.conversation import Turn
from step_magic.memory.history import History

CHAT_KEYWORDS = CALL_KEYWORDS


class Chat:
    """A conversation: every ``ask`` sees the earlier turns (see the module docstring).

    Keywords given here (``model=``, ``effort=``, ``system=``…) apply to every call; those
    given to ``ask`` or ``stream`` win for that call.
    """

    def __init__(self, name: str | None = None, *, history: bool = True, **keywords: Any):
        self.name = name or "default"
        check_keywords(keywords, CHAT_KEYWORDS, "Chat: ")
        self._keywords = keywords  # private: it may hold api_key
        self._restart = False  # the next call starts the thread afresh (after reset)
        self._turn = threading.RLock()  # one ``ask`` at a time; a tool may ask the chat too
        self._loop_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
        self._loop_turns = weakref.WeakKeyDictionary()  # one ``ask_async`` at a time, per loop
        self._session = Session(History() if history else None)
        self._thread = self._session.thread(self.name)

    @property
    def keywords(self) -> dict[str, Any]:
        """The keywords every call of this chat takes; a key given as ``api_key`` shows as
        ``***``."""
        shown = dict(self._keywords)
        if shown.get("api_key"):
            shown["api_key"] = "***"
        if isinstance(shown.get("base_url"), str):
            shown["base_url"] = redact_url(shown["base_url"])
        return shown

    def ask(self, prompt: str, *, display: bool | None = None, **keywords: Any) -> StepResult:
        """Ask within the conversation; same keywords and errors as ``step_magic.ask``."""
        with self._turn:
            call = prepare(self._session, prompt, {**self._keywords, **keywords}, **self._memory())
            return run(self._session, call, display)

    def stream(self, prompt: str, **keywords: Any) -> Iterator[StreamEvent]:
        """Stream within the conversation; same events as ``step_magic.stream``."""
        call = prepare(self._session, prompt, {**self._keywords, **keywords}, **self._memory())
        return events(self._session, call)

    async def ask_async(
        self, prompt: str, *, display: bool | None = None, **keywords: Any
    ) -> StepResult:
        """``ask`` for asyncio (see ``step_magic.ask_async``); the same conversation."""
        __tracebackhide__ = True
        loop = asyncio.get_running_loop()  # an asyncio.Lock belongs to the loop it is used on
        async with self._loop_turns.setdefault(loop, asyncio.Lock()):
            call = prepare(self._session, prompt, {**self._keywords, **keywords}, **self._memory())
            return await run_async(self._session, call, display)

    def stream_async(self, prompt: str, **keywords: Any) -> AsyncIterator[StreamEvent]:
        """``stream`` for asyncio (see ``step_magic.stream_async``); the same conversation."""
        call = prepare(self._session, prompt, {**self._keywords, **keywords}, **self._memory())
        return events_async(self._session, call)

    @property
    def turns(self) -> list[Turn]:
        """The turns so far, oldest first (each: the user message and the replies)."""
        return list(self._thread.turns)

    def reset(self) -> None:
        """Start the conversation afresh; a named chat resumed later starts from here too."""
        self._thread.turns.clear()
        self._restart = True

    def close(self) -> None:
        """Close the history database; the chat can still be used (it reopens)."""
        if self._session.history is not None:
            self._session.history.close()

    def __enter__(self) -> Chat:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Chat:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Chat({self.name!r}, {len(self._thread.turns)} turns)"

    def _memory(self) -> dict[str, Any]:
        restart, self._restart = self._restart, False
        return {"memory": True, "chat": self.name, "new": restart}
