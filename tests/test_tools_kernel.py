"""``--tools`` in a real kernel: the calls in the live panel and the saved form, Ctrl-C
during a call, and ``--confirm`` answered through the frontend's input box."""

from __future__ import annotations

import json
from typing import Any

from step_magic.server import LocalServer

SLOW_TOOL = '''
import time
ran = []

def slow_count(table: str) -> int:
    """Count the rows of a table (slowly)."""
    print("tool started", flush=True)
    time.sleep(30)
    ran.append(table)
    return 42

def row_count(table: str) -> int:
    """Count the rows of a table."""
    ran.append(table)
    return 42
'''


def test_tool_calls_show_in_the_panel_and_in_the_saved_form(
    kernel: Any, server: LocalServer
) -> None:
    kernel.execute(SLOW_TOOL)
    run = kernel.execute("%%step --tools row_count --new\nHow many rows?")
    assert run.error() is None
    live = run.panel_text("r")
    assert "⚙ row_count(table='example')" in live
    assert "↳ " in live
    assert "→ 42" in live
    details, answer, footer = run.final_outputs().values()
    assert "⚙ row_count(table=&#x27;example&#x27;)" in details["text/html"]
    assert "1 tool call" in details["text/html"]
    assert "row_count(table='example') — " in details["text/plain"]
    assert "42" in answer["text/markdown"]
    assert "2 model turns" in footer["text/plain"]
    # The final form holds no widget view: it reads the same without a kernel.
    assert all("application/vnd.jupyter.widget-view+json" not in b for b in (details, answer))


def test_ctrl_c_during_a_tool_stops_the_loop_and_keeps_what_was_shown(
    kernel: Any, server: LocalServer
) -> None:
    kernel.execute(SLOW_TOOL)
    run = kernel.execute(
        "%%step --tools slow_count --new\nHow many rows?",
        interrupt_on_text="tool started",
        timeout=25,
    )
    error = run.error()
    assert error is not None
    assert error["ename"] == "StepInterrupted"
    assert len(server.requests) == 1  # no turn after the interrupted call
    details, _answer, footer = run.final_outputs().values()
    assert "slow_count(table=&#x27;example&#x27;) — interrupted" in details["text/html"]
    assert "interrupted" in footer["text/plain"]
    state = kernel.execute("print(ran, _step.status, _step.tool_calls[0].status)")
    assert state.stdout() == "[] interrupted interrupted\n"


def test_confirm_asks_in_the_frontend_and_a_no_is_respected(
    kernel: Any, server: LocalServer
) -> None:
    kernel.execute(SLOW_TOOL)
    run = kernel.execute("%%step --tools row_count --confirm --new\nHow many rows?", stdin="n")
    assert run.error() is None
    assert server.requests[-1].body["messages"][-1]["content"] == (
        "Not run: the user declined this call."
    )
    state = kernel.execute("print(ran, _step.tool_calls[0].status)")
    assert state.stdout() == "[] declined\n"


def test_no_reasoning_still_lists_the_calls(kernel: Any, server: LocalServer) -> None:
    kernel.execute(SLOW_TOOL)
    run = kernel.execute("%%step --tools row_count --no-reasoning --new\nHow many rows?")
    assert run.error() is None
    calls, _answer, _footer = run.final_outputs().values()
    assert calls["text/plain"].startswith("⚙ row_count(table='example') — ")
    assert "<summary>1 tool call</summary>" in calls["text/html"]
    assert "Thought" not in calls["text/html"]  # the reasoning itself stays hidden


def test_ctrl_c_during_the_next_model_turn_keeps_the_calls_made(
    kernel: Any, server: LocalServer
) -> None:
    kernel.execute(SLOW_TOOL)
    server.config.tokens_per_second = 50  # each turn takes a few seconds
    run = kernel.execute(
        "%%step --tools row_count --new\nHow many rows?",
        # The second turn's reasoning says so once the result is back.
        interrupt_on_text="came back",
        timeout=25,
    )
    error = run.error()
    assert error is not None
    assert error["ename"] == "StepInterrupted"
    assert len(server.requests) == 2
    details, _answer, footer = run.final_outputs().values()
    assert "row_count(table=&#x27;example&#x27;) — " in details["text/html"]
    assert "→ 42" in details["text/html"]
    assert "interrupted" in footer["text/plain"]
    state = kernel.execute("print(ran, _step.status, _step.tool_calls[0].status)")
    assert state.stdout() == "['example'] interrupted ok\n"


def test_words_said_with_the_calls_move_from_the_answer_to_the_calls(
    kernel: Any, server: LocalServer
) -> None:
    kernel.execute(SLOW_TOOL)
    run = kernel.execute("%%step --model fault-chatty-tools --tools row_count --new\nRows?")
    assert run.error() is None
    live = run.of_type("display_data", "comm_msg")  # answer blocks and tail, as they came
    assert any("Let me look that up first." in json.dumps(m["content"]) for m in live)
    details, answer, _footer = run.final_outputs().values()
    assert "“Let me look that up first.”" in details["text/html"]
    assert "Let me look that up first." not in answer["text/markdown"]
