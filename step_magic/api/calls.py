"""``ask`` and ``stream``: one call, shown where the caller is, or as events for code.

Both build the same prepared call as the ``%%step`` magic (prompt and attachments composed,
earlier turns of a ``Chat`` added, tools described) and run it through the same engine, so a
result from Python is the very ``StepResult`` a cell gets, recorded in the same history.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Literal, overload

from step_magic.api.keywords import CallKeywords
from step_magic.api.prepare import Call, close, one_off_session, prepare
from step_magic.core.errors import InputError, StepInterrupted
from step_magic.core.result import StepResult
from step_magic.display.frontend import auto_view
from step_magic.engine.relay import AsyncEventRelay, EventRelay, StreamEvent
from step_magic.engine.session import Session

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing has it from Python 3.11

    from step_magic.engine.background import Pending

INTERRUPTED = "reply interrupted; the partial text above is kept"
JOIN_SECONDS = 5.0  # how long a closed stream waits for its worker to cut the connection


def run(session: Session, call: Call, display: bool | None) -> StepResult:
    """Run ``call`` on this thread, shown as ``display`` asks; raise if it failed.

    The error carries the partial result (``error.result``): what arrived is never lost.
    """
    view = auto_view(display, call.settings, tools=call.tools is not None)
    result, error = session.ask(call.settings, call.prepared, call.options, view, None, call.tools)
    if error is not None:
        raise error
    return result


def events(session: Session, call: Call, *, on_end: Any = None) -> Iterator[StreamEvent]:
    """Run ``call`` on a worker thread and yield its events; closing stops the call.

    ``on_end`` runs when the iteration ends, however it ends (closing the history).
    """
    relay, stop = EventRelay(), list[int]()

    def work() -> None:
        try:
            result, error = session.ask(
                call.settings, call.prepared, call.options, relay, None, call.tools, stop=stop
            )
        except BaseException as err:  # handed to the reader, who sees it raised
            relay.failed(err)
            return
        relay.done(result, error)

    worker = threading.Thread(target=work, name="step-magic-stream", daemon=True)
    worker.start()
    try:
        yield from relay
    finally:
        stop.append(signal.SIGINT)
        worker.join(JOIN_SECONDS)
        if on_end is not None:
            on_end()


async def run_async(session: Session, call: Call, display: bool | None) -> StepResult:
    """``run`` on the running event loop; a cancelled call is kept (as interrupted, in the
    history), then ``CancelledError`` is raised as asyncio expects (IPython shows it as one
    line: these frames are hidden from its traceback)."""
    __tracebackhide__ = True
    view = auto_view(display, call.settings, tools=call.tools is not None)
    result, error = await session.ask_async(
        call.settings, call.prepared, call.options, view, call.tools
    )
    if isinstance(error, StepInterrupted):  # only a cancellation interrupts a call on a loop
        cancelled = asyncio.CancelledError(INTERRUPTED)
        cancelled.result = result  # type: ignore[attr-defined]  # what arrived, as on errors
        raise cancelled
    if error is not None:
        raise error
    return result


async def events_async(
    session: Session, call: Call, *, on_end: Any = None
) -> AsyncIterator[StreamEvent]:
    """``events`` on the running event loop: the call is a task; leaving the loop early
    (``break``, ``aclose()``, the reader cancelled) cancels it and closes the connection."""
    relay = AsyncEventRelay(asyncio.get_running_loop())
    task = asyncio.create_task(
        session.ask_async(call.settings, call.prepared, call.options, relay, call.tools)
    )
    task.add_done_callback(lambda ended: _relay_end(ended, relay))
    try:
        async for event in relay:
            yield event
    finally:
        task.cancel()
        await asyncio.wait([task])
        if on_end is not None:
            on_end()


def _relay_end(task: asyncio.Task[tuple[StepResult, BaseException | None]], relay: Any) -> None:
    """The call's task ended: its ``Done``, or what it raised, for the reader."""
    if task.cancelled():
        return  # the reader left first: nobody reads on
    failed = task.exception()
    if failed is not None:
        relay.failed(failed)
    else:
        relay.done(*task.result())


