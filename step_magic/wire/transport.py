"""The one seam between a call and the server: which API, what exactly goes over the wire.

Single calls, ``--tools`` turns, ``--map`` rows and ``--dry-run`` all come through here, so
each of them honours ``--api`` and a dry run shows the very body a live call would send.
Every API in the registry (``wire.apis``) yields the same ``core.events`` and shares one retry
policy (``wire.retry``).
"""

from __future__ import annotations

from typing import Any

from step_magic.core.events import AsyncEventSource, EventSource
from step_magic.core.redact import redact_url
from step_magic.core.request import ChatRequest
from step_magic.core.settings import Settings
from step_magic.wire.apis import wire_api


def open_stream(settings: Settings, request: ChatRequest) -> EventSource:
    """A live reply through the API the settings name; nothing is sent until it is iterated."""
    return wire_api(settings.api).stream(settings, request)


def open_async_stream(settings: Settings, request: ChatRequest) -> AsyncEventSource:
    """The same reply read on an event loop (``async for``); nothing is sent until then."""
    return wire_api(settings.api).astream(settings, request)


def request_body(settings: Settings, request: ChatRequest) -> dict[str, Any]:
    """The JSON body the API the settings name would be sent for ``request``.

    Raises ``StepAPIError`` for what that API cannot carry (video on the Messages API), as a
    live call would before opening a connection.
    """
    return wire_api(settings.api).body(settings, request)


def endpoint(settings: Settings) -> str:
    """Where the request goes, e.g. ``POST https://api.stepfun.ai/v1/messages``."""
    url = redact_url(settings.base_url.rstrip("/"))
    return f"POST {url}{wire_api(settings.api).path}"
