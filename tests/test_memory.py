"""Conversations, results as objects, history and record/replay, in a real shell."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError

from step_magic.core.cassette import Cassette, RecordedReply
from step_magic.core.errors import ReplayError
from step_magic.core.events import Usage
from step_magic.core.request import ChatRequest
from step_magic.memory.history import History
from step_magic.server import LocalServer

from .conftest import TEST_KEY

ANY_REQUEST = ChatRequest("step-3.7-flash", ({"role": "user", "content": "Hi"},))


def run(ip: Any, cell: str) -> Any:
    return ip.run_cell(cell, store_history=False)


def sent_messages(server: LocalServer) -> list[list[dict[str, Any]]]:
    return [r.body["messages"] for r in server.requests if r.path.endswith("/chat/completions")]


def test_consecutive_cells_form_one_conversation_without_reasoning(
    ip: Any, server: LocalServer
) -> None:
    run(ip, "%%step\nFirst question").raise_error()
    first = ip.user_ns["_step"]
    run(ip, "%%step\nSecond question").raise_error()
    second_request = sent_messages(server)[-1]
    assert second_request == [
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": first.answer},
        {"role": "user", "content": "Second question"},
    ]
    assert first.reasoning[:40] not in json.dumps(second_request)


def test_new_chat_and_no_memory_control_the_thread(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    run(ip, "%step One").raise_error()
    run(ip, "%step --chat side Aside").raise_error()
    assert len(sent_messages(server)[-1]) == 1  # a new named thread starts empty
    run(ip, "%step --no-memory Off the record").raise_error()
    assert len(sent_messages(server)[-1]) == 1
    run(ip, "%step Two").raise_error()
    assert [m["content"] for m in sent_messages(server)[-1] if m["role"] == "user"] == [
        "One",
        "Two",
    ]
    run(ip, "%step --new Fresh start").raise_error()
    assert len(sent_messages(server)[-1]) == 1
    capsys.readouterr()
    ip.run_line_magic("step_chats", "")
    out = capsys.readouterr().out
    assert "default" in out
    assert "side" in out


def test_old_turns_are_dropped_to_fit_the_context_with_a_note(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    run(ip, "%step Earlier turn").raise_error()
    run(ip, "%step --max-tokens 255990 Now").raise_error()
    assert len(sent_messages(server)[-1]) == 1
    assert "1 oldest turn(s) left out to fit the context window" in capsys.readouterr().out


def test_images_of_earlier_turns_become_placeholders(ip: Any, server: LocalServer) -> None:
    from PIL import Image

    ip.user_ns["pic"] = Image.new("RGB", (16, 16), "green")
    run(ip, "%step --with pic Describe it").raise_error()
    run(ip, "%step And now").raise_error()
    earlier_user = sent_messages(server)[-1][0]["content"]
    assert [part["type"] for part in earlier_user] == ["text", "text", "text"]
    assert "[image shown in an earlier turn, not sent again]" in json.dumps(earlier_user)


def test_the_result_object_carries_everything(ip: Any, server: LocalServer) -> None:
    run(ip, "%%step -e low -o res\nWhat is a monad").raise_error()
    res = ip.user_ns["res"]
    assert res is ip.user_ns["_step"]
    assert res.model == "step-3.7-flash"
    assert res.effort == "low"
    assert res.finish_reason == "stop"
    assert res.elapsed > 0
    assert res.messages[-1] == {"role": "user", "content": "What is a monad"}
    assert res.usage.total == res.usage.prompt + res.usage.completion
    assert res.cost is not None


def test_code_puts_the_answers_code_block_in_the_next_cell(ip: Any) -> None:
    run(ip, "%%step --code\nShow me code").raise_error()
    assert ip.rl_next_input.startswith("print(")


def test_format_json_parses_a_json_answer_or_fails_clearly(
    ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cassette = tmp_path / "json.jsonl"
    request = ChatRequest("step-3.7-flash", ({"role": "user", "content": "Give JSON"},))
    reply = RecordedReply("thinking", '```json\n{"answer": 42}\n```', "stop", None, "t", "c")
    Cassette(cassette).store(request.cache_key(), request, reply)
    flags = f"--no-memory --replay --cassette {cassette} --format json"
    run(ip, f"%%step {flags}\nGive JSON").raise_error()
    assert '"answer": 42' in capsys.readouterr().out
    from step_magic.display.bundles import answer_bundle

    final = answer_bundle(ip.user_ns["_step"])  # the answer's part of a notebook's final form
    assert final["application/json"] == {"answer": 42}
    error = run(ip, "%%step --no-memory --format json\nNot JSON").error_in_exec
    assert type(error).__name__ == "AnswerFormatError"
    assert ip.user_ns["_step"].answer  # the answer is still there


def test_every_call_is_in_the_history_without_the_key(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run(ip, "%step --system 'Be brief.' Remember the tides").raise_error()
    server.config.fault = "drop-answer"
    run(ip, "%step Broken call")
    path = Path(os.environ["STEP_MAGIC_HISTORY"])
    records = History(path).recent(10)
    assert [r.prompt for r in records] == ["Broken call", "Remember the tides"]
    assert records[0].status == "failed"
    assert records[0].error
    assert records[1].trace_id
    assert TEST_KEY.encode() not in path.read_bytes()
    capsys.readouterr()
    ip.run_line_magic("step_history", "-n 5 --search tides")
    out = capsys.readouterr().out
    assert "Remember the tides" in out
    assert "Broken call" not in out
    ip.run_line_magic("step_history", "--search 'TIDES remember'")  # words, any order
    assert "Remember the tides" in capsys.readouterr().out
    ip.run_line_magic("step_history", "--search ides")  # not a substring search
    assert "Remember the tides" not in capsys.readouterr().out
    export = tmp_path / "calls.jsonl"
    ip.run_line_magic("step_history", f"--export {export}")
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert [line["prompt"] for line in lines] == ["Remember the tides", "Broken call"]


def test_history_can_be_turned_off(ip: Any) -> None:
    ip.run_line_magic("config", "StepMagics.history = False")
    run(ip, "%step Hi").raise_error()
    assert not Path(os.environ["STEP_MAGIC_HISTORY"]).exists()


def test_while_recording_a_replay_reads_the_recording_even_without_a_history(
    ip: Any, server: LocalServer, tmp_path: Path
) -> None:
    ip.run_line_magic("config", "StepMagics.history = False")
    ip.run_line_magic("step_record", str(tmp_path / "lesson.jsonl"))
    run(ip, "%%step --no-memory\nHow many r in strawberry").raise_error()
    live = ip.user_ns["_step"].answer
    run(ip, "%%step --no-memory --replay\nHow many r in strawberry").raise_error()
    ip.run_line_magic("step_record", "--stop")
    assert (ip.user_ns["_step"].answer, ip.user_ns["_step"].replayed) == (live, True)
    assert len(server.requests) == 1


def test_a_lesson_recorded_online_replays_offline(
    ip: Any,
    server: LocalServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lesson = tmp_path / "lesson.jsonl"
    ip.run_line_magic("step_record", str(lesson))
    run(ip, "%%step --new\nHow many r in strawberry").raise_error()
    run(ip, "%%step\nAnd in raspberry").raise_error()
    recorded = [ip.user_ns["_step"].answer]
    ip.run_line_magic("step_record", "--stop")
    assert len(Cassette(lesson)) == 2
    assert TEST_KEY not in lesson.read_text()

    monkeypatch.delenv("STEPFUN_API_KEY")
    monkeypatch.setenv("STEPFUN_BASE_URL", "https://api.stepfun.ai/v1")
    sent_before = len(server.requests)
    ip.run_line_magic("config", "StepMagics.replay_speed = 0")
    capsys.readouterr()
    run(ip, f"%%step --new --replay --cassette {lesson}\nHow many r in strawberry").raise_error()
    run(ip, f"%%step --replay --cassette {lesson}\nAnd in raspberry").raise_error()
    assert ip.user_ns["_step"].answer == recorded[0]
    assert ip.user_ns["_step"].replayed
    assert "replayed" in capsys.readouterr().out
    assert len(server.requests) == sent_before

    error = run(ip, f"%%step --replay --cassette {lesson}\nNever recorded").error_in_exec
    assert type(error).__name__ == "ReplayError"
    assert "no recorded reply" in str(error)


def test_a_lesson_recorded_after_other_cells_replays_in_any_conversation(
    ip: Any, server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The recorded requests carry the turns of the cells asked before recording began; a
    replay without them (a fresh kernel, ``--new``, other cells before) finds each call by
    its question. The same conversation's own recording still wins."""
    run(ip, "%step What is 2+2?").raise_error()
    lesson = tmp_path / "lesson.jsonl"
    ip.run_line_magic("step_record", str(lesson))
    run(ip, "%step Name three moons of Jupiter.").raise_error()
    moons = ip.user_ns["_step"].answer
    run(ip, "%step Which is the largest?").raise_error()
    largest = ip.user_ns["_step"].answer
    ip.run_line_magic("step_record", "--stop")
    sent = len(server.requests)

    ip.run_line_magic("config", "StepMagics.replay_speed = 0")
    run(ip, f"%step --new --replay --cassette {lesson} Name three moons of Jupiter.").raise_error()
    assert (ip.user_ns["_step"].answer, ip.user_ns["_step"].replayed) == (moons, True)
    run(ip, f"%step --replay --cassette {lesson} Which is the largest?").raise_error()
    assert ip.user_ns["_step"].answer == largest
    ip.run_line_magic("config", f"StepMagics.cassette = {str(lesson)!r}")  # on the projector
    ip.run_line_magic("config", "StepMagics.replay = True")
    run(ip, "%step --new Name three moons of Jupiter.").raise_error()
    ip.run_line_magic("config", "StepMagics.replay = False")
    ip.run_line_magic("config", "StepMagics.cassette = None")
    assert (ip.user_ns["_step"].answer, ip.user_ns["_step"].replayed) == (moons, True)
    assert len(server.requests) == sent

    error = run(ip, f"%step --replay --cassette {tmp_path / 'typo.jsonl'} Hi").error_in_exec
    assert type(error).__name__ == "ReplayError"
    assert str(error) == f"no cassette at {tmp_path / 'typo.jsonl'}: no such file"


