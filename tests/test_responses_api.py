"""The Responses API path (``--api responses``): real server, real HTTP, parity with chat.

``ResponsesStream`` is a drop-in for the other two streams (the parity tests of
``test_messages_api.py`` run it too); here: its request body, its events on the bundled
server's ``/v1/responses``, hand-written streams in shapes our server does not send
(summary-only reasoning, arguments only in the finished item, ``response.failed``), and every
feature a user reaches through ``--api responses``: tools, memory, images, ``--map``,
compare, background calls, replay, the dry run and ``step-magic doctor``.
"""

from __future__ import annotations

import base64
import json
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest

import step_magic
from step_magic.core.errors import StepAPIError
from step_magic.core.events import AnswerDelta, Finished, ReasoningDelta
from step_magic.core.request import ChatRequest
from step_magic.core.settings import Settings
from step_magic.server import LocalServer
from step_magic.wire.chatwire import ReplyStream
from step_magic.wire.responses import ResponsesStream

from .conftest import TEST_KEY
from .sse_peer import SSEPeer

MODEL = "step-3.7-flash"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()


def settings(base_url: str) -> Settings:
    return Settings(MODEL, base_url, TEST_KEY, timeout=10)


def ask(text: str = "Hi", **extra: Any) -> ChatRequest:
    system = extra.pop("system", None)
    parts = extra.pop("parts", None)
    messages = [{"role": "system", "content": system}] if system else []
    content = [*parts, {"type": "text", "text": text}] if parts else text
    return ChatRequest(
        extra.pop("model", MODEL), (*messages, {"role": "user", "content": content}), **extra
    )


def events(stream: Any, base_url: str, request: ChatRequest) -> list[Any]:
    return list(stream(settings(base_url), request))


def text(found: list[Any], kind: type) -> str:
    return "".join(event.text for event in found if isinstance(event, kind))


def posted(server: LocalServer) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.path.endswith("/responses")]


# --- the request and the reply on the bundled server ------------------------------


def test_the_same_request_yields_the_same_text_as_chat_token_by_token(server: LocalServer) -> None:
    request = ask("Compare both paths", system="Be brief.", effort="high")
    chat = events(ReplyStream, server.base_url, request)
    responses = events(ResponsesStream, server.base_url, request)
    assert responses[:-1] == chat[:-1]
    done, chat_done = responses[-1], chat[-1]
    assert isinstance(done, Finished)
    assert isinstance(chat_done, Finished)
    assert (done.finish_reason, done.usage) == (chat_done.finish_reason, chat_done.usage)
    assert done.completion_id is not None
    assert done.completion_id.startswith("resp_")
    assert done.trace_id


def test_the_body_is_openai_s_responses_shape_with_only_what_was_set(server: LocalServer) -> None:
    image = {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "high"},
    }
    request = ask(
        "look", system="Be brief.", effort="low", max_tokens=300, top_p=0.5, parts=[image]
    )
    events(ResponsesStream, server.base_url, request)
    received = server.requests[-1]
    assert (received.method, received.path) == ("POST", "/v1/responses")
    assert received.body == {
        "model": MODEL,
        "input": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "input_image",
                        "image_url": f"data:image/png;base64,{PNG}",
                        "detail": "high",
                    },
                    {"type": "input_text", "text": "look"},
                ],
            }
        ],
        "instructions": "Be brief.",
        "reasoning": {"effort": "low"},
        "max_output_tokens": 300,
        "top_p": 0.5,
        "stream": True,
    }
    assert "x-api-key" not in received.headers  # a Bearer token only, as OpenAI's API takes


@pytest.mark.parametrize(
    ("fault", "finish", "status"),
    [("length", "length", "truncated"), ("content-filter", "content_filter", "filtered")],
)
def test_an_incomplete_response_is_truncated_or_filtered(
    api_env: LocalServer, fault: str, finish: str, status: str
) -> None:
    result = step_magic.ask("Hi", api="responses", model=f"fault-{fault}", display=False)
    assert (result.finish_reason, result.status) == (finish, status)
    assert result.answer  # what arrived is kept


