"""Deterministic reply text derived from the request, and the tokens it streams in.

Tests and rehearsals need replies that are stable (same request, same text) and that show
the request was understood: the reasoning restates what was received (model, effort,
images, messages, system prompt, the user's words) and the answer exercises Markdown
rendering and quotes the user's text in full, so escaping of hostile input can be checked.
A request that offers tools gets tool calls instead, with arguments derived from each tool's
schema; once the results come back, the answer quotes them. The ``chatty-tools`` fault
reshapes a tool-call reply as less tidy servers send it (see ``chatty_reply``).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from step_magic.core.cassette import Cassette
from step_magic.core.errors import ReplayError
from step_magic.core.request import CHARS_PER_TOKEN, request_key
from step_magic.server.arguments import example_arguments
from step_magic.server.errors import ApiError
from step_magic.server.filler import exact, grow, tokenize
from step_magic.server.structured import sample_answer, schema_asked_in_words
from step_magic.server.tools import OfferedTool, PlannedCall
from step_magic.server.validation import ReceivedChat, ReceivedMessage

# Reasoning length in tokens when the config does not set one: roughly what effort buys.
DEFAULT_REASONING_TOKENS = {"low": 40, "medium": 150, "high": 400, None: 100}

# Prompt-size estimate: ~4 characters per token, a little per message, fixed per medium.

TOKENS_PER_MESSAGE = 4
TOKENS_PER_IMAGE = {"low": 400, "high": 1600}
TOKENS_PER_VIDEO = 2000

QUOTE_CHARS = 80
TOOL_RESULT_CHARS = 200
PARALLEL_CALLS = 2  # with two or more tools offered, the first two are called in one turn
# What a chatty server says before its tool calls (the chatty-tools fault).
CHATTY_PREAMBLE = "Let me look that up first."
NO_ARGUMENTS = "{}"


@dataclass(frozen=True)
class ReplyTokens:
    """The reply as the chunks it streams in: reasoning tokens, then answer tokens.

    A reply that calls tools has ``tool_calls`` and no answer (but for ``chatty_reply``).
    """

    reasoning: tuple[str, ...]
    answer: tuple[str, ...]
    tool_calls: tuple[PlannedCall, ...] = ()


def recorded_reply(cassette: str | None, body: Any) -> ReplyTokens | None:
    """The reply a cassette recorded for this request, when serving one: for the same
    conversation, else for the same question (``Cassette.lookup``).

    Lets a lesson recorded with ``%step_record`` be served to any OpenAI-compatible client.
    """
    if not cassette or not isinstance(body, dict):
        return None
    try:
        reply = Cassette(Path(cassette)).lookup(request_key(body), body)
    except ReplayError as error:  # the file changed under a running server: say so
        raise ApiError(500, "server_error", f"the cassette cannot be read: {error}") from None
    if reply is None:
        return None
    return ReplyTokens(tuple(tokenize(reply.reasoning)), tuple(tokenize(reply.answer)))


def message_tokens(message: ReceivedMessage) -> int:
    """Estimate what one message costs in prompt tokens (a tool result is its text)."""
    media = sum(TOKENS_PER_IMAGE[detail] for detail in message.image_details)
    calls = sum(len(call.name) + len(call.arguments) for call in message.tool_calls)
    text = math.ceil((len(message.text) + calls) / CHARS_PER_TOKEN)
    return TOKENS_PER_MESSAGE + text + media + TOKENS_PER_VIDEO * message.videos


def tool_tokens(tools: tuple[OfferedTool, ...]) -> int:
    """Estimate what the tool definitions cost in prompt tokens: their JSON text."""
    chars = sum(
        len(json.dumps([tool.name, tool.description, tool.parameters], default=str))
        for tool in tools
    )
    return math.ceil(chars / CHARS_PER_TOKEN)


def build_reply(
    request: ReceivedChat,
    reasoning_tokens: int | None,
    answer_tokens: int | None,
    tool_loop: bool = False,
) -> ReplyTokens:
    """Build the reply for ``request``; explicit token counts make lengths exact.

    Without an explicit count the reasoning grows by whole sentences to about the length
    the effort suggests (never cutting the restated facts), and the answer is the bare
    Markdown. A reply that calls tools has a short reasoning and no answer; ``tool_loop``
    (the fault) calls them even when tool results already came back.
    """
    rng = random.Random(_seed(request))
    calls = plan_tool_calls(request, tool_loop)
    if calls:
        facts = _tool_call_facts(request, calls)
        tokens = (
            tokenize(facts) if reasoning_tokens is None else exact(facts, rng, reasoning_tokens)
        )
        return ReplyTokens(tuple(tokens), (), calls)
    reasoning = _reasoning_facts(request)
    if reasoning_tokens is None:
        reasoning_list = tokenize(grow(reasoning, rng, DEFAULT_REASONING_TOKENS[request.effort]))
    else:
        reasoning_list = exact(reasoning, rng, reasoning_tokens)
    system = [message.text for message in request.messages if message.role == "system"]
    schema = request.output_schema or schema_asked_in_words(system)
    answer = sample_answer(schema) if schema is not None else _answer_markdown(request)
    answer_list = tokenize(answer) if answer_tokens is None else exact(answer, rng, answer_tokens)
    return ReplyTokens(tuple(reasoning_list), tuple(answer_list))


def chatty_reply(reply: ReplyTokens) -> ReplyTokens:
    """``reply`` as less tidy OpenAI-compatible servers send tool calls (chatty-tools fault).

    Some servers say a sentence before calling, send no call ids (the client must make its
    own) and send "" rather than "{}" for a call without arguments (arguments hold only the
    required properties, so "{}" means the schema requires none); clients meet all three in
    the wild, so they can be tested here. An empty id means "no id" to the encoders. A reply
    that calls no tools (an answer after the results) is left as it is.
    """
    if not reply.tool_calls:
        return reply
    calls = tuple(
        replace(call, id="", arguments="" if call.arguments == NO_ARGUMENTS else call.arguments)
        for call in reply.tool_calls
    )
    return replace(reply, answer=tuple(tokenize(CHATTY_PREAMBLE)), tool_calls=calls)


def plan_tool_calls(request: ReceivedChat, tool_loop: bool = False) -> tuple[PlannedCall, ...]:
    """The calls this request gets instead of an answer (none: it gets an answer).

    Tools are called when offered (and ``tool_choice`` is not "none") until tool results come
    back after the last user message; then the model answers, unless ``tool_loop``. The call
    is the named tool, else the first tool, or the first two at once when several are offered.
    """
    choice = request.tool_choice
    if not request.tools or choice.mode == "none" or (request.tool_results and not tool_loop):
        return ()
    if choice.mode == "function":
        tools = [tool for tool in request.tools if tool.name == choice.name][:1]
    else:
        tools = list(request.tools[:PARALLEL_CALLS])
    seed = _seed(request)
    return tuple(
        PlannedCall(
            _call_id(seed, index, tool.name),
            tool.name,
            json.dumps(example_arguments(tool.parameters)),
        )
        for index, tool in enumerate(tools)
    )


def _call_id(seed: int, index: int, name: str) -> str:
    """A call id derived from the conversation, so the same request gets the same ids."""
    digest = hashlib.sha256(f"{seed}:{index}:{name}".encode()).hexdigest()
    return f"call_{digest[:24]}"


def _seed(request: ReceivedChat) -> int:
    """Seed the filler from what the user asked, not from transport details like ``stream``."""
    key = json.dumps(
        [request.model, request.effort, request.raw_messages], sort_keys=True, default=str
    )
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _last_user(request: ReceivedChat) -> ReceivedMessage | None:
    return next((m for m in reversed(request.messages) if m.role == "user"), None)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _effort_facts(request: ReceivedChat) -> str:
    effort = f"reasoning effort {request.effort}" if request.effort else "no effort given"
    return f"The request is for {request.model} with {effort}."


def _tool_call_facts(request: ReceivedChat, calls: tuple[PlannedCall, ...]) -> str:
    """A few sentences: which tools were offered, which are called, and why those."""
    offered = ", ".join(tool.name for tool in request.tools)
    called = " and ".join(call.name for call in calls)
    sentences = [f"The request offers {_plural(len(request.tools), 'tool')}: {offered}."]
    if request.tool_choice.mode == "function":
        sentences.append(f"tool_choice names {request.tool_choice.name}, so only it is called.")
    elif request.tool_choice.mode == "required":
        sentences.append("tool_choice is required, so a tool must be called.")
    if request.tool_results:
        results = _plural(len(request.tool_results), "tool result")
        sentences.append(f"{results} came back, and I call tools again.")
    sentences.append(
        f"I call {called}{' in parallel' if len(calls) > 1 else ''}, with arguments built "
        "from the required properties of the parameter schema."
    )
    return "\n\n".join(
        (_effort_facts(request), " ".join(sentences), _quote_beginning(_last_user(request)))
    )


def _reasoning_facts(request: ReceivedChat) -> str:
    last = _last_user(request)
    system = any(m.role == "system" for m in request.messages)
    images = len(last.image_details) if last else 0
    videos = last.videos if last else 0
    counts = (
        f"The last user message has {_plural(images, 'image')} and {_plural(videos, 'video')}. "
        f"The conversation has {_plural(len(request.messages), 'message')}, and "
        f"{'a' if system else 'no'} system prompt was given."
    )
    facts = [_effort_facts(request), counts, _quote_beginning(last)]
    if request.tool_results:
        names = ", ".join(result.name for result in request.tool_results)
        results = _plural(len(request.tool_results), "tool result")
        facts.insert(2, f"{results} came back since the last user message, from {names}.")
    return "\n\n".join(facts)


def _quote_beginning(last: ReceivedMessage | None) -> str:
    text = " ".join(last.text.split()) if last else ""
    if not text:
        return "The last user message has no text."
    if len(text) > QUOTE_CHARS:
        text = text[:QUOTE_CHARS].rstrip() + "…"
    return f'The last user message begins: "{text}"'


def _answer_markdown(request: ReceivedChat) -> str:
    last = _last_user(request)
    effort = request.effort or "none given"
    return "\n\n".join(
        (
            "## Simulated answer",
            "This reply comes from the step-magic local server; no network was used.",
            f"- Model: {request.model}\n- Effort: {effort}\n- Messages: {len(request.messages)}",
            f'```python\nprint("simulated reply from {request.model}")\n```',
            *_tool_results_markdown(request),
            f'You wrote: "{last.text if last else ""}"',
        )
    )


def _tool_results_markdown(request: ReceivedChat) -> list[str]:
    """A section quoting the beginning of each tool result (whitespace collapsed), if any."""
    if not request.tool_results:
        return []
    lines = []
    for result in request.tool_results:
        text = " ".join(result.text.split())
        if len(text) > TOOL_RESULT_CHARS:
            text = text[:TOOL_RESULT_CHARS].rstrip() + "…"
        lines.append(f'- `{result.name}` (call `{result.call_id}`): "{text}"')
    return ["### Tool results", "\n".join(lines)]
