"""Reply shapes of other servers (issue 24), replayed byte for byte from a real HTTP peer.

Each stream below is written out as the server sends it, after the documented conventions
(OpenRouter's ``reasoning_details``, Mistral's typed content, an Anthropic-style server that
answers a streamed request with one JSON message), served by ``SSEPeer`` on 127.0.0.1 and
read through ``step_magic.ask``, as a user would: nothing between the bytes and the result
is replaced.
"""

from __future__ import annotations

import json

import pytest

from step_magic import StepAPIError, ask
from step_magic.memory.conversation import remembered
from step_magic.server import LocalServer

from ..sse_peer import JSON_HEAD, SSEPeer

# OpenRouter (Anthropic model): the same text in ``reasoning`` and in ``reasoning_details``,
# a signature-only entry, a processing comment, usage on the last chunk.
OPENROUTER_BOTH = [
    b": OPENROUTER PROCESSING\n\n",
    b'data: {"id":"gen-1747-or","provider":"Anthropic","model":"anthropic/claude-sonnet-4",'
    b'"object":"chat.completion.chunk","created":1747000000,"choices":[{"index":0,"delta":'
    b'{"role":"assistant","content":"","reasoning":"Two and two","reasoning_details":[{"type":'
    b'"reasoning.text","text":"Two and two","format":"anthropic-claude-v1","index":0}]},'
    b'"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}\n\n',
    b'data: {"id":"gen-1747-or","provider":"Anthropic","model":"anthropic/claude-sonnet-4",'
    b'"object":"chat.completion.chunk","created":1747000000,"choices":[{"index":0,"delta":'
    b'{"role":"assistant","content":"","reasoning":" make four.","reasoning_details":[{"type":'
    b'"reasoning.text","text":" make four.","format":"anthropic-claude-v1","index":0}]},'
    b'"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}\n\n',
    b'data: {"id":"gen-1747-or","provider":"Anthropic","model":"anthropic/claude-sonnet-4",'
    b'"object":"chat.completion.chunk","created":1747000000,"choices":[{"index":0,"delta":'
    b'{"role":"assistant","content":"","reasoning":null,"reasoning_details":[{"type":'
    b'"reasoning.text","signature":"ErUBCkYIBRgCIkD","format":"anthropic-claude-v1",'
    b'"index":0}]},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}\n\n',
    b'data: {"id":"gen-1747-or","provider":"Anthropic","model":"anthropic/claude-sonnet-4",'
    b'"object":"chat.completion.chunk","created":1747000000,"choices":[{"index":0,"delta":'
    b'{"role":"assistant","content":"Four."},"finish_reason":null,"native_finish_reason":null,'
    b'"logprobs":null}]}\n\n',
    b'data: {"id":"gen-1747-or","provider":"Anthropic","model":"anthropic/claude-sonnet-4",'
    b'"object":"chat.completion.chunk","created":1747000000,"choices":[{"index":0,"delta":'
    b'{"role":"assistant","content":""},"finish_reason":"stop","native_finish_reason":'
    b'"end_turn","logprobs":null}],"usage":{"prompt_tokens":12,"completion_tokens":9,'
    b'"total_tokens":21}}\n\n',
    b"data: [DONE]\n\n",
]

# OpenRouter (OpenAI model): a summary and encrypted reasoning, only in reasoning_details.
OPENROUTER_DETAILS_ONLY = [
    b'data: {"id":"gen-1747-oa","provider":"OpenAI","model":"openai/o4-mini","object":'
    b'"chat.completion.chunk","created":1747000000,"choices":[{"index":0,"delta":{"role":'
    b'"assistant","content":"","reasoning_details":[{"type":"reasoning.summary","summary":'
    b'"**Adding** the numbers.","format":"openai-responses-v1","index":0}]},"finish_reason":'
    b"null}]}\n\n",
    b'data: {"id":"gen-1747-oa","provider":"OpenAI","model":"openai/o4-mini","object":'
    b'"chat.completion.chunk","created":1747000000,"choices":[{"index":0,"delta":{"role":'
    b'"assistant","content":"","reasoning_details":[{"type":"reasoning.encrypted","data":'
    b'"gAAAAABoSECRETxyz","id":"rs_1","format":"openai-responses-v1","index":1}]},'
    b'"finish_reason":null}]}\n\n',
    b'data: {"id":"gen-1747-oa","provider":"OpenAI","model":"openai/o4-mini","object":'
    b'"chat.completion.chunk","created":1747000000,"choices":[{"index":0,"delta":{"role":'
    b'"assistant","content":"Four."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,'
    b'"completion_tokens":30,"total_tokens":42}}\n\n',
    b"data: [DONE]\n\n",
]

