"""When a call fails: the one-line ``StepAPIError``, and whether and how long to wait first.

Every wire API, on a thread or an event loop (``httpstream.Attempts`` asks here), retries the
same statuses with the same backoff and words its failures the same way, so a user sees one
kind of error whichever API they chose. The policy lives here, apart from the stream
reading, so the APIs cannot drift apart.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from step_magic.core.errors import InputError, StepAPIError
from step_magic.core.events import Waiting
from step_magic.core.settings import LOCAL_KEY, Settings, find_api_key, redact, server_label

# What the reference SDKs (openai, anthropic) retry: timeouts, conflicts, rate limits and every
# server-side status, Anthropic's 529 "overloaded" included.
RETRY_STATUSES = frozenset({408, 409, 429})


def retryable(status: int) -> bool:
    """True for a status worth another try after a pause (before any text arrived)."""
    return status in RETRY_STATUSES or status >= 500


MAX_RETRY_DELAY = 30.0
STEPFUN_KEY_HINT = (
    "check STEPFUN_API_KEY; keys from api.stepfun.com and api.stepfun.ai are not interchangeable"
)
OTHER_KEY_HINT = "check the key this server expects (step-magic sends STEPFUN_API_KEY to it)"
NO_KEY_HINT = "this server wants a key and none was sent"
URL_LOGIN_HINT = (
    "check the user name and password in the base URL: they are sent (as Basic auth) in place"
    " of a key"
)
HINTS = {
    402: "the account balance is insufficient",
    404: "check the model name and --base-url",
    429: "rate limited; try again in a moment",
}


def retry_delay(
    attempt: int, retry_after: str | None, *, cap: float = MAX_RETRY_DELAY
) -> float | None:
    """Seconds to wait before retry ``attempt``: the server's Retry-After, else backoff.

    None when the server asks for longer than ``cap``: retrying early would only use up the
    retries, so the call fails and says how long the server wants. Exponential backoff
    with full jitter keeps many kernels from retrying in lockstep.
    """
    if retry_after:
        seconds = _parse_retry_after(retry_after.strip())
        if seconds is not None:
            return max(seconds, 0.0) if seconds <= cap else None
    return random.uniform(0, min(cap, 0.5 * 2**attempt))


def after_failure(
    failure: Any, attempt: int, attempts: int, error: Callable[[Exception, str], StepAPIError]
) -> Waiting:
    """The one retry policy of both APIs, after a failed status: the wait before the next
    attempt, or (not retryable, out of attempts, or a Retry-After too long) the error that
    ``error`` words, raised."""
    delay = retry_delay(attempt, failure.response.headers.get("retry-after"))
    if not retryable(failure.status_code) or attempt == attempts:
        raise error(failure, "") from None
    if delay is None:
        raise error(failure, wait_too_long(failure)) from None
    return Waiting(retry_reason(failure), delay, attempt, attempts - 1)


def wait_too_long(err: Any) -> str:
    """The note for a Retry-After we will not wait for (the user decides to come back)."""
    return f" (the server asks to wait {err.response.headers.get('retry-after')} s)"


def _parse_retry_after(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


REASONS = {408: "request timed out", 409: "conflict", 429: "rate limited", 529: "overloaded"}


def retry_reason(err: Any) -> str:
    """Why a retry waits, in the words the panel header shows."""
    return REASONS.get(err.status_code, f"server error {err.status_code}")


def describe_error(
    err: Exception,
    base_url: str,
    timeout: float,
    *,
    stepfun: bool = True,
    key_hint: str | None = None,
) -> tuple[int | None, str]:
    """The HTTP status (if any) and one line that says what went wrong and what to do;
    ``stepfun`` is False for another server, whose key is not one of StepFun's; ``key_hint``
    (``credentials_hint``) says what was sent, when a 401 needs more than that."""
    import openai

    if isinstance(err, openai.APIStatusError):
        message = server_message(err.body) or err.response.reason_phrase or "request failed"
        key_hint = key_hint or (STEPFUN_KEY_HINT if stepfun else OTHER_KEY_HINT)
        hint = key_hint if err.status_code == 401 else HINTS.get(err.status_code)
        return err.status_code, f"{message} — {hint}" if hint else message
    if isinstance(err, openai.APITimeoutError):
        return None, f"no data from {base_url} for {timeout:g} s (timed out; see --timeout)"
    if isinstance(err, openai.APIConnectionError):
        why = connection_failure(err)
        return None, f"connection to {base_url} failed{': ' + why if why else ''}"
    if isinstance(err, json.JSONDecodeError):
        return None, f"malformed chunk from the server ({err})"
    if isinstance(err, openai.APIError):
        return None, server_message(err.body) or err.message
    return None, str(err)


def connection_failure(err: BaseException) -> str:
    """Why a connection failed, the same on a thread and on an event loop: the socket's own
    error when one refused or reset it (the loop's HTTP stack words it "All connection
    attempts failed"), else what the HTTP library said."""
    cause = err.__cause__ or err.__context__
    deepest, seen = cause, 0
    while deepest is not None and seen < 16:  # a chain is short; a cycle must not hang us
        if isinstance(deepest, ConnectionError) and deepest.errno:
            return f"[Errno {deepest.errno}] {os.strerror(deepest.errno)}"
        deepest, seen = deepest.__cause__ or deepest.__context__, seen + 1
    return str(cause) if cause is not None else ""


def call_error(
    err: Exception,
    settings: Settings,
    note: str = "",
    *,
    trace_id: str | None,
    completion_id: str | None,
) -> StepAPIError:
    """The one line a failed call shows, on either API: the status, the server's words, the
    hint for whose server it is, the ids; the key removed just in case."""
    server = server_label(settings)
    status, detail = describe_error(
        err, settings.base_url, settings.timeout, stepfun=server is None,
        key_hint=credentials_hint(settings) if getattr(err, "status_code", None) == 401 else None,
    )  # fmt: skip
    return StepAPIError(
        redact(detail + note, *settings.secrets),
        status=status,
        trace_id=trace_id,
        completion_id=completion_id,
        server=server,
    )


def credentials_hint(settings: Settings) -> str | None:
    """For a 401, what was sent when it was not a key: the base URL's user name and password
    (the HTTP client sends them as Basic auth, which takes the place of the key, as with the
    openai SDK), or nothing at all (the key-less placeholder for a server on this machine)."""
    parts = urlsplit(settings.base_url)
    if parts.username or parts.password:
        return URL_LOGIN_HINT
    if settings.api_key not in ("", LOCAL_KEY):
        return None
    try:  # a stored key that was not used: say why, not "set one"
        find_api_key()
    except InputError as unusable:
        return f"{NO_KEY_HINT}: {unusable}"
    return f"{NO_KEY_HINT}: set STEPFUN_API_KEY"


def server_message(body: object) -> str | None:
    """The ``error.message`` of StepFun's error body, whatever wrapping the SDK left on it;
    a body of plain text (a proxy's ``upstream timed out``) is its words, a page is not."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    if isinstance(body, str) and body.strip() and not body.lstrip().startswith("<"):
        return " ".join(body.split())
    return None
