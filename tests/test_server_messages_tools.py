"""Tool use on the local server's Messages API (``POST /v1/messages``), on the wire.

The same tools, calls and results as the chat path, in Anthropic's shapes: ``tool_use``
blocks whose input streams as ``input_json_delta`` pieces, ``tool_result`` blocks back, and
400s in the Messages error shape. Raw ``http.client`` so the exact events are asserted.
"""

from __future__ import annotations

import json
from http.client import HTTPConnection
from typing import Any

import pytest

from step_magic.server import LocalServer

from .conftest import LOCAL_KEY as KEY

MODEL = "step-3.7-flash"
QUESTION = "What is the weather in Oslo, and what time is it there?"
WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 3},
    },
    "required": ["city", "unit", "days"],
}
WEATHER_INPUT = {"city": "example", "unit": "celsius", "days": 3}
WEATHER = {
    "name": "get_weather",
    "description": "Weather of a city.",
    "input_schema": WEATHER_SCHEMA,
}
TIME = {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
SEARCH = {
    "name": "web-search",
    "input_schema": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
    },
}
TOOLS = [WEATHER, TIME, SEARCH]
Events = list[tuple[str, dict[str, Any]]]


def request(stream: bool = True, **extra: Any) -> dict[str, Any]:
    messages = [{"role": "user", "content": QUESTION}]
    base = {"model": MODEL, "max_tokens": 4096, "messages": messages, "tools": TOOLS}
    return {**base, "stream": stream, **extra}


def post(
    server: LocalServer, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    connection = HTTPConnection("127.0.0.1", server.port, timeout=10)
    sent = {"Content-Type": "application/json", "x-api-key": KEY, **(headers or {})}
    connection.request("POST", "/v1/messages", json.dumps(body), sent)
    response = connection.getresponse()
    return response.status, response.read()


def streamed(server: LocalServer, body: Any, headers: dict[str, str] | None = None) -> Events:
    """(event name, data) of a streamed reply; each event's name repeats its type."""
    status, data = post(server, body, headers)
    assert status == 200
    events = []
    for block in data.decode().split("\n\n")[:-1]:
        name, payload = block.split("\n")
        item = json.loads(payload.removeprefix("data: "))
        assert name == f"event: {item['type']}"
        events.append((item["type"], item))
    return events


def message(server: LocalServer, body: Any, headers: dict[str, str] | None = None) -> Any:
    status, data = post(server, {**body, "stream": False}, headers)
    assert status == 200, data
    return json.loads(data)


def error(server: LocalServer, body: Any) -> str:
    """The message of a 400 in Anthropic's shape."""
    status, data = post(server, body)
    assert status == 400
    reply = json.loads(data)
    assert reply["type"] == "error"
    assert reply["error"]["type"] == "request_params_invalid"
    text: str = reply["error"]["message"]
    return text


def blocks(events: Events) -> list[dict[str, Any]]:
    """Each content block as it opened, with ``deltas`` (its deltas, in order) added."""
    opened: list[dict[str, Any]] = []
    for name, item in events:
        if name == "content_block_start":
            assert item["index"] == len(opened)
            opened.append({**item["content_block"], "deltas": []})
        elif name == "content_block_delta":
            opened[item["index"]]["deltas"].append(item["delta"])
    return opened


def partial_json(block: dict[str, Any]) -> str:
    assert {delta["type"] for delta in block["deltas"]} == {"input_json_delta"}
    return "".join(delta["partial_json"] for delta in block["deltas"])


def tool_uses(reply: Any) -> list[dict[str, Any]]:
    return [block for block in reply["content"] if block["type"] == "tool_use"]


def answered(calls: list[dict[str, Any]], results: list[Any]) -> list[dict[str, Any]]:
    """The conversation after the assistant made ``calls`` and each got its result."""
    uses = [
        {"type": "tool_use", "id": call["id"], "name": call["name"], "input": call["input"]}
        for call in calls
    ]
    answers = [
        {"type": "tool_result", "tool_use_id": call["id"], "content": result}
        for call, result in zip(calls, results, strict=True)
    ]
    return [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "x"}, *uses]},
        {"role": "user", "content": answers},
    ]


# The stream of a reply that calls tools


