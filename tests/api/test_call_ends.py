"""How a call from Python ends (``api.calls``): a stream closed early, a call cancelled on the
event loop, a call that cannot start, each kept or refused as the docs say; against the
bundled server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time

import pytest

import step_magic
from step_magic import InputError, ReplayError
from step_magic.server import LocalServer


def slow(server: LocalServer) -> None:
    server.config.tokens_per_second = 40
    server.config.reasoning_tokens = 400  # ten seconds of reasoning


def area(width: int, height: int) -> int:
    """The area of a rectangle."""
    return width * height


def test_a_stream_closed_early_is_kept_as_interrupted_with_what_arrived(
    api_env: LocalServer,
) -> None:
    slow(api_env)
    events = step_magic.stream("A long thought")
    text = ""
    for event in events:
        text += event.text
        if len(text) > 20:
            break
    started = time.monotonic()
    events.close()
    assert time.monotonic() - started < 5
    [record] = step_magic.history(5)  # written before close() returned
    assert record.status == "interrupted"
    assert record.reasoning.startswith(text)


def test_a_cancelled_async_call_says_its_partial_text_is_kept(api_env: LocalServer) -> None:
    slow(api_env)

    async def main() -> None:
        async with asyncio.timeout(1.0):
            await step_magic.ask_async("A long thought", display=False)

    with pytest.raises(TimeoutError) as caught:
        asyncio.run(main())
    cancelled = caught.value.__cause__
    assert isinstance(cancelled, asyncio.CancelledError)
    assert cancelled.args == ("reply interrupted; the partial text above is kept",)


def test_a_stream_that_cannot_start_raises_when_it_is_read(api_env: LocalServer) -> None:
    """A replay with nothing recorded: the error comes out of the iteration, on either API."""
    with pytest.raises(ReplayError, match="no recorded reply for this request"):
        list(step_magic.stream("Never asked", replay=True))

    async def main() -> None:
        async for _ in step_magic.stream_async("Never asked", replay=True):
            pass

    with pytest.raises(ReplayError, match="no recorded reply for this request"):
        asyncio.run(main())
    assert api_env.requests == []


def test_a_background_call_refuses_tools_before_anything_is_sent(api_env: LocalServer) -> None:
    with pytest.raises(InputError) as caught:
        step_magic.ask("How big?", tools=[area], background=True)
    assert str(caught.value) == "a background call takes no tools: they must run on this thread"
    assert api_env.requests == []


def test_a_stream_runs_on_a_named_worker_thread_that_never_blocks_exit(
    api_env: LocalServer,
) -> None:
    """The call runs on ``step-magic-stream`` (named in a thread dump), a daemon thread."""
    import threading

    before = set(threading.enumerate())
    events = step_magic.stream("Hi")
    next(iter(events))
    started = set(threading.enumerate()) - before
    (worker,) = [t for t in started if t.name == "step-magic-stream"]
    assert worker.daemon
    events.close()
    worker.join(5)
    assert not worker.is_alive()


def test_one_off_calls_join_no_thread_in_the_call_log(api_env: LocalServer) -> None:
    async def main() -> None:
        async for _ in step_magic.stream_async("Streamed on the loop"):
            pass
        await step_magic.ask_async("Asked on the loop", display=False)

    asyncio.run(main())
    list(step_magic.stream("Streamed"))
    step_magic.ask("Asked", display=False)
    assert {r.prompt: r.thread for r in step_magic.history()} == dict.fromkeys(
        ("Asked", "Streamed", "Asked on the loop", "Streamed on the loop")
    )
