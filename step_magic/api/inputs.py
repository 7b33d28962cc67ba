"""Keyword arguments into what the engine takes: settings, attachments and tools.

The Python API has no namespace to read names from, so objects are passed in directly; they
are named here (``attachment``, ``attachment_2``, a file's name, a function's name) and then
go through exactly the path ``--with`` and ``--tools`` take, summaries and checks included.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from step_magic.api.keywords import CALL_KEYWORDS, CALL_ONLY
from step_magic.context.attachments import VIDEO_TYPES
from step_magic.context.imagekinds import IMAGE_SUFFIXES
from step_magic.core.catalog import DEFAULTS
from step_magic.core.errors import InputError
from step_magic.core.request import CHARS_PER_TOKEN
from step_magic.core.settings import Settings, settings_for
from step_magic.engine.toolloop import ToolLoop
from step_magic.tools.build import build_toolbox

# The keywords that are settings, with their meaning in ``docs/api.md``.
SETTING_KEYWORDS = tuple(k for k in CALL_KEYWORDS if k not in CALL_ONLY)


def check_keywords(
    given: Iterable[str], known: Sequence[str], owner: str = "", *, meant: Sequence[str] = ()
) -> None:
    """InputError for keywords not in ``known``, each with the close name it may have meant
    (``effrot`` → ``effort``) among ``meant`` (default ``known``), as the magic does for a
    mistyped flag."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        names = meant or known
        named = [
            name + "".join(f" (did you mean {m}?)" for m in get_close_matches(name, names, 1))
            for name in unknown
        ]
        raise InputError(f"{owner}unknown keyword(s): {', '.join(named)}")


def call_settings(
    options: Mapping[str, Any], *, base_url: str | None, api_key: str | None
) -> Settings:
    """Settings from the API's keywords over the defaults over the environment.

    A value out of range is an ``InputError`` that names the keyword; plain http to a remote
    host is a warning, as it is in the magics.
    """
    check_keywords(options, SETTING_KEYWORDS, meant=CALL_KEYWORDS)  # (attach= was taken off)
    defaults = {**DEFAULTS, **{k: v for k, v in options.items() if v is not None}}
    flags = {"base_url": base_url, "api_key": api_key}
    settings, warning = settings_for(flags, defaults, local_url=None, need_key=True, owner="")
    if warning:
        warnings.warn(warning, stacklevel=4)
    return settings


def attachments(attach: object) -> tuple[tuple[str, ...], dict[str, object]]:
    """``attach`` as ``--with`` names and the namespace they resolve in.

    A mapping keeps its names; a list or a single object is named ``attachment`` (or
    ``attachment_1``, ``attachment_2``…); a path (``Path``, or a string naming a file) is
    read as ``--with plots/chart.png`` reads a file, and labelled with its path.
    """
    if attach is None:
        return (), {}
    if isinstance(attach, Mapping):
        return tuple(str(name) for name in attach), {str(k): v for k, v in attach.items()}
    items = list(attach) if isinstance(attach, list | tuple) else [attach]
    names: list[str] = []
    namespace: dict[str, object] = {}
    for number, item in enumerate(items, 1):
        if item == "@error":  # the last error the shell showed, as --with @error
            names.append(item)
            continue
        value = _as_path(item)
        if isinstance(value, Path):  # not in the namespace: found as a file, as --with does
            names.append(str(value))
            continue
        name = "attachment" if len(items) == 1 else f"attachment_{number}"
        names.append(name)
        namespace[name] = value
    return tuple(names), namespace


def _as_path(item: object) -> object:
    """A path for a ``PathLike`` or a string naming a file; other strings are text, except
    one that can only mean a missing file (``photos/cat.jpg``: a media or table name, no
    spaces), which is an InputError rather than 14 characters sent as the attachment."""
    if isinstance(item, os.PathLike):
        return Path(item)
    if isinstance(item, str) and "\n" not in item and len(item) < 4096:
        path = Path(item).expanduser()
        if path.is_file():
            return path
        looks_like_a_file = "://" not in item and not any(c.isspace() for c in item)
        if looks_like_a_file and path.suffix.lower() in FILE_SUFFIXES:
            raise InputError(f"attach: no such file {item}; to send the text, put it in the prompt")
    return item


FILE_SUFFIXES = frozenset((*IMAGE_SUFFIXES, *VIDEO_TYPES, ".csv", ".tsv", ".parquet", ".pdf"))


def tool_loop(tools: object, *, budget: int, max_steps: int) -> ToolLoop | None:
    """``tools`` (callables, or a mapping of names to callables and DataFrames) as a tool loop.

    DataFrames need a name (the tools are called ``<name>_describe`` and so on), so they come
    in a mapping; a function is named after itself.
    """
    if tools is None:
        return None
    if isinstance(tools, Mapping):
        namespace = {str(name): value for name, value in tools.items()}
    else:
        items = list(tools) if isinstance(tools, list | tuple | set | frozenset) else [tools]
        namespace = {_tool_name(item): item for item in items}
    toolbox = build_toolbox(tuple(namespace), namespace, budget_chars=budget * CHARS_PER_TOKEN)
    return ToolLoop(toolbox, max_steps=max_steps)


def _tool_name(item: object) -> str:
    target = item.func if isinstance(item, functools.partial) else item
    name = getattr(target, "__name__", None)
    if not callable(item) or not isinstance(name, str) or name == "<lambda>":
        raise InputError(
            f"tools: this {type(item).__name__} has no name to call it by; pass a mapping, "
            "e.g. tools={'sales': df}"
        )
    return name