def test_a_cassette_that_cannot_be_written_is_refused_when_recording_starts(
    ip: Any, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(
        UsageError,
        match=r"^cannot record to .*a-file/lesson.jsonl: .*a-file is a file, not a folder$",
    ):
        ip.run_line_magic("step_record", str(tmp_path / "a-file" / "lesson.jsonl"))
    with pytest.raises(UsageError, match=r"it is not a regular file$"):
        ip.run_line_magic("step_record", str(tmp_path))
    assert ip.run_line_magic("step_record", "--stop") is None  # nothing was being recorded
    ip.run_line_magic("step_record", str(tmp_path / "later.jsonl"))
    assert not (tmp_path / "later.jsonl").exists()  # made by the first recorded call
    ip.run_line_magic("step_record", "--stop")


def test_replay_without_a_cassette_answers_from_the_history(ip: Any, server: LocalServer) -> None:
    run(ip, "%step --no-memory Cache me").raise_error()
    original = ip.user_ns["_step"]
    sent = len(server.requests)
    ip.run_line_magic("config", "StepMagics.replay_speed = 0")
    run(ip, "%step --no-memory --replay Cache me").raise_error()
    assert ip.user_ns["_step"].answer == original.answer
    assert ip.user_ns["_step"].usage == original.usage
    assert len(server.requests) == sent
    run(ip, "%step --no-memory --replay --refresh Cache me").raise_error()
    assert len(server.requests) == sent + 1


def test_replayed_usage_round_trips(tmp_path: Path) -> None:
    reply = RecordedReply("r", "a", "stop", Usage(3, 4, 7, 2), "t", "c")
    Cassette(tmp_path / "c.jsonl").store("k", ANY_REQUEST, reply)
    assert Cassette(tmp_path / "c.jsonl").lookup("k") == reply


def test_the_local_server_serves_a_recorded_lesson(
    ip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from step_magic.server import ServerConfig

    lesson = tmp_path / "lesson.jsonl"
    request = ChatRequest("step-3.7-flash", ({"role": "user", "content": "Recorded question"},))
    reply = RecordedReply("Recorded thinking.", "Recorded **answer**.", "stop", None, "t", "c")
    Cassette(lesson).store(request.cache_key(), request, reply)
    with LocalServer(ServerConfig(cassette=str(lesson))) as teacher:
        monkeypatch.setenv("STEPFUN_BASE_URL", teacher.base_url)
        run(ip, "%%step --no-memory\nRecorded question").raise_error()
        assert ip.user_ns["_step"].answer == "Recorded **answer**."
        assert ip.user_ns["_step"].reasoning == "Recorded thinking."
        run(ip, "%%step --no-memory\nSomething else").raise_error()
        assert "Something else" in ip.user_ns["_step"].answer  # simulated as usual
        run(ip, "%%step\nRecorded question").raise_error()  # after a turn: by its question
        assert ip.user_ns["_step"].answer == "Recorded **answer**."


def test_new_clears_the_thread_only_when_the_call_worked(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    run(ip, "%step One").raise_error()
    run(ip, "%step --new --dry-run Fresh")
    server.config.fault = "401"
    run(ip, "%step --new Fresh")
    capsys.readouterr()
    ip.run_line_magic("step_chats", "")
    assert "default" in capsys.readouterr().out
    assert len(ip.user_ns["_step"].messages) == 1  # --new sent no earlier turn
    server.config.fault = None
    run(ip, "%step Two").raise_error()
    assert len(sent_messages(server)[-1]) == 3  # "One" survived the dry run and the failure


def test_an_unwritable_cassette_warns_and_keeps_the_answer(
    ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(ip, f"%step --no-memory --cassette {tmp_path} Hi").raise_error()
    assert "could not record to" in capsys.readouterr().err
    assert ip.user_ns["_step"].complete


def test_a_cassette_cut_short_by_a_crash_still_replays_what_it_holds(tmp_path: Path) -> None:
    cassette = Cassette(tmp_path / "lesson.jsonl")
    reply = RecordedReply("r", "a", "stop", None, "t", "c")
    cassette.store("kept", ANY_REQUEST, reply)
    with cassette.path.open("a") as file:
        file.write('{"key": "half-written", "reply": {"reas')
    assert cassette.lookup("kept") == reply
    assert cassette.lookup("half-written") is None
    cassette.store("after", ANY_REQUEST, reply)  # recording goes on, on a line of its own
    assert cassette.lookup("after") == reply
    assert len(cassette) == 2
    cassette.path.write_text('{"broken": \n{"key": "x"}\n')
    with pytest.raises(ReplayError, match=":1 is not a cassette line"):
        cassette.lookup("x")


def test_a_named_thread_continues_in_a_new_kernel_from_the_history(
    ip: Any, server: LocalServer
) -> None:
    run(ip, "%%step --chat lesson\nMy name is Ada.").raise_error()
    ip.run_line_magic("unload_ext", "step_magic")  # a fresh session, as in a new kernel
    ip.run_line_magic("load_ext", "step_magic")

    run(ip, "%%step --chat lesson\nWhat is my name?").raise_error()
    users = [m["content"] for m in sent_messages(server)[-1] if m["role"] == "user"]
    assert users == ["My name is Ada.", "What is my name?"]
    run(ip, "%%step\nHello").raise_error()  # the default thread starts afresh
    assert [m["role"] for m in sent_messages(server)[-1]] == ["user"]


def test_history_export_writes_every_call_unless_n_is_given(
    ip: Any, server: LocalServer, tmp_path: Path
) -> None:
    for number in range(12):
        run(ip, f"%%step --no-memory\nQuestion {number}").raise_error()
    every, three = tmp_path / "all.jsonl", tmp_path / "three.jsonl"
    ip.run_line_magic("step_history", f"--export {every}")
    ip.run_line_magic("step_history", f"-n 3 --export {three}")
    assert len(every.read_text().splitlines()) == 12
    assert len(three.read_text().splitlines()) == 3


def test_a_resumed_thread_starts_where_the_session_left_it(ip: Any, server: LocalServer) -> None:
    """--new starts the thread afresh in the history too, and --no-memory calls join none."""
    run(ip, "%%step --chat lab\nFirst.").raise_error()
    run(ip, "%%step --chat lab --new\nSecond, afresh.").raise_error()
    run(ip, "%%step --chat lab --no-memory\nAn aside.").raise_error()
    run(ip, "%%step --chat lab\nThird.").raise_error()
    ip.run_line_magic("unload_ext", "step_magic")
    ip.run_line_magic("load_ext", "step_magic")

    run(ip, "%%step --chat lab\nFourth.").raise_error()
    users = [m["content"] for m in sent_messages(server)[-1] if m["role"] == "user"]
    assert users == ["Second, afresh.", "Third.", "Fourth."]


def test_a_cell_run_again_replaces_its_turn_in_the_rebuilt_thread() -> None:
    from step_magic.memory.conversation import turns_from_history
    from step_magic.memory.records import CallRecord

    def call(cell: str, prompt: str, *, starts: bool = False) -> CallRecord:
        message = {"role": "user", "content": prompt}
        return CallRecord(
            0.0, "m", None, prompt, (message,), (), "", f"re: {prompt}", "complete",
            thread="t", cell=cell, starts_thread=starts,
        )  # fmt: skip

    records = [call("c0", "old"), call("c1", "one"), call("c2", "two"), call("c1", "one again")]
    assert [turn.user["content"] for turn in turns_from_history("t", records).turns] == [
        "old",
        "one again",
        "two",
    ]
    records.append(call("c3", "fresh", starts=True))
    assert [turn.user["content"] for turn in turns_from_history("t", records).turns] == ["fresh"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("5", "it is not a recorded call"),
        ('{"key": "k", "reply": 5}', "the reply is the number 5, not an object"),
        ('{"key": "k", "reply": {"answer": "a", "usage": [1, 2]}}', "usage is a list"),
        (
            '{"key": "k", "reply": {"usage": {"prompt": "12", "completion": 1, "total": 13}}}',
            "usage.prompt is the text '12', not a token count",
        ),
        ('{"key": "k", "reply": {"usage": {"prompt": 1}}}', "usage has no completion, total"),
        ('{"key": "k", "reply": {"answer": ["a"]}}', "answer is a list, not text"),
        ("[" * 100_000 + "\n", "is not a cassette line"),
    ],
)
def test_a_cassette_line_of_the_wrong_shape_is_one_error_naming_file_and_line(
    tmp_path: Path, line: str, problem: str
) -> None:
    cassette = Cassette(tmp_path / "lesson.jsonl")
    cassette.store("kept", ANY_REQUEST, RecordedReply("r", "a", "stop", None, None, None))
    with cassette.path.open("a") as file:
        file.write(line + "\n")
    with pytest.raises(ReplayError) as caught:
        cassette.lookup("kept")
    assert str(caught.value).startswith(f"{cassette.path}:2")
    assert problem in str(caught.value)


def test_a_bad_cassette_line_fails_the_cell_in_one_line(ip: Any, tmp_path: Path) -> None:
    lesson = tmp_path / "lesson.jsonl"
    lesson.write_text('{"key": "k", "reply": {"usage": [1, 2]}}\n')
    error = run(ip, f"%%step --replay --cassette {lesson}\nHello").error_in_exec
    assert type(error).__name__ == "ReplayError"
    assert str(error) == f"{lesson}:1: usage is a list, not an object"


def test_escape_sequences_in_a_cassette_never_reach_the_terminal(
    ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lesson = tmp_path / "lesson.jsonl"
    request = ChatRequest("step-3.7-flash", ({"role": "user", "content": "Hi"},))
    hostile = "Clear\x1b[2J and retitle\x1b]0;owned\x07 done"
    reply = RecordedReply(hostile, hostile, "stop", None, None, None)
    Cassette(lesson).store(request.cache_key(), request, reply)
    run(ip, f"%%step --no-memory --replay --cassette {lesson}\nHi").raise_error()
    out = capsys.readouterr().out
    assert "Clear\ufffd[2J and retitle\ufffd]0;owned\ufffd done" in out
    assert "\x1b" not in out
    assert "\x07" not in out
    assert ip.user_ns["_step"].answer == "Clear\ufffd[2J and retitle\ufffd]0;owned\ufffd done"


def test_null_text_in_a_cassette_is_empty_and_escapes_are_cleaned_on_reading(
    tmp_path: Path,
) -> None:
    cassette = Cassette(tmp_path / "lesson.jsonl")
    cassette.path.write_text(
        '{"key": "k", "reply": {"reasoning": null, "answer": "a\\u001b]52;c;x\\u0007b"}}\n'
    )
    reply = cassette.lookup("k")
    assert reply is not None
    assert reply.reasoning == ""
    assert reply.answer == "a\ufffd]52;c;x\ufffdb"
