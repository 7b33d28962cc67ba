"""Frozen settings for one call, and where the API key and base URL come from.

The magic builds one ``Settings`` per cell from its traitlets defaults and the cell's flags;
everything below it reads this object only, never the environment or the shell.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from step_magic.core.errors import InputError
from step_magic.core.models import DEFAULT_MODEL, check_effort
from step_magic.core.redact import redact_url

DEFAULT_BASE_URL = "https://api.stepfun.ai/v1"
KEY_VARIABLES = ("STEPFUN_API_KEY", "STEP_API_KEY")
BASE_URL_VARIABLE = "STEPFUN_BASE_URL"
LOCAL_KEY = "local-server-no-key-needed"

# Every default in one place: the magics' traits and the Python API both start from these.
DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "model": DEFAULT_MODEL,
        "effort": None,
        "system": None,
        "max_tokens": None,
        "temperature": None,
        "base_url": None,
        "timeout": 120.0,
        "deadline": None,
        "max_retries": 3,
        "show_reasoning": False,
        "remote_images": False,
        "reasoning": True,
        "api": "chat",
        "budget": 6_000,
        "detail": "low",
        "image_max_side": 2048,
        "max_steps": 8,
    }
)
APIS = ("chat", "messages")


@dataclass(frozen=True)
class Settings:
    """Everything one ``%%step`` call needs to know; the key is kept out of ``repr``."""

    model: str
    base_url: str
    api_key: str = field(repr=False)
    effort: str | None = None
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    timeout: float = 120.0
    # seconds for the whole call, however busy the server looks: SSE keep-alive comments
    # count as a live connection (a queued or prefilling server sends them), so only this
    # bounds a server that sends nothing else; None is no limit
    deadline: float | None = None
    max_retries: int = 3
    show_reasoning: bool = False
    remote_images: bool = False  # load images the answer links to (off: a saved notebook
    # that fetches them when opened tells their host who opened it)
    reasoning: bool = True
    local: bool = False
    api: str = "chat"  # "chat" (Chat Completions) or "messages" (Anthropic-style Messages)


def key_variable(environ: Mapping[str, str] | None = None) -> str | None:
    """Name of the first of StepFun's documented key variables that is set, else None."""
    env = os.environ if environ is None else environ
    return next((name for name in KEY_VARIABLES if env.get(name, "").strip()), None)


def find_api_key(environ: Mapping[str, str] | None = None) -> str | None:
    """Return the API key from the first documented variable that holds one, else None."""
    env = os.environ if environ is None else environ
    name = key_variable(env)
    return env[name].strip() if name else None


def find_base_url(environ: Mapping[str, str] | None = None) -> str:
    """Base URL from ``STEPFUN_BASE_URL``, else StepFun's international endpoint."""
    env = os.environ if environ is None else environ
    return env.get(BASE_URL_VARIABLE, "").strip() or DEFAULT_BASE_URL


