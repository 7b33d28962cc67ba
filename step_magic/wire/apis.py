"""The wire APIs step-magic speaks, in one registry: adding an API is one entry and its modules.

Each entry says where a call goes (``path``), what is sent (``body``, ``headers``), how the live
reply is read (``stream`` on a thread, ``astream`` on an event loop), what a dry run shows of
a body (``conversation``, in Chat Completions shape) and how ``step-magic doctor`` reads the
raw events (``probe``). The calls (``transport``), the doctor, the dry run and the flags'
choices read this table; nothing else names an API. The implementations are imported when
first used, so loading the extension imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from step_magic.core.errors import StepAPIError
from step_magic.core.events import AsyncEventSource, EventSource
from step_magic.core.request import ChatRequest
from step_magic.core.settings import Settings

if TYPE_CHECKING:
    from step_magic.wire.probe import Observed

Body = dict[str, Any]


@dataclass(frozen=True)
class WireAPI:
    """One API: its name (``--api NAME``), its title in messages, and how to speak it."""

    name: str
    title: str
    path: str
    stream: Callable[[Settings, ChatRequest], EventSource]
    astream: Callable[[Settings, ChatRequest], AsyncEventSource]
    body: Callable[[Settings, ChatRequest], Body]
    headers: Callable[[str], dict[str, str]]
    conversation: Callable[[Body], list[dict[str, Any]]]
    probe: Callable[[dict[str, Any], Observed], None]


def _chat_stream(settings: Settings, request: ChatRequest) -> EventSource:
    from step_magic.wire.chatwire import ReplyStream

    return ReplyStream(settings, request)


def _chat_astream(settings: Settings, request: ChatRequest) -> AsyncEventSource:
    from step_magic.wire.chatwire import AsyncChatStream

    return AsyncChatStream(settings, request)


def _chat_body(settings: Settings, request: ChatRequest) -> Body:
    from step_magic.wire.chat import chat_body

    return chat_body(settings, request)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _chat_conversation(body: Body) -> list[dict[str, Any]]:
    return list(body.get("messages", ()))


def _chat_probe(event: dict[str, Any], seen: Observed) -> None:
    from step_magic.wire.probe import read_chat_chunk

    read_chat_chunk(event, seen)


def _messages_stream(settings: Settings, request: ChatRequest) -> EventSource:
    from step_magic.wire.messages import MessagesStream

    return MessagesStream(settings, request)


def _messages_astream(settings: Settings, request: ChatRequest) -> AsyncEventSource:
    from step_magic.wire.messages import AsyncMessagesStream

    return AsyncMessagesStream(settings, request)


def _messages_body(settings: Settings, request: ChatRequest) -> Body:
    from step_magic.wire.messages_body import messages_body

    return messages_body(request)


def _messages_headers(key: str) -> dict[str, str]:
    from step_magic.wire.messages_body import messages_headers

    return messages_headers(key)


def _messages_conversation(body: Body) -> list[dict[str, Any]]:
    from step_magic.wire.messages_body import as_chat_messages

    return as_chat_messages(body)


def _messages_probe(event: dict[str, Any], seen: Observed) -> None:
    from step_magic.wire.probe import read_messages_event

    read_messages_event(event, seen)


def _responses_stream(settings: Settings, request: ChatRequest) -> EventSource:
    from step_magic.wire.responses import ResponsesStream

    return ResponsesStream(settings, request)


def _responses_astream(settings: Settings, request: ChatRequest) -> AsyncEventSource:
    from step_magic.wire.responses import AsyncResponsesStream

    return AsyncResponsesStream(settings, request)


def _responses_body(settings: Settings, request: ChatRequest) -> Body:
    from step_magic.wire.responses_body import responses_body

    return responses_body(request)


def _responses_conversation(body: Body) -> list[dict[str, Any]]:
    from step_magic.wire.responses_body import as_chat_messages

    return as_chat_messages(body)


def _responses_probe(event: dict[str, Any], seen: Observed) -> None:
    from step_magic.wire.probe import read_responses_event

    read_responses_event(event, seen)


API = MappingProxyType(
    {
        "chat": WireAPI(
            "chat",
            "Chat Completions",
            "/chat/completions",
            _chat_stream,
            _chat_astream,
            _chat_body,
            _bearer,
            _chat_conversation,
            _chat_probe,
        ),
        "messages": WireAPI(
            "messages",
            "Messages API",
            "/messages",
            _messages_stream,
            _messages_astream,
            _messages_body,
            _messages_headers,
            _messages_conversation,
            _messages_probe,
        ),
        "responses": WireAPI(
            "responses",
            "Responses API",
            "/responses",
            _responses_stream,
            _responses_astream,
            _responses_body,
            _bearer,
            _responses_conversation,
            _responses_probe,
        ),
    }
)


def observe(entry: WireAPI, settings: Settings, body: Body, *, timeout: float) -> Observed:
    """``step-magic doctor``'s raw look at one call through ``entry`` (``wire.probe``)."""
    from step_magic.wire.probe import observe as look

    url = settings.base_url.rstrip("/") + entry.path
    return look(url, entry.headers(settings.api_key), body, entry.probe, timeout=timeout)


def wire_api(name: str) -> WireAPI:
    """The registry's entry for ``name`` (the catalogue checks settings; this is for code
    that builds ``Settings`` itself)."""
    if name not in API:
        raise StepAPIError(f"no wire API is called {name!r}: use one of {', '.join(API)}")
    return API[name]