def test_video_is_refused_before_anything_is_sent(server: LocalServer) -> None:
    video = {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}}
    with pytest.raises(
        StepAPIError, match="Responses API cannot carry video_url parts; use --api chat"
    ):
        events(ResponsesStream, server.base_url, ask(parts=[video]))
    assert server.requests == []


def test_the_server_refuses_what_the_responses_api_does_not_take(server: LocalServer) -> None:
    def status_of(body: dict[str, Any]) -> tuple[int, str]:
        connection = HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request(
            "POST", "/v1/responses", json.dumps(body), {"Authorization": f"Bearer {TEST_KEY}"}
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read())["error"]["message"]

    assert status_of({"model": "step-3.5-flash", "input": "Hi"}) == (
        400, "The Responses API does not support the model step-3.5-flash."
    )  # fmt: skip
    assert status_of({"model": MODEL, "input": []})[0] == 400
    assert (
        "function tool"
        in status_of({"model": MODEL, "input": "Hi", "tools": [{"type": "web_search"}]})[1]
    )
    assert (
        "reasoning.effort"
        in status_of({"model": MODEL, "input": "Hi", "reasoning": {"effort": "max"}})[1]
    )


# --- shapes our server does not send, from a raw peer ------------------------------


def sse(*payloads: dict[str, Any], event_lines: bool = False) -> bytes:
    out = []
    for payload in payloads:
        head = f"event: {payload['type']}\n" if event_lines else ""
        out.append(f"{head}data: {json.dumps(payload)}\n\n")
    return "".join(out).encode()


COMPLETED = {
    "type": "response.completed",
    "response": {
        "id": "resp_peer",
        "status": "completed",
        "usage": {
            "input_tokens": 9,
            "output_tokens": 4,
            "total_tokens": 13,
            "input_tokens_details": {"cached_tokens": 0},
        },
    },
}


def test_summary_reasoning_is_read_and_not_doubled_when_raw_text_comes_too() -> None:
    summary_only = sse(
        {"type": "response.reasoning_summary_text.delta", "delta": "Weigh"},
        {"type": "response.output_text.delta", "delta": "Yes."},
        COMPLETED,
    )
    both = sse(
        {"type": "response.reasoning_text.delta", "delta": "Raw thought."},
        {"type": "response.reasoning_summary_text.delta", "delta": "A summary."},
        {"type": "response.output_text.delta", "delta": "Yes."},
        COMPLETED,
        event_lines=True,
    )
    for body, reasoning in ((summary_only, "Weigh"), (both, "Raw thought.")):
        with SSEPeer([body]) as peer:
            found = events(ResponsesStream, peer.base_url, ask())
        assert (text(found, ReasoningDelta), text(found, AnswerDelta)) == (reasoning, "Yes.")
        done = found[-1]
        assert isinstance(done, Finished)
        assert (done.finish_reason, done.completion_id) == ("stop", "resp_peer")
        assert done.usage is not None
        assert (done.usage.prompt, done.usage.completion, done.usage.cached) == (9, 4, None)


def test_a_call_whose_arguments_come_only_in_the_finished_item_is_whole() -> None:
    item = {"type": "function_call", "call_id": "call_1", "name": "revenue", "arguments": ""}
    body = sse(
        {"type": "response.output_item.added", "output_index": 0, "item": item},
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": item | {"arguments": '{"month": "03"}'},
        },
        COMPLETED,
    )
    with SSEPeer([body]) as peer:
        done = events(ResponsesStream, peer.base_url, ask())[-1]
    assert isinstance(done, Finished)
    assert done.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in done.tool_calls] == [
        ("call_1", "revenue", '{"month": "03"}')
    ]


