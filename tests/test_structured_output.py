"""Structured output: ``schema=`` / ``--schema`` on every API, and what the result keeps.

A pydantic model, a dataclass or a JSON-schema dict goes out in each API's own field
(``response_format`` for chat, ``text.format`` for Responses) or, where there is none (the
Messages API) or the server refuses it, as words in the instructions, and the footer says so.
The answer is validated into ``.parsed``; one that does not fit keeps its text and says why in
one line. The bundled server answers a schema with JSON of that shape, so all of this runs
offline.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from pydantic import BaseModel

import step_magic
from step_magic.server import LocalServer
from step_magic.wire import chat

from .sse_peer import SSEPeer


class Review(BaseModel):
    label: str
    stars: int
    confident: bool


@dataclasses.dataclass
class Point:
    x: float
    y: float


REVIEW_DICT = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["positive", "negative"]}},
    "required": ["label"],
}


@pytest.fixture
def env(api_env: LocalServer) -> Iterator[LocalServer]:
    yield api_env
    chat.REFUSED_SCHEMA.discard(api_env.base_url)  # remembered per server: not across tests


def bodies(server: LocalServer) -> list[dict[str, Any]]:
    return [r.body for r in server.requests if r.method == "POST"]


def test_chat_sends_response_format_and_parses_a_model(env: LocalServer) -> None:
    result = step_magic.ask("Classify: great!", schema=Review, display=False)
    assert result.parsed == Review(label="simulated", stars=1, confident=True)
    assert result.notes == ()
    sent = bodies(env)[-1]["response_format"]
    assert sent == {
        "type": "json_schema",
        "json_schema": {"name": "Review", "schema": Review.model_json_schema()},
    }


def test_responses_sends_text_format(env: LocalServer) -> None:
    result = step_magic.ask("Where?", schema=Point, api="responses", display=False)
    assert result.parsed == Point(1.5, 1.5)
    assert bodies(env)[-1]["text"]["format"]["type"] == "json_schema"
    assert bodies(env)[-1]["text"]["format"]["name"] == "Point"


def test_the_messages_api_asks_in_words_and_says_so(env: LocalServer) -> None:
    result = step_magic.ask("Classify", schema=REVIEW_DICT, api="messages", display=False)
    assert result.parsed == {"label": "positive"}
    assert "no structured-output field" in result.notes[0]
    assert "matches this JSON schema" in bodies(env)[-1]["system"]
    assert "asked for in the instructions" in result._repr_mimebundle_()["text/html"]


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_a_server_that_refuses_the_field_is_asked_in_words(env: LocalServer, api: str) -> None:
    result = step_magic.ask(
        "Classify", schema=Review, api=api, model="fault-refuse-schema", display=False
    )
    assert result.parsed is not None
    assert "refused" in result.notes[0]
    assert "asked for in the instructions instead" in result.notes[0]
    first, second = bodies(env)[-2:]
    assert "response_format" in first or "text" in first
    assert "response_format" not in second
    assert "text" not in second


def test_a_refusal_is_remembered_for_that_server(env: LocalServer) -> None:
    step_magic.ask("One", schema=Review, model="fault-refuse-schema", display=False)
    before = len(env.requests)
    result = step_magic.ask("Two", schema=Review, display=False)
    assert len(env.requests) == before + 1  # straight to the words, no second refusal
    assert "response_format" not in bodies(env)[-1]
    assert result.parsed is not None
    assert "refused" in result.notes[0]


def test_a_refusal_of_another_field_keeps_the_schema_where_it_was(env: LocalServer) -> None:
    """A server that refuses ``stream_options`` is asked again without it, with the schema
    still in ``response_format``, and nothing says the schema was refused."""
    chat.REFUSED_USAGE_OPTION.discard(env.base_url)
    try:
        result = step_magic.ask(
            "Classify", schema=Review, model="fault-strict-params", display=False
        )
    finally:
        chat.REFUSED_USAGE_OPTION.discard(env.base_url)
    first, second = bodies(env)[-2:]
    assert ("stream_options" in first, "stream_options" in second) == (True, False)
    assert second["response_format"] == first["response_format"]
    assert result.parsed is not None
    assert not any("refused" in note for note in result.notes)


def test_a_request_with_a_schema_refused_for_another_reason_is_one_line(
    env: LocalServer,
) -> None:
    failure = {"error": {"message": "Prompt too long for this model", "type": "invalid"}}
    head = b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
    head += b"Connection: close\r\n\r\n"
    with (
        SSEPeer([json.dumps(failure).encode()], head=head) as peer,
        pytest.raises(step_magic.StepAPIError) as caught,
    ):
        step_magic.ask("Classify", schema=Review, base_url=peer.base_url, display=False)
    assert "Prompt too long for this model" in str(caught.value)
    assert peer.requests == 1  # not a refusal of the schema field: not asked again


def test_an_answer_that_does_not_fit_keeps_its_text_and_says_why_in_one_line(
    env: LocalServer,
) -> None:
    answer = json.dumps({"label": "good", "stars": "many"})
    chunk = {"choices": [{"index": 0, "delta": {"content": answer}, "finish_reason": "stop"}]}
    stream = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
    with SSEPeer([stream]) as peer:
        result = step_magic.ask("Classify", schema=Review, base_url=peer.base_url, display=False)
    assert result.parsed is None
    assert result.answer == answer
    (note,) = result.notes
    assert note.startswith("the answer does not fit the schema: stars: ")
    assert "(and 1 more)" in note  # confident is missing too
    assert "\n" not in note


def test_a_dict_schema_is_checked_with_jsonschema(env: LocalServer) -> None:
    stream = (
        b'data: {"choices": [{"index": 0, "delta": {"content": "{\\"label\\": \\"meh\\"}"}, '
        b'"finish_reason": "stop"}]}\n\ndata: [DONE]\n\n'
    )
    with SSEPeer([stream]) as peer:
        result = step_magic.ask(
            "Classify", schema=REVIEW_DICT, base_url=peer.base_url, display=False
        )
    assert result.parsed is None
    assert result.notes == (
        "the answer does not fit the schema: label: 'meh' is not one of ['positive', 'negative']",
    )


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (5, "schema: give a pydantic model, a dataclass or a JSON-schema dict, not int"),
        ({"type": "string"}, 'schema: a JSON-schema dict describes an object ("type": "object")'),
        ({"type": "object", "description": "x" * 60_000}, "schema: the JSON schema is over 50,000"),
    ],
)
def test_what_is_not_a_schema_is_one_line_before_anything_is_sent(
    env: LocalServer, given: object, message: str
) -> None:
    with pytest.raises(
        step_magic.InputError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        step_magic.ask("Hi", schema=given)
    assert env.requests == []


def test_map_rows_gives_one_typed_column_per_field(env: LocalServer) -> None:
    frame = pd.DataFrame({"text": ["great", "awful"]})
    out = step_magic.map_rows(frame, "Classify: {text}", schema=Review, display=False)
    assert list(out.columns) == [
        "text",
        "answer",
        "label",
        "stars",
        "confident",
        "answer_parse_error",
    ]
    assert str(out["stars"].dtype) == "Int64"
    assert str(out["confident"].dtype) == "boolean"
    assert list(out["label"]) == ["simulated", "simulated"]
    prompts = [body["messages"][-1]["content"] for body in bodies(env)]
    assert sorted(prompts) == ["Classify: awful", "Classify: great"]  # the schema, not words
    assert all("response_format" in body for body in bodies(env))


def test_compare_and_chat_take_a_schema(env: LocalServer) -> None:
    comparison = step_magic.compare(
        "Classify", efforts=["low", "high"], schema=Review, display=False
    )
    assert [r.parsed.stars for r in comparison.results] == [1, 1]
    with step_magic.Chat() as conversation:
        assert conversation.ask("Classify", schema=Review, display=False).parsed is not None


def test_the_magic_takes_a_schema_from_the_notebook(ip: Any) -> None:
    ip.user_ns["Review"] = Review
    ip.run_cell(
        "%%step --schema Review --no-memory\nClassify: great!", store_history=False
    ).raise_error()
    assert ip.user_ns["_step"].parsed == Review(label="simulated", stars=1, confident=True)
    missing = ip.run_cell("%%step --schema Nope\nHi", store_history=False).error_in_exec
    assert str(missing) == "--schema Nope: no such name in the notebook"
    ip.user_ns["five"] = 5
    wrong = ip.run_cell("%%step --schema five\nHi", store_history=False).error_in_exec
    assert str(wrong).startswith("--schema five: schema: give a pydantic model")


def test_the_dry_run_shows_the_schema(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ip.user_ns["Review"] = Review
    ip.run_cell(
        "%%step --schema Review --dry-run --no-memory\nHi", store_history=False
    ).raise_error()
    shown = capsys.readouterr().out
    assert '"response_format": {"type": "json_schema", "json_schema": {"name": "Review"' in shown
