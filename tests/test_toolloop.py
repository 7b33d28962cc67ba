"""One round of the tool loop, with a view that records what it is shown."""

from __future__ import annotations

import json
import signal

from step_magic.core.request import ChatRequest
from step_magic.core.toolrecords import ToolCall, ToolRecord
from step_magic.engine.toolloop import ToolLoop, question
from step_magic.engine.turns import unoffered
from step_magic.tools.schema import function_tool
from step_magic.tools.toolbox import Toolbox


def test_confirm_shows_the_whole_call() -> None:
    arguments = json.dumps({"reason": "tidy up " * 50, "table": "production"})
    asked = question(ToolCall("c1", "remove_rows", arguments))
    assert asked.endswith("table='production')? [y/N] ")


def test_a_ctrl_c_between_two_calls_stops_the_second() -> None:
    ran: list[str] = []

    def first() -> str:
        """First."""
        ran.append("first")
        return "1"

    def second() -> str:
        """Second."""
        ran.append("second")
        return "2"

    interrupts: list[int] = []

    class InterruptAfterFirst:
        """A view on which the user presses Ctrl-C as the first call's result shows."""

        def tool(self, record: ToolRecord) -> None:
            if record.status == "ok":
                interrupts.append(signal.SIGINT)

    loop = ToolLoop(
        Toolbox([function_tool("first", first), function_tool("second", second)], budget_chars=100)
    )
    request = ChatRequest("m", ({"role": "user", "content": "go"},))
    calls = (ToolCall("a", "first", "{}"), ToolCall("b", "second", "{}"))
    loop.run_calls(request, "", calls, InterruptAfterFirst(), interrupts, step=1, reasoning_at=0)
    assert ran == ["first"]
    assert [record.name for record in loop.records] == ["first"]


def test_at_most_sixteen_calls_run_in_one_turn_and_every_call_is_answered() -> None:
    ran: list[int] = []

    def count(n: int) -> int:
        """Count."""
        ran.append(n)
        return n

    class Quiet:
        def tool(self, record: ToolRecord) -> None:
            """Shows nothing."""

    loop = ToolLoop(Toolbox([function_tool("count", count)], budget_chars=100))
    request = ChatRequest("m", ({"role": "user", "content": "go"},))
    calls = tuple(ToolCall(f"c{i}", "count", json.dumps({"n": i})) for i in range(20))
    sent = loop.run_calls(request, "", calls, Quiet(), [], step=1, reasoning_at=0)
    assert ran == list(range(16))
    answers = [m for m in sent.messages if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in answers] == [f"c{i}" for i in range(20)]
    assert answers[-1]["content"].startswith("Not run: at most 16 calls per turn")
    assert loop.records[-1].status == "not run (over 16 calls in one turn)"


def test_the_note_for_tools_not_offered_is_one_short_line_whatever_the_names() -> None:
    names = ["a\nb", "x" * 500, *(f"t{i}" for i in range(8))]
    note = unoffered(names, any_offered=True)
    assert "\n" not in note
    assert len(note) < 200
    assert note.startswith("the model called a b, ")
    assert note.endswith(" and 5 more, not among the tools offered: not run")


def test_stop_from_another_thread_interrupts_the_running_call_and_starts_no_other() -> None:
    """What a cancelled ``ask_async`` does while a tool runs in its worker thread: the record
    says interrupted at once, and stays so when the function returns later."""
    import threading

    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def slow() -> str:
        """Slow."""
        started.set()
        release.wait(10)
        ran.append("slow")
        return "done"

    def second() -> str:
        """Second."""
        ran.append("second")
        return "2"

    class Quiet:
        def tool(self, record: ToolRecord) -> None:
            """Shows nothing."""

    loop = ToolLoop(
        Toolbox([function_tool("slow", slow), function_tool("second", second)], budget_chars=100)
    )
    request = ChatRequest("m", ({"role": "user", "content": "go"},))
    calls = (ToolCall("a", "slow", "{}"), ToolCall("b", "second", "{}"))
    interrupts: list[int] = []
    worker = threading.Thread(
        target=loop.run_calls,
        args=(request, "", calls, Quiet(), interrupts),
        kwargs={"step": 1, "reasoning_at": 0},
    )
    worker.start()
    assert started.wait(10)
    loop.stop(interrupts)
    assert [record.status for record in loop.records] == ["interrupted"]
    release.set()
    worker.join(10)
    assert ran == ["slow"]  # the function ran to its end; the second never started
    assert [record.status for record in loop.records] == ["interrupted"]
    assert interrupts == [signal.SIGINT]
