"""``--tools``: the model calls the user's functions and DataFrame tools, in a real shell.

The local server answers a request that offers tools with calls (two at once when two tools
are offered, arguments derived from the schemas) and, once results came back, with an
answer that quotes them; so every assertion here is on what really crossed the wire.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from IPython.core.error import UsageError

from step_magic.server import LocalServer

FUNCTIONS = '''
calls = []

def area(width: float, height: float) -> float:
    """Area of a rectangle.

    Args:
        width: in metres
        height: in metres
    """
    calls.append(("area", width, height))
    return width * height

def perimeter(width: float, height: float) -> dict:
    """Perimeter of a rectangle."""
    calls.append(("perimeter", width, height))
    return {"perimeter": 2 * (width + height), "unit": "m"}

def moon_weather(moon: str) -> str:
    """Weather report for a moon."""
    raise ValueError(f"no weather station on {moon}")
'''


@pytest.fixture
def shell(ip: Any) -> Any:
    ip.run_cell(FUNCTIONS).raise_error()
    return ip


def run(shell: Any, line: str, prompt: str = "What are the area and perimeter?") -> Any:
    shell.run_cell_magic("step", line, prompt)
    return shell.user_ns["_step"]


def test_functions_are_offered_called_in_parallel_and_answered(
    shell: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(shell, "--tools area,perimeter --new")
    first, second = (request.body for request in server.requests)
    specs = {spec["function"]["name"]: spec["function"] for spec in first["tools"]}
    assert specs["area"]["description"] == "Area of a rectangle."
    assert specs["area"]["parameters"] == {
        "type": "object",
        "properties": {
            "width": {"type": "number", "description": "in metres"},
            "height": {"type": "number", "description": "in metres"},
        },
        "required": ["width", "height"],
        "additionalProperties": False,
    }
    # Both calls of the model's one turn ran in the kernel, in order.
    assert shell.user_ns["calls"] == [("area", 1.5, 1.5), ("perimeter", 1.5, 1.5)]
    assistant, *results = second["messages"][-3:]
    assert [call["function"]["name"] for call in assistant["tool_calls"]] == ["area", "perimeter"]
    assert "reasoning" not in assistant
    assert [(m["role"], m["content"]) for m in results] == [
        ("tool", "2.25"),
        ("tool", '{"perimeter": 6.0, "unit": "m"}'),
    ]
    assert [m["tool_call_id"] for m in results] == [c["id"] for c in assistant["tool_calls"]]
    assert result.status == "complete"
    assert result.steps == 2
    assert '{"perimeter": 6.0, "unit": "m"}' in result.answer
    assert [(r.name, r.status, r.preview) for r in result.tool_calls] == [
        ("area", "ok", "2.25"),
        ("perimeter", "ok", '{"perimeter": 6.0, "unit": "m"}'),
    ]
    shown = capsys.readouterr().out
    assert "⚙ area(width=1.5, height=1.5)" in shown
    assert "↳" in shown
    assert "2 model turns" in shown


def test_an_exception_in_a_tool_goes_back_to_the_model(shell: Any, server: LocalServer) -> None:
    result = run(shell, "--tools moon_weather --new", "Weather on Io?")
    tool_message = server.requests[-1].body["messages"][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["content"] == "Error: ValueError: no weather station on example"
    assert result.tool_calls[0].status == "error"
    assert result.status == "complete"  # the model answered after reading the error


def test_max_steps_stops_the_loop_with_a_clear_note(
    shell: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(shell, "--model fault-tool-loop --tools area --max-steps 2 --new")
    assert len(server.requests) == 2
    assert shell.user_ns["calls"] == [("area", 1.5, 1.5)]  # the second turn's call never ran
    assert result.status == "max-steps"
    assert [r.status for r in result.tool_calls] == ["ok", "not run (--max-steps reached)"]
    assert "stopped at the --max-steps limit" in capsys.readouterr().out


def test_max_steps_is_a_config_trait(shell: Any, server: LocalServer) -> None:
    shell.run_line_magic("config", "StepMagics.max_steps = 3")
    result = run(shell, "--model fault-tool-loop --tools area --new")
    assert len(server.requests) == 3
    assert result.status == "max-steps"


def test_tool_turns_are_remembered_in_order_without_reasoning(
    shell: Any, server: LocalServer
) -> None:
    run(shell, "--tools area --new", "How big is the room?")
    run(shell, "", "And in square feet?")
    messages = server.requests[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "user"]
    call_id = messages[1]["tool_calls"][0]["id"]
    assert messages[2]["tool_call_id"] == call_id
    assert messages[3]["content"].startswith("## Simulated answer")
    assert all("reasoning" not in m for m in messages)
    assert "tools" not in server.requests[-1].body  # tools are offered per call


def test_dataframes_get_read_only_tools(ip: Any, server: LocalServer) -> None:
    ip.run_cell(
        "import pandas as pd\n"
        "sales = pd.DataFrame({'region': ['north', 'south', 'north'], 'revenue': [10, 20, 30]})"
    ).raise_error()
    result = run(ip, "--tools sales --new", "Which region sells most?")
    names = [spec["function"]["name"] for spec in server.requests[0].body["tools"]]
    assert names[:2] == ["sales_columns", "sales_describe"]
    assert all(name.startswith("sales_") for name in names)
    results = [m["content"] for m in server.requests[-1].body["messages"] if m["role"] == "tool"]
    assert "region" in results[0]
    assert "revenue" in results[0]
    assert [r.status for r in result.tool_calls] == ["ok", "ok"]


def test_confirm_asks_before_each_call_in_the_terminal(
    shell: Any, server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("y\nn\n"))
    result = run(shell, "--tools area,perimeter --confirm --new")
    assert shell.user_ns["calls"] == [("area", 1.5, 1.5)]
    assert [r.status for r in result.tool_calls] == ["ok", "declined"]
    declined = server.requests[-1].body["messages"][-1]
    assert declined["content"] == "Not run: the user declined this call."


def test_dry_run_lists_the_tools_and_sends_nothing(
    shell: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.run_cell_magic("step", "--tools area,perimeter --dry-run", "Sizes?")
    shown = capsys.readouterr().out
    assert "area(width, height) — Area of a rectangle." in shown
    assert server.requests == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--confirm", "--confirm only makes sense with --tools NAMES"),
        ("--max-steps 3", "--max-steps only makes sense with --tools NAMES"),
        ("--tools area --map frame", "--tools cannot be combined with --map"),
        ("--tools area --replay", "--tools cannot be replayed"),
        ("--tools aera", "--tools: no variable 'aera' in the notebook; did you mean area"),
        ("--tools calls", "--tools: calls is a list, not a function or a DataFrame"),
        ("--tools takes_array", "--tools takes_array: parameter 'values' has type ndarray"),
        ("--tools area --max-steps 0", "argument --max-steps"),
    ],
)
def test_bad_tool_flags_are_one_line_usage_errors_and_send_nothing(
    shell: Any, server: LocalServer, line: str, message: str
) -> None:
    shell.run_cell("import numpy as np\ndef takes_array(values: np.ndarray) -> int:\n  return 0")
    with pytest.raises(UsageError) as caught:
        shell.run_cell_magic("step", line, "prompt")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert server.requests == []


def test_a_turn_cut_by_the_token_limit_runs_none_of_its_calls(
    shell: Any, server: LocalServer
) -> None:
    # 10 reasoning tokens, the call's opening chunk, then the arguments are cut mid-way.
    server.config.reasoning_tokens = 10
    result = run(shell, "--tools area --max-tokens 13 --new")
    sent = server.requests[0]
    assert sent.body["max_tokens"] == 13
    assert len(server.requests) == 1
    assert shell.user_ns["calls"] == []
    assert result.status == "truncated"
    assert result.tool_calls == ()


def test_a_messages_api_follow_up_reads_the_tool_turn_as_text(
    shell: Any, server: LocalServer
) -> None:
    run(shell, "--tools area --new")
    result = run(shell, "--api messages", "And twice as wide?")
    assert result.status == "complete"
    sent = server.requests[-1]
    assert sent.path == "/v1/messages"
    roles = [message["role"] for message in sent.body["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    assert "[called area(" in sent.body["messages"][1]["content"]
    result_text = sent.body["messages"][2]["content"][0]["text"]
    assert result_text.startswith("[result of tool call ")
    assert result_text.endswith("2.25")


def test_long_tool_results_are_shortened_in_memory_not_for_the_answer(
    ip: Any, server: LocalServer
) -> None:
    ip.run_cell("def report(topic: str) -> str:\n    return 'x' * 10_000").raise_error()
    run(ip, "--tools report --new", "Report?")
    assert len(server.requests[-1].body["messages"][-1]["content"]) == 10_000  # read in full
    run(ip, "", "And then?")
    remembered = next(m for m in server.requests[-1].body["messages"] if m["role"] == "tool")
    assert remembered["content"].startswith("x" * 2_000)
    assert remembered["content"].endswith("(shortened in memory: 10,000 chars)")


def test_each_turns_reasoning_is_a_paragraph_and_tool_time_is_not_thinking(
    ip: Any, server: LocalServer
) -> None:
    ip.run_cell(
        "import time\ndef slow(key: str) -> str:\n    time.sleep(0.5)\n    return 'done'"
    ).raise_error()
    result = run(ip, "--tools slow --new", "Go")
    first, second = result.reasoning.split("\n\nThe request is for", 1)
    assert first.startswith("The request is for")
    assert "tool result came back" in second
    assert result.thinking_time < result.elapsed - 0.5


def test_sys_exit_in_a_tool_is_a_result_and_the_call_finishes(ip: Any, server: LocalServer) -> None:
    ip.run_cell("def cli(args: str) -> None:\n    raise SystemExit(3)").raise_error()
    result = run(ip, "--tools cli --new", "Run it")
    assert result.status == "complete"
    assert server.requests[-1].body["messages"][-1]["content"] == "Error: SystemExit: 3"


def test_a_chatty_server_text_before_calls_no_ids_and_empty_arguments(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell("def now() -> str:\n    return 'noon'").raise_error()
    result = run(ip, "--model fault-chatty-tools --tools now --new", "What time is it?")
    assistant, answer = server.requests[-1].body["messages"][1:]
    assert assistant["content"] == "Let me look that up first."
    (call,) = assistant["tool_calls"]
    assert call["id"].startswith("call_")  # made up: the server sent none
    assert call["function"] == {"name": "now", "arguments": "{}"}  # "" arrived
    assert answer == {"role": "tool", "tool_call_id": call["id"], "content": "noon"}
    # The answer is the final turn's; the words said with the call stay with the call.
    assert "Let me look that up first." not in result.answer
    assert result.tool_calls[0].said == "Let me look that up first."
    assert "Let me look that up first." in capsys.readouterr().out  # shown as it came
    run(ip, "--model fault-chatty-tools --tools now", "And now?")
    ids = [c["id"] for m in server.requests[-1].body["messages"] for c in m.get("tool_calls", ())]
    assert len(ids) == len(set(ids)) == 2  # unique across the turns of the thread


def test_the_messages_api_runs_the_same_loop_with_tool_blocks(
    shell: Any, server: LocalServer
) -> None:
    result = run(shell, "--api messages --tools area,perimeter --new")
    first, second = (request.body for request in server.requests)
    assert {request.path for request in server.requests} == {"/v1/messages"}
    assert [tool["name"] for tool in first["tools"]] == ["area", "perimeter"]
    assert first["tools"][0]["input_schema"]["required"] == ["width", "height"]
    assert shell.user_ns["calls"] == [("area", 1.5, 1.5), ("perimeter", 1.5, 1.5)]
    assistant, results = second["messages"][-2:]
    uses = [block for block in assistant["content"] if block["type"] == "tool_use"]
    assert [(use["name"], use["input"]) for use in uses] == [
        ("area", {"width": 1.5, "height": 1.5}),
        ("perimeter", {"width": 1.5, "height": 1.5}),
    ]
    assert results["content"] == [
        {"type": "tool_result", "tool_use_id": uses[0]["id"], "content": "2.25"},
        {
            "type": "tool_result",
            "tool_use_id": uses[1]["id"],
            "content": '{"perimeter": 6.0, "unit": "m"}',
        },
    ]
    assert result.status == "complete"
    assert "2.25" in result.answer
