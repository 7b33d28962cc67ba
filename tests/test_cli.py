"""The ``step-magic`` command: ``ask`` in a pipe, ``serve`` with its options, and the README's
demo, which works offline and says so plainly."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest

from step_magic.server import LocalServer

from .conftest import TEST_KEY


def run_cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("STEPFUN_API_KEY", "STEP_API_KEY", "STEPFUN_BASE_URL")
    }
    env["STEP_MAGIC_HISTORY"] = str(tmp_path / "history.sqlite3")
    command = [sys.executable, "-m", "step_magic.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # a whole IPython shell in a subprocess
def test_demo_without_a_key_uses_the_simulator_and_says_so(tmp_path: Path) -> None:
    done = run_cli("demo", "How many r in strawberry", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no API key is set or stored, so the bundled local simulator answers" in done.stdout
    assert "does not come from StepFun" in done.stdout
    assert "How many r in strawberry" in done.stdout  # the simulator quotes the question
    assert "trace id" in done.stdout
    assert "%step_config" not in done.stdout  # advice for a notebook, not for this shell
    assert "Out[" not in done.stdout  # the reply is shown once, not again as a result
    assert done.stdout.rstrip().endswith("step-magic key set (or export STEPFUN_API_KEY=...), "
                                         "then step-magic demo again.")  # fmt: skip


@pytest.mark.slow
def test_demo_reports_a_failed_call_with_a_non_zero_status(tmp_path: Path) -> None:
    done = run_cli("demo", "--local", "-m", "fault-500", "Hi", tmp_path=tmp_path)
    assert done.returncode == 1
    assert "API error 500 from the local simulator" in done.stdout + done.stderr


def ask_cli(
    *args: str, server: LocalServer, tmp_path: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``step-magic ask`` in its own process, pointed at the test server with the test key."""
    env = {**os.environ, "STEPFUN_API_KEY": TEST_KEY, "STEPFUN_BASE_URL": server.base_url}
    env["STEP_MAGIC_HISTORY"] = str(tmp_path / "history.sqlite3")
    command = [sys.executable, "-m", "step_magic.cli", "ask", *args]
    return subprocess.run(command, env=env, input=stdin, capture_output=True, text=True, timeout=60)


