"""Every way a call can fail ends in one clear line, fails the cell, and keeps what arrived."""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from step_magic.core.errors import StepAPIError
from step_magic.server import LocalServer

from .conftest import TEST_KEY


def run(ip: Any, cell: str) -> Any:
    return ip.run_cell(cell, store_history=False)


@pytest.mark.parametrize(
    ("fault", "status", "words"),
    [
        ("401", 401, "check the key this server expects (step-magic sends STEPFUN_API_KEY to it)"),
        ("402", 402, "balance"),
        ("403", 403, ""),
        ("404", 404, "check the model name"),
        ("400", 400, "invalid"),
        ("400-context", 400, "context"),
        ("451", 451, ""),
    ],
)
def test_http_errors_are_one_line_with_status_and_trace_id(
    ip: Any,
    server: LocalServer,
    capsys: pytest.CaptureFixture[str],
    fault: str,
    status: int,
    words: str,
) -> None:
    server.config.fault = fault
    result = run(ip, "%step Hi")
    error = result.error_in_exec
    assert isinstance(error, StepAPIError)
    assert error.status == status
    assert words.lower() in str(error).lower()
    assert error.trace_id
    assert f"trace id {error.trace_id}" in str(error)
    out = capsys.readouterr().out
    assert "Traceback" not in out
    assert f"StepAPIError\x1b[0m: API error {status} from 127.0.0.1:{server.port}" in out
    assert "failed before any text arrived" in out
    assert len(server.requests) == 1  # 4xx other than 429 is never retried
    assert TEST_KEY not in out


