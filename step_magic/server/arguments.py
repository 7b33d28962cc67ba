"""Example arguments for a tool call, derived from the tool's JSON schema.

The simulated model has to call tools with arguments a client can parse and check against
the schema it declared, and the same schema must always give the same arguments. Only
required properties are filled, each with the plainest value its schema allows. Any schema
gives an answer: what cannot be understood (an unknown type, a ``$ref`` that resolves to
nothing, a cycle of references) becomes the string "example".
"""

from __future__ import annotations

import math
from typing import Any

FALLBACK = "example"
MAX_DEPTH = 12  # deeper than any real schema; stops self-referencing $refs
MAX_ITEMS = 16  # a huge minItems must not make a huge reply
TYPE_EXAMPLES: dict[str, Any] = {"string": FALLBACK, "boolean": True, "null": None}


def example_arguments(parameters: Any) -> dict[str, Any]:
    """The arguments of a call to a tool with ``parameters``: its required properties only."""
    value = _example(parameters, parameters, 0)
    return value if isinstance(value, dict) else {}


def _example(schema: Any, root: Any, depth: int) -> Any:
    """The example value of ``schema``; ``root`` is what ``$ref`` pointers resolve against."""
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return FALLBACK
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return _first_option(schema[key], root, depth)
    if isinstance(schema.get("$ref"), str):
        return _example(_resolve(schema["$ref"], root), root, depth + 1)
    return _typed(schema, _type(schema), root, depth)


def _first_option(options: list[Any], root: Any, depth: int) -> Any:
    """The first option that is not just null (null when all of them are)."""
    for option in options:
        if not (isinstance(option, dict) and option.get("type") == "null"):
            return _example(option, root, depth + 1)
    return None


def _resolve(pointer: str, root: Any) -> Any:
    """Follow a local JSON pointer such as ``#/$defs/Unit``; None when it leads nowhere."""
    if pointer == "#":
        return root
    if not pointer.startswith("#/"):
        return None
    node = root
    for raw in pointer[2:].split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node


def _type(schema: dict[str, Any]) -> str | None:
    """The schema's type: the first non-null one of a list, or implied by its keywords."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), "null" if kind else None)
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return None


def _typed(schema: dict[str, Any], kind: str | None, root: Any, depth: int) -> Any:
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        return _array(schema, root, depth)
    if kind == "integer":
        return _number(schema, 1, integer=True)
    if kind == "number":
        return _number(schema, 1.5, integer=False)
    return TYPE_EXAMPLES.get(kind or "", FALLBACK)


def _object(schema: dict[str, Any], root: Any, depth: int) -> dict[str, Any]:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    required = schema.get("required")
    names = (
        [name for name in required if isinstance(name, str)] if isinstance(required, list) else []
    )
    return {name: _example(properties.get(name), root, depth + 1) for name in names}


def _array(schema: dict[str, Any], root: Any, depth: int) -> list[Any]:
    """``minItems`` copies of the item example (at least one, unless ``maxItems`` is 0)."""
    items = schema.get("items")
    if isinstance(items, list):  # the old tuple form: one schema per position
        return [_example(item, root, depth + 1) for item in items[:MAX_ITEMS]]
    count = max(_count(schema.get("minItems"), 1), 1)
    count = max(min(count, _count(schema.get("maxItems"), count), MAX_ITEMS), 0)
    return [_example(items, root, depth + 1) if items is not None else FALLBACK] * count


def _count(value: Any, otherwise: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else otherwise


def _number(schema: dict[str, Any], plain: float, *, integer: bool) -> float:
    """``minimum`` when given, else ``plain`` (or ``maximum`` when ``plain`` is above it)."""
    low, high = _bound(schema.get("minimum")), _bound(schema.get("maximum"))
    value = low if low is not None else plain
    if low is None and high is not None and high < plain:
        value = high
    return math.ceil(value) if integer else value


def _bound(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return value
