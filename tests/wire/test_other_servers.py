"""Servers that are not StepFun: the stream shapes and strictness of other compatible servers.

The bundled server imitates them with faults (``fault-usage-on-request`` answers with OpenAI's
usage semantics, ``fault-strict-params`` refuses any field it does not know), and the client
is driven exactly as a user would drive it, through ``step_magic.ask``.
"""

from __future__ import annotations

import pytest

import step_magic
from step_magic.server import LocalServer
from step_magic.wire import chat

from ..conftest import TEST_KEY


def test_usage_comes_from_servers_that_send_it_only_when_asked(api_env: LocalServer) -> None:
    result = step_magic.ask("Count my tokens", model="fault-usage-on-request")
    assert result.usage is not None
    assert result.usage.completion > 0
    assert api_env.requests[-1].body["stream_options"] == {"include_usage": True}


def test_a_server_refusing_stream_options_is_asked_again_without_and_remembered(
    local: LocalServer,
) -> None:
    chat.REFUSED_USAGE_OPTION.discard(local.base_url)
    local.config.api_key = TEST_KEY
    ask = {"model": "fault-strict-params", "base_url": local.base_url, "api_key": TEST_KEY}
    first = step_magic.ask("Hi", history=False, **ask)
    assert first.status == "complete"
    assert ["stream_options" in r.body for r in local.requests] == [True, False]

    step_magic.ask("Again", history=False, **ask)
    assert "stream_options" not in local.requests[-1].body  # remembered: one request
    assert len(local.requests) == 3
    chat.REFUSED_USAGE_OPTION.discard(local.base_url)


def test_stepfun_itself_is_never_sent_stream_options() -> None:
    from step_magic.core.request import ChatRequest
    from step_magic.core.settings import Settings

    request = ChatRequest("step-3.7-flash", ({"role": "user", "content": "Hi"},))
    own = (
        "https://api.stepfun.ai/v1",
        "https://api.stepfun.com/v1",
        "https://eu.api.stepfun.ai/v1",
    )
    for url in own:
        assert "stream_options" not in chat.chat_body(Settings("m", url, "k"), request)
    for url in ("http://127.0.0.1:9/v1", "https://evilstepfun.ai/v1"):  # not StepFun's
        body = chat.chat_body(Settings("m", url, "k"), request)
        assert body["stream_options"] == {"include_usage": True}


def test_a_server_that_ignores_stream_true_is_read_as_one_reply(api_env: LocalServer) -> None:
    result = step_magic.ask("Why is the sky blue?", model="fault-non-streamed", effort="low")
    assert result.status == "complete"
    assert result.reasoning
    assert "Why is the sky blue?" in result.answer
    assert result.usage is not None
    assert result.completion_id.startswith("chatcmpl-")
    assert result.trace_id


def test_an_html_page_is_named_by_its_content_type(api_env: LocalServer) -> None:
    with pytest.raises(step_magic.StepAPIError) as caught:
        step_magic.ask("Hi", model="fault-html-page")
    message = str(caught.value)
    assert "answered with text/html" in message
    assert "empty reply" not in message
    assert caught.value.trace_id


def test_reasoning_closed_by_a_think_tag_it_never_opened_is_reasoning(
    api_env: LocalServer,
) -> None:
    """R1-style templates open ``<think>`` in the prompt: the reply only closes it."""
    api_env.config.reasoning_field = "think-close"
    api_env.config.tokens_per_second = 400  # several flushes, so the move happens live
    result = step_magic.ask("Why is the sky blue?", effort="high")
    assert "effort high" in result.reasoning
    assert "</think>" not in result.answer
    assert "</think>" not in result.reasoning
    assert result.answer.lstrip().startswith("## Simulated answer")

    kinds = [event.kind for event in step_magic.stream("Again?", effort="high")]
    assert "rethought" in kinds  # a reader of the events is told to move what it got
    assert kinds.index("rethought") > kinds.index("answer")


def test_an_answer_that_talks_about_think_tags_is_left_alone() -> None:
    from step_magic.wire.thinktags import ThinkTagSplitter

    splitter = ThinkTagSplitter()
    pieces = ["Write <thi", "nk> before and </think> after."]
    out = [splitter.feed(piece) for piece in pieces] + [splitter.finish()]
    assert "".join(answer for _, answer in out) == "".join(pieces)
    assert not splitter.rethought
