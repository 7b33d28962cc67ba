"""The call log: real SQLite files under tmp_path, real subprocesses, nothing mocked."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import platformdirs
import pytest

from step_magic.core.redact import redact_media
from step_magic.memory import history as history_module
from step_magic.memory.history import MIGRATIONS, History, default_path
from step_magic.memory.records import CallRecord

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_KEY = "sk-history-never-stored-5ecret-4242"
# Version 1 exactly as it shipped: a migration test must start from the old schema, not the new.
SCHEMA_V1 = """CREATE TABLE calls (
    id INTEGER PRIMARY KEY, started_at REAL NOT NULL, model TEXT NOT NULL, effort TEXT,
    prompt TEXT NOT NULL, messages TEXT NOT NULL, attachments TEXT NOT NULL,
    reasoning TEXT NOT NULL, answer TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
    prompt_tokens INTEGER, completion_tokens INTEGER, cached_tokens INTEGER, finish_reason TEXT,
    trace_id TEXT, completion_id TEXT, elapsed REAL, first_token REAL, notebook TEXT,
    thread TEXT, cache_key TEXT, replayed INTEGER NOT NULL DEFAULT 0
)"""


def make_call(**changes: Any) -> CallRecord:
    call = CallRecord(
        started_at=1_700_000_000.0,
        model="step-3.5-flash",
        effort="high",
        prompt="Why is the sky blue?",
        messages=({"role": "user", "content": "Why is the sky blue?"},),
        attachments=("df (3,000×2, summarised)",),
        reasoning="Rayleigh scattering goes as 1/λ⁴…",
        answer="Short wavelengths scatter more.",
        status="complete",
    )
    return dataclasses.replace(call, **changes)


def data_url(payload: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode()}"


@pytest.fixture
def warnings() -> list[str]:
    return []


@pytest.fixture
def history(tmp_path: Path, warnings: list[str]) -> Iterator[History]:
    log = History(tmp_path / "history.sqlite3", warn=warnings.append)
    yield log
    log.close()


def stored_bytes(path: Path) -> bytes:
    """The database and any WAL/shared-memory files beside it."""
    return b"".join(item.read_bytes() for item in sorted(path.parent.glob(path.name + "*")))


def test_round_trip_keeps_every_field(history: History, warnings: list[str]) -> None:
    call = make_call(
        error="boom",
        prompt_tokens=12,
        completion_tokens=34,
        cached_tokens=5,
        finish_reason="stop",
        trace_id="trace-1",
        completion_id="cmpl-1",
        elapsed=2.5,
        first_token=0.4,
        notebook="analysis.ipynb",
        thread="default",
        cache_key="abc",
        replayed=True,
    )
    row_id = history.record(call)
    assert isinstance(row_id, int)
    assert history.recent() == [dataclasses.replace(call, id=row_id)]
    assert warnings == []


def test_nothing_touches_disk_until_first_use(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "history.sqlite3"
    history = History(path)
    assert history.path == path
    assert not path.parent.exists()
    assert history.record(make_call()) is not None
    assert path.exists()
    history.close()
    assert history.recent()[0].prompt == "Why is the sky blue?"  # reopens after close


def test_recent_is_newest_first_limited_and_searchable(history: History) -> None:
    history.record(make_call(started_at=3.0, prompt="third", model="step-3.7-flash"))
    history.record(make_call(started_at=1.0, prompt="first", trace_id="TRACE-XYZ"))
    history.record(make_call(started_at=2.0, prompt="second", answer="Ärger im Straße"))
    history.record(make_call(started_at=4.0, prompt="hidden", messages=({"content": "needle"},)))
    assert [c.prompt for c in history.recent()] == ["hidden", "third", "second", "first"]
    assert [c.prompt for c in history.recent(2)] == ["hidden", "third"]
    assert [c.prompt for c in history.recent(search="3.7-FLASH")] == ["third"]  # the model
    assert [c.prompt for c in history.recent(search="trace-xyz")] == ["first"]  # a trace id
    assert [c.prompt for c in history.recent(search="arger IM")] == ["second"]
    assert [c.prompt for c in history.recent(search="RAYLEIGH")] == [
        "hidden",
        "third",
        "second",
        "first",
    ]
    assert history.recent(search="needle") == []  # messages are not searched
    assert history.recent(search="50%_") == []  # LIKE wildcards mean nothing here


def test_search_is_full_text_over_prompt_reasoning_and_answer(
    history: History, warnings: list[str]
) -> None:
    """Words, in any order and across the three texts, not a substring: ``sky scatter*``
    finds a call whose prompt says sky and whose reasoning says scattering."""
    history.record(make_call(started_at=1.0, prompt="Why is the sky blue?"))
    history.record(make_call(started_at=2.0, prompt="Tides", reasoning="", answer="The Moon."))
    assert [c.prompt for c in history.recent(search="scatter* SKY")] == ["Why is the sky blue?"]
    assert [c.prompt for c in history.recent(search="moon")] == ["Tides"]
    assert history.recent(search="sky moon") == []  # every word, in one call
    assert history.recent(search="ayleig") == []  # inside a word is not a word
    for syntax in ("NOT sky", 'sky"', "(moon", "answer:moon", "*", "-"):
        history.recent(search=syntax)  # query syntax in the text is taken as words
    assert [c.prompt for c in history.recent(search="NOT moon")] == []
    assert warnings == []


def test_chat_keeps_one_thread_and_newest_thread_skips_the_default(history: History) -> None:
    history.record(make_call(started_at=1.0, prompt="a1", thread="alpha"))
    history.record(make_call(started_at=2.0, prompt="b1", thread="beta"))
    history.record(make_call(started_at=3.0, prompt="a2", thread="alpha"))
    assert history.newest_thread() == "alpha"
    history.record(make_call(started_at=4.0, prompt="d", thread="default"))
    history.record(make_call(started_at=5.0, prompt="one-off"))
    assert history.newest_thread() == "alpha"  # the default thread always starts empty
    assert [c.prompt for c in history.recent(chat="alpha")] == ["a2", "a1"]
    assert [c.prompt for c in history.recent(chat="beta", search="rayleigh")] == ["b1"]
    assert history.recent(chat="nobody") == []


def test_without_fts5_search_finds_substrings_after_one_note(
    tmp_path: Path, warnings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite built without FTS5 (rare) still searches; it says once how."""
    monkeypatch.setattr(history_module, "has_fts5", lambda connection: False)
    log = History(tmp_path / "plain.sqlite3", warn=warnings.append)
    log.record(make_call(prompt="first"))
    assert [c.prompt for c in log.recent(search="ayleig")] == ["first"]
    assert [c.prompt for c in log.recent(search="ayleig")] == ["first"]
    assert warnings == [history_module.FTS5_MISSING]
    log.close()
    monkeypatch.undo()  # the same file, opened by a build that has FTS5, is indexed then
    again = History(tmp_path / "plain.sqlite3", warn=warnings.append)
    again.record(make_call(prompt="second"))
    assert [c.prompt for c in again.recent(search="rayleigh")] == ["second", "first"]
    again.close()


