"""Frozen settings for one call, and where the API key and base URL come from.

The magic builds one ``Settings`` per cell from its traitlets defaults and the cell's flags;
everything below it reads this object only, never the environment or the shell.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from step_magic.core.catalog import SETTINGS, Setting, check_flags, check_values
from step_magic.core.errors import InputError
from step_magic.core.models import check_effort
from step_magic.core.redact import redact_url

DEFAULT_BASE_URL = "https://api.stepfun.ai/v1"
KEY_VARIABLES = ("STEPFUN_API_KEY", "STEP_API_KEY")
BASE_URL_VARIABLE = "STEPFUN_BASE_URL"
LOCAL_KEY = "local-server-no-key-needed"


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
    top_p: float | None = None
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
    api: str = "chat"  # a wire API of the registry (wire.apis): chat, messages, responses

    @property
    def secrets(self) -> tuple[str, ...]:
        """What no output may show: the key, and a password in the base URL."""
        return (self.api_key, *url_secrets(self.base_url))


def key_variable(environ: Mapping[str, str] | None = None) -> str | None:
    """Name of the first of StepFun's documented key variables that is set, else None."""
    env = os.environ if environ is None else environ
    return next((name for name in KEY_VARIABLES if env.get(name, "").strip()), None)


def find_api_key(environ: Mapping[str, str] | None = None) -> str | None:
    """The API key: the first documented variable that holds one, else the key kept by
    ``step-magic key set`` (the system keyring or the owner-only key file), else None.

    Raises InputError, in one line without the key, for a key file others can read or a
    keyring that cannot be read.
    """
    found = _key_in_force(environ)
    return found[0] if found else None


def key_origin(environ: Mapping[str, str] | None = None) -> str | None:
    """Where the key in force comes from, never the key: ``set in STEPFUN_API_KEY``,
    ``stored in <path>``, ``in the system keyring``; the reason for a stored key that is
    refused; None when there is no key."""
    try:
        found = _key_in_force(environ)
    except InputError as err:
        return f"not used: {err}"
    return found[1] if found else None


def _key_in_force(environ: Mapping[str, str] | None) -> tuple[str, str] | None:
    """The key and where it comes from, in the one order keys are looked for: the
    documented variables, then the key ``step-magic key set`` stored."""
    env = os.environ if environ is None else environ
    name = key_variable(env)
    if name:
        return env[name].strip(), f"set in {name}"
    from step_magic.core import keystore

    stored = keystore.read(env)
    return (stored.key, stored.where) if stored else None


def key_to_hide(environ: Mapping[str, str] | None = None) -> str | None:
    """The key to remove from a text being shown, when the key itself cannot be had (an
    unsafe key file): never raises, since it runs while describing another error."""
    try:
        return find_api_key(environ)
    except InputError:
        return None


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


MISSING_KEY = {
    "notebook": (
        "No StepFun API key: run %step_config --key (asks for it without echoing it), or set "
        "STEPFUN_API_KEY before starting Jupyter, or store it once with `step-magic key set` "
        "in a terminal; to work offline: %step_config --local"
    ),
    "python": (
        "No StepFun API key: set STEPFUN_API_KEY in the environment, store it once with "
        "`step-magic key set`, or pass api_key=...; to work offline, run `step-magic serve` "
        "and pass base_url= the URL it prints"
    ),
    "shell": (
        "No StepFun API key: export STEPFUN_API_KEY=... first, or store it once with "
        "`step-magic key set`; to work offline, add --local (or run `step-magic serve` and "
        "pass --base-url the URL it prints)"
    ),
}


def missing_key_message(where: str = "notebook") -> str:
    """One line that says how to fix a missing key, and how to work without one, in the
    words of where the user is: a notebook, a Python script, or a shell."""
    return MISSING_KEY[where]


def redact(text: str, *secrets: str | None) -> str:
    """Remove each of ``secrets`` from ``text``: error messages may echo request details.

    Servers do not always echo a key as it was sent: some upper-case it, quote it with
    spaces or dashes inserted, or drop the prefix that names its kind (``sk-``), so the
    key's letters and digits are matched in order, in any case, with any separators between
    them, with or without that prefix (for keys long enough to be distinctive). Its
    percent-encoded and base64 forms (a header or a URL echoed back) go too.

    The order matters: each secret as written goes first (a header's value may stop short
    of it, at a ``!``); then credentials in URLs and echoed ``Authorization`` headers, whole
    (``redact_url``), before any base64 form: removed from inside a ``Basic`` value, a
    password would leave a piece too short to be known as one.
    """
    present = [secret for secret in secrets if secret]
    for secret in present:
        text = _replace(text, _exact(secret))
    text = redact_url(text)
    for secret in present:
        text = _replace(text, _encoded(secret))
        for core in _cores(secret):
            text = re.sub(r"[\s\-_.]*".join(map(re.escape, core)), "***", text, flags=re.I)
    return text


