"""Tool calls from any compatible server: the delta shapes seen in the wild, read through the
real openai client from a peer that sends exactly the bytes chosen here."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from step_magic.core.events import Finished
from step_magic.core.request import ChatRequest
from step_magic.core.settings import Settings
from step_magic.core.toolrecords import ToolCall
from step_magic.wire.chatwire import ReplyStream
from step_magic.wire.toolcalls import ToolCallCollector

from .sse_peer import SSEPeer

MODEL = "step-3.7-flash"
AREA = '{"width": 1, "height": 2}'


@pytest.fixture(scope="module")
def peer() -> Iterator[SSEPeer]:
    with SSEPeer(pause=0.001) as running:
        yield running


def stream(peer: SSEPeer, deltas: list[dict[str, Any]], finish: str = "tool_calls") -> Finished:
    """Send ``deltas`` as chunks (usage on each, finish_reason "" before the end)."""
    usage = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    chunks = [
        {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": d, "finish_reason": ""}]}
        for d in deltas
    ]
    chunks.append(
        {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
    )
    peer.pieces = [
        f"data: {json.dumps({**chunk, 'usage': usage, 'agent': 'x'})}\n\n".encode()
        for chunk in chunks
    ] + [b"data: [DONE]\n\n"]
    settings = Settings(model=MODEL, base_url=peer.base_url, api_key="k", timeout=5, max_retries=0)
    request = ChatRequest(MODEL, ({"role": "user", "content": "Sizes?"},))
    events = list(ReplyStream(settings, request))
    finished = events[-1]
    assert isinstance(finished, Finished)
    return finished


def calls(*pieces: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"tool_calls": [piece]} for piece in pieces]


def fn(name: str | None = None, arguments: str | None = None) -> dict[str, Any]:
    function = {"name": name} if name else {}
    return function | ({"arguments": arguments} if arguments is not None else {})


def test_openai_shape_index_then_argument_pieces(peer: SSEPeer) -> None:
    finished = stream(
        peer,
        calls(
            {"index": 0, "id": "a", "type": "function", "function": fn("area", "")},
            {"index": 0, "function": fn(arguments='{"width": 1, ')},
            {"index": 1, "id": "b", "type": "function", "function": fn("perimeter", AREA)},
            {"index": 0, "function": fn(arguments='"height": 2}')},
        ),
    )
    assert finished.tool_calls == (
        ToolCall("a", "area", AREA),
        ToolCall("b", "perimeter", AREA),
    )
    assert finished.finish_reason == "tool_calls"


def test_no_index_and_the_id_repeated_on_every_piece(peer: SSEPeer) -> None:
    finished = stream(
        peer,
        calls(
            {"id": "a", "type": "function", "function": fn("area", '{"width": 1, ')},
            {"id": "a", "function": fn(arguments='"height": 2}')},
            {"id": "b", "type": "function", "function": fn("area", AREA)},
        ),
    )
    assert finished.tool_calls == (ToolCall("a", "area", AREA), ToolCall("b", "area", AREA))


def test_every_call_at_index_zero_with_its_own_id(peer: SSEPeer) -> None:
    finished = stream(
        peer,
        calls(
            {"index": 0, "id": "a", "type": "function", "function": fn("area", AREA)},
            {"index": 0, "id": "b", "type": "function", "function": fn("perimeter", AREA)},
        ),
    )
    assert finished.tool_calls == (
        ToolCall("a", "area", AREA),
        ToolCall("b", "perimeter", AREA),
    )


def test_calls_in_one_delta_and_the_name_repeated(peer: SSEPeer) -> None:
    both = [
        {"index": 0, "id": "a", "type": "function", "function": fn("area", "")},
        {"index": 1, "id": "b", "type": "function", "function": fn("area", "")},
    ]
    finished = stream(
        peer,
        [
            {"tool_calls": both, "content": None},
            *calls({"index": 0, "function": fn("area", AREA)}),
            *calls({"index": 1, "function": fn("area", "{}")}),
        ],
    )
    assert finished.tool_calls == (ToolCall("a", "area", AREA), ToolCall("b", "area", "{}"))


def test_control_characters_in_names_and_arguments_are_replaced(peer: SSEPeer) -> None:
    finished = stream(
        peer,
        calls({"index": 0, "id": "a", "function": fn("f\x1b]0;x\x07", '{"k\x1b[2J": 1}')}),
    )
    (call,) = finished.tool_calls
    assert "\x1b" not in call.name + call.arguments
    assert "\x07" not in call.name


def test_an_id_after_the_first_piece_joins_its_call_and_missing_ids_are_made_up() -> None:
    collector = ToolCallCollector()
    collector.feed([{"index": 0, "function": {"name": "area", "arguments": '{"width": 1, '}}])
    collector.feed([{"index": 0, "id": "late", "function": {"arguments": '"height": 2}'}}])
    collector.feed([{"index": 1, "function": {"name": "perimeter", "arguments": "{}"}}])
    first, second = collector.calls()
    assert first == ToolCall("late", "area", AREA)
    assert second.id.startswith("call_")
    assert second.id == collector.calls()[1].id  # stable within the call
    other = ToolCallCollector()
    other.feed([{"index": 0, "function": {"name": "area", "arguments": "{}"}}])
    assert other.calls()[0].id != second.id  # unique across the turns of a thread


@pytest.mark.parametrize("arguments", ["", "{", "[1, 2]", "null"])
def test_arguments_that_are_not_an_object_go_back_as_an_empty_object(arguments: str) -> None:
    entry = ToolCall("c1", "area", arguments).entry()
    assert entry == {
        "id": "c1",
        "type": "function",
        "function": {"name": "area", "arguments": "{}"},
    }
    assert ToolCall("c1", "area", AREA).entry()["function"]["arguments"] == AREA
