"""A third-party server that speaks the Responses API, llm-mock-api, as an independent check.

llm-mock-api (pinned in the test extra) is written by others after OpenAI's Responses API: its
reasoning arrives as summary deltas, each call's arguments both as a delta and in the finished
item, and its ids, usage and event order are its own. What passes here does not merely pass
against our server's habits. It runs on a real socket, its event loop on a thread of its own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import step_magic

mock_api = pytest.importorskip("llm_mock_api")


@pytest.fixture(scope="module")
def mock_server() -> Iterator[Any]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="llm-mock-api", daemon=True)
    thread.start()
    options = mock_api.MockServerOptions(default_latency=0, default_chunk_size=3)
    server = mock_api.MockServer(options)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(30)
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture
def mock(mock_server: Any) -> Any:
    mock_server.reset()
    return mock_server


def ask(server: Any, prompt: str, **keywords: Any) -> step_magic.StepResult:
    base = f"{server.url}/v1"
    return step_magic.ask(
        prompt, api="responses", base_url=base, api_key="test", history=False, display=False,
        **keywords,
    )  # fmt: skip


def test_reasoning_summaries_and_the_answer_stream_with_usage_and_id(mock: Any) -> None:
    reply = mock_api.ReplyObject(
        text="The sky scatters blue light most.", reasoning="Rayleigh scattering, briefly."
    )
    mock.when("sky").reply(reply)
    result = ask(mock, "Why is the sky blue?", effort="high")
    assert result.status == "complete"
    assert result.reasoning == "Rayleigh scattering, briefly."
    assert result.answer == "The sky scatters blue light most."
    assert result.usage is not None
    assert result.usage.total == result.usage.prompt + result.usage.completion
    assert (result.completion_id or "").startswith("resp_")


def test_tools_are_called_once_and_answered(mock: Any) -> None:
    months: list[str] = []

    def revenue(month: str) -> float:
        """Revenue of one month (YYYY-MM)."""
        months.append(month)
        return 12.5

    mock.when_tool_result("call_march").reply(mock_api.ReplyObject(text="March made 12.5."))
    call = mock_api.ToolCall(id="call_march", name="revenue", args={"month": "2026-03"})
    mock.when("March").reply(mock_api.ReplyObject(tools=[call]))
    result = ask(mock, "What was March revenue?", tools=[revenue])
    assert result.status == "complete"
    assert months == ["2026-03"]  # the arguments were not doubled by the finished item
    assert result.answer == "March made 12.5."
    assert [record.name for record in result.tool_calls] == ["revenue"]


def test_an_error_status_is_one_line_naming_the_server(mock: Any) -> None:
    mock.next_error(400, "Bad input for this mock.")
    with pytest.raises(step_magic.StepAPIError) as caught:
        ask(mock, "Hi")
    assert "400" in str(caught.value)
    assert "Bad input for this mock." in str(caught.value)
    assert "\n" not in str(caught.value)
