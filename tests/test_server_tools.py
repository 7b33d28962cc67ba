"""Tool calling on the local server, through the real openai SDK and on the wire.

A request that offers tools gets OpenAI-style tool calls back (streamed as an opening delta
and small argument pieces), then, once tool results come back, an answer that quotes them.
Wire-level checks use ``http.client`` so the exact chunk shapes are what is asserted.
"""

from __future__ import annotations

import json
import time
from http.client import HTTPConnection, HTTPResponse
from typing import Any

import openai
import pytest

from step_magic.server import FAULTS, LocalServer
from step_magic.server.arguments import example_arguments

from .conftest import LOCAL_KEY as KEY

MODEL = "step-3.7-flash"
QUESTION = "What is the weather in Oslo, and what time is it there?"
USER: list[Any] = [{"role": "user", "content": QUESTION}]

WEATHER_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 3},
        "verbose": {"type": "boolean"},
    },
    "required": ["city", "unit", "days"],
}
WEATHER_ARGUMENTS = {"city": "example", "unit": "celsius", "days": 3}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": WEATHER_PARAMETERS,
    },
}
TIME = {"type": "function", "function": {"name": "get_time"}}  # no parameters: {} arguments
SEARCH = {
    "type": "function",
    "function": {
        "name": "web-search",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "number"}},
            "required": ["query", "limit"],
        },
    },
}
TOOLS = [WEATHER, TIME, SEARCH]


def send(
    server: LocalServer, body: Any, headers: dict[str, str] | None = None
) -> tuple[HTTPResponse, bytes]:
    """One raw chat completion request; returns the response and its whole body."""
    connection = HTTPConnection("127.0.0.1", server.port, timeout=10)
    all_headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    connection.request(
        "POST", "/v1/chat/completions", json.dumps(body), all_headers | (headers or {})
    )
    response = connection.getresponse()
    return response, response.read()