OPENROUTER_WHOLE = (
    b'{"id":"gen-1747-nw","provider":"OpenAI","model":"openai/o4-mini","object":'
    b'"chat.completion","created":1747000000,"choices":[{"index":0,"logprobs":null,'
    b'"finish_reason":"stop","native_finish_reason":"completed","message":{"role":'
    b'"assistant","content":"Four.","refusal":null,"reasoning":null,"reasoning_details":'
    b'[{"type":"reasoning.summary","summary":"Adding up.","format":"openai-responses-v1",'
    b'"index":0},{"type":"reasoning.encrypted","data":"gAAAAABoSECRETxyz","format":'
    b'"openai-responses-v1","index":1}]}}],"usage":{"prompt_tokens":12,'
    b'"completion_tokens":30,"total_tokens":42}}'
)


def test_openrouter_reasoning_sent_twice_is_read_once(api_env: LocalServer) -> None:
    with SSEPeer(OPENROUTER_BOTH) as peer:
        result = ask("2+2?", base_url=peer.base_url, display=False)
    assert (result.reasoning, result.answer) == ("Two and two make four.", "Four.")
    assert (result.status, result.completion_id) == ("complete", "gen-1747-or")
    assert result.usage is not None
    assert result.usage.total == 21


def test_reasoning_only_in_reasoning_details_is_read_without_the_encrypted_part(
    api_env: LocalServer,
) -> None:
    with SSEPeer(OPENROUTER_DETAILS_ONLY) as peer:
        result = ask("2+2?", base_url=peer.base_url, display=False)
    assert (result.reasoning, result.answer) == ("**Adding** the numbers.", "Four.")
    assert "SECRET" not in repr(result)


def test_reasoning_details_of_a_whole_json_reply_are_read(api_env: LocalServer) -> None:
    with SSEPeer([OPENROUTER_WHOLE], head=JSON_HEAD) as peer:
        result = ask("2+2?", base_url=peer.base_url, display=False)
    assert (result.reasoning, result.answer, result.status) == ("Adding up.", "Four.", "complete")
    assert "SECRET" not in repr(result)
    assert result.usage is not None
    assert result.usage.completion == 30


# Mistral (Magistral): typed content parts, thinking first, then text parts, then a string.
MISTRAL_STREAM = [
    b'data: {"id":"9a1e0c2f","object":"chat.completion.chunk","created":1757000000,"model":'
    b'"magistral-medium-2509","choices":[{"index":0,"delta":{"role":"assistant","content":""},'
    b'"finish_reason":null}]}\n\n',
    b'data: {"id":"9a1e0c2f","object":"chat.completion.chunk","created":1757000000,"model":'
    b'"magistral-medium-2509","choices":[{"index":0,"delta":{"content":[{"type":"thinking",'
    b'"thinking":[{"type":"text","text":"Okay, 2 plus 2"}]}]},"finish_reason":null}]}\n\n',
    b'data: {"id":"9a1e0c2f","object":"chat.completion.chunk","created":1757000000,"model":'
    b'"magistral-medium-2509","choices":[{"index":0,"delta":{"content":[{"type":"thinking",'
    b'"thinking":[{"type":"text","text":" is 4."}]},{"type":"text","text":"The answer"}]},'
    b'"finish_reason":null}]}\n\n',
    b'data: {"id":"9a1e0c2f","object":"chat.completion.chunk","created":1757000000,"model":'
    b'"magistral-medium-2509","choices":[{"index":0,"delta":{"content":[{"type":"text","text":'
    b'" is"}]},"finish_reason":null}]}\n\n',
    b'data: {"id":"9a1e0c2f","object":"chat.completion.chunk","created":1757000000,"model":'
    b'"magistral-medium-2509","choices":[{"index":0,"delta":{"content":" 4."},"finish_reason":'
    b'"stop"}],"usage":{"prompt_tokens":10,"total_tokens":40,"completion_tokens":30}}\n\n',
    b"data: [DONE]\n\n",
]

MISTRAL_WHOLE = (
    b'{"id":"9a1e0c30","object":"chat.completion","model":"magistral-medium-2509","usage":'
    b'{"prompt_tokens":10,"total_tokens":40,"completion_tokens":30},"created":1757000000,'
    b'"choices":[{"index":0,"message":{"role":"assistant","tool_calls":null,"content":'
    b'[{"type":"thinking","thinking":[{"type":"text","text":"Okay, 2 plus 2 is 4."}]},'
    b'{"type":"text","text":"The answer is 4."}]},"finish_reason":"stop"}]}'
)