def test_find_reply_returns_newest_complete_reply(history: History) -> None:
    history.record(make_call(started_at=1.0, cache_key="k", answer="old"))
    history.record(make_call(started_at=2.0, cache_key="k", answer="new"))
    history.record(make_call(started_at=3.0, cache_key="k", answer="cut", status="truncated"))
    history.record(make_call(started_at=4.0, cache_key="other", answer="other"))
    found = history.find_reply("k")
    assert found is not None
    assert found.answer == "new"
    assert history.find_reply("missing") is None


def test_export_jsonl_writes_oldest_first(history: History, tmp_path: Path) -> None:
    for number in range(5):
        history.record(make_call(started_at=float(number), prompt=f"p{number}"))
    history.record(make_call(started_at=9.0, prompt="Straße 北京"))
    target = tmp_path / "out.jsonl"
    assert history.export_jsonl(target, n=3) == 3
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [line["prompt"] for line in lines] == ["p3", "p4", "Straße 北京"]
    assert set(lines[0]) == {item.name for item in dataclasses.fields(CallRecord)}
    assert lines[0]["messages"] == [{"role": "user", "content": "Why is the sky blue?"}]
    assert "Straße 北京" in target.read_text(encoding="utf-8")  # readable, not \u-escaped
    assert history.export_jsonl(target, search="P1") == 1
    assert history.export_jsonl(target) == 6