def _replace(text: str, forms: list[str]) -> str:
    for form in forms:
        text = text.replace(form, "***")
    return text


_KIND_PREFIX = re.compile(r"[A-Za-z]{1,4}[-_]")  # sk-, sk-proj-, pk_… (not a password's word)


def _cores(secret: str) -> list[str]:
    """The secret's letters and digits, then again without each leading kind prefix; only
    those long enough (12) not to match ordinary words."""
    cores, rest = [], secret
    for _ in range(3):
        cores.append(re.sub(r"[\W_]", "", rest))
        prefix = _KIND_PREFIX.match(rest)
        if prefix is None:
            break
        rest = rest[prefix.end() :]
    return [core for core in dict.fromkeys(cores) if len(core) >= 12]


def url_secrets(url: str) -> tuple[str, ...]:
    """The password of ``url`` (``http://user:password@host``), as written and decoded: a
    server may echo it back from the ``Basic`` header it was sent in."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return ()
    return tuple(dict.fromkeys((password, unquote(password)))) if password else ()


def _exact(secret: str) -> list[str]:
    """The secret as sent and percent-encoded (a short URL password too, from 4 characters)."""
    return [form for form in (secret, quote(secret, safe="")) if len(form) >= 4]


def _encoded(secret: str) -> list[str]:
    """The secret in base64 at each of the three alignments it can take inside a longer
    value (``Basic base64(user:key)``), minus the characters it shares with its neighbours;
    first as the end of such a value (a password ends ``user:password``), where the last
    characters are its own, with its padding and without (base64url, or the ``=`` sent
    percent-encoded)."""
    data, ends, inner = secret.encode(), [], []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + data).decode()
        start = (shift * 4 + 2) // 3  # skip the characters that mix in the bytes before
        ends += [encoded[start:], encoded[start:].rstrip("=")]
        mixed = (0, 3, 2)[(shift + len(data)) % 3]  # the last group's: padding, or shared
        inner.append(encoded[start : len(encoded) - mixed])
    return [form for form in dict.fromkeys(ends + inner) if len(form) >= 12]


def key_for(
    base_url: str, where: str, *, given: str | None = None, required: bool = True
) -> str | None:
    """The key to send to ``base_url``: ``given`` when it holds one, else the key in force
    (``find_api_key``); None when there is none and ``base_url`` is on this machine, or a
    key is not ``required``. Without a key for another server, an InputError saying how to
    set one in the words of ``where`` (``missing_key_message``); a stored key that is not
    safe to use is an InputError too."""
    key = given.strip() if given and given.strip() else find_api_key()
    if key is None and required and not is_loopback_url(base_url):
        raise InputError(missing_key_message(where))
    return key


def check_defaults(defaults: Mapping[str, Any], *, owner: str = "StepMagics.") -> None:
    """Raise InputError for a default that does not fit the catalogue, naming it as the user
    set it (``StepMagics.timeout`` for a trait, ``timeout`` for a keyword of the Python API)."""
    check_values(defaults, owner=owner)


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
    check_flags(flags)
    chosen = {name: _pick(setting, flags, defaults) for name, setting in BY_FIELD.items()}
    check_effort(chosen["model"], chosen["effort"])
    given = (flags.get("base_url"), flags.get("api_key"))
    where = "notebook" if owner else "python"
    base_url, key, local, warning = _endpoint(*given, defaults, local_url, need_key, where)
    settings = Settings(base_url=base_url, api_key=key, local=local, **chosen)
    return settings, warning


BY_FIELD = {item.name: item for item in SETTINGS if item.request}


def _pick(setting: Setting, flags: Mapping[str, Any], defaults: Mapping[str, Any]) -> Any:
    """A flag's value over the default; a switch turns its boolean on (or off)."""
    default = defaults.get(setting.name, setting.default)
    if setting.kind is bool:
        switched = bool(flags.get(setting.dest))
        return bool(default and not switched) if setting.default else bool(default or switched)
    value = flags.get(setting.name)
    return default if value is None else value


def _endpoint(
    flag_url: str | None,
    given_key: str | None,
    defaults: Mapping[str, Any],
    local_url: str | None,
    need_key: bool,
    where: str,
) -> tuple[str, str, bool, str | None]:
    """Base URL, key, whether it is the in-process simulator, and a warning if any."""
    if flag_url is None and defaults.get("base_url") is None and local_url is not None:
        return local_url, LOCAL_KEY, True, None
    base_url = flag_url or defaults.get("base_url") or find_base_url()
    warning = check_base_url(base_url)
    key = key_for(base_url, where, given=given_key, required=need_key) or LOCAL_KEY
    return base_url, key, False, warning
