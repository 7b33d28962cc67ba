"""The keywords every call of the Python API takes.

The settings among them are the catalogue's (``core.catalog``), written out here so a checker
(and an editor's completion) sees each name and type; ``tests/test_catalog.py`` fails when the
two disagree. ``ask`` and ``stream`` accept them as ``**keywords``; ``Chat`` and the checks
of ``api.inputs`` take their names from here. At run time an unknown or out-of-range one is
an ``InputError`` before anything is sent. ``docs/api.md`` says what each one does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict


class CallKeywords(TypedDict, total=False):
    """What a call may be told besides its prompt; every one is optional."""

    model: str | None
    effort: str | None
    attach: object
    tools: object
    api: str | None
    system: str | None
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    base_url: str | None
    api_key: str | None
    timeout: float | None
    deadline: float | None
    max_retries: int | None
    max_steps: int | None
    budget: int | None
    detail: str | None
    image_max_side: int | None
    show_reasoning: bool | None
    remote_images: bool | None
    reasoning: bool | None
    cassette: str | Path | None
    replay: bool
    schema: object  # a pydantic model, a dataclass or a JSON-schema dict: structured output


CALL_KEYWORDS = tuple(CallKeywords.__annotations__)
# The keywords that are not settings: what is attached or called, where and how it is sent.
CALL_ONLY = ("attach", "tools", "base_url", "api_key", "cassette", "replay", "schema")
