"""Cassettes at their edges: exact messages for a bad file, round trips, cut and blank lines.

A cassette is a file people edit, share and commit, so what matters is what a person sees:
one line naming the file, the line and what is wrong with it; a reply that reads back as it
was written; a recording cut short by a crash that costs only that call.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from step_magic.core.cassette import Cassette, RecordedReply
from step_magic.core.errors import ReplayError
from step_magic.core.events import Usage
from step_magic.core.request import ChatRequest

REQUEST = ChatRequest("step-3.7-flash", ({"role": "user", "content": "Hi"},))
REPLY = RecordedReply("thinking", "answer", "stop", None, "trace", "completion")
PIXEL = "data:image/png;base64,iVBORw0KGgo="


def line(key: str, answer: str = "a") -> str:
    return json.dumps({"key": key, "reply": {"answer": answer}})


def limit(monkeypatch: pytest.MonkeyPatch, **values: int) -> None:
    """Set the cassette module's limits (``MAX_LINE_BYTES``, ``_BLOCK``) for one test."""
    from step_magic.core import cassette as module

    for name, value in values.items():
        monkeypatch.setattr(module, name, value)


def problem(cassette: Cassette) -> str:
    with pytest.raises(ReplayError) as caught:
        cassette.replies()
    return str(caught.value)


# RecordedReply: what is written reads back, and a wrong shape is named.


def test_a_reply_with_every_field_round_trips_through_json() -> None:
    reply = RecordedReply("why", "what", "length", Usage(3, 4, 7, 2), "trace", "cmpl")
    data = reply.to_json()
    assert data == {
        "reasoning": "why",
        "answer": "what",
        "finish_reason": "length",
        "usage": {"prompt": 3, "completion": 4, "total": 7, "cached": 2},
        "trace_id": "trace",
        "completion_id": "cmpl",
    }
    assert RecordedReply.from_json(json.loads(json.dumps(data))) == reply


def test_a_reply_with_no_fields_reads_as_empty_text_and_nothing_else() -> None:
    assert RecordedReply.from_json({}) == RecordedReply("", "", None, None, None, None)
    assert RecordedReply.from_json({"answer": "", "reasoning": ""}).answer == ""


def test_token_counts_of_zero_are_counts() -> None:
    usage = {"prompt": 0, "completion": 0, "total": 0, "cached": 0}
    assert RecordedReply.from_json({"usage": usage}).usage == Usage(0, 0, 0, 0)