def test_typed_content_parts_are_reasoning_and_answer(api_env: LocalServer) -> None:
    with SSEPeer(MISTRAL_STREAM) as peer:
        result = ask("2+2?", base_url=peer.base_url, display=False)
    assert (result.reasoning, result.answer) == ("Okay, 2 plus 2 is 4.", "The answer is 4.")
    assert (result.status, result.completion_id) == ("complete", "9a1e0c2f")
    assert result.usage is not None
    assert result.usage.total == 40


def test_typed_content_parts_of_a_whole_json_reply_are_read(api_env: LocalServer) -> None:
    with SSEPeer([MISTRAL_WHOLE], head=JSON_HEAD) as peer:
        result = ask("2+2?", base_url=peer.base_url, display=False)
    assert (result.reasoning, result.answer) == ("Okay, 2 plus 2 is 4.", "The answer is 4.")
    assert result.status == "complete"


# An Anthropic-style server answering a streamed request with one message object.
MESSAGE_WHOLE = (
    b'{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":'
    b'"claude-sonnet-4-20250514","content":[{"type":"thinking","thinking":"Two and two.",'
    b'"signature":"EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds"},{"type":"text",'
    b'"text":"Four."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":'
    b'12,"cache_creation_input_tokens":0,"cache_read_input_tokens":4,"output_tokens":9}}'
)

# The same for the Responses API: one response object with its output items.
RESPONSE_WHOLE = (
    b'{"id":"resp_67ccd2bed1ec8190","object":"response","created_at":1741476542,"status":'
    b'"completed","error":null,"incomplete_details":null,"model":"step-3.7-flash","output":'
    b'[{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"A summary."}],'
    b'"content":[{"type":"reasoning_text","text":"Two and two."}]},{"type":"message","id":'
    b'"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":'
    b'"Four.","annotations":[]}]}],"usage":{"input_tokens":12,"input_tokens_details":'
    b'{"cached_tokens":0},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":5},'
    b'"total_tokens":21}}'
)


def test_a_messages_server_that_answers_with_one_json_message_is_read_as_one_reply(
    api_env: LocalServer,
) -> None:
    with SSEPeer([MESSAGE_WHOLE], head=JSON_HEAD) as peer:
        result = ask("2+2?", api="messages", base_url=peer.base_url, display=False)
    assert (result.reasoning, result.answer, result.status) == ("Two and two.", "Four.", "complete")
    assert result.completion_id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert result.trace_id == "sse-peer-trace"
    assert result.usage is not None
    assert (result.usage.prompt, result.usage.completion, result.usage.cached) == (16, 9, 4)


def test_a_responses_server_that_answers_with_one_json_response_is_read_as_one_reply(
    api_env: LocalServer,
) -> None:
    with SSEPeer([RESPONSE_WHOLE], head=JSON_HEAD) as peer:
        result = ask("2+2?", api="responses", base_url=peer.base_url, display=False)
    assert (result.reasoning, result.answer, result.status) == ("Two and two.", "Four.", "complete")
    assert result.completion_id == "resp_67ccd2bed1ec8190"
    assert result.usage is not None
    assert result.usage.total == 21


def test_an_html_page_on_the_messages_api_is_named_by_its_content_type(
    api_env: LocalServer,
) -> None:
    head = JSON_HEAD.replace(b"application/json", b"text/html; charset=utf-8")
    with (
        SSEPeer([b"<html><body>Sign in</body></html>"], head=head) as peer,
        pytest.raises(StepAPIError) as caught,
    ):
        ask("2+2?", api="messages", base_url=peer.base_url, display=False)
    assert "answered with text/html" in str(caught.value)


# An OpenAI-style tool call, in a reply to a request that offered no tools.
UNOFFERED_CALL = [
    b'data: {"id":"chatcmpl-tool","object":"chat.completion.chunk","created":1757000000,'
    b'"model":"gpt-4.1","choices":[{"index":0,"delta":{"role":"assistant","content":null,'
    b'"tool_calls":[{"index":0,"id":"call_Q1","type":"function","function":{"name":"lookup",'
    b'"arguments":""}}]},"finish_reason":null}]}\n\n',
    b'data: {"id":"chatcmpl-tool","object":"chat.completion.chunk","created":1757000000,'
    b'"model":"gpt-4.1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":'
    b'{"arguments":"{\\"q\\": \\"x\\"}"}}]},"finish_reason":null}]}\n\n',
    b'data: {"id":"chatcmpl-tool","object":"chat.completion.chunk","created":1757000000,'
    b'"model":"gpt-4.1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n',
    b"data: [DONE]\n\n",
]


