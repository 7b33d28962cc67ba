"""Faults on demand: which one a request gets, and the error replies of the HTTP-status ones.

A fault is chosen by the model name (``fault-429`` or ``fault-429x2``: only the first two
requests with that name), by the ``X-Step-Fault`` header (same syntax), or by
``ServerConfig.fault``. The first that applies wins, in that order. Only chat completion,
Messages and Responses requests take faults, so a client that lists models first does not
use one up.

Two faults change what is said rather than how it is delivered. ``tool-loop``: a request
that offers tools always gets tool calls back, so a client's step limit can be tested.
``chatty-tools``: a tool-call reply is shaped as less tidy OpenAI-compatible servers shape it
(a sentence of answer text before the calls, no call ids, "" arguments for a call without
any), so a client's agent loop is tested against them too.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from step_magic.server.config import ServerConfig
from step_magic.server.errors import ApiError, invalid_key, invalid_params

FAULT_MODEL_PREFIX = "fault-"

# Faults that change the body of a 200 reply (handled by the stream and body builders).
BODY_FAULTS = frozenset(
    {
        "stall-before",
        "stall-mid",
        "drop-reasoning",
        "drop-answer",
        "malformed",
        "unknown-shape",
        "empty",
        "no-done",
        "reasoning-only",
        "length",
        "content-filter",
        "error-event",
        "tool-loop",  # tool calls in every reply that offers tools, results or not
        "chatty-tools",  # text before the calls, no call ids, "" for empty arguments
        # usage only when asked with stream_options.include_usage, in a last chunk with
        # "choices": [] (OpenAI, vLLM, Ollama, litellm)
        "usage-on-request",
        "strict-params",  # a 400 naming any body field it does not know (stream_options)
        "non-streamed",  # one JSON completion although the request asked for a stream
        "html-page",  # 200 with an HTML page, as a proxy's login or error page
        "refuse-schema",  # a 400 for response_format / text.format (no structured output)
    }
)


def _seconds(value: float) -> str:
    """Format seconds for a header without a useless ".0" (``Retry-After: 1``)."""
    return f"{value:g}"


def _rate_limited(config: ServerConfig, with_retry_after: bool) -> ApiError:
    headers = {"Retry-After": _seconds(config.retry_after)} if with_retry_after else {}
    message = "Rate limit reached for requests. Please slow down and try again later."
    return ApiError(429, "rate_limit_exceeded", message, headers)


STATUS_FAULTS: dict[str, Callable[[ServerConfig], ApiError]] = {
    "400": lambda _: invalid_params("Invalid request parameters: the value of a field is invalid."),
    "400-context": lambda _: invalid_params(
        "The input and max_tokens together exceed the model's context length of 256000 tokens."
    ),
    "401": lambda _: invalid_key(),
    "402": lambda _: ApiError(
        402, "insufficient_balance", "Your account balance is insufficient. Please top up."
    ),
    "403": lambda _: ApiError(
        403, "permission_denied", "You do not have permission to use this model."
    ),
    "404": lambda _: ApiError(
        404, "model_not_found", "The model does not exist or you do not have access to it."
    ),
    "429": lambda config: _rate_limited(config, with_retry_after=True),
    "429-bare": lambda config: _rate_limited(config, with_retry_after=False),
    "451": lambda _: ApiError(
        451, "censorship_block", "The request was blocked by content review."
    ),
    "500": lambda _: ApiError(
        500, "server_error", "The server had an error while processing your request."
    ),
    "503": lambda _: ApiError(
        503, "server_error", "The service is temporarily overloaded. Please try again later."
    ),
    # Anthropic's "overloaded" status, which Messages API clients meet from busy gateways.
    "529": lambda _: ApiError(529, "overloaded_error", "Overloaded"),
}

FAULTS: tuple[str, ...] = (*STATUS_FAULTS, *sorted(BODY_FAULTS))

_SPEC = re.compile(r"(?P<name>[a-z0-9-]+?)(?:x(?P<times>\d+))?")


@dataclass(frozen=True)
class FaultSpec:
    """A fault name and how many requests get it (None: all of them)."""

    name: str
    times: int | None


def parse_fault_spec(text: str) -> FaultSpec | None:
    """Parse ``429`` or ``429x2``; None when ``text`` names no fault."""
    match = _SPEC.fullmatch(text.strip().lower())
    if match is None or match["name"] not in FAULTS:
        return None
    times = match["times"]
    return FaultSpec(match["name"], None if times is None else int(times))


def unknown_fault_message(text: str) -> str:
    """Explain the fault syntax, for a fault name nobody could have meant."""
    return f"Unknown fault {text!r}: use <name> or <name>x<N>, name one of {', '.join(FAULTS)}."


class FaultSelector:
    """Decides the fault of each request and keeps the per-name counters (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used: dict[str, int] = {}

    def reset(self) -> None:
        """Forget how many requests each ``…xN`` fault name has already faulted."""
        with self._lock:
            self._used.clear()

    def select(
        self, model_fault: str | None, header: str | None, config: ServerConfig
    ) -> str | None:
        """Return the fault name for one chat completion request, using up a count if limited.

        ``model_fault`` is the part after ``fault-`` of the model name. A bad header or
        config value is an error rather than silently no fault, because a test that asked
        for a fault and got a normal reply would pass for the wrong reason.
        """
        with self._lock:
            for source, text in (("model", model_fault), ("header", header)):
                if text is not None and (name := self._take(source, text, invalid_params)):
                    return name
            return self._take_config_fault(config)

    def _take(self, source: str, text: str, error: Callable[[str], ApiError]) -> str | None:
        """Count one use of ``text`` from ``source``; None once its ``xN`` budget is spent."""
        spec = parse_fault_spec(text)
        if spec is None:
            raise error(unknown_fault_message(text))
        key = f"{source}:{text.strip().lower()}"
        used = self._used.get(key, 0)
        if spec.times is not None and used >= spec.times:
            return None
        self._used[key] = used + 1
        return spec.name

    def _take_config_fault(self, config: ServerConfig) -> str | None:
        """Apply ``config.fault``; ``fault_times`` counts down so it always means "the next N"."""
        if config.fault is None or (config.fault_times is not None and config.fault_times <= 0):
            return None
        name = self._take("config", config.fault, _misconfigured)
        if name is not None and config.fault_times is not None:
            config.fault_times -= 1
        return name


def _misconfigured(message: str) -> ApiError:
    """A bad ``ServerConfig.fault`` is the server's mistake, not the client's: a 500."""
    return ApiError(500, "server_error", message)
