"""Brace-safe ``{name}`` references in prompt text.

Prompts are full of braces that are not references: JSON, code, LaTeX, set literals.
``str.format_map`` (what jupyter-ai used) crashes on them or silently rewrites them, so here a
brace group is replaced only when it is a plain reference path (``df``, ``df.shape``,
``Out[12]``, ``results["train"]``) that resolves in the namespace. Everything else is left
exactly as typed, and ``{{ref}}`` escapes a reference that would otherwise be substituted.

The same resolver serves ``--with`` names (see ``context.py``), so both accept the same paths.
References never evaluate code beyond attribute and item lookup, and refuse private and
dunder attributes, so ``{obj.__class__.__init__.__globals__}`` cannot reach anything.
"""

from __future__ import annotations

import difflib
import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from step_magic.core.errors import InputError, UnknownReference

_IDENT = r"[^\W\d]\w*"
_SEGMENT = rf"(?:\.{_IDENT}|\[(?:-?\d+|\"[^\"\\{{}}\[\]]*\"|'[^'\\{{}}\[\]]*')\])"
_PATH = rf"{_IDENT}{_SEGMENT}*"
_PATH_RE = re.compile(_PATH)
_ROOT_RE = re.compile(_IDENT)
_SEGMENT_RE = re.compile(_SEGMENT)
# The escape alternative comes first so ``{{df}}`` is never read as ``{`` + ``{df}`` + ``}``.
_GROUP_RE = re.compile(rf"\{{\{{(?P<escaped>{_PATH})\}}\}}|\{{(?P<ref>{_PATH})\}}")

Segment = tuple[str, str | int]


class _Missing(enum.Enum):
    """Sentinel for "did not resolve": None is a perfectly good value to reference."""

    MISSING = enum.auto()


MISSING = _Missing.MISSING


@dataclass(frozen=True)
class Interpolated:
    """Prompt text after substitution, and the references that were substituted (in order)."""

    text: str
    used: tuple[str, ...]


def parse_reference(ref: str) -> tuple[str, tuple[Segment, ...]] | None:
    """Split a reference path into its root name and lookups, or None if it is not one.

    Attribute segments starting with ``_`` are refused (no dunder walking); the root may be
    ``_``, ``_12`` or ``__`` (IPython's output history) but not a dunder like ``__builtins__``.
    """
    root = _ROOT_RE.match(ref)
    if root is None or _PATH_RE.fullmatch(ref) is None:
        return None
    name = root.group()
    if len(name) > 4 and name.startswith("__") and name.endswith("__"):
        return None
    segments: list[Segment] = []
    for match in _SEGMENT_RE.finditer(ref, len(name)):
        text = match.group()
        if text.startswith("."):
            if text.startswith("._"):
                return None
            segments.append(("attr", text[1:]))
        elif text[1] in "\"'":
            segments.append(("item", text[2:-2]))
        else:
            segments.append(("item", int(text[1:-1])))
    return name, tuple(segments)


def lookup(ref: str, namespace: Mapping[str, object]) -> object:
    """Return the value ``ref`` names, or ``MISSING`` if it is not a reference or fails.

    Any exception from a lookup (a property that raises, a missing key) means "does not
    resolve": the prompt must never crash because of what a brace group happens to contain.
    """
    parsed = parse_reference(ref)
    if parsed is None:
        return MISSING
    name, segments = parsed
    if name not in namespace:
        return MISSING
    value: object = namespace[name]
    for kind, key in segments:
        try:
            value = getattr(value, str(key)) if kind == "attr" else value[key]  # type: ignore[index]
        except Exception:
            return MISSING
    return value


def resolve(ref: str, namespace: Mapping[str, object]) -> object:
    """Return the value ``ref`` names; raise UnknownReference with close matches if none."""
    value = lookup(ref, namespace)
    if value is MISSING:
        raise UnknownReference(ref, suggest(ref, namespace))
    return value


def suggest(ref: str, namespace: Mapping[str, object]) -> tuple[str, ...]:
    """Close matches for a reference that did not resolve.

    If the root name exists, the suggestions are for the first failing attribute or key
    (``df.shpe`` → ``df.shape``); otherwise they are public names of the namespace.
    """
    parsed = parse_reference(ref)
    if parsed is None or parsed[0] not in namespace:
        root = parsed[0] if parsed else ref
        return _close(root, [n for n in namespace if not n.startswith("_")])
    name, segments = parsed
    value: object = namespace[name]
    prefix = name
    for kind, key in segments:
        step = _render_segment(kind, key)
        found = lookup(prefix + step, namespace)
        if found is MISSING:
            candidates = _children(value, kind)
            return tuple(prefix + _render_segment(kind, c) for c in _close(str(key), candidates))
        value, prefix = found, prefix + step
    return ()


def _children(value: object, kind: str) -> list[str]:
    """Public attribute names, or the string keys of a mapping, to suggest from."""
    if kind == "attr":
        try:
            return [a for a in dir(value) if not a.startswith("_")]
        except Exception:
            return []
    if isinstance(value, Mapping):
        return [k for k in value if isinstance(k, str)]
    return []


def _render_segment(kind: str, key: str | int) -> str:
    if kind == "attr":
        return f".{key}"
    return f"[{key!r}]" if isinstance(key, str) else f"[{key}]"


def _close(word: str, candidates: list[str]) -> tuple[str, ...]:
    return tuple(difflib.get_close_matches(word, candidates, n=3, cutoff=0.6))


def interpolate(
    text: str,
    namespace: Mapping[str, object],
    *,
    render: Callable[[object], str] = str,
    strict: bool = False,
) -> Interpolated:
    """Replace each resolving ``{ref}`` in ``text`` with ``render(value)``.

    ``{{ref}}`` around a resolving reference becomes the literal ``{ref}``; every other brace
    sequence is kept as typed. With ``strict``, a ``{ref}`` that looks like a reference but
    does not resolve raises UnknownReference, to catch typos before a paid call.
    """
    used: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        escaped = match.group("escaped")
        if escaped is not None:
            return "{" + escaped + "}" if lookup(escaped, namespace) is not MISSING else match[0]
        ref = match.group("ref")
        value = lookup(ref, namespace)
        if value is MISSING:
            if strict and parse_reference(ref) is not None:
                raise UnknownReference(ref, suggest(ref, namespace))
            return match[0]
        if ref not in used:
            used.append(ref)
        try:
            return render(value)
        except InputError:
            raise
        except Exception as err:  # the user's __str__ or __repr__ failed: name the reference
            raise InputError(
                f"{{{ref}}} cannot be shown as text: {type(value).__name__} raised "
                f"{type(err).__name__}; pass it with --with, or fix its __str__"
            ) from None

    return Interpolated(_GROUP_RE.sub(substitute, text), tuple(used))
