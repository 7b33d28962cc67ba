"""Media in a request → a short reference: the hash, size and type of what was sent.

The history log and the cassettes (``%step_record``, ``--cassette``) keep whole requests, and a
notebook's images and videos travel in them as data URLs: storing those would grow the files
by megabytes a call. A reference still says exactly which file was sent, and every store makes
it the same way, so a request redacted for one matches the same request redacted for another.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote_to_bytes


def redact_media(messages: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Copy of ``messages`` with every data URL replaced by ``sha256:<hex> (<n> bytes, <mime>)``.

    A notebook's images would make the log grow by megabytes a call; the hash of the decoded
    bytes still says which file was sent (it matches ``sha256sum``).
    """
    redacted = copy.deepcopy(list(messages))
    for message in redacted:
        content = message.get("content")
        for part in content if isinstance(content, list) else ():
            for kind in ("image_url", "video_url"):
                media = part.get(kind) if isinstance(part, dict) else None
                url = media.get("url") if isinstance(media, dict) else None
                if isinstance(media, dict) and isinstance(url, str) and url.startswith("data:"):
                    media["url"] = _reference(url)
    return tuple(redacted)


def _reference(url: str) -> str:
    header, _, payload = url.removeprefix("data:").partition(",")
    mime = header.split(";")[0] or "text/plain"
    try:
        data = (
            base64.b64decode(payload) if header.endswith(";base64") else unquote_to_bytes(payload)
        )
    except ValueError:  # malformed base64: hash the text, still never store it
        data = payload.encode()
    return f"sha256:{hashlib.sha256(data).hexdigest()} ({len(data)} bytes, {mime})"


# A URL's password (``user:secret@``) and query parameters that name a secret (``?api-key=``).
_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]*://)(?P<user>[^\s/@:]*):[^\s/@]*@", re.I)
_SECRET_PARAMETER = re.compile(
    r"(?P<name>[?&;](?:[\w-]*(?:key|token|secret|password|passwd|pwd|sig|signature|auth)"
    r"[\w-]*))=[^&#\s'\"]*",
    re.I,
)


# An echoed Authorization header: Basic carries base64(user:password), Bearer the key itself.
_AUTH_HEADER = re.compile(
    r"\b(?P<scheme>Basic|Bearer|BASIC|BEARER)(?P<gap>\s+|%20|\+)"
    r"(?P<token>[A-Za-z0-9+/=._~-]{8,})"
)


def _credential(token: str) -> bool:
    """A credential, not prose ("Basic Information", "Bearer token-based", "Basic
    internationalization", "BEARER TOKEN_MISSING"): padded base64, letters with digits,
    or both cases after the first letter; or long and not only letters and dashes."""
    digits = bool(re.search(r"[0-9]", token)) and bool(re.search(r"[A-Za-z]", token))
    rest = token[1:]
    cases = rest != rest.lower() and rest != rest.upper()
    wordlike = bool(re.fullmatch(r"[A-Za-z_-]+", token))
    return token.endswith("=") or digits or cases or (len(token) >= 16 and not wordlike)


def redact_url(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``.

    A base URL may carry a password (``http://user:pass@host/v1``) or a key in its query
    (``?api-key=…``), and a server may echo the request's ``Authorization`` header (whose
    ``Basic`` value is the base64 of that password); error lines, ``%step_config``, the dry
    run and the history show base URLs, so they all go through here.
    """
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    text = _AUTH_HEADER.sub(
        lambda m: f"{m['scheme']}{m['gap']}***" if _credential(m["token"]) else m[0], text
    )
    return _SECRET_PARAMETER.sub(lambda m: f"{m['name']}=***", text)
