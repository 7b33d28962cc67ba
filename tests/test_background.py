"""Background calls through the Python API and an in-process shell: the pending call, its
bound, its memory and history, and what it refuses. ``test_background_kernel`` shows the
notebook panel, the Stop button and the saved notebook."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

import step_magic
from step_magic.api.background import POOL, start, stop_all
from step_magic.api.prepare import prepare
from step_magic.core.cassette import Cassette, RecordedReply
from step_magic.core.errors import InputError, ReplayError
from step_magic.core.request import ChatRequest
from step_magic.engine.background import Pending
from step_magic.engine.session import Session
from step_magic.memory.history import History
from step_magic.server import LocalServer

from .conftest import TEST_KEY


@pytest.fixture(autouse=True)
def _own_pool() -> Iterator[None]:
    """Each test starts with no background call left by another (one that failed midway)."""
    yield
    stop_all(10)
    POOL.calls.clear()


def background(server: LocalServer, prompt: str = "Why is the sky blue?", **keywords: Any) -> Any:
    return step_magic.ask(
        prompt, background=True, base_url=server.base_url, api_key=TEST_KEY, history=False,
        **keywords,
    )  # fmt: skip


def test_ask_in_the_background_returns_at_once_and_wait_gives_the_result(
    server: LocalServer,
) -> None:
    server.config.tokens_per_second = 200
    server.config.reasoning_tokens = 400
    pending = background(server)
    assert isinstance(pending, Pending)
    assert not pending.done
    with pytest.raises(TimeoutError, match=r"still running after 0\.05 s"):
        pending.wait(timeout=0.05)
    while not pending.reasoning:
        time.sleep(0.02)
    assert "running for" in repr(pending)
    result = pending.wait(timeout=60)
    assert pending.done
    assert result.status == "complete"
    assert result.answer == pending.answer
    assert len(result.reasoning) > 500
    assert result.trace_id
    assert len(server.requests) == 1


def test_cancel_keeps_what_arrived_and_a_finished_call_cannot_be_cancelled(
    server: LocalServer,
) -> None:
    server.config.tokens_per_second = 100
    server.config.reasoning_tokens = 2_000
    pending = background(server)
    while len(pending.reasoning) < 40:
        time.sleep(0.02)
    assert pending.cancel()
    result = pending.wait(timeout=30)
    assert result.status == "interrupted"
    assert len(result.reasoning) >= 40
    assert not pending.cancel()


def test_at_most_the_pool_limit_stream_at_once_and_a_queued_call_can_be_cancelled(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.config.tokens_per_second = 150
    server.config.reasoning_tokens = 300
    monkeypatch.setattr(POOL, "limit", 1)
    first = background(server, "Question 0")
    while first.state != "running":  # it holds the only slot before the others ask
        time.sleep(0.01)
    second, third = background(server, "Question 1"), background(server, "Question 2")
    assert second.state == third.state == "queued"
    assert "waiting for a free slot" in repr(third)
    third.cancel()
    assert third.wait(timeout=30).status == "interrupted"
    assert not first.done  # the cancelled call did not wait for the running one
    assert [p.wait(timeout=60).status for p in (first, second)] == ["complete", "complete"]
    assert len(server.requests) == 2  # the call cancelled while queued sent nothing


def test_a_background_call_takes_no_tools(server: LocalServer) -> None:
    with pytest.raises(InputError, match="background call takes no tools"):
        background(server, tools=[len])
    assert server.requests == []


def test_the_magic_binds_the_pending_call_and_a_foreground_call_does_not_wait_for_it(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.config.tokens_per_second = 100
    server.config.reasoning_tokens = 3_000  # half a minute: it cannot end during this test
    ip.run_cell_magic("step", "--background -o first", "What is 2 + 2?")
    assert "first.wait() gives the result" in capsys.readouterr().out
    pending = ip.user_ns["first"]
    assert ip.user_ns["_step"] is pending
    while not pending.reasoning:  # its reply is being built: the change below is not for it
        time.sleep(0.02)
    server.config.reasoning_tokens = 20
    ip.run_cell_magic("step", "--no-memory", "Something else")
    assert ip.user_ns["_step"].status == "complete"
    assert not pending.done
    capsys.readouterr()
    ip.run_line_magic("step_cancel", "all")
    assert capsys.readouterr().out == "first: stopping (the panel keeps what arrived)\n"
    ip.run_line_magic("step_wait", "first")
    assert capsys.readouterr().out.startswith("first: interrupted")
    ip.run_line_magic("step_cancel", "all")
    assert capsys.readouterr().out == "No background call is running.\n"


def test_its_turn_joins_the_conversation_when_it_ends_and_the_footer_says_so(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell_magic("step", "--background -o first", "What is 2 + 2?")
    pending = ip.user_ns["first"]
    while not pending.done:  # finished, not waited for: %step_wait all still reports it
        time.sleep(0.02)
    capsys.readouterr()
    ip.run_line_magic("step_wait", "all")
    assert capsys.readouterr().out.startswith("first: complete")
    ip.run_line_magic("step_wait", "all")
    assert capsys.readouterr().out == "No background call to wait for.\n"
    assert "ran in the background: joined the conversation when it ended" in pending.result.notes
    ip.run_line_magic("step_chats", "")
    assert capsys.readouterr().out.split("\n")[1].split()[:2] == ["default", "1"]


def test_a_named_threads_turn_joins_that_thread_and_the_footer_names_it(
    ip: Any, server: LocalServer
) -> None:
    ip.run_cell_magic("step", "--background --chat lab -o second", "What is 3 + 3?")
    pending = ip.user_ns["second"]
    pending.wait()
    assert "ran in the background: joined the thread 'lab' when it ended" in pending.result.notes


def test_only_a_background_call_that_joined_a_thread_says_so_and_other_notes_stay(
    ip: Any, server: LocalServer
) -> None:
    ip.run_cell_magic("step", "--chat lab", "My name is Ada.")
    assert not any("background" in note for note in ip.user_ns["_step"].notes)
    ip.run_cell_magic("step", "--background --no-memory -o alone", "What is 2 + 2?")
    assert not any("joined" in note for note in ip.user_ns["alone"].wait().notes)
    # a reply budget that leaves no room for the earlier turn: a note of its own
    ip.run_cell_magic("step", "--background --chat lab --max-tokens 255990 -o late", "And?")
    notes = ip.user_ns["late"].wait().notes
    assert any("oldest turn(s) left out" in note for note in notes)
    assert "ran in the background: joined the thread 'lab' when it ended" in notes


def test_a_recorded_reply_replays_in_the_background(ip: Any, server: LocalServer) -> None:
    ip.run_cell_magic("step", "--no-memory", "What is 2 + 2?")
    ip.run_cell_magic("step", "--background --replay --no-memory -o again", "What is 2 + 2?")
    result = ip.user_ns["again"].wait()
    assert (result.replayed, result.answer) == (True, ip.user_ns["_step"].answer)
    assert len(server.requests) == 1


def test_a_replay_miss_fails_at_once_and_starts_nothing(ip: Any, server: LocalServer) -> None:
    with pytest.raises(ReplayError, match="no recorded reply"):
        ip.run_cell_magic("step", "--background --replay -o r", "Never recorded")
    assert "r" not in ip.user_ns
    assert server.requests == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ("--background --code", "--background takes no --code"),
        ("--background --dry-run", "--background takes no --dry-run"),
        ("--background --effort low,high", "takes no --background"),
        ("--background --new", "--background takes no --new"),
        ("--background --map rows", "--background takes no --map"),
        ("--background --tools len --confirm", "--background takes no --tools"),
    ],
)
def test_flags_a_background_call_cannot_take(
    ip: Any, server: LocalServer, flags: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message):
        ip.run_cell_magic("step", flags, "Hi")
    assert server.requests == []


def test_wait_and_cancel_name_what_they_cannot_find(ip: Any) -> None:
    ip.user_ns["x"] = 42
    with pytest.raises(UsageError, match="x is an int, not a background call"):
        ip.run_line_magic("step_wait", "x")
    with pytest.raises(UsageError, match="nope is not defined, not a background call"):
        ip.run_line_magic("step_cancel", "nope")


def test_each_background_call_is_recorded_in_the_cassette_and_the_history(
    ip: Any, server: LocalServer, tmp_path: Path
) -> None:
    server.config.tokens_per_second = 400
    cassette = tmp_path / "lesson.jsonl"
    for n in range(3):
        ip.run_cell_magic(
            "step", f"--background --no-memory --cassette {cassette} -o c{n}", f"Q{n}"
        )
    ip.run_line_magic("step_wait", "all")
    assert [ip.user_ns[f"c{n}"].result.status for n in range(3)] == ["complete"] * 3
    assert len(Cassette(cassette).replies()) == 3
    rows = History(Path(os.environ["STEP_MAGIC_HISTORY"])).recent(10, None)
    assert sorted(row.prompt for row in rows) == ["Q0", "Q1", "Q2"]


def test_calls_recording_to_one_cassette_at_once_keep_every_line(tmp_path: Path) -> None:
    path = tmp_path / "shared.jsonl"
    reply = RecordedReply("thought " * 2_000, "answer " * 2_000, "stop", None, None, None)

    def record(worker: int) -> None:
        for n in range(20):
            request = ChatRequest("step-3.7-flash", ({"role": "user", "content": f"{worker}-{n}"},))
            Cassette(path).store(request.cache_key(), request, reply)

    threads = [threading.Thread(target=record, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(Cassette(path).replies()) == 80


def test_re_running_a_cell_stops_the_call_it_started_before(server: LocalServer) -> None:
    server.config.tokens_per_second = 100
    server.config.reasoning_tokens = 2_000
    session = Session(None)
    keywords = {"base_url": server.base_url, "api_key": TEST_KEY}

    def run_cell(cell: str) -> Pending:
        return start(session, prepare(session, "Q", keywords, memory=False), False, cell=cell)

    first, other, again = run_cell("cell-1"), run_cell("cell-2"), run_cell("cell-1")
    assert first.wait(timeout=30).status == "interrupted"
    assert not other.done
    assert not again.done
    other.cancel()
    again.cancel()
    assert {other.wait(30).status, again.wait(30).status} == {"interrupted"}


def test_unloading_stops_the_calls_still_running(ip: Any, server: LocalServer) -> None:
    server.config.tokens_per_second = 100
    server.config.reasoning_tokens = 3_000
    ip.run_cell_magic("step", "--background -o slow", "A long one")
    pending = ip.user_ns["slow"]
    ip.run_line_magic("unload_ext", "step_magic")
    try:
        assert pending.done
        assert pending.result.status == "interrupted"
    finally:
        ip.run_line_magic("load_ext", "step_magic")  # the fixture unloads it again


def test_display_true_shows_a_background_call_as_plain_text_outside_a_notebook(
    server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    result = background(server, "What is 2 + 2?", display=True).wait()
    assert result.answer.strip()[:30] in capsys.readouterr().out
    background(server, "What is 3 + 3?", display=False).wait()
    assert capsys.readouterr().out == ""


def open_files_named(path: Path) -> list[str]:
    """This process's open files whose path starts with ``path`` (Linux's /proc)."""
    found = []
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith(str(path)):
                found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs Linux's /proc")
def test_a_finished_one_off_call_leaves_its_history_closed(
    api_env: LocalServer, tmp_path: Path
) -> None:
    """A background call and a stream (sync or async) from Python open the history for
    themselves and close it when they end, not when the garbage collector gets to it."""
    history = Path(os.environ["STEP_MAGIC_HISTORY"])
    pending = step_magic.ask("What is 2 + 2?", background=True)
    pending.wait()
    deadline = time.monotonic() + 5
    while open_files_named(history) and time.monotonic() < deadline:
        time.sleep(0.05)  # on_end runs on the call's thread just after the result is kept
    assert open_files_named(history) == []
    stream = step_magic.stream("What is 3 + 3?")
    events = list(stream)
    assert events[-1].kind == "done"
    assert open_files_named(history) == []

    async def read_async() -> str:
        return [event.kind async for event in step_magic.stream_async("And 4 + 4?")][-1]

    assert asyncio.run(read_async()) == "done"
    assert open_files_named(history) == []
