"""What lives between calls in one kernel: threads, the reply cache, recording, history.

``Session.prepare`` turns a prompt into the request (with the conversation so far) and
``Session.ask`` runs it, live or replayed, then remembers it everywhere it should. Plain
Python: the magic passes in the view and the cell identity.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from step_magic.context.compose import Composed
from step_magic.core.cassette import Cassette
from step_magic.core.errors import ReplayError
from step_magic.core.models import model_info
from step_magic.core.request import ChatRequest, build_request, estimate_tokens
from step_magic.core.result import KEPT, StepResult
from step_magic.core.settings import Settings
from step_magic.engine.runner import View, run_call
from step_magic.engine.toolloop import ToolLoop
from step_magic.memory.conversation import (
    DEFAULT_THREAD,
    Conversations,
    Thread,
    Turn,
    context_messages,
    remembered,
    turns_from_history,
)
from step_magic.memory.history import History
from step_magic.memory.records import result_record
from step_magic.memory.replay import ReplayStream

DEFAULT_REPLY_BUDGET = 32_000


@dataclass(frozen=True)
class CallOptions:
    """Per-call choices about memory and the reply cache."""

    chat: str = "default"
    new: bool = False
    memory: bool = True
    replay: bool = False
    refresh: bool = False
    cassette: Path | None = None
    replay_speed: float = 200.0
    display_format: str = "markdown"
    notebook: str | None = None
    background: bool = False  # its turn joins the thread when it ends, after later cells


@dataclass
class Prepared:
    """A request ready to send, with what the caller should know about how it was built."""

    request: ChatRequest
    composed: Composed
    thread: Thread | None
    notes: tuple[str, ...]


class Session:
    """Conversations, history and the recorder of one kernel."""

    def __init__(self, history: History | None) -> None:
        self.conversations = Conversations()
        self.history = history
        self.recorder: Cassette | None = None

    def thread(self, name: str) -> Thread:
        """The thread ``name``; a named thread this session has not seen yet continues from
        the history, so it outlives the kernel (the default thread always starts empty)."""
        known = name in self.conversations.threads
        thread = self.conversations.thread(name)
        if not known and name != DEFAULT_THREAD and self.history is not None:
            thread.turns.extend(turns_from_history(name, self.history.thread(name)).turns)
        return thread

    def prepare(
        self,
        settings: Settings,
        composed: Composed,
        options: CallOptions,
        cell: str | None,
        tools: Sequence[dict[str, Any]] = (),
    ) -> Prepared:
        """Build the request: system prompt, earlier turns that fit, then this prompt."""
        thread = self.thread(options.chat) if options.memory else None
        earlier: list[dict[str, Any]] = []
        notes: list[str] = []
        if thread is not None and not options.new:  # --new clears the thread once it worked
            bare = build_request(settings, composed.text, composed.parts(), tools=tools)
            room = _context_room(settings) - estimate_tokens(bare.messages)
            earlier, dropped = context_messages(thread.before(cell), room)
            if dropped:
                notes.append(f"{dropped} oldest turn(s) left out to fit the context window")
        request = build_request(settings, composed.text, composed.parts(), earlier, tools)
        return Prepared(request, composed, thread, tuple(notes))

    def ask(
        self,
        settings: Settings,
        prepared: Prepared,
        options: CallOptions,
        view: View,
        cell: str | None,
        tools: ToolLoop | None = None,
        stop: list[int] | None = None,
    ) -> tuple[StepResult, BaseException | None]:
        """Run the call (live or replayed), then remember it in the thread, cache and history."""
        begun = self._begin(prepared, options)
        result, error = run_call(
            settings,
            prepared.request,
            view,
            stream=begun.stream,
            annotate=begun.annotate,
            tools=tools,
            stop=stop,
        )
        self._end(begun, prepared, options, cell, result)
        return result, error

    async def ask_async(
        self,
        settings: Settings,
        prepared: Prepared,
        options: CallOptions,
        view: View,
        tools: ToolLoop | None = None,
    ) -> tuple[StepResult, BaseException | None]:
        """``ask`` on the running event loop (``engine.asyncrunner``): the same call, kept
        the same way; a cancelled call is kept as interrupted before the caller re-raises."""
        from step_magic.engine.asyncrunner import run_call_async

        begun = self._begin(prepared, options)
        result, error = await run_call_async(
            settings,
            prepared.request,
            view,
            stream=begun.stream,
            annotate=begun.annotate,
            tools=tools,
        )
        # the history's SQLite may wait on another process's lock: not on the loop
        await asyncio.to_thread(self._end, begun, prepared, options, None, result)
        return result, error

    def _begin(self, prepared: Prepared, options: CallOptions) -> _Begun:
        """Before a call: its reply-cache key, a recorded reply when replaying, the start
        time, and what the result is told of how the call was prepared."""
        key = prepared.request.cache_key()
        stream = self._replay_source(prepared.request, options)

        def annotate(result: StepResult) -> None:
            result.attachments = prepared.composed.labels
            result.notes = prepared.notes + result.notes
            result.thread = options.chat if options.chat != "default" else None
            result.replayed = stream is not None
            result.display_format = options.display_format
            if options.background and prepared.thread is not None and result.status in KEPT:
                result.notes += (
                    f"ran in the background: joined {_thread_name(options)} when it ended",
                )

        return _Begun(key, stream, annotate, time.time())

    def _end(
        self,
        begun: _Begun,
        prepared: Prepared,
        options: CallOptions,
        cell: str | None,
        result: StepResult,
    ) -> None:
        """After a call, however it ended: its turn joins the thread (when kept), its reply
        the cache (not a replay, nor a call that used tools: replaying its answer would skip
        the calls the answer depends on), and the call the history."""
        if prepared.thread is not None and result.status in KEPT:
            if options.new:
                prepared.thread.turns.clear()
            user = prepared.request.messages[-1]
            tokens = result.usage.total if result.usage else 0
            prepared.thread.record(Turn(cell, user, remembered(result.exchange), tokens))
        if begun.stream is None and result.status in KEPT and not result.tool_calls:
            self._store(begun.key, prepared.request, result, options)
        self._log(prepared, result, begun.key, begun.started, options, cell)

    def check_replay(self, prepared: Prepared, options: CallOptions) -> None:
        """Raise ``ReplayError`` now if the call would have no recorded reply to replay
        (a background call checks this before it leaves the caller's thread)."""
        self._replay_source(prepared.request, options)

    def _replay_source(self, request: ChatRequest, options: CallOptions) -> ReplayStream | None:
        """A recorded reply when replaying (a miss is an error); None for a live call. A
        cassette matches the whole conversation first, then the question alone."""
        if not options.replay or options.refresh:
            return None
        reply, key, asked = None, request.cache_key(), request.body(stream=False)
        if options.cassette is not None:
            reply = Cassette(options.cassette).to_replay().lookup(key, asked)
        elif self.recorder is not None:
            reply = self.recorder.lookup(key, asked)
        if reply is None and options.cassette is None and self.history is not None:
            found = self.history.find_reply(key)
            reply = found.reply() if found else None
        if reply is None:
            where = options.cassette or "the history"
            raise ReplayError(
                f"no recorded reply for this request in {where}: run it once without --replay "
                "(or with --refresh) to record it"
            )
        return ReplayStream(reply, options.replay_speed)

    def _store(
        self, key: str, request: ChatRequest, result: StepResult, options: CallOptions
    ) -> None:
        targets = [Cassette(options.cassette)] if options.cassette else []
        if self.recorder is not None and self.recorder not in targets:
            targets.append(self.recorder)
        for cassette in targets:
            try:
                cassette.store(key, request, result.recorded())
            except OSError as err:  # the reply is shown and in _step: say so, don't fail
                print(f"step-magic: could not record to {cassette.path}: {err}", file=sys.stderr)

    def _log(
        self,
        prepared: Prepared,
        result: StepResult,
        key: str,
        started: float,
        options: CallOptions,
        cell: str | None,
    ) -> None:
        if self.history is None:
            return
        request = dataclasses.replace(prepared.request, messages=result.messages)
        row = result_record(
            request,
            result,
            key,
            started_at=started,
            prompt=prepared.composed.text,
            attachments=result.attachments,
            notebook=options.notebook,
            thread=options.chat if options.memory else None,  # one-off calls join no thread
            cell=cell,
            starts_thread=options.new,
        )
        self.history.record(row)


@dataclass(frozen=True)
class _Begun:
    """What ``Session._begin`` knows before a call, for ``_end`` after it."""

    key: str
    stream: ReplayStream | None
    annotate: Callable[[StepResult], None]
    started: float


def _context_room(settings: Settings) -> int:
    info = model_info(settings.model)
    context = info.context_tokens if info else 256_000
    return context - (settings.max_tokens or DEFAULT_REPLY_BUDGET)


def _thread_name(options: CallOptions) -> str:
    return "the conversation" if options.chat == "default" else f"the thread {options.chat!r}"
