"""``step-magic doctor`` reports what a server does against what step-magic expects.

Here it examines imitations: the bundled server (which speaks StepFun's protocol, so every
row is ``ok``), llmock (a third-party OpenAI imitation without reasoning or trace ids, so
some rows differ and none fails) and a server that fails every call. ``tests/live`` runs the
same checks against StepFun itself when a key is set.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from step_magic.cli_doctor import examine
from step_magic.core.settings import Settings
from step_magic.server import LocalServer

from .conftest import TEST_KEY

CONSOLE_SCRIPT = Path(sys.executable).parent / "step-magic"


def doctor(*args: str, key: str | None = TEST_KEY) -> subprocess.CompletedProcess[str]:
    """The console script, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if k not in ("STEPFUN_API_KEY", "STEP_API_KEY")}
    if key:
        env["STEPFUN_API_KEY"] = key
    command = [str(CONSOLE_SCRIPT), "doctor", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # a process of its own
def test_the_bundled_server_passes_every_check(server: LocalServer) -> None:
    done = doctor("--base-url", server.base_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 ok, 0 differ, 0 failed" in done.stdout
    for row in ("stream, effort high", "Messages API", "Responses API", "tool call", "image part"):
        assert row in done.stdout
    assert "Traceback" not in done.stderr
    assert TEST_KEY not in done.stdout + done.stderr


def test_each_check_says_what_it_saw(server: LocalServer) -> None:
    settings = Settings(model="step-3.7-flash", base_url=server.base_url, api_key=TEST_KEY)
    rows = {f.check.strip(): f for f in examine(settings, timeout=30)}
    assert rows["reasoning field"].observed == "reasoning"
    assert rows["usage"].observed == "on every chunk"
    assert rows["finish_reason"].observed == '"" before the end, then "stop"'
    assert rows["trace id"].observed == "x-trace-id"
    assert rows["tool call"].observed.startswith("get_time({")
    assert rows["bad model name"].observed.startswith("400: The model")
    assert {f.verdict for f in rows.values()} == {"ok"}
    assert all(f.cost > 0 for f in rows.values() if f.check.startswith("stream"))


def test_a_server_without_reasoning_or_trace_ids_differs_but_does_not_fail() -> None:
    llmock_testing = pytest.importorskip("llmock.testing")
    with llmock_testing.LLMockServer() as mock:
        settings = Settings(model="step-3.7-flash", base_url=mock.base_url("openai"), api_key="t")
        rows = {f.check.strip(): f for f in examine(settings, timeout=30)}
    assert rows["reasoning field"].verdict == "differs"
    assert rows["reasoning field"].observed == "none"
    assert rows["usage"].observed.startswith("once, at the end")
    assert rows["trace id"].verdict == "differs"
    assert rows["bad model name"].observed == "200, accepted"
    assert rows["tool call"].verdict == "ok"
    assert "FAIL" not in {f.verdict for f in rows.values()}


def test_a_failing_server_gives_fail_rows_and_exit_status_1(server: LocalServer) -> None:
    server.config.fault = "503"
    settings = Settings(model="step-3.5-flash", base_url=server.base_url, api_key=TEST_KEY)
    rows = list(examine(settings, timeout=30))
    assert [f.verdict for f in rows if f.check == "stream, effort default"] == ["FAIL"]
    assert rows[0].observed.startswith("503: The service is temporarily overloaded")


@pytest.mark.slow  # a process of its own
def test_without_a_key_a_remote_server_is_not_called(tmp_path: Path) -> None:
    done = doctor("--base-url", "https://api.stepfun.ai/v1", key=None)
    assert done.returncode == 2
    assert "No StepFun API key" in done.stdout


@pytest.mark.slow  # a process of its own
def test_a_refused_connection_is_a_fail_row_not_a_traceback() -> None:
    done = doctor("--base-url", "http://127.0.0.1:9/v1")
    assert done.returncode == 1
    assert done.stdout.count("ConnectError") == 1  # one row, not one per check
    assert "Traceback" not in done.stdout + done.stderr


def test_an_echoed_key_is_redacted_before_a_long_line_is_cut() -> None:
    from step_magic.cli_doctor import Finding, report

    key = "sk-Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z"
    said = f"Authentication failed for this project; the API key you provided, {key}, is bad"
    shown = report([Finding("stream", "an answer", f"401: {said}", "FAIL")], secrets=(key,))
    assert "Ab3dE5" not in shown
    assert "***" in shown


def test_a_huge_error_page_is_read_only_as_far_as_its_cap() -> None:
    """A proxy's 64 MB error page: each check reads its first megabyte and hangs up, and
    its row is one short line."""
    from .http_handler import Handler, served, url_of

    total, piece = 64_000_000, b"x" * 65_536
    start = b'{"error": {"message": "Upstream said: '

    class HugeErrorPage(Handler):
        def do_POST(self) -> None:
            self.body()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(total))
            self.end_headers()
            sent = 0
            try:
                self.wfile.write(start)
                while sent < total:
                    self.wfile.write(piece)
                    sent += len(piece)
            except OSError:  # the client hung up
                self.close_connection = True
            self.server.sent.append(sent)  # type: ignore[attr-defined]

    with served(HugeErrorPage, sent=[]) as server:
        settings = Settings(model="step-3.5-flash", base_url=url_of(server), api_key="t")
        rows = list(examine(settings, timeout=30))
        sent = server.sent  # type: ignore[attr-defined]

    assert sent
    assert max(sent) < total / 4
    failed = [row for row in rows if row.verdict == "FAIL"]
    assert failed
    assert all(len(row.observed) < 2_500 for row in failed)  # an excerpt: head and tail
    assert all(row.observed.startswith("400: Upstream said: xx") for row in failed)


def test_a_usage_chunk_after_the_end_is_not_a_second_finish_reason() -> None:
    """vLLM and OpenAI repeat the choice in the usage chunk with ``finish_reason: null``."""
    import json

    from .sse_peer import SSEPeer

    def chunk(delta: dict[str, str], reason: str | None, usage: bool = False) -> bytes:
        body: dict[str, object] = {
            "id": "chatcmpl-1",
            "choices": [{"index": 0, "delta": delta, "finish_reason": reason}],
        }
        if usage:
            body["usage"] = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
        return f"data: {json.dumps(body)}\n\n".encode()

    pieces = [
        chunk({"reasoning": "Short."}, None),
        chunk({"content": "ready"}, None),
        chunk({}, "stop"),
        chunk({}, None, usage=True),
        b"data: [DONE]\n\n",
    ]
    with SSEPeer(pieces) as peer:
        settings = Settings(model="step-3.5-flash", base_url=peer.base_url, api_key="t")
        rows = {f.check.strip(): f for f in examine(settings, timeout=30)}
    assert rows["finish_reason"].observed == 'null before the end, then "stop"'
    assert rows["finish_reason"].verdict == "ok"


def test_a_wire_api_mounted_elsewhere_is_examined_there() -> None:
    """llmock serves the Messages API under /anthropic: --api-url points the check there."""
    llmock_testing = pytest.importorskip("llmock.testing")
    with llmock_testing.LLMockServer() as mock:
        settings = Settings(model="step-3.7-flash", base_url=mock.base_url("openai"), api_key="t")
        plain = {f.check: f for f in examine(settings, timeout=30)}
        urls = {"messages": mock.base_url("anthropic") + "/v1"}
        mounted = {f.check: f for f in examine(settings, timeout=30, api_urls=urls)}
    assert plain["Messages API"].observed.startswith("404")
    assert mounted["Messages API"].verdict == "ok", mounted["Messages API"]


def test_a_run_off_stepfun_is_not_priced_by_stepfun() -> None:
    from step_magic.cli_doctor import Finding, report

    rows = [Finding("stream", "an answer", "ready", "ok", cost=0.0003)]
    assert "this run cost ≈ $0.0003" in report(rows, secrets=("k",), priced=True)
    assert "no cost estimated (not StepFun)" in report(rows, secrets=("k",), priced=False)


@pytest.mark.slow  # a process of its own
def test_doctor_local_examines_the_bundled_simulator_without_a_key() -> None:
    done = doctor("--local", key=None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the bundled simulator is examined (offline)" in done.stdout
    assert "12 ok, 0 differ, 0 failed; no cost estimated (not StepFun)" in done.stdout


@pytest.mark.slow  # a process of its own
def test_a_mistyped_api_url_is_one_line_and_exit_status_2() -> None:
    done = doctor("--local", "--api-url", "mesages=http://127.0.0.1:9/v1", key=None)
    assert done.returncode == 2
    assert "--api-url mesages=http://127.0.0.1:9/v1: expected API=URL" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("delta", "field"),
    [
        (
            {"reasoning_details": [{"type": "reasoning.text", "text": "Short."}]},
            "reasoning_details",
        ),
        (
            {"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Short."}]}]},
            "typed content parts",
        ),
    ],
    ids=["openrouter", "mistral"],
)
def test_reasoning_in_other_servers_shapes_is_named_and_counted(
    delta: dict[str, object], field: str
) -> None:
    import json

    from .sse_peer import SSEPeer

    def chunk(delta: dict[str, object], reason: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": reason}
        return f"data: {json.dumps({'id': 'c', 'choices': [choice]})}\n\n".encode()

    pieces = [chunk(delta, None), chunk({"content": "ready"}, "stop"), b"data: [DONE]\n\n"]
    with SSEPeer(pieces) as peer:
        settings = Settings(model="step-3.5-flash", base_url=peer.base_url, api_key="t")
        rows = {f.check.strip(): f for f in examine(settings, timeout=30)}
    assert rows["reasoning field"].observed == field
    assert rows["reasoning field"].verdict == "differs"  # step-magic copes; not StepFun's field
    assert rows["stream, effort default"].observed.startswith("6 + 5 chars")


def test_a_refused_key_is_not_taken_for_a_refused_model_name(server: LocalServer) -> None:
    settings = Settings(model="step-3.5-flash", base_url=server.base_url, api_key="sk-wrong")
    rows = {f.check.strip(): f for f in examine(settings, timeout=30)}
    assert rows["bad model name"].verdict == "FAIL"
    assert rows["bad model name"].observed.startswith("401: Incorrect API key")