def check_base_url(url: str) -> str | None:
    """Validate a base URL; return a warning when the key would travel unencrypted.

    Raises ValueError for something that is not an http(s) URL at all.
    """
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises for a port out of range or not a number
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = redact_url(url)
        raise InputError(
            f"--base-url must be an http(s) URL like {DEFAULT_BASE_URL}, not {shown!r}"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        shown = redact_url(url)
        return f"{shown} is plain http to a non-local host: the API key would travel unencrypted"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name such as 127.example.com is not this machine


def is_loopback_url(url: str) -> bool:
    """True for a server on this machine, which needs no real key and no TLS."""
    return _is_loopback(urlsplit(url).hostname or "")


STEPFUN_DOMAINS = ("stepfun.ai", "stepfun.com")


def is_stepfun_host(host: str) -> bool:
    """StepFun's own endpoints (any host under its domains; not lookalikes such as
    ``evilstepfun.ai``): errors say "StepFun API error", and no OpenAI-only options are sent."""
    return any(host == domain or host.endswith("." + domain) for domain in STEPFUN_DOMAINS)


def server_label(settings: Settings) -> str | None:
    """How errors name the server: None for StepFun's own endpoints (the message says
    "StepFun API error"), "the local simulator" for the bundled one, else host and port."""
    if settings.local:
        return "the local simulator"
    parts = urlsplit(settings.base_url)
    host = parts.hostname or ""
    if is_stepfun_host(host):
        return None
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # an unusable port: the connection error says so, this must not raise
        port = ""
    return f"{host}{port}"


def missing_key_message() -> str:
    """One line that says how to fix a missing key, and how to work without one."""
    return (
        "No StepFun API key: run %step_config --key (asks for it without echoing it), or set "
        "STEPFUN_API_KEY before starting Jupyter; to work offline: %step_config --local"
    )


def redact(text: str, secret: str | None) -> str:
    """Remove ``secret`` from ``text``: error messages may echo request details.

    Servers do not always echo a key as it was sent: some upper-case it, quote it with
    spaces or dashes inserted, so the key's letters and digits are matched in order, in
    any case, with any separators between them (for keys long enough to be distinctive).
    """
    if not secret:
        return text
    text = text.replace(secret, "***")
    core = re.sub(r"[\W_]", "", secret)
    if len(core) < 12:
        return text
    return re.sub(r"[\s\-_.]*".join(map(re.escape, core)), "***", text, flags=re.IGNORECASE)


# What a %config value may be; a flag's own type check covers the flag form.
_RANGES: dict[str, Callable[[Any], bool]] = {
    "timeout": lambda v: v > 0,
    "deadline": lambda v: v is None or v > 0,
    "max_retries": lambda v: v >= 0,
    "max_tokens": lambda v: v is None or v > 0,
    "temperature": lambda v: v is None or 0 <= v <= 2,
    "budget": lambda v: v > 0,
    "image_max_side": lambda v: v >= 16,
}


def check_defaults(defaults: Mapping[str, Any], *, owner: str = "StepMagics.") -> None:
    """Raise InputError for a default out of range, naming it as the user set it
    (``StepMagics.timeout`` for a trait, ``timeout`` for a keyword of the Python API)."""
    for name, valid in _RANGES.items():
        try:
            fits = name not in defaults or valid(defaults[name])
        except TypeError:  # "0.3" for a number
            fits = False
        if not fits:
            raise InputError(f"{owner}{name} = {defaults[name]!r} is out of range; set it again")


def settings_for(
    flags: Mapping[str, Any],
    defaults: Mapping[str, Any],
    *,
    local_url: str | None,
    need_key: bool,
    owner: str = "StepMagics.",
) -> tuple[Settings, str | None]:
    """Merge a call's flags over the configured defaults over the environment.

    Returns the settings and a warning to show (plain http to a remote host); raises
    InputError with a one-line message for anything the user must fix first. ``owner``
    names the defaults in those messages (the traits, or the Python API's keywords); an
    ``api_key`` among the flags wins over the environment.
    """
    check_defaults(defaults, owner=owner)

    def pick(name: str) -> Any:
        value = flags.get(name)
        return defaults.get(name) if value is None else value

    model, effort = pick("model"), pick("effort")
    check_effort(model, effort)
    if pick("api") not in APIS:
        raise InputError(f"api must be one of {', '.join(APIS)}, not {pick('api')!r}")
    given = (flags.get("base_url"), flags.get("api_key"))
    base_url, key, local, warning = _endpoint(*given, defaults, local_url, need_key)
    settings = Settings(
        model=model,
        base_url=base_url,
        api_key=key,
        effort=effort,
        system=pick("system"),
        max_tokens=pick("max_tokens"),
        temperature=pick("temperature"),
        timeout=pick("timeout"),
        deadline=pick("deadline"),
        max_retries=defaults["max_retries"],
        show_reasoning=bool(flags.get("show_reasoning") or defaults["show_reasoning"]),
        remote_images=bool(flags.get("remote_images") or defaults.get("remote_images")),
        reasoning=bool(defaults["reasoning"] and not flags.get("no_reasoning")),
        local=local,
        api=pick("api"),
    )
    return settings, warning


def _endpoint(
    flag_url: str | None,
    given_key: str | None,
    defaults: Mapping[str, Any],
    local_url: str | None,
    need_key: bool,
) -> tuple[str, str, bool, str | None]:
    """Base URL, key, whether it is the in-process simulator, and a warning if any."""
    if flag_url is None and defaults.get("base_url") is None and local_url is not None:
        return local_url, LOCAL_KEY, True, None
    base_url = flag_url or defaults.get("base_url") or find_base_url()
    warning = check_base_url(base_url)
    key = given_key.strip() if given_key and given_key.strip() else find_api_key()
    if key is None:
        if need_key and not is_loopback_url(base_url):
            raise InputError(missing_key_message())
        key = LOCAL_KEY
    return base_url, key, False, warning