def test_one_tool_streams_thinking_then_one_tool_use_block(local: LocalServer) -> None:
    events = streamed(local, request(tools=[WEATHER]))
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("content_block_start") == names.count("content_block_stop") == 2
    thinking, call = blocks(events)
    assert thinking["type"] == "thinking"
    assert "I call get_weather," in "".join(d["thinking"] for d in thinking["deltas"])
    assert set(call) == {"type", "id", "name", "input", "deltas"}
    assert (call["type"], call["name"], call["input"]) == ("tool_use", "get_weather", {})
    assert call["id"].startswith("toolu_")
    assert len(call["id"]) > len("toolu_")
    assert call["deltas"][0] == {"type": "input_json_delta", "partial_json": ""}
    assert len(call["deltas"]) >= 4
    assert partial_json(call) == json.dumps(WEATHER_INPUT)
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == names.count("content_block_delta")


def test_two_tools_stream_two_tool_use_blocks_in_turn(local: LocalServer) -> None:
    events = streamed(local, request())
    names = [name for name, _ in events]
    _, weather, clock = blocks(events)
    assert [weather["name"], clock["name"]] == ["get_weather", "get_time"]
    assert json.loads(partial_json(weather)) == WEATHER_INPUT
    assert partial_json(clock) == "{}"
    assert weather["id"] != clock["id"]
    stops = [item["index"] for name, item in events if name == "content_block_stop"]
    assert stops == [0, 1, 2]
    second = names.index("content_block_start", names.index("content_block_stop") + 1)
    assert names[second - 1] == "content_block_stop"  # one block at a time
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_non_streamed_message_holds_tool_use_blocks_with_parsed_input(local: LocalServer) -> None:
    reply = message(local, request())
    assert reply["stop_reason"] == "tool_use"
    assert [block["type"] for block in reply["content"]] == ["thinking", "tool_use", "tool_use"]
    weather, clock = tool_uses(reply)
    assert weather == {
        "type": "tool_use",
        "id": weather["id"],
        "name": "get_weather",
        "input": WEATHER_INPUT,
    }
    assert (clock["name"], clock["input"]) == ("get_time", {})
    stream_ids = [block["id"] for block in blocks(streamed(local, request()))[1:]]
    assert stream_ids == [weather["id"], clock["id"]]  # the same request, the same ids


def test_arguments_match_the_chat_path(local: LocalServer) -> None:
    chat_tools = [
        {"type": "function", "function": {"name": t["name"], "parameters": t["input_schema"]}}
        for t in [SEARCH]
    ]
    body = {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}]}
    connection = HTTPConnection("127.0.0.1", local.port, timeout=10)
    headers = {"Authorization": f"Bearer {KEY}"}
    connection.request(
        "POST", "/v1/chat/completions", json.dumps(body | {"tools": chat_tools}), headers
    )
    chat = json.loads(connection.getresponse().read())["choices"][0]["message"]["tool_calls"]
    (call,) = tool_uses(message(local, request(tools=[SEARCH])))
    assert call["input"] == json.loads(chat[0]["function"]["arguments"])


# tool_choice


def test_tool_choice_none_gets_the_usual_answer(local: LocalServer) -> None:
    reply = message(local, request(tool_choice={"type": "none"}))
    assert reply["stop_reason"] == "end_turn"
    assert [block["type"] for block in reply["content"]] == ["thinking", "text"]
    assert f'You wrote: "{QUESTION}"' in reply["content"][1]["text"]
    events = streamed(local, request(tool_choice={"type": "none"}))
    assert [block["type"] for block in blocks(events)] == ["thinking", "text"]
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_tool_choice_naming_a_tool_calls_only_that_one(local: LocalServer) -> None:
    reply = message(local, request(tool_choice={"type": "tool", "name": "web-search"}))
    assert [call["name"] for call in tool_uses(reply)] == ["web-search"]
    assert "tool_choice names web-search" in reply["content"][0]["thinking"]


@pytest.mark.parametrize("kind", ["auto", "any"])
def test_auto_and_any_call_tools(local: LocalServer, kind: str) -> None:
    reply = message(local, request(tools=[TIME, WEATHER], tool_choice={"type": kind}))
    assert [call["name"] for call in tool_uses(reply)] == ["get_time", "get_weather"]


# After the tool results