def test_a_chat_tool_call_nobody_offered_is_a_note_not_silence(api_env: LocalServer) -> None:
    with SSEPeer(UNOFFERED_CALL) as peer:
        result = ask("Look it up", base_url=peer.base_url, display=False)
    assert result.notes == ("the model called lookup, but no tools were offered: not run",)
    assert peer.requests == 1


@pytest.mark.parametrize("api", ["chat", "messages", "responses"])
@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"choices": [', "unreadable reply from the server (not JSON)"),
        (
            b'{"type": "message", "content": "\xff\xfe',
            "unreadable reply from the server (not JSON)",
        ),
        (b"[1, 2]", "unreadable reply from the server (not a JSON object)"),
    ],
    ids=["cut", "bad UTF-8", "a list"],
)
def test_a_whole_json_reply_that_cannot_be_read_is_one_line_on_every_api(
    api_env: LocalServer, api: str, body: bytes, said: str
) -> None:
    with SSEPeer([body], head=JSON_HEAD) as peer, pytest.raises(StepAPIError) as caught:
        ask("2+2?", api=api, base_url=peer.base_url, display=False)
    message = str(caught.value)
    assert said in message
    assert "unexpected failure" not in message
    assert "trace id sse-peer-trace" in message


MESSAGES_STREAM = [
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
    b'"type":"message","role":"assistant","content":[],"model":"m","usage":'
    b'{"input_tokens":3,"output_tokens":1}}}\n\n',
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Four."}}\n\n',
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":2}}\n\n',
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]


def test_an_event_stream_labelled_text_plain_is_read_as_events(api_env: LocalServer) -> None:
    """Some proxies label SSE ``text/plain``; the SDKs read it as events, and so do we."""
    head = JSON_HEAD.replace(b"application/json", b"text/plain; charset=utf-8")
    with SSEPeer(MESSAGES_STREAM, head=head) as peer:
        result = ask("2+2?", api="messages", base_url=peer.base_url, display=False)
    assert (result.answer, result.status) == ("Four.", "complete")


def area(width: int, height: int) -> int:
    """The area of a rectangle."""
    return width * height


def _chunk(delta: dict[str, object], reason: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": reason}
    return f"data: {json.dumps({'id': 'gen-1', 'choices': [choice]})}\n\n".encode()


# OpenRouter streaming a reasoning model's tool turn: its reasoning_details entry comes in
# pieces under one index, then an encrypted entry; the docs ask for them back unchanged.
DETAILED_TOOL_TURN = [
    _chunk({"reasoning_details": [{"type": "reasoning.text", "text": "I need ", "index": 0}]}),
    _chunk(
        {
            "reasoning_details": [
                {"type": "reasoning.text", "text": "the area.", "signature": "c2ln", "index": 0}
            ]
        }
    ),
    _chunk({"reasoning_details": [{"type": "reasoning.encrypted", "data": "ZW5j", "index": 1}]}),
    _chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "area", "arguments": '{"width": 2, "height": 3}'},
                }
            ]
        },
        "tool_calls",
    ),
    b"data: [DONE]\n\n",
]
ANSWERED = [_chunk({"content": "It is 6."}, "stop"), b"data: [DONE]\n\n"]


def test_openrouter_reasoning_details_go_back_unchanged_in_a_tool_loop(
    api_env: LocalServer,
) -> None:
    with SSEPeer(replies=[DETAILED_TOOL_TURN, ANSWERED]) as peer:
        result = ask("How big?", tools=[area], base_url=peer.base_url, display=False)
        bodies = [json.loads(body) for body in peer.bodies]
    assert (result.status, result.answer) == ("complete", "It is 6.")
    assert result.reasoning.startswith("I need the area.")
    assert "ZW5j" not in result.reasoning  # encrypted: carried, never shown
    assistant = bodies[1]["messages"][1]
    assert assistant["reasoning_details"] == [
        {"type": "reasoning.text", "text": "I need the area.", "signature": "c2ln", "index": 0},
        {"type": "reasoning.encrypted", "data": "ZW5j", "index": 1},
    ]
    assert assistant["tool_calls"][0]["function"]["name"] == "area"
    assert not any("reasoning_details" in m for m in remembered(result.exchange))  # not kept