def test_429_is_retried_with_the_servers_retry_after_then_succeeds(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.config.retry_after = 0.2
    server.config.fault, server.config.fault_times = "429", 2
    started = time.monotonic()
    run(ip, "%step Hi").raise_error()
    assert time.monotonic() - started >= 0.4
    out = capsys.readouterr().out
    assert "Rate limited — retrying in 0.2 s (retry 1 of 3)" in out
    assert "(retry 2 of 3)" in out
    assert len(server.requests) == 3
    assert ip.user_ns["_step"].complete


@pytest.mark.parametrize("fault", ["500", "503", "429-bare"])
def test_server_errors_are_retried_a_bounded_number_of_times(
    ip: Any, server: LocalServer, fault: str
) -> None:
    ip.run_line_magic("config", "StepMagics.max_retries = 2")
    server.config.fault = fault
    result = run(ip, "%step Hi")
    assert isinstance(result.error_in_exec, StepAPIError)
    assert len(server.requests) == 3


def test_a_stall_before_the_first_byte_times_out_cleanly(ip: Any, server: LocalServer) -> None:
    server.config.fault, server.config.stall_seconds = "stall-before", 10
    started = time.monotonic()
    error = run(ip, "%step --timeout 0.5 Hi").error_in_exec
    assert time.monotonic() - started < 5
    assert isinstance(error, StepAPIError)
    assert "timed out" in str(error)
    assert "--timeout" in str(error)


def test_a_stall_mid_stream_keeps_the_partial_reasoning(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.config.fault, server.config.stall_seconds = "stall-mid", 10
    error = run(ip, "%step --timeout 0.5 Hi").error_in_exec
    assert isinstance(error, StepAPIError)
    assert "timed out" in str(error)
    result = ip.user_ns["_step"]
    assert result.status == "failed"
    assert result.reasoning
    assert result.trace_id == error.trace_id
    out = capsys.readouterr().out
    assert result.reasoning[:30] in out
    assert "⚠ incomplete" in out


@pytest.mark.parametrize("fault", ["drop-reasoning", "drop-answer"])
def test_a_dropped_connection_keeps_what_arrived(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str], fault: str
) -> None:
    server.config.fault = fault
    error = run(ip, "%step Hi").error_in_exec
    assert isinstance(error, StepAPIError)
    assert "connection" in str(error).lower()
    result = ip.user_ns["_step"]
    assert result.status == "failed"
    assert result.reasoning
    assert bool(result.answer) == (fault == "drop-answer")
    assert "⚠ incomplete" in capsys.readouterr().out
    assert len(server.requests) == 1  # text had arrived: no retry


def test_a_malformed_chunk_is_reported_not_a_traceback(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.config.fault = "malformed"
    error = run(ip, "%step Hi").error_in_exec
    assert isinstance(error, StepAPIError)
    assert "malformed chunk" in str(error)
    assert "Traceback" not in capsys.readouterr().out


def test_an_error_event_mid_stream_is_reported(ip: Any, server: LocalServer) -> None:
    server.config.fault = "error-event"
    error = run(ip, "%step Hi").error_in_exec
    assert isinstance(error, StepAPIError)
    assert ip.user_ns["_step"].status == "failed"


def test_odd_chunk_shapes_are_ignored(ip: Any, server: LocalServer) -> None:
    server.config.fault = "unknown-shape"
    run(ip, "%step Hi").raise_error()
    assert ip.user_ns["_step"].complete
    assert "Hi" in ip.user_ns["_step"].answer


def test_an_empty_stream_fails_the_cell(ip: Any, server: LocalServer) -> None:
    server.config.fault = "empty"
    error = run(ip, "%step Hi").error_in_exec
    assert isinstance(error, StepAPIError)
    assert "empty reply" in str(error)


def test_a_missing_done_marker_after_a_finish_reason_is_fine(ip: Any, server: LocalServer) -> None:
    server.config.fault = "no-done"
    run(ip, "%step Hi").raise_error()
    assert ip.user_ns["_step"].complete


@pytest.mark.parametrize(
    ("fault", "status", "notice"),
    [
        ("reasoning-only", "no-answer", "gave no answer"),
        ("length", "truncated", "token limit"),
        ("content-filter", "filtered", "content filter"),
    ],
)
def test_unusual_endings_are_said_plainly(
    ip: Any,
    server: LocalServer,
    capsys: pytest.CaptureFixture[str],
    fault: str,
    status: str,
    notice: str,
) -> None:
    server.config.fault = fault
    run(ip, "%step Hi").raise_error()
    assert ip.user_ns["_step"].status == status
    assert notice in capsys.readouterr().out


def test_connection_refused_names_the_url(ip: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = run(ip, f"%step --base-url http://127.0.0.1:{port}/v1 Hi").error_in_exec
    assert isinstance(error, StepAPIError)
    assert f"connection to http://127.0.0.1:{port}/v1 failed" in str(error)


@pytest.mark.parametrize("dialect", ["reasoning_content", "think"])
def test_other_compatible_servers_reasoning_fields_are_understood(
    ip: Any, server: LocalServer, dialect: str
) -> None:
    server.config.reasoning_field = dialect
    run(ip, "%step Hi").raise_error()
    result = ip.user_ns["_step"]
    assert "no effort given" in result.reasoning
    assert "<think>" not in result.answer
    assert result.answer.lstrip().startswith("##")


def test_null_finish_reason_before_the_end_is_accepted(ip: Any, server: LocalServer) -> None:
    server.config.finish_reason_before_end = None
    run(ip, "%step Hi").raise_error()
    assert ip.user_ns["_step"].finish_reason == "stop"


def test_a_retry_after_longer_than_we_wait_fails_with_the_servers_wait(
    ip: Any, server: LocalServer
) -> None:
    server.config.fault, server.config.retry_after = "429", 120
    started = time.monotonic()
    error = run(ip, "%step Hi").error_in_exec
    assert time.monotonic() - started < 5
    assert isinstance(error, StepAPIError)
    assert "the server asks to wait 120 s" in str(error)
    assert len(server.requests) == 1


def test_credentials_in_the_base_url_never_reach_a_message_or_the_history(
    ip: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: the call fails at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("STEPFUN_BASE_URL", f"http://ada:PASS-123@127.0.0.1:{port}/v1?api-key=QK-9")
    error = run(ip, "%step Hi").error_in_exec
    assert isinstance(error, StepAPIError)
    run(ip, "%%step --dry-run\nHi").raise_error()
    ip.run_line_magic("step_config", "")
    export = tmp_path / "calls.jsonl"
    ip.run_line_magic("step_history", f"--export {export}")
    shown = str(error) + capsys.readouterr().out + export.read_text()
    assert "ada:***@127.0.0.1" in shown
    assert "api-key=***" in shown
    assert "PASS-123" not in shown
    assert "QK-9" not in shown


class _EchoingKey(http.server.BaseHTTPRequestHandler):
    """A server that quotes the key it got in its 401, as some gateways do: as sent,
    upper-cased, with spaces and with its dashes dropped."""

    def do_POST(self) -> None:
        key = self.headers.get("Authorization", "").removeprefix("Bearer ")
        quoted = f"{key} / {key.upper()} / {' '.join(key)} / {key.replace('-', '')}"
        body = json.dumps({"error": {"message": f"Incorrect API key provided: {quoted}"}})
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None: ...


def test_a_key_echoed_in_another_case_or_spacing_never_reaches_the_user(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    echo = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoingKey)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    try:
        error = run(ip, f"%step --base-url http://127.0.0.1:{echo.server_port}/v1 Hi")
    finally:
        echo.shutdown()
    out = capsys.readouterr().out + str(error.error_in_exec)
    assert "Incorrect API key provided: *** / *** / *** / ***" in out
    squashed = re.sub(r"[\s\-]", "", out).lower()
    assert re.sub(r"[\s\-]", "", TEST_KEY).lower() not in squashed


@pytest.mark.parametrize(
    ("base_url", "local", "head", "hint"),
    [
        ("https://api.stepfun.ai/v1", False, "StepFun API error 401: ", "check STEPFUN_API_KEY"),
        ("https://api.stepfun.com/v1", False, "StepFun API error 401: ", "not interchangeable"),
        ("http://127.0.0.1:8765/v1", True, "API error 401 from the local simulator: ", "expects"),
        ("https://openrouter.ai/api/v1", False, "API error 401 from openrouter.ai: ", "expects"),
        ("http://u:pw@10.0.0.5:8000/v1", False, "API error 401 from 10.0.0.5:8000: ", "expects"),
    ],
)
def test_an_error_names_the_server_that_gave_it(
    base_url: str, local: bool, head: str, hint: str
) -> None:
    """Only StepFun's own endpoints give "StepFun API error" and StepFun's key advice; any
    other server is named by host (never with the URL's credentials)."""
    import httpx
    import openai

    from step_magic.core.settings import Settings, server_label
    from step_magic.wire.retry import describe_error

    settings = Settings(model="m", base_url=base_url, api_key="k", local=local)
    response = httpx.Response(401, request=httpx.Request("POST", base_url))
    err = openai.AuthenticationError("denied", response=response, body=None)
    server = server_label(settings)
    status, detail = describe_error(err, base_url, 5, stepfun=server is None)
    error = StepAPIError(detail, status=status, server=server)
    assert str(error).startswith(head)
    assert hint in str(error)
    assert "pw" not in str(error)


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:99999/v1", "http://u:pw@h:port/v1"])
def test_a_base_url_with_an_unusable_port_is_one_usage_error(ip: Any, base_url: str) -> None:
    error = run(ip, f"%step --base-url {base_url} Hi").error_in_exec
    assert type(error).__name__ == "UsageError"
    assert "--base-url must be an http(s) URL" in str(error)
    assert "pw" not in str(error)


def test_a_lookalike_of_stepfuns_domain_is_not_called_stepfun() -> None:
    from step_magic.core.settings import Settings, server_label

    def label(url: str) -> str | None:
        return server_label(Settings(model="m", base_url=url, api_key="k"))

    assert label("https://api.stepfun.ai/v1") is None
    assert label("https://api.stepfun.com/v1") is None
    assert label("https://evilstepfun.com/v1") == "evilstepfun.com"