@pytest.mark.slow  # a process of its own
def test_ask_streams_the_answer_to_stdout_and_the_reasoning_to_stderr(
    server: LocalServer, tmp_path: Path
) -> None:
    done = ask_cli("-e", "high", "Why is the sky blue?", server=server, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("## Simulated answer")
    assert "reasoning effort high" in done.stderr  # the simulator's reasoning says so
    assert "reasoning effort" not in done.stdout
    assert "trace id" in done.stderr
    assert server.requests[-1].body["reasoning_effort"] == "high"
    assert TEST_KEY not in done.stdout + done.stderr


@pytest.mark.slow  # a process of its own
def test_ask_reads_a_pipe_and_attaches_a_csv_as_a_table(
    server: LocalServer, tmp_path: Path
) -> None:
    table = tmp_path / "sales.csv"
    table.write_text("month,revenue\nJan,10\nFeb,12\nMar,7\n")
    done = ask_cli(
        "--with", str(table), "what stands out?", server=server, tmp_path=tmp_path, stdin="notes"
    )
    assert done.returncode == 0, done.stderr
    content = server.requests[-1].body["messages"][-1]["content"]
    assert content.startswith("### `sales` (pandas DataFrame)")
    assert content.endswith("\n\nnotes\n\nwhat stands out?")


@pytest.mark.slow  # a process of its own
def test_ask_fails_in_one_line_with_status_1(server: LocalServer, tmp_path: Path) -> None:
    done = ask_cli("-m", "fault-401", "Hi", server=server, tmp_path=tmp_path)
    assert done.returncode == 1
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("step-magic ask: API error 401 from 127.0.0.1:")
    assert "Traceback" not in done.stderr
    missing = ask_cli("--with", "nope.csv", "Hi", server=server, tmp_path=tmp_path)
    assert missing.returncode == 1
    assert "--with nope.csv: no such file; give a file" in missing.stderr
    for given, why in ((str(tmp_path), "a folder"), ("/dev/null", "not a regular file")):
        odd = ask_cli("--with", given, "Hi", server=server, tmp_path=tmp_path)
        assert (
            odd.stderr.strip().splitlines()[-1]
            == f"step-magic ask: --with {given}: {why}; give a file"
        )
    if Path("/proc/self/mem").exists():  # stat says a regular file; reading it fails
        unreadable = ask_cli("--with", "/proc/self/mem", "Hi", server=server, tmp_path=tmp_path)
        assert unreadable.returncode == 1
        assert unreadable.stderr.strip().splitlines() == [
            "step-magic ask: /proc/self/mem: cannot read it (Input/output error)"
        ]


@pytest.mark.slow  # a process of its own
def test_serve_takes_its_options_and_answers_like_the_api(tmp_path: Path) -> None:
    command = [
        sys.executable, "-m", "step_magic.cli", "serve", "--port", "0",
        "--tokens-per-second", "500", "--api-key", "k",
    ]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        base_url = banner.split(" on ", 1)[1].split(" ", 1)[0]
        client = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=10)
        assert [model.id for model in client.models.list()]
        chunks = list(client.chat.completions.create(
            model="step-3.7-flash", messages=[{"role": "user", "content": "Hi"}], stream=True
        ))  # fmt: skip
        assert any(chunk.choices and chunk.choices[0].delta.content for chunk in chunks)
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_version_and_every_subcommand_s_help_say_what_they_are(tmp_path: Path) -> None:
    import step_magic

    assert run_cli("--version", tmp_path=tmp_path).stdout.strip() == (
        f"step-magic {step_magic.__version__}"
    )
    for command in ("demo", "ask", "history", "doctor", "serve", "key"):
        shown = run_cli(command, "--help", tmp_path=tmp_path).stdout
        assert shown.startswith(f"usage: step-magic {command}")
        described = shown.split("\n\n")[1].strip()
        assert not described.startswith(("positional", "options")), command
    serve = run_cli("serve", "--help", tmp_path=tmp_path).stdout
    assert "default 8765; 0 picks a free one" in " ".join(serve.split())


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (("--port", "99999"), "step-magic serve: error: argument --port: '99999' is not a port"),
        (("--port", "²"), "step-magic serve: error: argument --port: '²' is not a port"),
        (
            ("--cassette", "no-such-lesson.jsonl"),
            "--cassette: no cassette at no-such-lesson.jsonl: no such file",
        ),
    ],
)
def test_serve_refuses_what_it_cannot_serve_in_one_line(
    tmp_path: Path, options: tuple[str, ...], said: str
) -> None:
    done = run_cli("serve", *options, tmp_path=tmp_path)
    assert done.returncode in (1, 2)
    assert done.stderr.strip().splitlines()[-1].startswith(said)


