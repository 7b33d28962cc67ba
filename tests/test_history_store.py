"""The call log as ``step-magic ask -c``, a ``--map`` re-run and ``--search`` read it back:
real SQLite files under tmp_path, nothing mocked."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from step_magic.memory.history import FTS5_MISSING, History
from step_magic.memory.records import CallRecord


def make_call(**changes: Any) -> CallRecord:
    call = CallRecord(
        started_at=1_700_000_000.0,
        model="step-3.5-flash",
        effort="high",
        prompt="Why is the sky blue?",
        messages=({"role": "user", "content": "Why is the sky blue?"},),
        attachments=(),
        reasoning="Rayleigh scattering goes as 1/λ⁴.",
        answer="Short wavelengths bounce around more.",
        status="complete",
    )
    return dataclasses.replace(call, **changes)


@pytest.fixture
def warnings() -> list[str]:
    return []


@pytest.fixture
def history(tmp_path: Path, warnings: list[str]) -> Iterator[History]:
    log = History(tmp_path / "history.sqlite3", warn=warnings.append)
    yield log
    log.close()


def test_continuing_picks_the_newest_named_thread_not_the_first(history: History) -> None:
    assert history.newest_thread() is None  # nothing to continue yet
    history.record(make_call(started_at=1.0, prompt="a", thread="alpha"))
    history.record(make_call(started_at=2.0, prompt="b", thread="beta"))
    history.record(make_call(started_at=3.0, prompt="one-off"))  # no thread
    history.record(make_call(started_at=4.0, prompt="d", thread="default"))
    assert history.newest_thread() == "beta"


def test_with_only_default_and_one_off_calls_there_is_no_thread_to_continue(
    history: History, warnings: list[str]
) -> None:
    history.record(make_call(started_at=1.0, thread="default"))
    history.record(make_call(started_at=2.0))
    assert history.newest_thread() is None
    assert warnings == []


def test_a_map_rerun_may_reuse_a_reply_cut_at_the_token_limit(history: History) -> None:
    history.record(make_call(started_at=1.0, cache_key="k", answer="whole"))
    history.record(make_call(started_at=2.0, cache_key="k", answer="cut", status="truncated"))
    history.record(make_call(started_at=3.0, cache_key="k", answer="lost", status="failed"))
    kept = history.find_reply("k", truncated=True)
    assert kept is not None
    assert kept.answer == "cut"  # the newest kept reply, never a failed one
    whole = history.find_reply("k")
    assert whole is not None
    assert whole.answer == "whole"  # a replay wants a complete reply


def test_a_trailing_star_searches_for_words_that_start_so(history: History) -> None:
    history.record(make_call(prompt="Colour of the sky"))  # "scattering", never "scatter"
    assert [c.prompt for c in history.recent(search="scatter*")] == ["Colour of the sky"]
    assert history.recent(search="scatter") == []  # without the star: the whole word only
    assert [c.prompt for c in history.recent(search="Rayleigh*")] == ["Colour of the sky"]


def test_a_history_that_could_not_be_opened_says_so_once_and_nothing_about_search(
    tmp_path: Path, warnings: list[str]
) -> None:
    (tmp_path / "a-file").write_text("")
    history = History(tmp_path / "a-file" / "history.sqlite3", warn=warnings.append)
    assert history.record(make_call()) is None
    assert history.recent(search="sky") == []
    assert history.newest_thread() is None
    assert len(warnings) == 1
    assert warnings[0].startswith("history disabled: [Errno ")  # the reason, then the path
    assert FTS5_MISSING not in warnings


def test_an_export_is_utf8_whatever_the_locale(
    history: History, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history.record(make_call(prompt="Straße nach 北京"))

    def latin1_locale(encoding: str | None, stacklevel: int = 2) -> str:
        return encoding or "latin-1"

    monkeypatch.setattr(io, "text_encoding", latin1_locale)  # what open() falls back to
    target = tmp_path / "calls.jsonl"
    assert history.export_jsonl(target) == 1
    assert json.loads(target.read_bytes().decode("utf-8"))["prompt"] == "Straße nach 北京"


def test_a_search_word_is_the_word_as_typed_quotes_and_capitals_included(
    history: History,
) -> None:
    history.record(make_call(started_at=1.0, prompt='Render "blue" in LaTeX'))
    history.record(make_call(started_at=2.0, prompt="Do it later", reasoning="", answer="Done."))
    assert [c.prompt for c in history.recent(search='"blue"')] == ['Render "blue" in LaTeX']
    assert [c.prompt for c in history.recent(search="LaTeX")] == ['Render "blue" in LaTeX']
    assert [c.prompt for c in history.recent(search="late*")] == [
        "Do it later",
        'Render "blue" in LaTeX',
    ]


def test_the_listing_shows_the_twenty_newest_calls_by_default(history: History) -> None:
    for number in range(22):
        history.record(make_call(started_at=float(number), prompt=f"call {number}"))
    listed = history.recent()
    assert len(listed) == 20
    assert (listed[0].prompt, listed[-1].prompt) == ("call 21", "call 2")


def test_a_history_that_was_turned_off_stays_off_for_the_session(
    tmp_path: Path, warnings: list[str]
) -> None:
    """Even when what blocked it goes away: one warning said it is off, so it is."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    history = History(blocker / "history.sqlite3", warn=warnings.append)
    assert history.record(make_call()) is None
    blocker.unlink()
    assert history.record(make_call()) is None
    assert not blocker.exists()
    assert len(warnings) == 1