def chat(tools: Any = TOOLS, stream: bool = True, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": USER, "stream": stream, "tools": tools, **extra}


def events(data: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [line[6:] for line in data.decode().split("\n\n") if line.startswith("data: ")]


def chunks(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(item) for item in events(data) if item != "[DONE]"]


def tool_deltas(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every ``delta.tool_calls`` entry of a stream, in order (one per chunk here)."""
    entries = []
    for chunk in items:
        calls = chunk["choices"][0]["delta"].get("tool_calls")
        if calls is not None:
            assert len(calls) == 1
            entries.append(calls[0])
    return entries


def sdk_calls(client: openai.OpenAI, **request: Any) -> tuple[str, str, list[dict[str, str]], Any]:
    """Stream through the SDK and put the calls together by index, as a client must.

    Returns the reasoning, the answer, the calls (id, name, arguments) and the last chunk.
    """
    request.setdefault("messages", USER)
    request.setdefault("model", MODEL)
    received = list(client.chat.completions.create(stream=True, **request))
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning", None) or "" for c in received)
    answer = "".join(c.choices[0].delta.content or "" for c in received)
    calls: dict[int, dict[str, str]] = {}
    for chunk in received:
        for piece in chunk.choices[0].delta.tool_calls or ():
            call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += piece.id or ""
            call["name"] += (piece.function and piece.function.name) or ""
            call["arguments"] += (piece.function and piece.function.arguments) or ""
    return reasoning, answer, [calls[i] for i in sorted(calls)], received[-1]


def answered(calls: list[dict[str, str]], results: list[str]) -> list[dict[str, Any]]:
    """The conversation after the assistant made ``calls`` and each got its result."""
    assistant = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
            for call in calls
        ],
    }
    replies = [
        {"role": "tool", "tool_call_id": call["id"], "content": result}
        for call, result in zip(calls, results, strict=True)
    ]
    return [*USER, assistant, *replies]


# The stream of a reply that calls tools


def test_streamed_call_opens_then_sends_its_arguments_in_pieces(local: LocalServer) -> None:
    response, data = send(local, chat(tools=[WEATHER]))
    assert response.status == 200
    assert events(data)[-1] == "[DONE]"
    items = chunks(data)
    entries = tool_deltas(items)
    opening, pieces = entries[0], entries[1:]
    assert opening["index"] == 0
    assert opening["id"].startswith("call_")
    assert len(opening["id"]) > len("call_")
    assert opening["type"] == "function"
    assert opening["function"] == {"name": "get_weather", "arguments": ""}
    assert len(pieces) >= 4
    for piece in pieces:
        assert piece == {"index": 0, "function": {"arguments": piece["function"]["arguments"]}}
        assert 1 <= len(piece["function"]["arguments"]) <= 10
    arguments = "".join(piece["function"]["arguments"] for piece in pieces)
    assert arguments == json.dumps(WEATHER_ARGUMENTS)
    assert json.loads(arguments) == WEATHER_ARGUMENTS


def test_tool_call_chunks_follow_the_reasoning_and_carry_usage(local: LocalServer) -> None:
    items = chunks(send(local, chat())[1])
    kinds = [
        "tool" if "tool_calls" in c["choices"][0]["delta"] else "reasoning"
        for c in items[:-1]
        if "reasoning" in c["choices"][0]["delta"] or "tool_calls" in c["choices"][0]["delta"]
    ]
    assert len(kinds) == len(items) - 1  # nothing but reasoning and tool calls
    first_tool = kinds.index("tool")
    assert set(kinds[:first_tool]) == {"reasoning"}
    assert set(kinds[first_tool:]) == {"tool"}
    assert not any(c["choices"][0]["delta"].get("content") for c in items)
    prompt = items[0]["usage"]["prompt_tokens"]
    for count, chunk in enumerate(items[:-1], start=1):
        assert chunk["usage"] == {
            "prompt_tokens": prompt,
            "completion_tokens": count,
            "total_tokens": prompt + count,
        }
        assert chunk["choices"][0]["finish_reason"] == ""
    assert items[0]["choices"][0]["delta"]["role"] == "assistant"
    assert items[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
    assert items[-1]["usage"]["completion_tokens"] == len(items) - 1


def test_null_before_the_end_applies_to_tool_call_chunks(local: LocalServer) -> None:
    local.config.finish_reason_before_end = None
    items = chunks(send(local, chat())[1])
    assert {c["choices"][0]["finish_reason"] for c in items[:-1]} == {None}
    assert items[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_two_tools_offered_are_called_in_parallel(client: openai.OpenAI) -> None:
    reasoning, answer, calls, last = sdk_calls(client, tools=TOOLS)
    assert [call["name"] for call in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == WEATHER_ARGUMENTS
    assert calls[1]["arguments"] == "{}"
    assert calls[0]["id"] != calls[1]["id"]
    assert all(call["id"].startswith("call_") for call in calls)
    assert answer == ""
    assert last.choices[0].finish_reason == "tool_calls"
    assert "3 tools: get_weather, get_time, web-search" in reasoning
    assert "I call get_weather and get_time in parallel" in reasoning
    assert QUESTION in reasoning


def test_one_tool_offered_gets_one_call(client: openai.OpenAI) -> None:
    reasoning, _, calls, last = sdk_calls(client, tools=[SEARCH])
    assert calls == [
        {
            "id": calls[0]["id"],
            "name": "web-search",
            "arguments": json.dumps({"query": "example", "limit": 1.5}),
        }
    ]
    assert "I call web-search," in reasoning
    assert last.choices[0].finish_reason == "tool_calls"


def test_the_same_request_gets_the_same_calls(client: openai.OpenAI) -> None:
    streamed = sdk_calls(client, tools=TOOLS)[2]
    assert sdk_calls(client, tools=TOOLS)[2] == streamed
    plain = client.chat.completions.create(model=MODEL, messages=USER, tools=TOOLS)
    message = plain.choices[0].message
    assert message.tool_calls is not None
    assert [
        {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
        for c in message.tool_calls
    ] == streamed
    assert getattr(message, "reasoning", None) == sdk_calls(client, tools=TOOLS)[0]


# tool_choice


def test_tool_choice_naming_a_tool_calls_only_that_one(client: openai.OpenAI) -> None:
    choice = {"type": "function", "function": {"name": "web-search"}}
    reasoning, _, calls, _ = sdk_calls(client, tools=TOOLS, tool_choice=choice)
    assert [call["name"] for call in calls] == ["web-search"]
    assert "tool_choice names web-search" in reasoning


def test_tool_choice_none_gets_an_answer(client: openai.OpenAI) -> None:
    _, answer, calls, last = sdk_calls(client, tools=TOOLS, tool_choice="none")
    assert calls == []
    assert answer.startswith("## Simulated answer")
    assert QUESTION in answer
    assert last.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("choice", ["auto", "required"])
def test_auto_and_required_call_tools(client: openai.OpenAI, choice: str) -> None:
    _, answer, calls, _ = sdk_calls(client, tools=[TIME, WEATHER], tool_choice=choice)
    assert [call["name"] for call in calls] == ["get_time", "get_weather"]
    assert answer == ""


def test_no_tools_gets_the_usual_answer(client: openai.OpenAI) -> None:
    _, answer, calls, last = sdk_calls(client)
    assert calls == []
    assert QUESTION in answer
    assert last.choices[0].finish_reason == "stop"


# Non-streaming


def test_non_streaming_reply_has_the_openai_message_shape(local: LocalServer) -> None:
    response, data = send(local, chat(stream=False))
    assert response.status == 200
    body = json.loads(data)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert set(message) == {"role", "content", "reasoning", "tool_calls"}
    assert message["role"] == "assistant"
    assert message["content"] is None
    assert "get_weather and get_time" in message["reasoning"]
    weather, clock = message["tool_calls"]
    assert weather == {
        "id": weather["id"],
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps(WEATHER_ARGUMENTS)},
    }
    assert clock["function"] == {"name": "get_time", "arguments": "{}"}
    assert weather["id"].startswith("call_")
    streamed = tool_deltas(chunks(send(local, chat())[1]))
    assert [entry["id"] for entry in streamed if "id" in entry] == [weather["id"], clock["id"]]
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


# After the tool results


def test_the_answer_quotes_each_tool_result_by_tool_name(client: openai.OpenAI) -> None:
    calls = sdk_calls(client, tools=TOOLS)[2]
    long_result = "Oslo: light rain, " + "x" * 400
    messages = answered(calls, [long_result, "14:05 CEST"])
    reasoning, answer, again, last = sdk_calls(client, messages=messages, tools=TOOLS)
    assert again == []
    assert last.choices[0].finish_reason == "stop"
    assert "2 tool results came back" in reasoning
    weather_id, time_id = calls[0]["id"], calls[1]["id"]
    assert f'- `get_weather` (call `{weather_id}`): "{long_result[:200]}…"' in answer
    assert f'- `get_time` (call `{time_id}`): "14:05 CEST"' in answer
    assert long_result[:201] not in answer  # only the beginning is quoted
    assert answer.startswith("## Simulated answer")
    assert f'You wrote: "{QUESTION}"' in answer


def test_a_tool_result_in_text_parts_is_read_and_one_result_is_counted(
    client: openai.OpenAI,
) -> None:
    calls = sdk_calls(client, tools=[SEARCH])[2]
    messages = answered(calls, ["ignored"])
    messages[-1]["content"] = [{"type": "text", "text": "three hits"}]
    reasoning, answer, _, _ = sdk_calls(client, messages=messages, tools=[SEARCH])
    assert "1 tool result came back" in reasoning
    assert f'- `web-search` (call `{calls[0]["id"]}`): "three hits"' in answer


def test_a_new_user_message_calls_tools_again(client: openai.OpenAI) -> None:
    calls = sdk_calls(client, tools=[TIME])[2]
    messages = [
        *answered(calls, ["12:00"]),
        {"role": "assistant", "content": "It is noon."},
        {"role": "user", "content": "And now?"},
    ]
    _, answer, again, _ = sdk_calls(client, messages=messages, tools=[TIME])
    assert [call["name"] for call in again] == ["get_time"]
    assert again[0]["id"] != calls[0]["id"]
    assert answer == ""


def test_tool_results_count_in_the_prompt_tokens(local: LocalServer) -> None:
    calls = [{"id": "call_1", "name": "get_time", "arguments": "{}"}]

    def prompt_tokens(result: str) -> int:
        body = chat(stream=False, tools=[TIME], messages=answered(calls, [result]))
        usage: int = json.loads(send(local, body)[1])["usage"]["prompt_tokens"]
        return usage

    assert prompt_tokens("y" * 4000) == prompt_tokens("y") + 1000 - 1
    without_tools = json.loads(send(local, chat(stream=False, tools=None))[1])["usage"]
    with_tools = json.loads(send(local, chat(stream=False))[1])["usage"]
    assert with_tools["prompt_tokens"] > without_tools["prompt_tokens"]


# The tool-loop fault


def test_tool_loop_fault_calls_tools_at_every_step(client: openai.OpenAI) -> None:
    assert "tool-loop" in FAULTS
    messages: list[dict[str, Any]] = list(USER)
    seen: list[str] = []
    for _ in range(4):  # a client's step limit is what ends this
        reasoning, answer, calls, last = sdk_calls(
            client, model="fault-tool-loop", messages=messages, tools=[TIME]
        )
        assert answer == ""
        assert last.choices[0].finish_reason == "tool_calls"
        assert [call["name"] for call in calls] == ["get_time"]
        seen.append(calls[0]["id"])
        messages = [*messages, *answered(calls, [f"step {len(seen)}"])[len(USER) :]]
    assert len(set(seen)) == 4
    assert "3 tool results came back, and I call tools again" in reasoning


def test_tool_loop_fault_by_header_and_without_tools(local: LocalServer) -> None:
    messages = answered([{"id": "call_9", "name": "get_time", "arguments": "{}"}], ["noon"])
    loop = {"X-Step-Fault": "tool-loop"}
    body = json.loads(send(local, chat(stream=False, messages=messages), loop)[1])
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    normal = json.loads(send(local, chat(stream=False, messages=messages))[1])
    assert normal["choices"][0]["finish_reason"] == "stop"
    plain = json.loads(send(local, chat(stream=False, tools=None), loop)[1])
    assert plain["choices"][0]["finish_reason"] == "stop"
    assert QUESTION in plain["choices"][0]["message"]["content"]


def test_tool_loop_fault_by_config(local: LocalServer) -> None:
    local.config.fault = "tool-loop"
    messages = answered([{"id": "call_9", "name": "get_time", "arguments": "{}"}], ["noon"])
    items = chunks(send(local, chat(messages=messages))[1])
    assert items[-1]["choices"][0]["finish_reason"] == "tool_calls"


# The chatty-tools fault: tool calls as less tidy servers send them

CHATTY = "Let me look that up first."


def test_chatty_tools_streams_text_then_calls_without_ids(local: LocalServer) -> None:
    assert "chatty-tools" in FAULTS
    items = chunks(send(local, chat(model="fault-chatty-tools", tools=[WEATHER, TIME]))[1])
    deltas = [item["choices"][0]["delta"] for item in items[:-1]]
    kinds = ["tool" if "tool_calls" in d else "content" if "content" in d else "r" for d in deltas]
    first_content, first_tool = kinds.index("content"), kinds.index("tool")
    assert set(kinds[:first_content]) == {"r"}
    assert set(kinds[first_content:first_tool]) == {"content"}
    assert set(kinds[first_tool:]) == {"tool"}
    assert "".join(d["content"] for d in deltas if "content" in d) == CHATTY
    entries = tool_deltas(items)
    assert all("id" not in entry for entry in entries)
    assert [entry["index"] for entry in entries] == [0] * (len(entries) - 1) + [1]
    assert entries[-1] == {
        "index": 1,
        "type": "function",
        "function": {"name": "get_time", "arguments": ""},
    }
    weather = "".join(entry["function"]["arguments"] for entry in entries[:-1])
    assert json.loads(weather) == WEATHER_ARGUMENTS
    assert items[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_chatty_tools_through_the_sdk_streamed_and_not(client: openai.OpenAI) -> None:
    request: dict[str, Any] = {"model": "fault-chatty-tools", "tools": [WEATHER, TIME]}
    reasoning, answer, calls, last = sdk_calls(client, **request)
    assert answer == CHATTY
    assert calls == [
        {"id": "", "name": "get_weather", "arguments": json.dumps(WEATHER_ARGUMENTS)},
        {"id": "", "name": "get_time", "arguments": ""},
    ]
    assert last.choices[0].finish_reason == "tool_calls"
    assert "I call get_weather and get_time in parallel" in reasoning
    plain = client.chat.completions.create(messages=USER, **request)
    message = plain.choices[0].message
    assert plain.choices[0].finish_reason == "tool_calls"
    assert message.content == CHATTY
    assert message.tool_calls is not None
    assert [
        (c.id, c.function.name, c.function.arguments)
        for c in message.tool_calls
        if c.type == "function"
    ] == [(None, "get_weather", json.dumps(WEATHER_ARGUMENTS)), (None, "get_time", "")]


def test_chatty_tools_non_streamed_calls_have_no_id_key(local: LocalServer) -> None:
    body = chat(stream=False, tools=[TIME, SEARCH])
    message = json.loads(send(local, body, {"X-Step-Fault": "chatty-tools"})[1])["choices"][0]
    assert message["finish_reason"] == "tool_calls"
    clock, search = message["message"]["tool_calls"]
    assert clock == {"type": "function", "function": {"name": "get_time", "arguments": ""}}
    assert "id" not in search
    assert json.loads(search["function"]["arguments"]) == {"query": "example", "limit": 1.5}


def test_chatty_tools_follow_up_with_made_up_ids_gets_a_normal_answer(
    client: openai.OpenAI,
) -> None:
    request: dict[str, Any] = {"model": "fault-chatty-tools", "tools": [WEATHER, TIME]}
    calls = sdk_calls(client, **request)[2]
    made_up = [
        {**call, "id": f"call_client_{index}", "arguments": call["arguments"] or "{}"}
        for index, call in enumerate(calls)
    ]
    messages: Any = answered(made_up, ["Oslo: 12 degrees", "14:05 CEST"])
    messages[len(USER)]["content"] = CHATTY  # a client keeps the text it was sent
    reasoning, answer, again, last = sdk_calls(client, messages=messages, **request)
    assert again == []
    assert last.choices[0].finish_reason == "stop"
    assert answer.startswith("## Simulated answer")
    assert CHATTY not in answer
    assert '- `get_time` (call `call_client_1`): "14:05 CEST"' in answer
    assert "2 tool results came back" in reasoning
    plain = client.chat.completions.create(messages=messages, **request)
    assert plain.choices[0].message.content == answer
    assert plain.choices[0].message.tool_calls is None


def test_chatty_tools_leaves_requests_without_tools_alone(local: LocalServer) -> None:
    chatty = {"X-Step-Fault": "chatty-tools"}
    faulted = json.loads(send(local, chat(stream=False, tools=None), chatty)[1])
    normal = json.loads(send(local, chat(stream=False, tools=None))[1])
    assert faulted["choices"][0] == normal["choices"][0]
    assert QUESTION in faulted["choices"][0]["message"]["content"]


# Delivery faults and limits still apply to tool calls


def test_drop_answer_cuts_the_stream_in_the_middle_of_the_calls(client: openai.OpenAI) -> None:
    received: list[Any] = []
    stream = client.chat.completions.create(
        model="fault-drop-answer", messages=USER, tools=TOOLS, stream=True
    )
    with pytest.raises(openai.APIConnectionError):
        received.extend(stream)
    arguments = "".join(
        (piece.function and piece.function.arguments) or ""
        for chunk in received
        for piece in chunk.choices[0].delta.tool_calls or ()
    )
    whole = json.dumps(WEATHER_ARGUMENTS) + "{}"
    assert any(chunk.choices[0].delta.tool_calls for chunk in received)
    assert whole.startswith(arguments)
    assert len(arguments) < len(whole)


def test_malformed_fault_still_strikes_a_tool_call_reply(local: LocalServer) -> None:
    payloads = events(send(local, chat(model="fault-malformed"))[1])
    assert "{not json" in payloads
    assert json.loads(payloads[-2])["choices"][0]["finish_reason"] == "tool_calls"


def test_max_tokens_cuts_the_calls_with_length(local: LocalServer) -> None:
    full = chunks(send(local, chat(tools=[WEATHER]))[1])
    items = chunks(send(local, chat(tools=[WEATHER], max_tokens=len(full) - 3))[1])
    assert items[-1]["choices"][0]["finish_reason"] == "length"
    body = json.loads(send(local, chat(stream=False, tools=[WEATHER], max_tokens=len(full) - 3))[1])
    call = body["choices"][0]["message"]["tool_calls"][0]
    assert json.dumps(WEATHER_ARGUMENTS).startswith(call["function"]["arguments"])
    assert call["function"]["arguments"] != json.dumps(WEATHER_ARGUMENTS)


def test_tokens_per_second_paces_tool_call_chunks(local: LocalServer) -> None:
    local.config.reasoning_tokens = 0
    local.config.tokens_per_second = 50
    started = time.monotonic()
    items = chunks(send(local, chat(tools=[WEATHER]))[1])
    assert len(tool_deltas(items)) == len(items) - 1 >= 5
    assert time.monotonic() - started >= (len(items) - 1) / 50 * 0.9
    assert items[0]["choices"][0]["delta"]["role"] == "assistant"


def test_messages_api_is_unaffected_by_the_tool_loop_fault(local: LocalServer) -> None:
    connection = HTTPConnection("127.0.0.1", local.port, timeout=10)
    body = {"model": "fault-tool-loop", "max_tokens": 500, "messages": USER}
    connection.request("POST", "/v1/messages", json.dumps(body), {"x-api-key": KEY})
    reply = json.loads(connection.getresponse().read())
    assert reply["stop_reason"] == "end_turn"
    assert [block["type"] for block in reply["content"]] == ["thinking", "text"]


# Requests refused with 400


def tool(name: Any = "ok", **function: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, **function}}


ASSISTANT_CALL = {
    "role": "assistant",
    "content": "",
    "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "ok", "arguments": "{}"}}
    ],
}
ANSWER_A = {"role": "tool", "tool_call_id": "call_a", "content": "x"}


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"tools": {"type": "function"}}, "tools must be an array"),
        ({"tools": [tool(), "get_time"]}, "tools[1] must be an object"),
        ({"tools": [tool(), {"type": "retrieval", "function": {"name": "x"}}]}, "tools[1]"),
        ({"tools": [{"type": "function"}]}, "tools[0].function must be an object"),
        ({"tools": [tool("has space")]}, "tools[0].function.name"),
        ({"tools": [tool(), tool("x" * 65)]}, "tools[1].function.name"),
        ({"tools": [tool("")]}, "tools[0].function.name"),
        ({"tools": [tool(7)]}, "tools[0].function.name"),
        ({"tools": [tool(description=3)]}, "tools[0].function.description"),
        ({"tools": [tool(parameters="object")]}, "tools[0].function.parameters"),
        ({"tools": [tool()], "tool_choice": "any"}, "tool_choice must be"),
        ({"tools": [tool()], "tool_choice": {"type": "function"}}, "tool_choice must be"),
        (
            {"tools": [tool()], "tool_choice": {"type": "function", "function": {"name": "no"}}},
            "'no', which is not in tools",
        ),
        ({"tool_choice": "required"}, "needs at least one tool"),
    ],
)
def test_bad_tool_definitions_and_choices_get_400(
    local: LocalServer, extra: dict[str, Any], fragment: str
) -> None:
    response, data = send(local, {"model": MODEL, "messages": USER, **extra})
    assert response.status == 400
    error = json.loads(data)["error"]
    assert error["type"] == "request_params_invalid"
    assert fragment in error["message"]


ORPHAN = "messages with role 'tool' must be a response to a preceding message with 'tool_calls'"


@pytest.mark.parametrize(
    ("messages", "fragment"),
    [
        ([*USER, {"role": "tool", "tool_call_id": "call_a", "content": "hi"}], ORPHAN),
        (
            [*USER, ASSISTANT_CALL, {"role": "tool", "tool_call_id": "call_b", "content": "hi"}],
            ORPHAN,
        ),
        (
            [{"role": "tool", "tool_call_id": "call_a", "content": "x"}, *USER, ASSISTANT_CALL],
            ORPHAN,  # the call comes after its result
        ),
        ([*USER, ASSISTANT_CALL, *USER], "did not have response messages before messages[2]"),
        ([*USER, ASSISTANT_CALL], "did not have response messages before messages[2]: call_a"),
        (
            [*USER, ASSISTANT_CALL, ANSWER_A, *USER, ANSWER_A],
            ORPHAN,  # answered twice, the second time after another question
        ),
        ([*USER, ASSISTANT_CALL, {"role": "tool", "content": "hi"}], "messages[2].tool_call_id"),
        (
            [*USER, ASSISTANT_CALL, {"role": "tool", "tool_call_id": 5, "content": "hi"}],
            "messages[2].tool_call_id",
        ),
        (
            [*USER, ASSISTANT_CALL, {"role": "tool", "tool_call_id": "call_a", "content": None}],
            "messages[2].content must be a string or text parts",
        ),
        (
            [
                *USER,
                ASSISTANT_CALL,
                {
                    "role": "tool",
                    "tool_call_id": "call_a",
                    "content": [{"type": "image_url", "image_url": {"url": "https://e.x/a.png"}}],
                },
            ],
            "messages[2].content must be a string or text parts",
        ),
        (
            [*USER, {**ASSISTANT_CALL, "tool_calls": [{"id": "call_a", "type": "function"}]}],
            "messages[1].tool_calls[0] must be",
        ),
        ([*USER, {**ASSISTANT_CALL, "tool_calls": "call_a"}], "messages[1].tool_calls must be"),
        (
            [{**USER[0], "tool_calls": ASSISTANT_CALL["tool_calls"]}],
            "only assistant messages may carry tool_calls",
        ),
    ],
)
def test_bad_tool_messages_get_400(local: LocalServer, messages: list[Any], fragment: str) -> None:
    response, data = send(local, {"model": MODEL, "messages": messages, "tools": [tool()]})
    assert response.status == 400
    error = json.loads(data)["error"]
    assert error["type"] == "request_params_invalid"
    assert fragment in error["message"]


def test_sdk_raises_bad_request_for_an_orphan_tool_message(client: openai.OpenAI) -> None:
    orphan = [*USER, {"role": "tool", "tool_call_id": "call_zz", "content": "42"}]
    with pytest.raises(openai.BadRequestError, match="must be a response to a preceding"):
        client.chat.completions.create(model=MODEL, messages=orphan, tools=TOOLS)


def test_an_sdk_message_dump_goes_back_as_history(client: openai.OpenAI) -> None:
    """The usual agent loop appends ``message.model_dump()``: nulls and extras are fine."""
    first = client.chat.completions.create(model=MODEL, messages=USER, tools=TOOLS)
    message = first.choices[0].message
    assert message.tool_calls is not None
    results = [
        {"role": "tool", "tool_call_id": call.id, "content": f"result of {call.function.name}"}
        for call in message.tool_calls
    ]
    messages = [*USER, message.model_dump(), *results]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert "result of get_time" in (second.choices[0].message.content or "")


def test_empty_tools_and_null_fields_are_no_tools(client: openai.OpenAI) -> None:
    for tools in ([], None):
        _, answer, calls, _ = sdk_calls(client, extra_body={"tools": tools, "tool_choice": None})
        assert calls == []
        assert QUESTION in answer


# Arguments derived from the parameter schema


@pytest.mark.parametrize(
    ("parameters", "arguments"),
    [
        ({}, {}),
        ({"type": "object", "properties": {"q": {"type": "string"}}}, {}),
        (
            {"type": "object", "properties": {"q": {"type": "string"}}, "required": []},
            {},
        ),
        (
            {
                "type": "object",
                "properties": {
                    "unit": {"enum": ["kelvin", "celsius"]},
                    "mode": {"const": "fast"},
                    "page": {"type": "integer", "default": 7},
                },
                "required": ["unit", "mode", "page"],
            },
            {"unit": "kelvin", "mode": "fast", "page": 7},
        ),
        (
            {
                "type": "object",
                "$defs": {"Unit": {"type": "string", "enum": ["m", "ft"]}},
                "definitions": {"Point": {"type": "object", "required": ["x"]}},
                "properties": {
                    "unit": {"$ref": "#/$defs/Unit"},
                    "at": {"$ref": "#/definitions/Point"},
                },
                "required": ["unit", "at"],
            },
            {"unit": "m", "at": {"x": "example"}},
        ),
        (
            {
                "type": "object",
                "properties": {
                    "limit": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 5}]},
                    "ratio": {"oneOf": [{"type": "number"}, {"type": "string"}]},
                    "maybe": {"type": ["null", "boolean"]},
                    "nothing": {"type": "null"},
                },
                "required": ["limit", "ratio", "maybe", "nothing"],
            },
            {"limit": 5, "ratio": 1.5, "maybe": True, "nothing": None},
        ),
        (
            {
                "type": "object",
                "properties": {
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "pairs": {"type": "array", "items": {"type": "integer"}, "minItems": 3},
                    "any": {"type": "array"},
                },
                "required": ["tags", "pairs", "any"],
            },
            {"tags": ["example"], "pairs": [1, 1, 1], "any": ["example"]},
        ),
        (
            {
                "type": "object",
                "properties": {
                    "filter": {
                        "type": "object",
                        "properties": {
                            "field": {"type": "string"},
                            "range": {
                                "type": "object",
                                "properties": {"low": {"type": "number", "minimum": 0}},
                                "required": ["low"],
                            },
                            "optional": {"type": "string"},
                        },
                        "required": ["field", "range"],
                    }
                },
                "required": ["filter"],
            },
            {"filter": {"field": "example", "range": {"low": 0}}},
        ),
    ],
    ids=["empty", "none-required", "empty-required", "enum-const-default", "ref", "any-of",
         "array", "nested-object"],
)  # fmt: skip
def test_arguments_follow_the_schema(parameters: dict[str, Any], arguments: Any) -> None:
    assert example_arguments(parameters) == arguments
    assert json.loads(json.dumps(example_arguments(parameters))) == arguments


def test_odd_schemas_never_crash() -> None:
    odd: list[Any] = [
        None,
        "object",
        [],
        {"type": "object", "required": "x"},
        {"type": "object", "required": [1, "a"], "properties": "nope"},
        {"type": "object", "required": ["a"], "properties": {"a": {"$ref": "#/nowhere"}}},
        {"type": "object", "required": ["a"], "properties": {"a": {"$ref": "https://x"}}},
        {"type": "object", "required": ["a"], "properties": {"a": {"type": "matrix"}}},
        {"type": "object", "required": ["a"], "properties": {"a": True}},
        {"type": "object", "required": ["a"], "properties": {"a": {"anyOf": []}}},
        {"type": "object", "required": ["a"], "properties": {"a": {"type": []}}},
        {"type": "object", "required": ["a"], "properties": {"a": {"minimum": "low"}}},
        {
            "type": "object",
            "required": ["a"],
            "properties": {"a": {"type": "array", "minItems": 10**9, "items": {}}},
        },
        {"$defs": {"Node": {"$ref": "#/$defs/Node"}}, "required": ["n"],
         "properties": {"n": {"$ref": "#/$defs/Node"}}},
        {"$defs": {"Tree": {"type": "object", "required": ["kids"], "properties": {
            "kids": {"type": "array", "items": {"$ref": "#/$defs/Tree"}}}}},
         "required": ["t"], "properties": {"t": {"$ref": "#/$defs/Tree"}}},
    ]  # fmt: skip
    for schema in odd:
        arguments = example_arguments(schema)
        assert isinstance(arguments, dict)
        json.dumps(arguments)
    assert example_arguments(odd[5]) == {"a": "example"}
    assert example_arguments(odd[7]) == {"a": "example"}
    assert example_arguments(odd[11]) == {"a": "example"}
    assert len(example_arguments(odd[12])["a"]) <= 16
    assert example_arguments(odd[13]) == {"n": "example"}


def test_schema_bounds_and_tuples() -> None:
    schema = {
        "type": "object",
        "properties": {
            "small": {"type": "integer", "maximum": 0},
            "lower": {"type": "number", "minimum": 2.5},
            "whole": {"type": "integer", "minimum": 2.5},
            "none": {"type": "array", "items": {"type": "string"}, "maxItems": 0},
            "pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
            "implied": {"properties": {"k": {"type": "boolean"}}, "required": ["k"]},
        },
        "required": ["small", "lower", "whole", "none", "pair", "implied"],
    }
    assert example_arguments(schema) == {
        "small": 0,
        "lower": 2.5,
        "whole": 3,
        "none": [],
        "pair": ["example", 1],
        "implied": {"k": True},
    }
