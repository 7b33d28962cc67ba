"""The local StepFun-compatible server, checked on the wire and through the real openai SDK.

Wire-level checks use ``http.client`` so nothing between the socket and the assertion can
hide a protocol mistake; SDK-level checks show what a client of the real API observes.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import signal
import subprocess
import sys
import threading
import time
from http.client import HTTPConnection, HTTPResponse, IncompleteRead
from typing import Any

import openai
import pytest

from step_magic.core.models import MODELS
from step_magic.server import FAULTS, LocalServer, ReceivedRequest, ServerConfig

from .conftest import LOCAL_KEY as KEY

PROMPT = "Explain <script>alert('x')</script> & {braces} in one line"
USER: list[Any] = [{"role": "user", "content": PROMPT}]
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n fake").decode()


def send(
    server: LocalServer,
    body: Any = None,
    *,
    method: str = "POST",
    path: str = "/v1/chat/completions",
    headers: dict[str, str] | None = None,
    key: str | None = KEY,
) -> tuple[HTTPResponse, bytes]:
    """One raw HTTP request; returns the response and its whole body."""
    connection = HTTPConnection("127.0.0.1", server.port, timeout=10)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        all_headers["Authorization"] = f"Bearer {key}"
    payload = None if body is None else json.dumps(body)
    connection.request(method, path, payload, all_headers)
    response = connection.getresponse()
    return response, response.read()


def chat(model: str = "step-3.7-flash", stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": USER, "stream": stream, **extra}


def events(data: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [line[6:] for line in data.decode().split("\n\n") if line.startswith("data: ")]


def chunks(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(item) for item in events(data) if item != "[DONE]"]


def texts(items: list[dict[str, Any]], field: str) -> str:
    """Join one delta field over chunks, skipping odd shapes the way a robust client does."""
    return "".join(
        (chunk["choices"][0]["delta"] or {}).get(field) or "" for chunk in items if chunk["choices"]
    )


def sdk_stream(client: openai.OpenAI, **request: Any) -> tuple[str, str, list[Any]]:
    """Stream through the SDK; returns reasoning, answer and the chunks."""
    request.setdefault("messages", USER)
    request.setdefault("model", "step-3.7-flash")
    received = list(client.chat.completions.create(stream=True, **request))
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning", None) or "" for c in received)
    answer = "".join(c.choices[0].delta.content or "" for c in received)
    return reasoning, answer, received


def error_of(data: bytes) -> dict[str, Any]:
    body = json.loads(data)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type"}  # StepFun sends no "code"
    error: dict[str, Any] = body["error"]
    return error


# The stream shape


def test_stream_has_stepfun_wire_shape(local: LocalServer) -> None:
    response, data = send(local, chat())
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/event-stream")
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert re.fullmatch(r"[0-9a-f]{32}", response.getheader("X-Trace-Id", ""))
    assert events(data)[-1] == "[DONE]"
    items = chunks(data)
    prompt = items[0]["usage"]["prompt_tokens"]
    for count, chunk in enumerate(items, start=1):
        assert re.fullmatch(r"chatcmpl-[0-9a-f]+", chunk["id"])
        assert chunk["id"] == items[0]["id"]
        assert chunk["object"] == "chat.completion.chunk"
        assert isinstance(chunk["created"], int)
        assert chunk["model"] == "step-3.7-flash"
        assert chunk["agent"] == "step-local"
        assert chunk["usage"] == {
            "prompt_tokens": prompt,
            "completion_tokens": count if count < len(items) else len(items) - 1,
            "total_tokens": prompt + min(count, len(items) - 1),
        }
    body, last = items[:-1], items[-1]
    assert [c["choices"][0]["finish_reason"] for c in body] == [""] * len(body)
    assert body[0]["choices"][0]["delta"]["role"] == "assistant"
    assert {c["choices"][0]["delta"]["role"] for c in body[1:]} == {""}
    assert last["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}


def test_reasoning_comes_before_the_answer_one_token_per_chunk(local: LocalServer) -> None:
    _, data = send(local, chat())
    fields = [next(k for k in c["choices"][0]["delta"] if k != "role") for c in chunks(data)[:-1]]
    first_answer = fields.index("content")
    assert set(fields[:first_answer]) == {"reasoning"}
    assert set(fields[first_answer:]) == {"content"}
    for chunk in chunks(data)[:-1]:
        token = next(v for k, v in chunk["choices"][0]["delta"].items() if k != "role")
        assert len(token.split()) <= 1


def test_trace_ids_differ_per_request_and_errors_carry_one(local: LocalServer) -> None:
    first, _ = send(local, chat(stream=False))
    second, _ = send(local, chat(stream=False))
    missing, data = send(local, method="GET", path="/v1/nowhere")
    assert missing.status == 404
    assert error_of(data)["message"]
    ids = {r.getheader("X-Trace-Id") for r in (first, second, missing)}
    assert len(ids) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", i or "") for i in ids)


def test_connection_is_reused_across_streamed_and_plain_replies(local: LocalServer) -> None:
    connection = HTTPConnection("127.0.0.1", local.port, timeout=10)
    headers = {"Authorization": f"Bearer {KEY}"}
    for stream in (True, False, True):
        connection.request("POST", "/v1/chat/completions", json.dumps(chat(stream=stream)), headers)
        response = connection.getresponse()
        assert response.status == 200
        response.read()
    assert connection.sock is not None  # still the same open socket


# Replies


def test_sdk_sees_reasoning_then_a_markdown_answer_quoting_the_prompt(
    client: openai.OpenAI,
) -> None:
    reasoning, answer, received = sdk_stream(client, reasoning_effort="medium")
    assert "step-3.7-flash" in reasoning
    assert "reasoning effort medium" in reasoning
    assert "\n\n" in reasoning
    assert answer.startswith("## ")
    assert "\n- " in answer
    assert "```python\n" in answer
    assert f'"{PROMPT}"' in answer
    assert received[-1].choices[0].finish_reason == "stop"
    assert received[-1].model_extra["agent"] == "step-local"


def test_reasoning_states_what_the_request_contained(client: openai.OpenAI) -> None:
    long_text = "word " * 40
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Earlier question"},
        {"role": "assistant", "content": "Earlier answer"},
        {
            "role": "user",
            "content": [
                {"type": "video_url", "video_url": {"url": "https://example.com/a.mp4"}},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "stepfile://f1", "detail": "high"}},
                {"type": "text", "text": long_text},
            ],
        },
    ]
    reasoning, answer, _ = sdk_stream(client, messages=messages, reasoning_effort="high")
    assert "reasoning effort high" in reasoning
    assert "2 images and 1 video" in reasoning
    assert "4 messages" in reasoning
    assert "a system prompt was given" in reasoning
    assert 'begins: "word word' in reasoning
    assert "…" in reasoning  # only the beginning is quoted in the reasoning...
    assert f'"{long_text}"' in answer  # ...the answer quotes it in full


def test_no_effort_and_no_system_prompt_are_stated(client: openai.OpenAI) -> None:
    reasoning, _, _ = sdk_stream(client, model="step-3.5-flash")
    assert "no effort given" in reasoning
    assert "no system prompt was given" in reasoning
    assert "0 images and 0 videos" in reasoning


def test_same_request_gives_the_same_text_streamed_or_not(client: openai.OpenAI) -> None:
    first = sdk_stream(client)[:2]
    assert sdk_stream(client)[:2] == first
    plain = client.chat.completions.create(model="step-3.7-flash", messages=USER)
    message = plain.choices[0].message
    assert (getattr(message, "reasoning", None), message.content) == first
    other = sdk_stream(client, messages=[{"role": "user", "content": "Another question"}])
    assert other[0] != first[0]


def test_effort_changes_the_reasoning_length(local: LocalServer) -> None:
    def reasoning_chunks(**extra: Any) -> int:
        _, data = send(local, chat(**extra))
        return sum("reasoning" in c["choices"][0]["delta"] for c in chunks(data))

    low, none, medium, high = (
        reasoning_chunks(reasoning_effort="low"),
        reasoning_chunks(),
        reasoning_chunks(reasoning_effort="medium"),
        reasoning_chunks(reasoning_effort="high"),
    )
    assert low < none < medium < high
    assert 140 <= medium <= 170
    assert 390 <= high <= 420


def test_config_sets_exact_lengths(local: LocalServer) -> None:
    local.config.reasoning_tokens = 7
    local.config.answer_tokens = 300
    _, data = send(local, chat())
    items = chunks(data)
    assert sum("reasoning" in c["choices"][0]["delta"] for c in items) == 7
    assert sum("content" in c["choices"][0]["delta"] for c in items) == 300
    assert items[-1]["usage"]["completion_tokens"] == 307


def test_non_streaming_reply(local: LocalServer) -> None:
    response, data = send(local, chat(stream=False))
    assert response.status == 200
    assert re.fullmatch(r"[0-9a-f]{32}", response.getheader("X-Trace-Id", ""))
    body = json.loads(data)
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert PROMPT in choice["message"]["content"]
    assert "step-3.7-flash" in choice["message"]["reasoning"]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert "cached_tokens" not in usage


def test_images_add_prompt_tokens(local: LocalServer) -> None:
    image = {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}}
    with_image = [{"role": "user", "content": [image, {"type": "text", "text": PROMPT}]}]
    plain = json.loads(send(local, chat(stream=False))[1])["usage"]["prompt_tokens"]
    body = chat(stream=False, messages=with_image)
    assert json.loads(send(local, body)[1])["usage"]["prompt_tokens"] == plain + 400


def test_a_repeated_long_prefix_reports_cached_tokens(local: LocalServer) -> None:
    messages = [{"role": "user", "content": "data " * 400}]
    first = json.loads(send(local, chat(messages=messages))[1].split(b"\n\n")[0][6:])
    second = chunks(send(local, chat(messages=messages))[1])
    assert "cached_tokens" not in first["usage"]
    assert second[-1]["usage"]["cached_tokens"] == second[-1]["usage"]["prompt_tokens"]
    assert all("cached_tokens" in c["usage"] for c in second)


def test_max_tokens_cuts_the_reply_with_length(client: openai.OpenAI) -> None:
    reasoning, answer, received = sdk_stream(client, max_tokens=10)
    assert received[-1].choices[0].finish_reason == "length"
    assert received[-1].usage.completion_tokens == 10
    assert answer == ""
    assert sdk_stream(client)[0].startswith(reasoning)


def test_models_lists_the_model_table(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == list(MODELS)


# Dialects


def test_deepseek_style_request_gets_reasoning_content(local: LocalServer) -> None:
    normal = texts(chunks(send(local, chat())[1]), "reasoning")
    items = chunks(send(local, chat(reasoning_format="deepseek-style"))[1])
    assert texts(items, "reasoning_content") == normal
    assert texts(items, "reasoning") == ""
    plain = json.loads(send(local, chat(stream=False, reasoning_format="deepseek-style"))[1])
    assert plain["choices"][0]["message"]["reasoning_content"] == normal


def test_config_reasoning_content_dialect(local: LocalServer) -> None:
    local.config.reasoning_field = "reasoning_content"
    items = chunks(send(local, chat())[1])
    assert "step-3.7-flash" in texts(items, "reasoning_content")


def test_think_dialect_puts_reasoning_inline(local: LocalServer) -> None:
    normal = chunks(send(local, chat())[1])
    local.config.reasoning_field = "think"
    items = chunks(send(local, chat())[1])
    content = texts(items, "content")
    assert content == (
        f"<think>\n{texts(normal, 'reasoning')}\n</think>\n\n{texts(normal, 'content')}"
    )
    assert texts(items, "reasoning") == ""
    message = json.loads(send(local, chat(stream=False))[1])["choices"][0]["message"]
    assert message == {"role": "assistant", "content": content}


def test_null_before_the_end_when_configured(local: LocalServer) -> None:
    local.config.finish_reason_before_end = None
    items = chunks(send(local, chat())[1])
    assert {c["choices"][0]["finish_reason"] for c in items[:-1]} == {None}
    assert {c["choices"][0]["delta"]["role"] for c in items[1:-1]} == {None}
    assert items[-1]["choices"][0]["finish_reason"] == "stop"


# Authentication


def test_missing_and_wrong_keys_get_401(local: LocalServer, client: openai.OpenAI) -> None:
    response, data = send(local, chat(), key=None)
    assert response.status == 401
    assert error_of(data)["type"] == "invalid_api_key"
    response, data = send(local, chat(), key="sk-wrong")
    assert response.status == 401
    message = error_of(data)["message"]
    assert "api.stepfun.com" in message
    assert "api.stepfun.ai" in message
    wrong = openai.OpenAI(base_url=local.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_any_bearer_is_accepted_without_a_configured_key(local: LocalServer) -> None:
    local.config.api_key = None
    assert send(local, chat(), key="anything")[0].status == 200
    assert send(local, chat(), key=None)[0].status == 401
    assert send(local, chat(), headers={"Authorization": "Bearer "}, key=None)[0].status == 401


def test_the_key_is_never_stored(local: LocalServer, client: openai.OpenAI) -> None:
    sdk_stream(client)
    send(local, chat(), key="sk-wrong-but-secret")
    received = local.requests
    assert received[0].headers["authorization"] == "Bearer <redacted>"
    assert KEY not in repr(received)
    assert "sk-wrong-but-secret" not in repr(received)


def test_requests_are_recorded_as_frozen_snapshots(local: LocalServer) -> None:
    before = time.time()
    send(local, chat(stream=False))
    send(local, method="GET", path="/v1/models")
    snapshot = local.requests
    assert [(r.method, r.path) for r in snapshot] == [
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
    ]
    assert snapshot[0].body == chat(stream=False)
    assert snapshot[1].body is None
    assert snapshot[0].received_at >= before
    assert isinstance(snapshot[0], ReceivedRequest)
    with pytest.raises(AttributeError):
        snapshot[0].path = "/elsewhere"  # type: ignore[misc]
    snapshot.clear()
    assert len(local.requests) == 2
    local.reset()
    assert local.requests == []


# Validation


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, "detail": "low"}}


def with_parts(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [*parts, {"type": "text", "text": "look"}]}]


VIDEO = {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": USER}, "model is required"),
        ({"model": "step-3.7-flash"}, "messages"),
        ({"model": "step-3.7-flash", "messages": []}, "messages"),
        (chat("gpt-4o"), "does not exist"),
        (chat("fault-nonsense"), "Unknown fault"),
        (chat(reasoning_effort="max"), "reasoning_effort must be one of"),
        (chat("step-3.5-flash", reasoning_effort="low"), "reasoning_effort is not supported"),
        (chat("step-3.5-flash-2603", reasoning_effort="medium"), "low or high"),
        (chat("step-3.5-flash", messages=with_parts(image(PNG))), "image"),
        (chat("step-3.5-flash-2603", messages=with_parts(VIDEO)), "video"),
        (chat(messages=with_parts(*[image(PNG)] * 61)), "at most 60"),
        (chat(messages=with_parts(image("data:image/png;base64,@@not base64@@"))), "base64"),
        (chat(messages=with_parts(image("data:text/plain;base64,aGk="))), "image URL"),
        (chat(messages=with_parts(image("ftp://example.com/a.png"))), "image URL"),
        (chat(max_tokens=0), "max_tokens"),
        ({**chat(), "stream": "yes"}, "stream"),
        (chat(messages=[{"role": "robot", "content": "hi"}]), "role"),
    ],
)
def test_invalid_requests_get_400(local: LocalServer, body: Any, fragment: str) -> None:
    response, data = send(local, body)
    assert response.status == 400
    error = error_of(data)
    assert error["type"] == "request_params_invalid"
    assert fragment in error["message"]


def test_sixty_images_are_accepted(local: LocalServer) -> None:
    assert send(local, chat(messages=with_parts(*[image(PNG)] * 60)))[0].status == 200


def test_body_that_is_not_json_gets_400(local: LocalServer) -> None:
    connection = HTTPConnection("127.0.0.1", local.port, timeout=10)
    connection.request("POST", "/v1/chat/completions", b"{oops", {"Authorization": f"Bearer {KEY}"})
    response = connection.getresponse()
    assert response.status == 400
    assert error_of(response.read())["type"] == "request_params_invalid"


# HTTP status faults


@pytest.mark.parametrize(
    ("fault", "status", "error_type"),
    [
        ("400", 400, "request_params_invalid"),
        ("400-context", 400, "request_params_invalid"),
        ("401", 401, "invalid_api_key"),
        ("402", 402, "insufficient_balance"),
        ("403", 403, "permission_denied"),
        ("404", 404, "model_not_found"),
        ("429", 429, "rate_limit_exceeded"),
        ("429-bare", 429, "rate_limit_exceeded"),
        ("451", 451, "censorship_block"),
        ("500", 500, "server_error"),
        ("503", 503, "server_error"),
    ],
)
def test_status_faults(local: LocalServer, fault: str, status: int, error_type: str) -> None:
    response, data = send(local, chat(f"fault-{fault}"))
    assert response.status == status
    assert error_of(data)["type"] == error_type
    assert response.getheader("X-Trace-Id")
    assert (response.getheader("Retry-After") is not None) == (fault == "429")


def test_context_fault_says_context_length(local: LocalServer) -> None:
    assert "context length" in error_of(send(local, chat("fault-400-context"))[1])["message"]


def test_429_carries_the_configured_retry_after(local: LocalServer, client: openai.OpenAI) -> None:
    local.config.retry_after = 2.5
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="fault-429", messages=USER)
    assert caught.value.response.headers["retry-after"] == "2.5"


def test_fault_by_header(local: LocalServer, client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(
            model="step-3.7-flash", messages=USER, extra_headers={"X-Step-Fault": "503"}
        )
    response, data = send(local, chat(), headers={"X-Step-Fault": "bogus"})
    assert response.status == 400
    assert "Unknown fault" in error_of(data)["message"]


def test_config_fault_applies_to_every_request(local: LocalServer) -> None:
    local.config.fault = "451"
    assert [send(local, chat())[0].status for _ in range(3)] == [451, 451, 451]
    assert send(local, method="GET", path="/v1/models")[0].status == 200


def test_config_fault_times_limits_it_to_the_next_n(local: LocalServer) -> None:
    local.config.fault = "500"
    local.config.fault_times = 2
    assert [send(local, chat())[0].status for _ in range(3)] == [500, 500, 200]
    assert local.config.fault_times == 0
    local.config.fault_times = 1
    assert [send(local, chat())[0].status for _ in range(2)] == [500, 200]


def test_fault_model_with_count_fails_then_succeeds(
    local: LocalServer, client: openai.OpenAI
) -> None:
    statuses = [send(local, chat("fault-429x2"))[0].status for _ in range(4)]
    assert statuses == [429, 429, 200, 200]
    assert send(local, chat("fault-500x1"))[0].status == 500
    local.reset()
    assert [send(local, chat("fault-429x2"))[0].status for _ in range(2)] == [429, 429]
    reply = client.chat.completions.create(model="fault-429x2", messages=USER)
    assert reply.model == "step-3.7-flash"  # exhausted: answers as step-3.7-flash


# Body faults


def test_fault_names_are_all_known() -> None:
    assert len(FAULTS) == len(set(FAULTS)) == 31


def test_stall_before_delays_the_headers(local: LocalServer, client: openai.OpenAI) -> None:
    local.config.stall_seconds = 0.3
    started = time.monotonic()
    _, data = send(local, chat("fault-stall-before"))
    assert time.monotonic() - started >= 0.3
    assert events(data)[-1] == "[DONE]"
    local.config.stall_seconds = 5
    impatient = client.with_options(timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model="fault-stall-before", messages=USER)


def test_stall_mid_pauses_after_some_reasoning(client: openai.OpenAI, local: LocalServer) -> None:
    local.config.stall_seconds = 1.5
    stream = client.chat.completions.create(model="fault-stall-mid", messages=USER, stream=True)
    arrivals = [(time.monotonic(), chunk) for chunk in stream]
    # A busy machine adds gaps of its own (and a client lagging behind can swallow part of
    # the stall), so the test looks for a long gap that follows a reasoning chunk rather
    # than taking the longest gap for the stall.
    paused = [
        earlier[1]
        for earlier, later in itertools.pairwise(arrivals)
        if later[0] - earlier[0] >= 0.75
    ]
    assert any(getattr(chunk.choices[0].delta, "reasoning", None) for chunk in paused)
    assert arrivals[-1][1].choices[0].finish_reason == "stop"


def test_drop_reasoning_truncates_the_stream(local: LocalServer, client: openai.OpenAI) -> None:
    received: list[Any] = []
    stream = client.chat.completions.create(
        model="fault-drop-reasoning", messages=USER, stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        received.extend(stream)
    assert received
    assert all(getattr(c.choices[0].delta, "reasoning", None) for c in received)
    with pytest.raises(IncompleteRead):
        send(local, chat("fault-drop-reasoning"))
    with pytest.raises(IncompleteRead):
        send(local, chat("fault-drop-reasoning", stream=False))


def test_drop_answer_truncates_mid_answer(client: openai.OpenAI) -> None:
    received: list[Any] = []
    stream = client.chat.completions.create(model="fault-drop-answer", messages=USER, stream=True)
    with pytest.raises(openai.APIConnectionError):
        received.extend(stream)
    answer = "".join(c.choices[0].delta.content or "" for c in received)
    full = sdk_stream(client)[1]
    assert answer
    assert full.startswith(answer)
    assert len(answer) < len(full)


def test_malformed_event_mid_stream(local: LocalServer, client: openai.OpenAI) -> None:
    payloads = events(send(local, chat("fault-malformed"))[1])
    bad = payloads.index("{not json")
    assert 0 < bad < len(payloads) - 2
    assert payloads[-1] == "[DONE]"
    with pytest.raises(ValueError, match="property name"):
        list(client.chat.completions.create(model="fault-malformed", messages=USER, stream=True))


def test_unknown_shapes_are_harmless_to_a_robust_client(local: LocalServer) -> None:
    normal = chunks(send(local, chat())[1])
    odd = chunks(send(local, chat("fault-unknown-shape"))[1])
    assert any(c["choices"] == [] for c in odd)
    assert any(c["choices"] and c["choices"][0]["delta"] is None for c in odd)
    assert any("meta" in c and "meta" in c["choices"][0]["delta"] for c in odd if c["choices"])
    for field in ("reasoning", "content"):
        assert texts(odd, field) == texts(normal, field)


def test_sdk_survives_unknown_shapes(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="fault-unknown-shape", messages=USER, stream=True)
    answer = "".join(
        c.choices[0].delta.content or "" for c in stream if c.choices and c.choices[0].delta
    )
    assert PROMPT in answer


def test_empty_stream_is_only_done(local: LocalServer, client: openai.OpenAI) -> None:
    assert events(send(local, chat("fault-empty"))[1]) == ["[DONE]"]
    stream = client.chat.completions.create(model="fault-empty", messages=USER, stream=True)
    assert list(stream) == []


def test_no_done_ends_the_body_after_the_finish(local: LocalServer) -> None:
    _, data = send(local, chat("fault-no-done"))
    payloads = events(data)
    assert "[DONE]" not in payloads
    assert json.loads(payloads[-1])["choices"][0]["finish_reason"] == "stop"


def test_reasoning_only(client: openai.OpenAI) -> None:
    reasoning, answer, received = sdk_stream(client, model="fault-reasoning-only")
    assert reasoning
    assert answer == ""
    assert received[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize(
    ("fault", "finish"), [("length", "length"), ("content-filter", "content_filter")]
)
def test_partial_answers(client: openai.OpenAI, fault: str, finish: str) -> None:
    full = sdk_stream(client)[1]
    _, answer, received = sdk_stream(client, model=f"fault-{fault}")
    assert received[-1].choices[0].finish_reason == finish
    assert answer
    assert full.startswith(answer)
    assert len(answer) < len(full)


def test_error_event_mid_stream(local: LocalServer, client: openai.OpenAI) -> None:
    payloads = events(send(local, chat("fault-error-event"))[1])
    assert json.loads(payloads[-1]) == {
        "error": {
            "message": "The server had an error while generating the reply.",
            "type": "server_error",
        }
    }
    assert len(payloads) > 1
    with pytest.raises(openai.APIError, match="error while generating"):
        list(client.chat.completions.create(model="fault-error-event", messages=USER, stream=True))


# Speed, pacing and stopping


def test_twenty_thousand_chunks_stream_quickly(local: LocalServer) -> None:
    local.config.reasoning_tokens = 20_000
    local.config.answer_tokens = 0
    started = time.monotonic()
    _, data = send(local, chat())
    elapsed = time.monotonic() - started
    items = chunks(data)
    assert len(items) == 20_001
    assert items[-1]["usage"]["completion_tokens"] == 20_000
    assert elapsed < 3


def test_tokens_per_second_paces_the_stream(local: LocalServer) -> None:
    local.config.tokens_per_second = 50
    local.config.reasoning_tokens = 10
    local.config.answer_tokens = 0
    started = time.monotonic()
    send(local, chat())
    assert 0.18 <= time.monotonic() - started < 2


def test_first_byte_delay(local: LocalServer) -> None:
    local.config.first_byte_delay = 0.25
    started = time.monotonic()
    assert send(local, chat(stream=False))[0].status == 200
    assert time.monotonic() - started >= 0.25


@pytest.mark.parametrize("fault", ["stall-before", "stall-mid"])
def test_stop_during_a_stall_returns_promptly(fault: str) -> None:
    server = LocalServer(ServerConfig(stall_seconds=30, fault=fault)).start()
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            send(server, chat())
            outcome.append(None)
        except (OSError, IncompleteRead) as error:
            outcome.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.3)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.5
    caller.join(5)
    assert not caller.is_alive()
    assert len(outcome) == 1
    assert outcome[0] is not None  # the reply was cut, not completed
    server.stop()  # stopping twice is harmless


# Command line


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_until_stopped(stop_signal: signal.Signals) -> None:
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "step_magic.server", "--port", "0"),  # no port race
            *("--api-key", "cli-key", "--reasoning-tokens", "5", "--answer-tokens", "3"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell without job control starts background jobs with SIGINT ignored, and the
        # child would inherit that: give it the terminal's default, as for a teacher.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.fullmatch(
            r"step-magic local server on http://127\.0\.0\.1:(\d+)/v1 — "
            r"answers are simulated, no network used",
            line.strip(),
        )
        assert found is not None, line
        port = int(found[1])
        cli = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="cli-key")
        reasoning, answer, _ = sdk_stream(cli.with_options(max_retries=0))
        assert len(reasoning.split()) == 5
        assert len(answer.split()) == 3
        process.send_signal(stop_signal)
        _, errors = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0
    assert "Traceback" not in errors


def test_cli_reports_a_busy_port(local: LocalServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "step_magic.server", "--port", str(local.port)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{local.port}" in result.stderr
