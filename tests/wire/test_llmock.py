"""A third-party server from the package registry, llmock, as an independent check of the client.

llmock (pinned in the test extra) is written by others and imitates OpenAI's and Anthropic's
APIs with its own stream shapes, tool calls and fault injection, so what passes here does not
merely pass against our own server's habits. It runs in-process on a real socket.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import step_magic

llmock_testing = pytest.importorskip("llmock.testing")
scenarios = pytest.importorskip("llmock.scenarios")


@pytest.fixture(scope="module")
def llmock() -> Iterator[Any]:
    with llmock_testing.LLMockServer() as server:
        yield server


@pytest.fixture
def mock(llmock: Any) -> Any:
    llmock.state.scenarios.clear()
    return llmock


def ask(server: Any, prompt: str, **keywords: Any) -> step_magic.StepResult:
    api = keywords.get("api", "chat")
    base = server.base_url("openai") if api == "chat" else server.base_url("anthropic") + "/v1"
    return step_magic.ask(prompt, base_url=base, api_key="test", history=False, **keywords)


def test_a_plain_call_with_effort_streams_an_answer_with_usage(mock: Any) -> None:
    result = ask(mock, "Why is the sky blue?", effort="high")
    assert result.status == "complete"
    assert "Why is the sky blue?" in result.answer
    assert result.usage is not None  # asked for with stream_options, as OpenAI wants
    assert result.usage.completion > 0


def test_tools_are_called_and_answered(mock: Any) -> None:
    months: list[str] = []

    def revenue(month: str) -> float:
        """Revenue of one month (YYYY-MM)."""
        months.append(month)
        return 12.5

    result = ask(mock, "What was March revenue?", tools=[revenue])
    assert result.status == "complete"
    assert [record.name for record in result.tool_calls] == ["revenue"]
    assert result.tool_calls[0].status == "ok"
    assert months


def test_the_messages_api_is_read_like_anthropic_sends_it(mock: Any) -> None:
    result = ask(mock, "Hi", api="messages")
    assert result.status == "complete"
    assert "Hi" in result.answer
    assert result.usage is not None


def test_rate_limits_and_server_errors_are_retried(mock: Any) -> None:
    mock.state.scenarios.add(scenarios.Fail(429, retry_after=0.1), scenarios.Fail(503, times=1))
    result = ask(mock, "Hi after a wait")
    assert result.status == "complete"


def test_a_dropped_stream_keeps_the_partial_answer_and_fails_in_one_line(mock: Any) -> None:
    mock.state.scenarios.add(scenarios.StreamFault("disconnect", after_chunks=2))
    with pytest.raises(step_magic.StepAPIError) as caught:
        ask(mock, "Tell me a long story", max_retries=0)
    assert "\n" not in str(caught.value)
    assert caught.value.result.status == "failed"


def test_a_truncated_stream_is_marked_incomplete(mock: Any) -> None:
    mock.state.scenarios.add(scenarios.StreamFault("truncate", after_chunks=2))
    result = ask(mock, "Tell me a long story")
    assert result.status == "incomplete"


def test_malformed_tool_arguments_go_back_to_the_model_as_an_error(mock: Any) -> None:
    mock.state.scenarios.add(scenarios.ToolFault("malformed_arguments"))

    def revenue(month: str) -> float:
        """Revenue of one month (YYYY-MM)."""
        return 12.5

    result = ask(mock, "What was March revenue?", tools=[revenue])
    assert result.tool_calls[0].status == "error"
    assert result.status == "complete"