def test_tool_results_get_an_answer_quoting_them(local: LocalServer) -> None:
    calls = tool_uses(message(local, request()))
    results = ["Oslo: light rain, 12 degrees", [{"type": "text", "text": "14:05 CEST"}]]
    follow_up = request(messages=answered(calls, results))
    reply = message(local, follow_up)
    assert reply["stop_reason"] == "end_turn"
    assert [block["type"] for block in reply["content"]] == ["thinking", "text"]
    answer = reply["content"][1]["text"]
    assert f'- `get_weather` (call `{calls[0]["id"]}`): "{results[0]}"' in answer
    assert f'- `get_time` (call `{calls[1]["id"]}`): "14:05 CEST"' in answer
    assert f'You wrote: "{QUESTION}"' in answer
    assert "2 tool results came back" in reply["content"][0]["thinking"]
    text = blocks(streamed(local, follow_up))[1]
    assert "".join(delta["text"] for delta in text["deltas"]) == answer


def test_an_error_result_and_an_empty_one_are_accepted(local: LocalServer) -> None:
    calls = tool_uses(message(local, request(tools=[TIME])))
    messages = answered(calls, ["boom"])
    messages[-1]["content"][0]["is_error"] = True
    reply = message(local, request(tools=[TIME], messages=messages))
    assert f'(call `{calls[0]["id"]}`): "boom"' in reply["content"][1]["text"]
    del messages[-1]["content"][0]["content"]
    assert message(local, request(tools=[TIME], messages=messages))["stop_reason"] == "end_turn"


def test_text_after_the_results_is_a_new_turn_that_calls_again(local: LocalServer) -> None:
    calls = tool_uses(message(local, request(tools=[TIME])))
    messages = answered(calls, ["noon"])
    messages[-1]["content"].append({"type": "text", "text": "And in Tokyo?"})
    reply = message(local, request(tools=[TIME], messages=messages))
    assert reply["stop_reason"] == "tool_use"
    assert "And in Tokyo?" in reply["content"][0]["thinking"]


# Requests refused


@pytest.mark.parametrize(
    ("tools", "fragment"),
    [
        ([{"name": "x"}], "tools[0].input_schema"),
        ({"name": "x"}, "tools must be an array"),
        ([{"name": "bad name", "input_schema": {"type": "object"}}], "tools[0].name"),
        ([WEATHER, {"name": "t", "input_schema": {"type": "string"}}], "tools[1].input_schema"),
        ([{"name": "t", "input_schema": {}, "description": 3}], "tools[0].description"),
        ([{"type": "web_search_20250305", "name": "web_search"}], "server tool"),
        ([TIME, TIME], "unique: get_time"),
        (["get_time"], "tools[0]"),
    ],
)
def test_a_bad_tool_definition_is_a_400(local: LocalServer, tools: Any, fragment: str) -> None:
    assert fragment in error(local, request(tools=tools))


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"tool_choice": {"type": "tool", "name": "nope"}}, "'nope', which is not in tools"),
        ({"tool_choice": {"type": "any"}, "tools": None}, "needs at least one tool"),
        ({"tool_choice": "auto"}, 'tool_choice must be {"type": "auto"}'),
        ({"tool_choice": {"type": "auto", "disable_parallel_tool_use": 1}}, "boolean"),
    ],
)
def test_a_bad_tool_choice_is_a_400(local: LocalServer, change: Any, fragment: str) -> None:
    assert fragment in error(local, request(**change))


def test_an_orphan_tool_result_is_a_400(local: LocalServer) -> None:
    result = {"type": "tool_result", "tool_use_id": "toolu_nobody", "content": "x"}
    messages = [{"role": "user", "content": [result]}]
    text = error(local, request(messages=messages))
    assert text.startswith("messages[0]: unexpected tool_use_id found in tool_result blocks")
    assert "toolu_nobody" in text
    calls = tool_uses(message(local, request(tools=[TIME])))
    twice = answered(calls, ["a"])
    twice[-1]["content"] *= 2  # the same call answered twice
    assert error(local, request(messages=twice)).startswith("messages[2]: unexpected")


