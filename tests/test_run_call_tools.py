"""``run_call`` with tools, against the bundled server: where each tool call is recorded, and
what ends the loop between two model turns (a Ctrl-C inside a tool, a failed turn).

The bundled server calls the tools it is offered (the first two at once when there are
several), then answers from their results; with the ``tool-loop`` fault it calls them again
every turn, so a step limit is reached.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from step_magic.core.errors import StepAPIError, StepInterrupted
from step_magic.core.events import Event, EventSource
from step_magic.core.request import ChatRequest, build_request
from step_magic.core.settings import Settings
from step_magic.core.toolrecords import ToolRecord
from step_magic.display.frontend import QuietView
from step_magic.engine.runner import run_call
from step_magic.engine.toolloop import ToolLoop
from step_magic.server import LocalServer
from step_magic.tools.schema import function_tool
from step_magic.tools.toolbox import Toolbox
from step_magic.wire.transport import open_stream

from .conftest import TEST_KEY


def settings_for(server: LocalServer, **changes: Any) -> Settings:
    settings = Settings(model="step-3.7-flash", base_url=server.base_url, api_key=TEST_KEY)
    return replace(settings, **changes)


def loop_of(*functions: Callable[..., Any], max_steps: int = 8) -> ToolLoop:
    tools = [function_tool(func.__name__, func) for func in functions]
    return ToolLoop(Toolbox(tools, budget_chars=2000), max_steps=max_steps)


def asking(settings: Settings, loop: ToolLoop) -> ChatRequest:
    return build_request(settings, "What is the weather in Paris?", tools=loop.toolbox.specs())


class ShowsTools(QuietView):
    """A view that keeps the reasoning it was shown and, for each tool call as it starts,
    its step and place in the reasoning next to how much reasoning was on screen then."""

    def __init__(self) -> None:
        self.reasoning = ""
        self.started: list[tuple[str, int, int, int]] = []
        self.shown: list[tuple[str, str]] = []  # (name, status) of every tool update

    def update(self, reasoning: str, answer: str, elapsed: float) -> None:
        self.reasoning += reasoning

    def tool(self, record: ToolRecord) -> None:
        self.shown.append((record.name, record.status))
        if record.status == "running":
            self.started.append((record.name, record.step, record.at, len(self.reasoning)))


def test_each_tool_call_is_recorded_with_its_turn_and_its_place_in_the_reasoning(
    server: LocalServer,
) -> None:
    calls: list[str] = []

    def weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return "sunny, 21 °C"

    settings = settings_for(server, model="fault-tool-loop")  # tools called every turn
    loop, view = loop_of(weather, max_steps=3), ShowsTools()

    result, error = run_call(settings, asking(settings, loop), view, tools=loop)

    assert error is None
    assert result.status == "max-steps"
    assert len(calls) == 2  # turns 1 and 2 ran their call; turn 3's is listed, not run
    steps = [(record.step, record.status) for record in result.tool_calls]
    assert steps == [(1, "ok"), (2, "ok"), (3, "not run (--max-steps reached)")]
    # Each call sits where the model made it: after all the reasoning shown before it.
    assert [(name, step, at) for name, step, at, _ in view.started] == [
        ("weather", 1, view.started[0][3]),
        ("weather", 2, view.started[1][3]),
    ]
    first, second, unrun = (record.at for record in result.tool_calls)
    assert 0 < first < second <= unrun == len(result.reasoning)


def test_ctrl_c_inside_a_tool_stops_the_call_there_and_runs_no_other_tool(
    server: LocalServer,
) -> None:
    ran: list[str] = []

    def weather(city: str) -> str:
        """The weather in a city (the user gives up waiting for it)."""
        ran.append("weather")
        signal.raise_signal(signal.SIGINT)  # Ctrl-C, pressed while the function runs
        return "never returned"

    def forecast(city: str) -> str:
        """Tomorrow's forecast for a city."""
        ran.append("forecast")
        return "rain"

    settings = settings_for(server)
    loop, view = loop_of(weather, forecast), ShowsTools()  # two tools: called in one turn

    result, error = run_call(settings, asking(settings, loop), view, tools=loop)

    assert isinstance(error, StepInterrupted)
    assert result.status == "interrupted"
    assert error.result is result
    assert ran == ["weather"]  # the second call of the same turn never starts
    assert [(r.name, r.status) for r in result.tool_calls] == [("weather", "interrupted")]
    assert view.shown == [("weather", "running"), ("weather", "interrupted")]
    assert len(server.requests) == 1  # no turn is sent after the Ctrl-C


class FailsAfterItsLastEvent:
    """The server's real reply stream, read by a parser with a bug that strikes once the
    reply's last event (with its tool calls) was delivered."""

    def __init__(self, source: EventSource) -> None:
        self.source = source
        self.trace_id = source.trace_id

    def __iter__(self) -> Iterator[Event]:
        yield from self.source
        raise RuntimeError("the reply could not be closed")

    def close(self) -> None:
        self.source.close()


def test_the_tool_calls_of_a_turn_that_failed_are_not_run(server: LocalServer) -> None:
    ran: list[str] = []

    def weather(city: str) -> str:
        """The weather in a city."""
        ran.append(city)
        return "sunny"

    settings = settings_for(server)
    loop = loop_of(weather)
    request = asking(settings, loop)
    stream = FailsAfterItsLastEvent(open_stream(settings, request))

    result, error = run_call(settings, request, ShowsTools(), stream=stream, tools=loop)

    assert isinstance(error, StepAPIError)
    assert result.status == "failed"
    assert "unexpected failure while reading the reply: RuntimeError(" in str(error)
    assert ran == []  # a failed turn's calls are not trusted: nothing of the user's runs
    assert result.tool_calls == ()
    assert len(server.requests) == 1