@pytest.mark.parametrize(
    "failure",
    [
        {
            "type": "response.failed",
            "response": {
                "status": "failed",
                "error": {"code": "server_error", "message": "The model broke."},
            },
        },
        {"type": "error", "code": "server_error", "message": "The model broke."},
    ],
    ids=["response.failed", "error"],
)
def test_a_failed_response_is_one_line_after_the_partial_text(failure: dict[str, Any]) -> None:
    body = sse({"type": "response.output_text.delta", "delta": "Half"}, failure)
    found: list[Any] = []
    with SSEPeer([body]) as peer, pytest.raises(StepAPIError) as caught:
        found.extend(ResponsesStream(settings(peer.base_url), ask()))
    assert text(found, AnswerDelta) == "Half"
    assert "The model broke." in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_stream_that_stops_without_its_last_event_is_incomplete(api_env: LocalServer) -> None:
    with SSEPeer([sse({"type": "response.output_text.delta", "delta": "Half"})]) as peer:
        result = step_magic.ask("Hi", api="responses", base_url=peer.base_url, display=False)
    assert (result.status, result.answer) == ("incomplete", "Half")


# --- every feature through --api responses ------------------------------


def test_tools_run_and_their_results_go_back_as_function_call_output(api_env: LocalServer) -> None:
    asked: list[str] = []

    def revenue(month: str) -> float:
        """Revenue of one month."""
        asked.append(month)
        return 12.5

    result = step_magic.ask(
        "What was March revenue?", api="responses", tools=[revenue], display=False
    )
    assert result.status == "complete"
    assert asked
    second = posted(api_env)[-1]
    kinds = [item.get("type", "message") for item in second["input"]]
    assert kinds == ["message", "function_call", "function_call_output"]
    assert second["tools"][0]["name"] == "revenue"
    assert second["input"][1]["call_id"] == second["input"][2]["call_id"]


def test_a_conversation_sends_its_earlier_turns_as_input_items(api_env: LocalServer) -> None:
    with step_magic.Chat(api="responses") as chat:
        first = chat.ask("My name is Ada.", display=False)
        chat.ask("What is my name?", display=False)
    turns = posted(api_env)[-1]["input"]
    assert [item["role"] for item in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == first.answer


def test_map_compare_and_background_calls_speak_it(api_env: LocalServer) -> None:
    rows = step_magic.map_rows(["a", "b"], "Say {item}", api="responses", display=False)
    assert all("You wrote" in row["answer"] for row in rows)
    comparison = step_magic.compare("Hi", efforts=["low", "high"], api="responses", display=False)
    assert [r.status for r in comparison.results] == ["complete", "complete"]
    pending = step_magic.ask("Hi", api="responses", background=True, display=False)
    assert pending.wait(30).status == "complete"
    assert len(posted(api_env)) == 5


def test_a_recorded_reply_replays_without_the_server(api_env: LocalServer, tmp_path: Path) -> None:
    cassette = tmp_path / "lesson.jsonl"
    live = step_magic.ask("Hi", api="responses", cassette=cassette, display=False)
    before = len(api_env.requests)
    replayed = step_magic.ask("Hi", api="responses", cassette=cassette, replay=True, display=False)
    assert (replayed.answer, replayed.replayed) == (live.answer, True)
    assert len(api_env.requests) == before


def test_the_dry_run_shows_the_responses_body_and_where_it_goes(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell(
        "%%step --api responses --dry-run --system 'Be brief.' --no-memory\nHi", store_history=False
    ).raise_error()
    shown = capsys.readouterr().out
    assert "/v1/responses" in shown
    assert "--- system\nBe brief." in shown
    assert "--- user\nHi" in shown
    assert '"input"' not in shown  # the conversation is shown as turns, not as raw JSON


def test_doctor_checks_the_responses_api(server: LocalServer) -> None:
    from step_magic.cli_doctor import examine

    rows = {f.check.strip(): f for f in examine(settings(server.base_url), timeout=30)}
    found = rows["Responses API"]
    assert found.verdict == "ok"
    assert found.observed.endswith("chars, stop ['completed']")
    assert found.cost > 0