def test_an_unanswered_tool_use_is_a_400(local: LocalServer) -> None:
    calls = tool_uses(message(local, request()))
    messages = answered(calls, ["rain", "noon"])
    messages[-1]["content"].pop()
    text = error(local, request(messages=messages))
    assert text.startswith("messages[1]: tool_use ids were found without tool_result blocks")
    assert calls[1]["id"] in text
    assert calls[0]["id"] not in text
    assert "messages[1]" in error(local, request(messages=messages[:2]))  # ends on the calls


@pytest.mark.parametrize(
    ("block", "fragment"),
    [
        ({"type": "tool_use", "id": "t", "name": "n", "input": {}}, "belong in assistant"),
        ({"type": "tool_result", "tool_use_id": "", "content": "x"}, "tool_use_id"),
        ({"type": "tool_result", "tool_use_id": "t", "content": 3}, "content must be"),
        ({"type": "tool_result", "tool_use_id": "t", "is_error": "yes"}, "is_error"),
    ],
)
def test_bad_blocks_in_a_user_message_are_400s(
    local: LocalServer, block: Any, fragment: str
) -> None:
    messages = [{"role": "user", "content": [block]}]
    assert fragment in error(local, request(messages=messages))


def test_bad_blocks_in_an_assistant_message_are_400s(local: LocalServer) -> None:
    def assistant(*content: Any) -> dict[str, Any]:
        messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": content}]
        return request(messages=messages)

    bad_input = {"type": "tool_use", "id": "t", "name": "n", "input": "{}"}
    assert "messages[1].content[0].input must be an object" in error(local, assistant(bad_input))
    assert "needs a string id" in error(local, assistant({"type": "tool_use", "name": "n"}))
    assert "thinking must be a string" in error(local, assistant({"type": "thinking"}))
    result = {"type": "tool_result", "tool_use_id": "t"}
    assert "belong in user messages" in error(local, assistant(result))


def test_a_tool_result_after_text_is_a_400(local: LocalServer) -> None:
    calls = tool_uses(message(local, request(tools=[TIME])))
    messages = answered(calls, ["noon"])
    messages[-1]["content"].insert(0, {"type": "text", "text": "Here:"})
    assert "must come before other blocks" in error(local, request(messages=messages))


# Faults


def test_chatty_tools_sends_text_before_the_calls(local: LocalServer) -> None:
    body = request(tools=[WEATHER, TIME])
    events = streamed(local, body, {"X-Step-Fault": "chatty-tools"})
    thinking, text, weather, clock = blocks(events)
    assert (thinking["type"], text["type"]) == ("thinking", "text")
    assert "".join(delta["text"] for delta in text["deltas"]) == "Let me look that up first."
    assert weather["id"].startswith("toolu_")
    assert weather["id"] != clock["id"]
    assert json.loads(partial_json(weather)) == WEATHER_INPUT
    assert partial_json(clock) == ""  # no input at all, as a client must read as {}
    reply = message(local, body, {"X-Step-Fault": "chatty-tools"})
    assert [block["type"] for block in reply["content"]] == [
        "thinking",
        "text",
        "tool_use",
        "tool_use",
    ]
    assert tool_uses(reply)[1]["input"] == {}


def test_tool_loop_fault_calls_again_after_results(local: LocalServer) -> None:
    calls = tool_uses(message(local, request(tools=[TIME])))
    body = request(tools=[TIME], messages=answered(calls, ["noon"]))
    looped = message(local, body | {"model": "fault-tool-loop"})
    assert looped["stop_reason"] == "tool_use"
    assert "1 tool result came back, and I call tools again" in looped["content"][0]["thinking"]
    assert message(local, body)["stop_reason"] == "end_turn"


def test_max_tokens_cutting_a_call_says_so(local: LocalServer) -> None:
    full = blocks(streamed(local, request(tools=[WEATHER])))
    thinking_tokens = len(full[0]["deltas"])
    body = request(tools=[WEATHER], max_tokens=thinking_tokens + 3)
    events = streamed(local, body)
    assert events[-2][1]["delta"]["stop_reason"] == "max_tokens"
    cut = partial_json(blocks(events)[1])
    assert json.dumps(WEATHER_INPUT).startswith(cut)
    assert cut != json.dumps(WEATHER_INPUT)
    reply = message(local, body)
    assert reply["stop_reason"] == "max_tokens"
    assert tool_uses(reply)[0]["input"] == {}  # incomplete JSON is not guessed at