def test_without_a_key_each_place_says_what_to_do_there(tmp_path: Path) -> None:
    shell = run_cli("ask", "Hi", tmp_path=tmp_path)
    assert shell.returncode == 1
    assert shell.stderr.strip() == (
        "step-magic ask: No StepFun API key: export STEPFUN_API_KEY=... first, or store it "
        "once with `step-magic key set`; to work offline, add --local (or run `step-magic "
        "serve` and pass --base-url the URL it prints)"
    )
    doctor = run_cli("doctor", tmp_path=tmp_path)
    assert "export STEPFUN_API_KEY" in doctor.stdout
    script = subprocess.run(
        [sys.executable, "-c", "import step_magic; step_magic.ask('Hi')"],
        env={k: v for k, v in os.environ.items() if k not in ("STEPFUN_API_KEY", "STEP_API_KEY")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "set STEPFUN_API_KEY in the environment, store it once" in script.stderr
    assert "or pass api_key=..." in script.stderr
    assert "%step_config" not in shell.stderr + doctor.stdout + script.stderr


def test_ask_never_prints_reasoning_to_stdout_when_the_server_closes_an_unopened_think(
    tmp_path: Path,
) -> None:
    """R1-style servers send the reasoning as content, then ``</think>``, then the answer; the
    text before the tag shows up as answer first and is reasoning after all."""
    import json

    from .sse_peer import SSEPeer

    def chunk(content: str, finish: str | None = None) -> bytes:
        delta = {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}
        return f"data: {json.dumps(delta)}\n\n".encode()

    pieces = [chunk("Weigh "), chunk("it up."), chunk("</think>The "), chunk("answer.", "stop")]
    with SSEPeer([*pieces, b"data: [DONE]\n\n"], pause=0.3) as peer:
        done = run_cli("ask", "--base-url", peer.base_url, "Why?", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "The answer.\n"
    assert done.stderr.startswith("Weigh it up.\n\n")


# ``step-magic ask`` in this process (``main()``), against the test server: the shell's options
# reach the same Python API a script calls, and what the user sees is on stdout and stderr.


def ask_here(
    *args: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """``step-magic ask ARGS`` through ``main()``, nothing piped in; status, stdout, stderr."""
    from step_magic.cli import main

    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    status = main(["ask", *args])
    out, err = capsys.readouterr()
    return status, out, err


def user_and_assistant(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in body["messages"] if m["role"] != "system"]


def test_ask_chat_continues_a_named_thread_exactly_as_chat_does(
    api_env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import step_magic

    for thread in ("from-python", "from-shell"):
        with step_magic.Chat(thread) as chat:
            chat.ask("My name is Ada.", display=False)
    status, _, _ = ask_here("--chat", "from-shell", "What is my name?", capsys=capsys,
                            monkeypatch=monkeypatch)  # fmt: skip
    assert status == 0
    from_shell = api_env.requests[-1].body
    with step_magic.Chat("from-python") as chat:
        chat.ask("What is my name?", display=False)
    from_python = api_env.requests[-1].body
    assert [role for role, _ in user_and_assistant(from_shell)] == ["user", "assistant", "user"]
    assert user_and_assistant(from_shell) == user_and_assistant(from_python)
    with step_magic.Chat("from-shell") as chat:  # the shell's turn is in the thread too
        assert [turn.user["content"] for turn in chat.turns] == [
            "My name is Ada.",
            "What is my name?",
        ]


def test_ask_continue_takes_the_newest_named_thread_and_says_which(
    api_env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, _, err = ask_here("-c", "Hello again", capsys=capsys, monkeypatch=monkeypatch)
    assert (status, err.strip()) == (
        1,
        "step-magic ask: --continue: no named thread in the history yet; start one with "
        "--chat NAME",
    )
    assert api_env.requests == []
    for thread, prompt in (("trip", "Plan a trip."), ("cooking", "Bake bread."), ("trip", "Go.")):
        ask_here("--chat", thread, prompt, capsys=capsys, monkeypatch=monkeypatch)
    ask_here("A one-off question joins no thread", capsys=capsys, monkeypatch=monkeypatch)
    status, _, err = ask_here("--continue", "And then?", capsys=capsys, monkeypatch=monkeypatch)
    assert status == 0
    assert err.startswith("step-magic ask: continuing the thread 'trip' (2 earlier turns)\n")
    asked = [m["content"] for m in api_env.requests[-1].body["messages"] if m["role"] == "user"]
    assert asked == ["Plan a trip.", "Go.", "And then?"]


TOOLS_MODULE = '''
from dataclasses import dataclass

from pydantic import BaseModel, field_validator


def stock(item: str) -> int:
    """How many of ``item`` are in stock."""
    return 42


class Review(BaseModel):
    label: str
    stars: int


class Fragile:
    @property
    def boom(self):
        raise RuntimeError("not today")


fragile = Fragile()


class Unreachable(BaseModel):
    label: str

    @field_validator("label")
    @classmethod
    def never(cls, value: str) -> str:
        raise ValueError("no label is good enough")


@dataclass
class Point:
    x: int
    y: int


NOT_A_FUNCTION = 3
'''


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module ``shop_<test>`` in the current directory, as a user's own file would be."""
    name = f"shop_{abs(hash(str(tmp_path)))}"
    (tmp_path / f"{name}.py").write_text(TOOLS_MODULE)
    (tmp_path / "broken_module.py").write_text("raise RuntimeError('boom\\nat import')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command puts the directory first
    return name


def test_ask_tools_offers_a_module_s_function_and_calls_it(
    api_env: LocalServer,
    shop: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    status, out, err = ask_here("--tools", f"{shop}:stock", "How many apples?", capsys=capsys,
                                monkeypatch=monkeypatch)  # fmt: skip
    assert status == 0, err
    first, second = (request.body for request in api_env.requests)
    assert [tool["function"]["name"] for tool in first["tools"]] == ["stock"]
    assert second["messages"][-1] == {
        "role": "tool",
        "tool_call_id": second["messages"][-2]["tool_calls"][0]["id"],
        "content": "42",
    }
    assert "\nstock(item='example')\n" in err  # the call, on a line of its own
    assert re.search(r"\n↳ [\d.]+ s → 42\n", err)  # and what it returned, as the panel shows
    assert "stock" in out  # the simulator lists the tool results in its answer


def test_ask_schema_prints_the_validated_answer_as_one_line_of_json(
    api_env: LocalServer,
    shop: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    status, out, _ = ask_here("--schema", f"{shop}:Review", "Classify: great", capsys=capsys,
                              monkeypatch=monkeypatch)  # fmt: skip
    assert status == 0
    assert json.loads(out) == {"label": "simulated", "stars": 1}
    assert out.count("\n") == 1
    assert api_env.requests[-1].body["response_format"]["json_schema"]["name"] == "Review"
    _, out, _ = ask_here("--schema", f"{shop}:Point", "A point", capsys=capsys,
                         monkeypatch=monkeypatch)  # fmt: skip
    assert json.loads(out) == {"x": 1, "y": 1}  # a dataclass too
    status, out, err = ask_here("--schema", f"{shop}:Unreachable", "Any", capsys=capsys,
                                monkeypatch=monkeypatch)  # fmt: skip
    assert status == 1  # the answer came, as it came, but a pipe should not take it as valid
    assert json.loads(out) == {"label": "simulated"}
    assert "no label is good enough" in err
    assert err.splitlines()[-1].startswith("step-magic ask: the answer does not fit --schema")


@pytest.mark.parametrize(
    ("option", "spec", "says"),
    [
        ("--tools", "no_such_module:f", "cannot import no_such_module (ModuleNotFoundError: "),
        ("--tools", "{shop}:nope", "{shop} has no 'nope'"),
        ("--tools", "{shop}", "give it as module:name (mytools:lookup)"),
        (
            "--tools",
            "broken_module:f",
            "cannot import broken_module (RuntimeError: boom at import)",
        ),
        ("--tools", "{shop}:NOT_A_FUNCTION", "NOT_A_FUNCTION is an int, not a function"),
        ("--tools", "{shop}:fragile.boom", "reading boom failed (RuntimeError: not today)"),
        ("--schema", "{shop}:missing", "{shop} has no 'missing'"),
        ("--schema", "{shop}:NOT_A_FUNCTION", "give a pydantic model, a dataclass or a JSON-sch"),
    ],
)
def test_a_bad_module_or_name_is_one_line_and_status_1(
    api_env: LocalServer,
    shop: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    option: str,
    spec: str,
    says: str,
) -> None:
    status, out, err = ask_here(option, spec.format(shop=shop), "Hi", capsys=capsys,
                                monkeypatch=monkeypatch)  # fmt: skip
    assert (status, out) == (1, "")
    assert err.startswith("step-magic ask: ")
    assert err.count("\n") == 1
    assert says.format(shop=shop) in err
    assert api_env.requests == []  # nothing was sent


def test_an_empty_chat_name_is_refused(
    api_env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, _, err = ask_here("--chat", "", "Hi", capsys=capsys, monkeypatch=monkeypatch)
    assert (status, err) == (1, "step-magic ask: --chat needs a thread name\n")
    assert api_env.requests == []


@pytest.mark.slow  # processes of their own
def test_a_reader_that_leaves_early_ends_the_command_quietly(
    server: LocalServer, tmp_path: Path
) -> None:
    """``step-magic ask ... | head -c 10``: no BrokenPipeError traceback, as for ``cat``."""
    env = {**os.environ, "STEPFUN_API_KEY": TEST_KEY, "STEPFUN_BASE_URL": server.base_url}
    env["STEP_MAGIC_HISTORY"] = str(tmp_path / "history.sqlite3")
    server.config.answer_tokens = 20_000  # far more than the pipe's buffer
    command = f"{sys.executable} -m step_magic.cli ask --no-reasoning 'Long, please' | head -c 10"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert len(done.stdout) == 10
    assert "Traceback" not in done.stderr
    assert "BrokenPipeError" not in done.stderr
    assert done.returncode == 141  # 128 + SIGPIPE, as a shell reports `cat` killed by it


def test_ask_passes_system_max_tokens_and_temperature_and_checks_them(
    api_env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = ("--system", "Be brief.", "--max-tokens", "300", "--temperature", "0.3")
    status, _, _ = ask_here(*flags, "Hi", capsys=capsys, monkeypatch=monkeypatch)
    assert status == 0
    body = api_env.requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert (body["max_tokens"], body["temperature"]) == (300, 0.3)
    with pytest.raises(SystemExit) as refused:
        ask_here("--temperature", "3", "Hi", capsys=capsys, monkeypatch=monkeypatch)
    assert refused.value.code == 2
    assert "--temperature: must be between 0 and 2, not 3" in capsys.readouterr().err


def test_reasoning_without_an_answer_ends_its_line_before_the_notice(
    api_env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, out, err = ask_here("-m", "fault-reasoning-only", "Hi", capsys=capsys,
                                monkeypatch=monkeypatch)  # fmt: skip
    assert (status, out) == (0, "")
    reasoning, notice = err.split("⚠", 1)
    assert reasoning.strip()
    assert reasoning.endswith("\n\n")
    assert reasoning.rstrip("\n") == reasoning[:-2]  # one blank line, not more
    assert notice.startswith(" the model finished thinking but gave no answer\n")
    status, _, err = ask_here("-m", "fault-error-event", "Hi", capsys=capsys,
                              monkeypatch=monkeypatch)  # fmt: skip
    assert status == 1
    assert "\n\n⚠ incomplete" in err
    assert err.splitlines()[-1].startswith("step-magic ask: API error")


def history_here(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """``step-magic history ARGS`` through ``main()``: stdout and stderr (status is 0)."""
    from step_magic.cli import main

    capsys.readouterr()
    assert main(["history", *args]) == 0
    return capsys.readouterr()


def test_history_lists_searches_and_keeps_the_logged_calls(
    api_env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, err = history_here(capsys=capsys)
    assert (out, err.split(" in ")[0]) == ("", "step-magic history: no calls")
    for flags in ((), ("--chat", "tides"), ("--chat", "tides"), ()):
        prompt = f"Question {len(api_env.requests) + 1} about " + ("tides" if flags else "sky")
        ask_here(*flags, prompt, capsys=capsys, monkeypatch=monkeypatch)
    lines = history_here(capsys=capsys)[0].splitlines()
    assert [line.split("  ")[-1] for line in lines] == [
        "Question 4 about sky",  # newest first
        "Question 3 about tides",
        "Question 2 about tides",
        "Question 1 about sky",
    ]
    assert "step-3.7-flash   complete" in lines[0]
    assert len(history_here("-n", "2", capsys=capsys)[0].splitlines()) == 2
    found = history_here("--search", "TIDES question", capsys=capsys)[0]  # words, any order
    assert [line.split("  ")[-1] for line in found.splitlines()] == [
        "Question 3 about tides",
        "Question 2 about tides",
    ]
    assert history_here("--search", "ides", capsys=capsys)[0] == ""  # not a substring search
    assert len(history_here("--chat", "tides", "-n", "1", capsys=capsys)[0].splitlines()) == 1
    rows = [json.loads(line) for line in history_here("--json", capsys=capsys)[0].splitlines()]
    assert [row["thread"] for row in rows] == [None, "tides", "tides", None]
    assert all(rows[1][field] for field in ("answer", "reasoning", "trace_id"))
    transcript = history_here("--markdown", "--chat", "tides", capsys=capsys)[0]
    assert transcript.count("## Call ") == 2
    assert "### Prompt\n\nQuestion 3 about tides\n\n### Reasoning\n\n> " in transcript
    assert "thread tides" in transcript
    every = "".join(history_here(*shape, capsys=capsys)[0] for shape in ((), ("--json",)))
    assert TEST_KEY not in every + transcript
    with pytest.raises(SystemExit):
        history_here("--json", "--markdown", capsys=capsys)
    assert "not allowed with argument" in capsys.readouterr().err


def outline(markdown: str) -> list[str]:
    """The headings of a Markdown document as GitHub's outline lists them: ``## Call 2``."""
    from itertools import pairwise

    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(markdown)
    return [
        "#" * int(token.tag[1:]) + " " + title.content
        for token, title in pairwise(tokens)
        if token.type == "heading_open"
    ]


def test_a_markdown_transcript_has_one_outline_whatever_the_calls_hold(
    api_env: LocalServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One title, a ``##`` per call, ``###`` for its parts; the headings a prompt or an answer
    holds (the simulator's answer starts with ``## Simulated answer``) are moved below their
    part, and a ``#`` comment in a code block stays code. The simulator quotes a prompt that
    ends in a code block as ``"…```"``, which leaves a fence open: it is closed, or it would
    swallow the next call."""
    ask_here("Why is the sky blue?", capsys=capsys, monkeypatch=monkeypatch)
    prompt = "# Tides\n\nWhy two a day?\n\n```python\n# not a heading\n```"
    ask_here(prompt, capsys=capsys, monkeypatch=monkeypatch)

    transcript = history_here("--markdown", capsys=capsys)[0]

    parts = ["### Prompt", "### Reasoning", "### Answer"]
    assert outline(transcript) == [
        "# step-magic history: 2 calls, newest first",
        "## Call 2", "### Prompt", "#### Tides", "### Reasoning",
        "### Answer", "#### Simulated answer",
        "## Call 1", *parts, "#### Simulated answer",
    ]  # fmt: skip
    assert "```python\n# not a heading\n```" in transcript


def logged(count: int, path: Path) -> None:
    """``count`` calls written straight to the history file at ``path``, oldest first."""
    from step_magic.memory.history import History
    from step_magic.memory.records import CallRecord

    log = History(path)
    for number in range(1, count + 1):
        log.record(CallRecord(
            started_at=1_700_000_000.0 + number, model="step-3.7-flash", effort=None,
            prompt=f"Question {number}", messages=(), attachments=(), reasoning="",
            answer=f"Answer {number}", status="complete",
        ))  # fmt: skip
    log.close()


def test_history_n_all_lists_every_call_and_its_help_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from step_magic.cli import main

    monkeypatch.setenv("STEP_MAGIC_HISTORY", str(tmp_path / "history.sqlite3"))
    logged(12, tmp_path / "history.sqlite3")
    assert len(history_here(capsys=capsys)[0].splitlines()) == 10  # the default
    every = history_here("-n", "all", capsys=capsys)[0].splitlines()
    assert [line.split("  ")[-1] for line in every] == [f"Question {n}" for n in range(12, 0, -1)]
    with pytest.raises(SystemExit):
        history_here("-n", "some", capsys=capsys)
    assert "-n: must be a whole number or 'all', not 'some'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["history", "--help"])
    assert "a number, or 'all' (default 10)" in " ".join(capsys.readouterr().out.split())


def test_reading_an_absent_history_creates_nothing_and_the_first_call_creates_it(
    api_env: LocalServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import step_magic

    folder = tmp_path / "not-yet"
    monkeypatch.setenv("STEP_MAGIC_HISTORY", str(folder / "history.sqlite3"))
    for flags in ((), ("--search", "tides"), ("--chat", "trip"), ("--markdown",)):
        out, err = history_here(*flags, capsys=capsys)
        assert out == ""
        assert err.startswith("step-magic history: no calls")
        assert err.count("\n") == 1  # one line
    assert step_magic.history() == []
    status, _, err = ask_here("-c", "And then?", capsys=capsys, monkeypatch=monkeypatch)
    assert (status, "no named thread in the history yet" in err) == (1, True)
    assert not folder.exists()

    ask_here("Why is the sky blue?", capsys=capsys, monkeypatch=monkeypatch)  # a call writes

    assert (folder / "history.sqlite3").is_file()
    assert len(history_here(capsys=capsys)[0].splitlines()) == 1


@pytest.mark.parametrize(
    ("command", "says", "answered"),
    [
        (
            ["ask", "--local", "Hi"],  # the line goes to stderr: stdout is for the answer
            "step-magic ask: --local, so the bundled simulator answers (offline).\n",
            "simulated reply from step-3.7-flash",
        ),
        (
            ["doctor", "--local"],
            "step-magic doctor: --local, so the bundled simulator is examined (offline).\n",
            "12 ok, 0 differ, 0 failed",
        ),
    ],
)
def test_local_runs_the_simulator_for_the_one_command_and_says_so_first(
    command: list[str],
    says: str,
    answered: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No key needed; one line says who answers, before anything else; the simulator's
    threads are gone when the command returns."""
    import threading

    from step_magic.cli import main

    for name in ("STEPFUN_API_KEY", "STEP_API_KEY", "STEPFUN_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STEP_MAGIC_HISTORY", str(tmp_path / "history.sqlite3"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    before = set(threading.enumerate())

    assert main(command) == 0

    out, err = capsys.readouterr()
    assert (err if command[0] == "ask" else out).startswith(says)
    assert answered in out
    assert set(threading.enumerate()) <= before