@pytest.mark.parametrize(
    ("count", "described"),
    [
        (-1, "the number -1"),
        (2.5, "the number 2.5"),
        (True, "true"),
        (False, "false"),
        ("x" * 60, "the text " + repr("x" * 40)),
        ([1], "a list"),
        ({"n": 1}, "an object"),
    ],
)
def test_a_token_count_that_is_not_a_count_is_described_as_written(
    count: object, described: str
) -> None:
    usage = {"prompt": count, "completion": 1, "total": 1}
    message = f"usage.prompt is {described}, not a token count"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        RecordedReply.from_json({"usage": usage})


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (None, "the reply is null, not an object"),
        ([], "the reply is a list, not an object"),
        ("hi", "the reply is the text 'hi', not an object"),
        (("not", "json"), "the reply is a value, not an object"),
        ({"answer": {"text": "a"}}, "answer is an object, not text"),
        ({"reasoning": 7}, "reasoning is the number 7, not text"),
        ({"finish_reason": False}, "finish_reason is false, not text"),
    ],
)
def test_a_reply_of_the_wrong_shape_says_what_it_is(reply: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        RecordedReply.from_json(reply)


# Reading a cassette: exact errors, blank lines, later recordings.


def test_a_line_without_a_key_is_reported_at_its_file_and_line(tmp_path: Path) -> None:
    cassette = Cassette(tmp_path / "lesson.jsonl")
    cassette.path.write_text(line("k") + '\n{"reply": {"answer": "a"}}\n')
    assert problem(cassette) == f"{cassette.path}:2: it is not a recorded call (no key)"


def test_a_line_with_a_key_but_no_reply_says_the_reply_is_null(tmp_path: Path) -> None:
    cassette = Cassette(tmp_path / "lesson.jsonl")
    cassette.path.write_text('{"key": "k"}\n')
    assert problem(cassette) == f"{cassette.path}:1: the reply is null, not an object"


def test_a_cassette_that_cannot_be_read_says_why(tmp_path: Path) -> None:
    cassette = Cassette(tmp_path)  # a folder, not a file
    assert problem(cassette) == f"cannot read the cassette {tmp_path}: Is a directory"


def test_a_missing_cassette_holds_nothing(tmp_path: Path) -> None:
    cassette = Cassette(tmp_path / "not-yet.jsonl")
    assert cassette.replies() == {}
    assert cassette.lookup("k") is None
    assert len(cassette) == 0


def test_blank_lines_anywhere_are_skipped_and_the_rest_is_read(tmp_path: Path) -> None:
    cassette = Cassette(tmp_path / "lesson.jsonl")
    cassette.path.write_text(f"\n{line('one')}\n\n   \n{line('two')}\n\n")
    assert sorted(cassette.replies()) == ["one", "two"]
    assert len(cassette) == 2


def test_a_broken_last_line_that_ends_in_a_newline_is_an_error_not_a_cut(
    tmp_path: Path,
) -> None:
    cassette = Cassette(tmp_path / "lesson.jsonl")
    cassette.path.write_text(line("k") + '\n{"key": "half\n')
    assert problem(cassette) == f"{cassette.path}:2 is not a cassette line"


def test_a_broken_line_before_the_last_is_an_error_even_without_a_final_newline(
    tmp_path: Path,
) -> None:
    cassette = Cassette(tmp_path / "lesson.jsonl")
    cassette.path.write_text("not json\n" + line("k"))
    assert problem(cassette) == f"{cassette.path}:1 is not a cassette line"


def test_a_complete_last_line_without_a_newline_is_still_read(tmp_path: Path) -> None:
    cassette = Cassette(tmp_path / "lesson.jsonl")
    cassette.path.write_text(line("one") + "\n" + line("two", "kept"))
    reply = cassette.lookup("two")
    assert reply is not None
    assert reply.answer == "kept"


def test_a_later_recording_of_the_same_request_wins_and_both_lines_count(
    tmp_path: Path,
) -> None:
    cassette = Cassette(tmp_path / "lesson.jsonl")
    first = RecordedReply("", "first", "stop", None, None, None)
    second = RecordedReply("", "second", "stop", Usage(1, 2, 3), None, None)
    cassette.store("k", REQUEST, first)
    cassette.store("k", REQUEST, second)
    assert cassette.lookup("k") == second
    assert cassette.replies() == {"k": second}
    assert len(cassette) == 2


def test_a_hand_edited_cassette_is_read_as_utf8_whatever_the_locale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cassette = Cassette(tmp_path / "lesson.jsonl")
    cassette.path.write_bytes('{"key": "k", "reply": {"answer": "café 数学"}}\n'.encode())

    def latin1_locale(encoding: str | None, stacklevel: int = 2) -> str:
        return encoding or "latin-1"

    monkeypatch.setattr(io, "text_encoding", latin1_locale)
    reply = cassette.lookup("k")
    assert reply is not None
    assert reply.answer == "café 数学"


# Recording: what a line holds, where it goes, and recovery from a crash.


def test_a_recorded_line_holds_the_key_the_request_without_media_and_the_reply(
    tmp_path: Path,
) -> None:
    image = {"type": "image_url", "image_url": {"url": PIXEL}}
    request = ChatRequest("step-3.7-flash", ({"role": "user", "content": [image]},), "high")
    cassette = Cassette(tmp_path / "lesson.jsonl")
    cassette.store("k", request, REPLY)
    raw = cassette.path.read_text()
    assert raw.endswith("}\n")
    assert raw.count("\n") == 1
    recorded = json.loads(raw)
    assert list(recorded) == ["key", "request", "reply"]
    assert recorded["key"] == "k"
    assert recorded["reply"] == REPLY.to_json()
    sent = recorded["request"]
    assert sent["model"] == "step-3.7-flash"
    assert sent["reasoning_effort"] == "high"
    assert "stream" not in sent  # how a reply is streamed does not shape it
    url = sent["messages"][0]["content"][0]["image_url"]["url"]
    assert url.startswith("sha256:")
    assert url.endswith("bytes, image/png)")
    assert "iVBORw0KGgo" not in raw


def test_recording_creates_the_folders_the_cassette_lives_in(tmp_path: Path) -> None:
    cassette = Cassette(tmp_path / "course" / "week 1" / "lesson.jsonl")
    cassette.store("k", REQUEST, REPLY)
    assert Cassette(cassette.path).lookup("k") == REPLY


def test_a_line_cut_after_its_first_byte_is_dropped_before_the_next_recording(
    tmp_path: Path,
) -> None:
    cassette = Cassette(tmp_path / "lesson.jsonl")
    cassette.store("kept", REQUEST, REPLY)
    with cassette.path.open("a") as file:
        file.write("{")
    cassette.store("after", REQUEST, REPLY)
    assert sorted(cassette.replies()) == ["after", "kept"]
    assert cassette.path.read_text().count("\n") == 2


def test_a_cut_line_is_dropped_even_in_a_file_that_starts_with_blank_lines(
    tmp_path: Path,
) -> None:
    cassette = Cassette(tmp_path / "lesson.jsonl")
    cassette.path.write_text("\n\n" + line("kept") + '\n{"key": "half')
    cassette.store("after", REQUEST, REPLY)
    assert sorted(cassette.replies()) == ["after", "kept"]
    assert cassette.lookup("after") == REPLY


def test_a_file_that_is_only_a_cut_line_starts_afresh(tmp_path: Path) -> None:
    cassette = Cassette(tmp_path / "lesson.jsonl")
    cassette.path.write_text('{"key": "ha')
    assert len(cassette) == 0
    cassette.store("k", REQUEST, REPLY)
    assert cassette.path.read_text().startswith('{"key": "k"')
    assert len(cassette) == 1


def test_a_cut_line_longer_than_a_read_block_is_dropped_whole(tmp_path: Path) -> None:
    """The cut line is found by reading back from the end a block at a time."""
    cassette = Cassette(tmp_path / "lesson.jsonl")
    cassette.store("kept", REQUEST, REPLY)
    with cassette.path.open("a") as file:
        file.write('{"key": "half", "reply": {"answer": "' + "x" * 200_000)
    cassette.store("after", REQUEST, REPLY)
    assert sorted(cassette.replies()) == ["after", "kept"]
    assert cassette.path.read_text().count("\n") == 2


def test_a_cut_line_that_starts_a_read_block_costs_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The newline ending the last whole line is the first byte of the block read back."""
    limit(monkeypatch, _BLOCK=64)
    cassette = Cassette(tmp_path / "lesson.jsonl")
    cassette.store("first", REQUEST, REPLY)
    cassette.store("kept", REQUEST, REPLY)
    with cassette.path.open("a") as file:
        file.write("{" * 63)  # the cut line: the block back from the end starts at its "\n"
    cassette.store("after", REQUEST, REPLY)

    assert sorted(cassette.replies()) == ["after", "first", "kept"]


@pytest.mark.parametrize("content", [b"", b'{"key": "k"}\n', b"\n\n"])
def test_a_file_that_ends_whole_is_never_rewritten_before_a_recording(content: bytes) -> None:
    """Another process may be appending to it: only a cut line is ever truncated."""
    from step_magic.core.cassette import _drop_cut_line

    truncated: list[int | None] = []

    class Watched(io.BytesIO):
        def truncate(self, size: int | None = None) -> int:
            truncated.append(size)
            return super().truncate(size)

    file = Watched(content)
    _drop_cut_line(file)

    assert truncated == []
    assert file.getvalue() == content


# Size: a cassette is read a line at a time, and a line has a limit.


def test_a_line_over_the_limit_is_refused_in_one_line_without_holding_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tracemalloc

    limit(monkeypatch, MAX_LINE_BYTES=1_000_000)
    path = tmp_path / "lesson.jsonl"
    path.write_text(line("small") + "\n" + line("huge", "x" * 20_000_000) + "\n")

    tracemalloc.start()
    try:
        said = problem(Cassette(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert said == f"{path}:2 is over 1,000,000 bytes, more than a recorded call holds"
    assert peak < 8_000_000  # the first megabyte of the line, not its twenty


def test_a_line_of_exactly_the_limit_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = line("k", "x" * 1_000) + "\n"
    limit(monkeypatch, MAX_LINE_BYTES=len(text))
    path = tmp_path / "lesson.jsonl"
    path.write_text(text)

    assert list(Cassette(path).replies()) == ["k"]


def test_a_cut_last_line_over_the_limit_is_skipped_like_any_cut_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit(monkeypatch, MAX_LINE_BYTES=1_000)
    path = tmp_path / "lesson.jsonl"
    path.write_text(line("kept") + "\n" + '{"key": "cut", "reply": {"answer": "' + "x" * 5_000)

    assert list(Cassette(path).replies()) == ["kept"]


def test_a_call_too_long_for_a_line_is_not_recorded_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit(monkeypatch, MAX_LINE_BYTES=1_000)
    cassette = Cassette(tmp_path / "lesson.jsonl")
    cassette.store("small", REQUEST, REPLY)
    long = RecordedReply("", "x" * 2_000, "stop", None, None, None)

    with pytest.raises(OSError, match=r"over the 1,000 a cassette line may hold: it was not"):
        cassette.store("long", REQUEST, long)
    assert list(cassette.replies()) == ["small"]


def test_a_call_is_recorded_only_if_its_line_with_its_newline_can_be_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    measure = Cassette(tmp_path / "measure.jsonl")
    measure.store("k", REQUEST, REPLY)
    size = len(measure.path.read_bytes())  # the line and its newline

    limit(monkeypatch, MAX_LINE_BYTES=size)
    fits = Cassette(tmp_path / "fits.jsonl")
    fits.store("k", REQUEST, REPLY)
    assert list(fits.replies()) == ["k"]

    limit(monkeypatch, MAX_LINE_BYTES=size - 1)
    with pytest.raises(OSError, match="it was not recorded"):
        Cassette(tmp_path / "over.jsonl").store("k", REQUEST, REPLY)


def test_replaying_from_a_large_cassette_holds_one_line_at_a_time(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "course.jsonl"
    with path.open("w") as file:
        for number in range(400):  # 40 MB in all
            file.write(line(f"call {number}", "x" * 100_000) + "\n")

    tracemalloc.start()
    try:
        reply = Cassette(path).lookup("call 0")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert reply is not None
    assert reply.answer == "x" * 100_000
    assert peak < 12_000_000  # a few lines' worth, not the file's 40 MB


def test_every_cassette_of_one_file_shares_one_lock_and_other_files_do_not(
    tmp_path: Path,
) -> None:
    (tmp_path / "sub").mkdir()
    same = Cassette(tmp_path / "sub" / ".." / "lesson.jsonl")
    assert same._lock is Cassette(tmp_path / "lesson.jsonl")._lock
    assert Cassette(tmp_path / "other.jsonl")._lock is not same._lock


# Replay by question: a call the exact conversation misses is found by what it asked.


def turns(*texts: str) -> tuple[dict[str, Any], ...]:
    """Alternating user and assistant messages, ending on a question."""
    roles = ("user", "assistant")
    return tuple({"role": roles[i % 2], "content": text} for i, text in enumerate(texts))


def asking(*texts: str) -> ChatRequest:
    return ChatRequest("step-3.7-flash", turns(*texts))


def record(lesson: Cassette, request: ChatRequest, answer: str) -> None:
    lesson.store(request.cache_key(), request, RecordedReply("", answer, "stop", None, "t", "c"))


def test_a_follow_up_asked_in_two_conversations_replays_the_one_it_followed(
    tmp_path: Path,
) -> None:
    lesson = Cassette(tmp_path / "lesson.jsonl")
    moons = asking("What is 2+2?", "4.", "Name three moons.", "Io, Europa, Ganymede.", "Largest?")
    planets = asking("Name three planets.", "Mars, Venus, Jupiter.", "Largest?")
    for request, answer in ((moons, "Ganymede."), (planets, "Jupiter.")):
        record(lesson, request, answer)

    def replayed(request: ChatRequest) -> str | None:
        found = lesson.lookup(request.cache_key(), request.body(stream=False))
        return found.answer if found else None

    assert replayed(asking("Name three moons.", "Io, Europa, Ganymede.", "Largest?")) == (
        "Ganymede."
    )  # a fresh kernel: the 2+2 turn is not there
    assert replayed(asking("Name three planets.", "Mars, Venus, Jupiter.", "Largest?")) == (
        "Jupiter."
    )
    assert replayed(asking("Largest?")) == "Jupiter."  # nothing to go by: the newest
    assert replayed(asking("Smallest?")) is None
    assert replayed(moons) == "Ganymede."  # the whole conversation, as recorded


def test_a_hand_written_line_without_a_request_is_matched_by_its_key_only(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lesson.jsonl"
    path.write_text(
        line("k1") + "\n" + json.dumps({"key": "k2", "request": "odd", "reply": {}}) + "\n"
    )
    rules_only = {"model": "m", "messages": [{"role": "system", "content": "x"}]}
    with path.open("a") as file:
        file.write(json.dumps({"key": "k4", "request": rules_only, "reply": {}}) + "\n")
    assert Cassette(path).lookup("k3", asking("Hi").body(stream=False)) is None
    assert Cassette(path).lookup("k1", asking("Hi").body(stream=False)) is not None


def test_with_a_system_prompt_the_longest_shared_conversation_wins(tmp_path: Path) -> None:
    lesson = Cassette(tmp_path / "lesson.jsonl")
    rules = ({"role": "system", "content": "Be brief."},)
    recorded = {  # in the order recorded: the newest last
        "Jupiter.": turns("Name three planets.", "Mars, Venus, Jupiter.", "Largest?"),
        "Io.": turns("Name a moon.", "Io, Europa, Ganymede.", "Largest?"),
        "Ganymede.": turns(
            "Hi", "Hello.", "Name three moons.", "Io, Europa, Ganymede.", "Largest?"
        ),
    }
    for answer, messages in recorded.items():
        request = ChatRequest("step-3.7-flash", rules + messages)
        record(lesson, request, answer)

    def replayed(*texts: str) -> str | None:
        request = ChatRequest("step-3.7-flash", rules + turns(*texts))
        found = lesson.lookup(request.cache_key(), request.body(stream=False))
        return found.answer if found else None

    assert replayed("Name three moons.", "Io, Europa, Ganymede.", "Largest?") == "Ganymede."
    assert replayed("Other.", "Fine.", "Name a moon.", "Io, Europa, Ganymede.", "Largest?") == "Io."
    assert replayed("Largest?") == "Ganymede."  # nothing shared: the newest
    assert replayed("Name three planets.", "Mars, Venus, Jupiter.", "Largest?") == "Jupiter."


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX named pipes")
def test_a_line_that_is_not_utf8_or_a_path_that_is_no_file_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b'{"key": "k", "reply": {"answer": "caf\xe9"}}\n')
    assert problem(Cassette(broken)) == f"{broken}:1 is not UTF-8 text"
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    assert problem(Cassette(fifo)) == f"the cassette {fifo} is not a regular file"


def test_the_longest_shared_ending_wins_over_a_newer_shorter_one(tmp_path: Path) -> None:
    lesson = Cassette(tmp_path / "lesson.jsonl")
    longer = asking("a", "b", "Which moon?", "Io.", "Why?")
    newer = asking("Which planet?", "Io.", "Why?")
    for request, answer in ((longer, "It is volcanic."), (newer, "It is not a planet.")):
        record(lesson, request, answer)
    asked = asking("x", "y", "Which moon?", "Io.", "Why?")
    found = lesson.lookup(asked.cache_key(), asked.body(stream=False))
    assert found is not None
    assert found.answer == "It is volcanic."