def test_reading_a_history_that_does_not_exist_creates_nothing(
    tmp_path: Path, warnings: list[str]
) -> None:
    path = tmp_path / "never" / "history.sqlite3"
    history = History(path, warn=warnings.append)
    assert history.recent() == []
    assert history.recent(search="sky") == []
    assert history.thread("notes") == []
    assert history.newest_thread() is None
    assert history.find_reply("abc") is None
    assert not path.parent.exists()
    assert warnings == []


def test_a_history_that_cannot_be_read_says_why_once(history: History, warnings: list[str]) -> None:
    history.record(make_call())
    with contextlib.closing(sqlite3.connect(history.path)) as other:
        other.execute("DROP TABLE calls")  # another process broke the file
    assert history.recent() == []
    assert history.recent(search="sky") == []
    assert warnings == [f"history read failed: no such table: calls ({history.path})"]


def test_every_leading_system_message_is_kept_with_the_call(history: History) -> None:
    """A system prompt and a schema's instructions, say; earlier turns are left to the calls
    that stored them, and a call with no question at all is kept whole."""
    rules = ({"role": "system", "content": "Be brief."}, {"role": "system", "content": "JSON."})
    earlier = ({"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"})
    asked = ({"role": "user", "content": "Why is the sky blue?"},)
    history.record(make_call(messages=rules + earlier + asked))
    history.record(make_call(prompt="only rules", messages=rules))

    only_rules, with_turns = history.recent()
    assert with_turns.messages == rules + asked
    assert only_rules.messages == rules


def test_a_call_that_cannot_be_recorded_says_why_once(
    history: History, warnings: list[str]
) -> None:
    assert history.record(make_call()) is not None
    with contextlib.closing(sqlite3.connect(history.path)) as other:
        other.execute("DROP TABLE calls")  # another process broke the file
    assert history.record(make_call()) is None
    assert history.record(make_call()) is None
    assert warnings == [f"history record failed: no such table: calls ({history.path})"]


def test_a_history_folder_is_created_however_deep(tmp_path: Path) -> None:
    path = tmp_path / "data" / "step-magic" / "history.sqlite3"
    with contextlib.closing(History(path, warn=pytest.fail)) as history:
        assert history.record(make_call()) is not None
    assert path.is_file()


def test_the_file_keeps_text_as_written_for_whoever_opens_it(history: History) -> None:
    """A sqlite3 shell shows the messages and attachments as written, not as \\u escapes."""
    question = {"role": "user", "content": "Pourquoi le ciel est-il bleu ? λ⁴"}
    history.record(make_call(messages=(question,), attachments=("données (3×2)",)))
    with contextlib.closing(sqlite3.connect(history.path)) as reader:
        messages, attachments = reader.execute("SELECT messages, attachments FROM calls").fetchone()
    assert "Pourquoi le ciel est-il bleu ? λ⁴" in messages
    assert attachments == '["données (3×2)"]'


def test_a_file_another_process_is_writing_is_waited_for_when_first_opened(
    tmp_path: Path,
) -> None:
    """Switching the file to WAL needs it alone: while another process holds its write lock,
    SQLite says "locked" at once (waiting there could deadlock), so step-magic waits."""
    path = tmp_path / "history.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as creating:
        creating.execute("CREATE TABLE other_tool (x)")  # a file in the old journal mode
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")
    threading.Timer(0.3, writer.close).start()  # closing ends its transaction
    with contextlib.closing(History(path, warn=pytest.fail)) as history:
        assert history.record(make_call()) is not None
        assert [call.prompt for call in history.recent()] == ["Why is the sky blue?"]


def test_reading_the_history_never_waits_for_a_writer(tmp_path: Path) -> None:
    """``%step_history`` while a ``--map`` in another kernel is writing: WAL lets readers
    read, and opening the file takes no write lock when its index is up to date."""
    path = tmp_path / "history.sqlite3"
    with contextlib.closing(History(path, warn=pytest.fail)) as history:
        history.record(make_call())
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")  # held for 4 s
    threading.Timer(4, writer.close).start()
    started = time.monotonic()
    with contextlib.closing(History(path, warn=pytest.fail)) as reader:
        assert [call.prompt for call in reader.recent()] == ["Why is the sky blue?"]
    assert time.monotonic() - started < 2