def test_export_to_unwritable_target_raises(history: History, tmp_path: Path) -> None:
    history.record(make_call())
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(OSError, match="a-file"):
        history.export_jsonl(blocker / "out.jsonl")


def test_default_path_honours_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEP_MAGIC_HISTORY", str(tmp_path / "mine.sqlite3"))
    assert default_path() == tmp_path / "mine.sqlite3"
    assert History().path == tmp_path / "mine.sqlite3"
    monkeypatch.delenv("STEP_MAGIC_HISTORY")
    assert default_path() == platformdirs.user_data_path("step-magic") / "history.sqlite3"


def test_version_1_database_is_migrated_and_keeps_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute(SCHEMA_V1)
        old.execute(
            "INSERT INTO calls (started_at, model, prompt, messages, attachments, reasoning,"
            " answer, status, cache_key) VALUES (1.0, 'step-3', 'old prompt', '[]', '[]', '',"
            " 'old answer', 'complete', 'key-1')"
        )
        old.execute("PRAGMA user_version = 1")
    old.close()
    history = History(path, warn=pytest.fail)
    found = history.find_reply("key-1")
    assert found is not None
    assert (found.prompt, found.answer, found.replayed) == ("old prompt", "old answer", False)
    assert history.recent(search="old answer") == [found]  # old rows are indexed for search
    history.close()
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 5
        indexes = {row[0] for row in check.execute("SELECT name FROM sqlite_master")}
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    check.close()
    assert {"calls_by_cache_key", "calls_by_start"} <= indexes


def test_failed_migration_is_rolled_back(tmp_path: Path, warnings: list[str]) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:
        old.execute(SCHEMA_V1)
        old.execute("CREATE TABLE calls_by_start (x)")  # the second index cannot be created
        old.execute("PRAGMA user_version = 1")
    old.close()
    history = History(path, warn=warnings.append)
    assert history.record(make_call()) is None
    assert len(warnings) == 1
    assert "calls_by_start" in warnings[0]
    with sqlite3.connect(path) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == 1
        names = {row[0] for row in check.execute("SELECT name FROM sqlite_master")}
    check.close()
    assert "calls_by_cache_key" not in names  # created first, then rolled back


def test_newer_database_is_left_alone(tmp_path: Path, warnings: list[str]) -> None:
    path = tmp_path / "future.sqlite3"
    with sqlite3.connect(path) as future:
        future.execute("CREATE TABLE things (x)")
        future.execute("PRAGMA user_version = 99")
    future.close()
    before = path.read_bytes()
    history = History(path, warn=warnings.append)
    assert history.record(make_call()) is None
    assert history.recent() == []
    assert history.find_reply("k") is None
    assert len(warnings) == 1
    assert "version 99" in warnings[0]
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # not even switched to WAL


def test_corrupt_file_warns_once_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "history.sqlite3"
    garbage = b"\x00garbage, not a database\xff" * 200
    path.write_bytes(garbage)
    history = History(path)
    assert history.record(make_call()) is None
    assert history.record(make_call()) is None
    assert history.recent() == []
    assert history.find_reply("k") is None
    err = capsys.readouterr().err
    assert err.startswith("step-magic: history disabled: ")
    assert err.count("\n") == 1
    assert "not a database" in err
    assert path.read_bytes() == garbage


@pytest.mark.parametrize(
    "where",
    [lambda tmp: tmp / "a-file" / "history.sqlite3", lambda tmp: Path("/proc/self/h/h.sqlite3")],
    ids=["parent-is-a-file", "proc"],
)
def test_unwritable_location_is_a_no_op(tmp_path: Path, warnings: list[str], where: Any) -> None:
    (tmp_path / "a-file").write_text("")
    history = History(where(tmp_path), warn=warnings.append)
    assert history.record(make_call()) is None
    assert history.recent() == []
    assert history.find_reply("k") is None
    assert len(warnings) == 1
    assert "\n" not in warnings[0]
    assert warnings[0].startswith("history disabled: ")


