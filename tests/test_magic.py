"""``%%step`` in a real IPython shell against the local server: what the user sees, what was sent.

Outside a Jupyter kernel the magic streams to the terminal; the notebook panel is covered by
the kernel tests.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from step_magic.core.errors import StepAPIError
from step_magic.core.result import StepResult
from step_magic.server import LocalServer

from .conftest import TEST_KEY


def chat_bodies(server: LocalServer) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.path.endswith("/chat/completions")]


def run(ip: Any, cell: str) -> Any:
    """Run a cell as a user would; return IPython's ExecutionResult."""
    return ip.run_cell(cell, store_history=False)


def test_a_cell_streams_reasoning_then_the_answer_and_a_footer(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    run(ip, "%%step --effort high\nWhy is the sky blue?").raise_error()
    out = capsys.readouterr().out
    result = ip.user_ns["_step"]
    assert isinstance(result, StepResult)
    assert "effort high" in result.reasoning
    assert "Why is the sky blue?" in result.answer
    assert out.index(result.reasoning[:40]) < out.index(result.answer[:20])
    assert f"trace id {result.trace_id}" in out
    assert result.trace_id
    assert result.completion_id
    assert result.completion_id.startswith("chatcmpl-")
    assert result.usage is not None
    assert result.usage.completion > 0
    assert chat_bodies(server) == [
        {
            "model": "step-3.7-flash",
            "messages": [{"role": "user", "content": "Why is the sky blue?"}],
            "stream": True,
            "reasoning_effort": "high",
            # a server that is not StepFun's is asked for the usage OpenAI-style, too
            "stream_options": {"include_usage": True},
        }
    ]


def test_line_magic_keeps_the_prompt_verbatim(ip: Any, server: LocalServer) -> None:
    run(ip, "%step -e low What's 2 + 2? {not a flag} --effort").raise_error()
    body = chat_bodies(server)[0]
    assert body["messages"][-1]["content"] == "What's 2 + 2? {not a flag} --effort"
    assert body["reasoning_effort"] == "low"


def test_flags_reach_the_request(ip: Any, server: LocalServer) -> None:
    cell = '%%step -m step-3.5-flash --system "Be terse." --max-tokens 50 --temperature 0.3\nHi'
    run(ip, cell).raise_error()
    body = chat_bodies(server)[0]
    assert body["model"] == "step-3.5-flash"
    assert body["messages"][0] == {"role": "system", "content": "Be terse."}
    assert body["max_tokens"] == 50
    assert body["temperature"] == 0.3
    assert "reasoning_effort" not in body


def test_config_traits_set_the_defaults(ip: Any, server: LocalServer) -> None:
    ip.run_line_magic("config", 'StepMagics.model = "step-3.5-flash"')
    ip.run_line_magic("config", 'StepMagics.system = "Answer in French."')
    run(ip, "%step Bonjour").raise_error()
    body = chat_bodies(server)[0]
    assert body["model"] == "step-3.5-flash"
    assert body["messages"][0]["content"] == "Answer in French."


def test_output_name_binds_the_result(ip: Any) -> None:
    run(ip, "%%step -o res\nHello").raise_error()
    assert ip.user_ns["res"] is ip.user_ns["_step"]
    assert str(ip.user_ns["res"]) == ip.user_ns["res"].answer


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("%%step --effort extreme\nHi", "or a comma list of them, not 'extreme'"),
        ("%%step -m step-3.5-flash -e high\nHi", "step-3.5-flash takes no reasoning effort"),
        ("%%step -m step-3.5-flash-2603 -e medium\nHi", "takes --effort low or high"),
        ("%%step --max-tokens 0\nHi", "must be a positive whole number"),
        ("%%step --temperature 3\nHi", "between 0 and 2"),
        ("%%step --timeout -1\nHi", "must be a positive number"),
        ("%%step --base-url ftp://x\nHi", "must be an http(s) URL"),
        ("%%step --show-reasoning --no-reasoning\nHi", "contradict"),
        ("%%step -o 2x\nHi", "needs a Python name"),
        ("%%step --bogus\nHi", "unrecognized arguments: --bogus"),
        ("%%step\n   \n", "Nothing to ask"),
    ],
)
def test_bad_input_is_a_one_line_usage_error_and_sends_nothing(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str], cell: str, message: str
) -> None:
    result = run(ip, cell)
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert message in str(result.error_in_exec)
    assert "Traceback" not in capsys.readouterr().out
    assert chat_bodies(server) == []


