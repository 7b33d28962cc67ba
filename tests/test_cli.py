"""The ``step-magic`` command: ``ask`` in a pipe, ``serve`` with its options, and the README's
demo, which works offline and says so plainly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
    assert "no STEPFUN_API_KEY is set, so the bundled local simulator answers" in done.stdout
    assert "does not come from StepFun" in done.stdout
    assert "How many r in strawberry" in done.stdout  # the simulator quotes the question
    assert "trace id" in done.stdout


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
    assert "--with nope.csv: no such file" in missing.stderr


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
    for command in ("demo", "ask", "doctor", "serve"):
        shown = run_cli(command, "--help", tmp_path=tmp_path).stdout
        assert shown.startswith(f"usage: step-magic {command}")
        described = shown.split("\n\n")[1].strip()
        assert not described.startswith(("positional", "options")), command
    serve = run_cli("serve", "--help", tmp_path=tmp_path).stdout
    assert "default 8765; 0 picks a free one" in " ".join(serve.split())


def test_without_a_key_each_place_says_what_to_do_there(tmp_path: Path) -> None:
    shell = run_cli("ask", "Hi", tmp_path=tmp_path)
    assert shell.returncode == 1
    assert shell.stderr.strip() == (
        "step-magic ask: No StepFun API key: export STEPFUN_API_KEY=... first; to work "
        "offline, add --local (or run `step-magic serve` and pass --base-url the URL it prints)"
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
    assert "set STEPFUN_API_KEY in the environment or pass api_key=..." in script.stderr
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
