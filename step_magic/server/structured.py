"""Structured output on the local server: ``response_format`` (chat) and ``text.format``
(Responses) with a JSON schema.

A request that asks for a shape gets an answer of that shape, so offline demos and tests of
``schema=`` see what a real model would give: a JSON object built from the schema (its
``enum``'s first value, a short text for strings, 1 for numbers, one item for arrays, nested
objects filled alike, ``$ref``s into ``$defs`` followed). The ``refuse-schema`` fault answers
400 instead, as servers without structured output do.
"""

from __future__ import annotations

import json
from typing import Any

from step_magic.server.errors import invalid_params

MAX_DEPTH = 8


def parse_response_format(value: Any) -> dict[str, Any] | None:
    """The JSON schema a chat ``response_format`` asks for; None for text or ``json_object``."""
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in (
        "text",
        "json_object",
        "json_schema",
    ):
        raise invalid_params("response_format.type must be text, json_object or json_schema.")
    if value["type"] != "json_schema":
        return None
    described = value.get("json_schema")
    if not isinstance(described, dict) or not isinstance(described.get("schema"), dict):
        raise invalid_params("response_format.json_schema.schema must be an object.")
    if not isinstance(described.get("name"), str):
        raise invalid_params("response_format.json_schema.name is required.")
    schema: dict[str, Any] = described["schema"]
    return schema


ASKED_IN_WORDS = "matches this JSON schema:\n"


def schema_asked_in_words(texts: list[str]) -> dict[str, Any] | None:
    """The JSON schema a system prompt asks the answer to match in step-magic's words (what
    it sends where an API has no structured-output field): a model follows such words, so
    the simulator does too."""
    for text in texts:
        _, found, rest = text.partition(ASKED_IN_WORDS)
        if found:
            try:
                schema, _ = json.JSONDecoder().raw_decode(rest)
            except ValueError:
                continue
            if isinstance(schema, dict):
                return schema
    return None


def sample_answer(schema: dict[str, Any]) -> str:
    """A JSON answer that fits ``schema``."""
    return json.dumps(_sample(schema, schema, 0), ensure_ascii=False)


def _sample(spec: Any, root: dict[str, Any], depth: int) -> Any:
    if not isinstance(spec, dict) or depth > MAX_DEPTH:
        return None
    reference = spec.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/"):
        target: Any = root
        for part in reference[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return _sample(target, root, depth + 1)
    if spec.get("enum"):
        return spec["enum"][0]
    if "const" in spec:
        return spec["const"]
    options = spec.get("anyOf") or spec.get("oneOf")
    if options:
        return _sample(
            next((o for o in options if o.get("type") != "null"), options[0]), root, depth + 1
        )
    kind = spec.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in spec:
        properties = spec.get("properties") or {}
        return {name: _sample(sub, root, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        return [_sample(spec.get("items"), root, depth + 1)]
    return {"string": "simulated", "integer": 1, "number": 1.5, "boolean": True}.get(kind or "")
