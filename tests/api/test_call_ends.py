"""How a call from Python ends (``api.calls``): a stream closed early, a call cancelled on the
event loop, a call that cannot start, each kept or refused as the docs say; against the
bundled server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

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


def test_a_chat_stream_read_to_its_end_is_a_turn_of_the_chat(api_env: LocalServer) -> None:
    with step_magic.Chat("lesson", history=False) as chat:
        kinds = [event.kind for event in chat.stream("My name is Ada.")]
        assert kinds[-1] == "done"
        assert [turn.user["content"] for turn in chat.turns] == ["My name is Ada."]
        chat.ask("What is my name?", display=False)
    users = [m["content"] for m in api_env.requests[-1].body["messages"] if m["role"] == "user"]
    assert users == ["My name is Ada.", "What is my name?"]


def test_a_stream_runs_the_tools_it_is_given(api_env: LocalServer) -> None:
    events = list(step_magic.stream("How big is 2 by 3?", tools=[area]))
    results = [event for event in events if event.kind == "tool_result"]
    assert [(event.record.name, event.record.status) for event in results] == [("area", "ok")]
    assert events[-1].result.steps == 2  # the tool's result went back for a second turn


def test_closing_a_stream_whose_tool_hangs_returns_after_a_bounded_wait(
    api_env: LocalServer,
) -> None:
    """A tool cannot be stopped from outside: closing waits a few seconds for the call to
    end (``calls.JOIN_SECONDS``), then returns and leaves the thread to finish on its own."""
    import threading

    from step_magic.api.calls import JOIN_SECONDS

    started, release = threading.Event(), threading.Event()

    def stuck(width: int, height: int) -> int:
        """The area of a rectangle, slowly."""
        started.set()
        release.wait(JOIN_SECONDS + 5)
        return width * height

    stream = step_magic.stream("How big is 2 by 3?", tools=[stuck])
    for event in stream:
        if event.kind == "tool_call":
            break
    assert started.wait(10)
    closing = time.monotonic()
    stream.close()  # type: ignore[attr-defined]
    took = time.monotonic() - closing
    release.set()
    assert JOIN_SECONDS - 0.5 <= took < JOIN_SECONDS + 3


def test_display_true_shows_the_reply_and_its_tools_as_plain_text(
    api_env: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outside a notebook, ``display=True`` streams the reply to stdout, tool calls too."""
    result = step_magic.ask("How big is 2 by 3?", tools=[area], display=True)
    shown = capsys.readouterr().out
    assert result.answer.strip()[:40] in shown
    assert "area(" in shown
    step_magic.ask("Why is the sky blue?", display=False)
    assert capsys.readouterr().out == ""


def test_an_awaited_call_that_is_cancelled_shows_none_of_our_frames(
    ip: Any, api_env: LocalServer
) -> None:
    """In a notebook, a cancelled ``await step_magic.ask_async(...)`` is the asyncio error
    with the cell's lines and the one frame that raised it, not a stack of step-magic's
    frames (IPython's ``__tracebackhide__``); a failed one is one line (the extension's
    error handler)."""
    import io
    from contextlib import redirect_stdout

    slow(api_env)
    ip.user_ns["step_magic"] = step_magic
    cell = (
        "import asyncio\n"
        "task = asyncio.ensure_future(step_magic.ask_async('A long thought', display=False))\n"
        "await asyncio.sleep(0.5)\n"
        "task.cancel()\n"
        "await task\n"
    )
    out = io.StringIO()
    with redirect_stdout(out):
        ip.run_cell(cell)
    shown = out.getvalue()
    assert "CancelledError" in shown
    assert "reply interrupted; the partial text above is kept" in shown
    ours = [line for line in shown.splitlines() if "step_magic" in line and ".py:" in line]
    assert len(ours) == 1, shown  # the frame that raised, which IPython always shows