def test_bad_value_is_skipped_with_one_warning(history: History, warnings: list[str]) -> None:
    assert history.record(make_call(answer="lone \ud800 surrogate")) is None
    assert history.record(make_call(answer="also \udfff bad")) is None
    assert history.record(make_call(answer="fine")) is not None
    assert [c.answer for c in history.recent()] == ["fine"]
    assert len(warnings) == 1


def test_api_key_from_environment_is_never_stored(
    history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEPFUN_API_KEY", SAMPLE_KEY)
    messages = (
        {"role": "system", "content": "You are a careful data analyst."},
        {"role": "user", "content": "Summarise df."},
    )
    history.record(make_call(messages=messages))
    history.record(make_call(messages=messages, status="failed", error="401 unauthorized"))
    stored = stored_bytes(history.path)
    assert b"careful data analyst" in stored  # the check can see what was written
    assert SAMPLE_KEY.encode() not in stored
    history.close()
    assert SAMPLE_KEY.encode() not in stored_bytes(history.path)


def test_redact_media_replaces_data_urls_with_references() -> None:
    image = bytes(range(256)) * 4096  # 1 MiB
    video = b"\x00\x00\x00\x18ftypmp42"
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "video_url", "video_url": {"url": data_url(video, "video/mp4")}},
                {"type": "image_url", "image_url": {"url": data_url(image), "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                {"type": "text", "text": "What is this?"},
            ],
        }
    ]
    original = json.dumps(messages)
    (message,) = redact_media(messages)
    parts = message["content"]
    assert parts[0]["video_url"]["url"] == (
        f"sha256:{hashlib.sha256(video).hexdigest()} ({len(video)} bytes, video/mp4)"
    )
    assert parts[1]["image_url"] == {
        "url": f"sha256:{hashlib.sha256(image).hexdigest()} (1048576 bytes, image/png)",
        "detail": "high",
    }
    assert parts[2:] == messages[0]["content"][2:]
    assert json.dumps(messages) == original  # the request itself is untouched
    assert redact_media(redact_media(messages)) == redact_media(messages)


def test_recording_a_large_image_keeps_the_file_small(history: History) -> None:
    image = bytes(range(256)) * 4096
    content = [{"type": "image_url", "image_url": {"url": data_url(image)}}]
    assert history.record(make_call(messages=({"role": "user", "content": content},))) is not None
    history.close()
    assert history.path.stat().st_size < 64 * 1024
    assert history.recent()[0].messages[0]["content"][0]["image_url"]["url"].startswith("sha256:")


def test_threads_share_one_history(history: History, warnings: list[str]) -> None:
    def write(tag: int) -> None:
        for number in range(50):
            history.record(make_call(prompt=f"{tag}-{number}"))

    threads = [threading.Thread(target=write, args=(tag,)) for tag in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(history.recent(1000)) == 200
    assert warnings == []


WRITER = """
import sys, time
from pathlib import Path
from step_magic.memory.history import History
from step_magic.memory.records import CallRecord

history = History(Path(sys.argv[1]))
print("ready", flush=True)
sys.stdin.readline()  # wait until both processes are ready, so their writes overlap
for number in range(200):
    call = CallRecord(
        started_at=time.time(), model="m", effort=None, prompt=f"{sys.argv[2]}-{number}",
        messages=(), attachments=(), reasoning="", answer="a", status="complete",
    )
    assert history.record(call) is not None
"""


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), tag],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("a", "b")
    ]
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline() == "ready\n"
    # Neither has opened the file yet: creating and migrating it races too.
    for writer in writers:
        out, err = writer.communicate("go\n", timeout=60)
        assert (writer.returncode, out, err) == (0, "", "")
    prompts = [call.prompt for call in History(path, warn=pytest.fail).recent(1000)]
    assert sorted(prompts) == sorted(f"{tag}-{number}" for tag in "ab" for number in range(200))


def test_a_search_with_a_nul_character_finds_the_words_and_warns_of_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from step_magic.memory.history import History

    history = History(tmp_path / "h.sqlite3")
    history.record(make_call(prompt="scatter plot of revenue", answer="Use plt.scatter."))
    assert [r.prompt for r in history.recent(10, "scatter\0plot")] == ["scatter plot of revenue"]
    assert history.recent(10, "\0") == history.recent(10)  # nothing to look for: every call
    assert "history" not in capsys.readouterr().err  # no warning was used up