def test_unknown_models_pass_through_and_the_server_error_is_clear(
    ip: Any, server: LocalServer
) -> None:
    result = run(ip, "%%step -m step-9-imaginary\nHi")
    error = result.error_in_exec
    assert isinstance(error, StepAPIError)
    assert error.status == 400
    assert "step-9-imaginary" in str(error)
    assert chat_bodies(server)[0]["model"] == "step-9-imaginary"


def test_missing_key_says_how_to_set_it_or_go_offline(
    ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STEPFUN_API_KEY")
    monkeypatch.delenv("STEPFUN_BASE_URL")
    result = run(ip, "%step Hi")
    assert type(result.error_in_exec).__name__ == "UsageError"
    assert "STEPFUN_API_KEY" in str(result.error_in_exec)
    assert "%step_config --local" in str(result.error_in_exec)


def test_step_api_key_is_accepted_too(
    ip: Any, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STEPFUN_API_KEY")
    monkeypatch.setenv("STEP_API_KEY", TEST_KEY)
    run(ip, "%step Hi").raise_error()
    assert chat_bodies(server)


def test_local_simulator_works_without_any_key(
    ip: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STEPFUN_API_KEY")
    monkeypatch.delenv("STEPFUN_BASE_URL")
    ip.run_line_magic("step_config", "--local --tokens-per-second 0")
    assert "answers are simulated" in capsys.readouterr().out
    run(ip, "%step Hello offline").raise_error()
    assert "Hello offline" in ip.user_ns["_step"].answer
    ip.run_line_magic("step_config", "")
    assert "local simulator" in capsys.readouterr().out
    ip.run_line_magic("step_config", "--remote")
    assert "StepFun API" in capsys.readouterr().out


def test_step_config_shows_where_the_key_comes_from_but_never_the_key(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("step_config", "")
    out = capsys.readouterr().out
    assert "set in STEPFUN_API_KEY" in out
    assert TEST_KEY not in out


def test_plain_http_to_a_remote_host_warns_about_the_key(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run(ip, "%step --base-url http://example.invalid/v1 --timeout 2 Hi")
    assert "unencrypted" in capsys.readouterr().err


def test_no_reasoning_hides_it_but_keeps_it_in_the_result(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run(ip, "%%step --no-reasoning\nHi").raise_error()
    result = ip.user_ns["_step"]
    out = capsys.readouterr().out
    assert result.reasoning
    assert result.reasoning[:30] not in out
    assert result.answer[:20] in out


def test_help_documents_every_flag(ip: Any) -> None:
    doc = ip.find_cell_magic("step").__doc__
    for flag in (
        "--model",
        "--effort",
        "--system",
        "--max-tokens",
        "--temperature",
        "--base-url",
        "--timeout",
        "--show-reasoning",
        "--no-reasoning",
    ):
        assert flag in doc


def test_loading_the_extension_imports_no_heavy_library() -> None:
    code = (
        "import sys; from IPython.core.interactiveshell import InteractiveShell;"
        "ip = InteractiveShell.instance();"
        "ip.run_line_magic('load_ext', 'step_magic');"
        "print(sorted(m for m in ('openai', 'pandas', 'polars', 'matplotlib', 'PIL', 'numpy',"
        " 'ipywidgets', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_unload_removes_the_magics(ip: Any) -> None:
    ip.run_line_magic("unload_ext", "step_magic")
    assert ip.find_cell_magic("step") is None
    assert ip.find_line_magic("step_config") is None
    ip.run_line_magic("load_ext", "step_magic")


def test_the_line_form_reads_braces_and_dollars_itself(ip: Any, server: LocalServer) -> None:
    ip.user_ns["x"] = 42
    run(ip, "%step --no-interpolate Keep {x} and $x as typed").raise_error()
    run(ip, "%step Fill {x} but keep $x").raise_error()
    contents = [body["messages"][-1]["content"] for body in chat_bodies(server)]
    assert contents == ["Keep {x} and $x as typed", "Fill 42 but keep $x"]


@pytest.mark.parametrize(
    ("line", "model", "prompt"),
    [
        ("%step --code write a hello world", "step-3.7-flash", "write a hello world"),
        ("%step -mstep-3.5-flash hi there", "step-3.5-flash", "hi there"),
        ("%step -m\tstep-3.5-flash hi", "step-3.5-flash", "hi"),
        ("%step -- -5 degrees, is it cold", "step-3.7-flash", "-5 degrees, is it cold"),
    ],
)
def test_line_form_flags_are_read_like_the_cell_form(
    ip: Any, server: LocalServer, line: str, model: str, prompt: str
) -> None:
    run(ip, line).raise_error()
    body = chat_bodies(server)[-1]
    assert (body["model"], body["messages"][-1]["content"]) == (model, prompt)


def test_an_unknown_or_abbreviated_flag_is_an_error_in_both_forms(
    ip: Any, server: LocalServer
) -> None:
    for cell in ("%step --eff high hi", "%%step --eff high\nhi"):
        error = run(ip, cell).error_in_exec
        assert type(error).__name__ == "UsageError"
        assert "--eff" in str(error)
    for cell in ("%step --efort high hi", "%%step --efort high\nhi", "%%step --modle x\nhi"):
        error = run(ip, cell).error_in_exec
        assert type(error).__name__ == "UsageError"
        assert "did you mean --effort?" in str(error) or "did you mean --model?" in str(error)
    assert chat_bodies(server) == []


def test_a_name_that_only_starts_with_127_is_not_local(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    run(ip, "%step --base-url http://127.attacker.invalid/v1 --timeout 1 Hi")
    assert "unencrypted" in capsys.readouterr().err


def test_reloading_leaves_nothing_behind(ip: Any) -> None:
    before = len(ip.configurables)
    for _ in range(3):
        ip.run_line_magic("unload_ext", "step_magic")
        ip.run_line_magic("load_ext", "step_magic")
    assert len(ip.configurables) == before
    ip.run_line_magic("unload_ext", "step_magic")
    assert not any(type(c).__module__.startswith("step_magic") for c in ip.configurables)
    ip.run_line_magic("load_ext", "step_magic")


def test_out_of_range_settings_are_usage_errors(ip: Any, server: LocalServer) -> None:
    for setting in ("timeout = 0", "max_retries = -1", "temperature = 7.0"):
        ip.run_line_magic("config", f"StepMagics.{setting}")
        error = run(ip, "%step Hi").error_in_exec
        assert type(error).__name__ == "UsageError"
        assert "out of range" in str(error)
        ip.run_line_magic("config", "StepMagics.timeout = 120")
        ip.run_line_magic("config", "StepMagics.max_retries = 3")
        ip.run_line_magic("config", "StepMagics.temperature = None")
    assert chat_bodies(server) == []


@pytest.mark.parametrize("api", ["chat", "messages"])
def test_both_apis_give_the_same_reply_and_footer(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str], api: str
) -> None:
    run(
        ip, f"%%step --api {api} --effort high --system 'Be brief.'\nWhy is the sea salty"
    ).raise_error()
    result = ip.user_ns["_step"]
    assert result.complete
    assert "effort high" in result.reasoning
    assert "Why is the sea salty" in result.answer
    assert f"trace id {result.trace_id}" in capsys.readouterr().out
    sent = server.requests[-1]
    if api == "messages":
        assert sent.path == "/v1/messages"
        assert sent.body["output_config"] == {"effort": "high"}
        assert sent.body["system"] == "Be brief."
        assert "reasoning_effort" not in sent.body
    else:
        assert sent.path == "/v1/chat/completions"
        assert sent.body["reasoning_effort"] == "high"


@pytest.mark.parametrize("api", ["chat", "messages"])
def test_both_apis_keep_a_partial_reply_when_the_connection_drops(
    ip: Any, server: LocalServer, api: str
) -> None:
    server.config.fault = "drop-answer"
    error = run(ip, f"%step --api {api} Hi").error_in_exec
    assert isinstance(error, StepAPIError)
    assert ip.user_ns["_step"].status == "failed"
    assert ip.user_ns["_step"].reasoning


def test_the_api_is_a_config_trait(ip: Any, server: LocalServer) -> None:
    ip.run_line_magic("config", 'StepMagics.api = "messages"')
    run(ip, "%step Hi").raise_error()
    assert server.requests[-1].path == "/v1/messages"