@overload
def ask(
    prompt: str,
    *,
    background: Literal[False] = False,
    display: bool | None = None,
    history: bool = True,
    **keywords: Unpack[CallKeywords],
) -> StepResult: ...


@overload
def ask(
    prompt: str,
    *,
    background: Literal[True],
    display: bool | None = None,
    history: bool = True,
    **keywords: Unpack[CallKeywords],
) -> Pending: ...


def ask(
    prompt: str,
    *,
    background: bool = False,
    display: bool | None = None,
    history: bool = True,
    **keywords: Unpack[CallKeywords],
) -> StepResult | Pending:
    """Ask once and return the ``StepResult``; ``docs/api.md`` explains every keyword.

    ``attach`` takes objects (a DataFrame, a figure, an image, a path) or a mapping of names
    to objects, summarised as ``--with`` summarises them; ``tools`` takes functions, or a
    mapping of names to functions and DataFrames, as ``--tools`` does. ``display=None`` shows
    the live panel in a notebook, the plain stream in a terminal, and nothing otherwise.
    Raises ``InputError`` for bad input (nothing is sent), ``StepAPIError`` for a failed call
    and ``StepInterrupted`` on Ctrl-C, each with what arrived in ``.result``.

    ``background=True`` returns at once a ``Pending`` call (``.wait()``, ``.cancel()``,
    ``.done``, the text so far in ``.answer`` / ``.reasoning``) while the reply streams on a
    thread of its own (into its panel, in a notebook); it takes no ``tools``.
    """
    if background and keywords.get("tools"):
        raise InputError("a background call takes no tools: they must run on this thread")
    session = one_off_session(history)
    try:
        call = prepare(session, prompt, keywords, memory=False)
        if background:
            from step_magic.api.background import start

            return start(session, call, display, on_end=lambda: close(session))
    except BaseException:
        close(session)
        raise
    try:
        return run(session, call, display)
    finally:
        close(session)


def stream(
    prompt: str, *, history: bool = True, **keywords: Unpack[CallKeywords]
) -> Iterator[StreamEvent]:
    """The events of one call as they arrive (see ``engine.relay``), ending with ``done``.

    Every keyword is checked before this returns; the call starts when iteration does.
    Closing the iterator (``break``, ``close()``) closes the connection. A failed call raises
    after its ``done`` event. Tool functions run on the worker thread that reads the reply.
    """
    session, call = _one_off(prompt, keywords, history)
    return events(session, call, on_end=lambda: close(session))


async def ask_async(
    prompt: str,
    *,
    display: bool | None = None,
    history: bool = True,
    **keywords: Unpack[CallKeywords],
) -> StepResult:
    """``ask`` for asyncio: ``await step_magic.ask_async(...)`` in a notebook cell or an
    ``async def``. Same keywords, result, errors and history; many run at once on one event
    loop without a thread each (``asyncio.gather``, ``TaskGroup``). Cancelling it (``Task.
    cancel``, ``asyncio.timeout``, Ctrl-C) closes the connection, keeps the partial reply in
    the history as interrupted, and raises ``CancelledError``. Bad input raises
    ``InputError`` before anything is sent; tool functions run in a worker thread.
    """
    __tracebackhide__ = True
    session = one_off_session(history)
    try:
        call = prepare(session, prompt, keywords, memory=False)
        return await run_async(session, call, display)
    finally:
        close(session)


def stream_async(
    prompt: str, *, history: bool = True, **keywords: Unpack[CallKeywords]
) -> AsyncIterator[StreamEvent]:
    """``stream`` for asyncio: ``async for event in step_magic.stream_async(...)``, the same
    events ending with ``done``. Every keyword is checked before this returns; the call
    starts when iteration does; ``break`` or ``aclose()`` closes the connection."""
    session, call = _one_off(prompt, keywords, history)
    return events_async(session, call, on_end=lambda: close(session))


def _one_off(prompt: str, keywords: Any, history: bool) -> tuple[Session, Call]:
    """A call prepared in a session of its own, the session closed if preparing fails."""
    session = one_off_session(history)
    try:
        return session, prepare(session, prompt, keywords, memory=False)
    except BaseException:
        close(session)
        raise
