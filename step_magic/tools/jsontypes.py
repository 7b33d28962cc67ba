"""A type annotation as JSON: the schema the model sees and the converter for its values.

Each supported annotation gives two things at once: the JSON schema and a converter that
checks the model's value and turns it into what the function expects (an Enum member, a
pydantic model, a tuple). Keeping both in one place means the schema never promises what the
converter would refuse.
"""

from __future__ import annotations

import enum
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from step_magic.core.errors import ToolError
from step_magic.tools.toolbox import JSONSchema

Convert = Callable[[Any, str], Any]
SUPPORTED = (
    "str, int, float, bool, Literal, Enum, list/tuple/dict of those, Optional, "
    "Annotated, pydantic models"
)
SCALARS: dict[type, tuple[str, tuple[type, ...]]] = {
    str: ("string", (str,)),
    int: ("integer", (int,)),
    float: ("number", (int, float)),
    bool: ("boolean", (bool,)),
}


class Unsupported(Exception):
    """An annotation with no JSON form; the message names it."""


def describe(hint: Any) -> tuple[JSONSchema, Convert]:
    """The JSON schema of one annotation and the converter for values of it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        schema, convert = describe(args[0])
        notes = [note for note in args[1:] if isinstance(note, str)]
        return ({**schema, "description": notes[0]} if notes else schema), convert
    if hint is Any or hint is object:
        return {}, lambda value, where: value
    if hint is None or hint is type(None):
        return {"type": "null"}, _exact_none
    if isinstance(hint, type) and hint in SCALARS:
        return _scalar(hint)
    if origin is typing.Literal:
        return _literal(args)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum(hint)
    if origin in (typing.Union, types.UnionType):
        return _union(args)
    if hint in (list, tuple) or origin in (list, tuple, Sequence):
        return _array(hint, origin, args)
    if hint is dict or origin in (dict, Mapping):
        return _mapping(args)
    if isinstance(hint, type) and callable(getattr(hint, "model_json_schema", None)):
        return _pydantic(hint)
    raise Unsupported(getattr(hint, "__name__", None) or repr(hint))


def _scalar(hint: type) -> tuple[JSONSchema, Convert]:
    kind, accepted = SCALARS[hint]

    def convert(value: Any, where: str) -> Any:
        if hint is int and isinstance(value, float) and value.is_integer():
            return int(value)  # 3.0 from a model means 3
        if (isinstance(value, bool) and hint is not bool) or not isinstance(value, accepted):
            raise ToolError(f"{where} must be a {kind}, not {_json_type(value)}")
        return float(typing.cast(float, value)) if hint is float else value

    return {"type": kind}, convert


def _literal(values: tuple[Any, ...]) -> tuple[JSONSchema, Convert]:
    if not all(is_json(value) and not isinstance(value, (list, dict)) for value in values):
        raise Unsupported(f"Literal{list(values)}")

    def convert(value: Any, where: str) -> Any:
        for option in values:
            if value == option and type(value) is type(option):
                return option
        raise ToolError(f"{where} must be one of {values!r}, not {value!r}")

    return {"enum": list(values)}, convert


def _enum(hint: type[enum.Enum]) -> tuple[JSONSchema, Convert]:
    members = list(hint)
    use_values = all(is_json(m.value) and not isinstance(m.value, (list, dict)) for m in members)
    options = [m.value if use_values else m.name for m in members]

    def convert(value: Any, where: str) -> Any:
        for member, option in zip(members, options, strict=True):
            if value == option and type(value) is type(option):
                return member
        raise ToolError(f"{where} must be one of {options!r}, not {value!r}")

    return {"enum": options}, convert


def _union(args: tuple[Any, ...]) -> tuple[JSONSchema, Convert]:
    described = [describe(arg) for arg in args]

    def convert(value: Any, where: str) -> Any:
        problems = []
        for _, option in described:
            try:
                return option(value, where)
            except ToolError as err:
                problems.append(str(err))
        raise ToolError(" or ".join(problems))

    return {"anyOf": [schema for schema, _ in described]}, convert


def _array(hint: Any, origin: Any, args: tuple[Any, ...]) -> tuple[JSONSchema, Convert]:
    if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        raise Unsupported(f"fixed-length {hint!r} (use tuple[T, ...] or list[T])")
    item_schema, item = describe(args[0]) if args else ({}, lambda value, where: value)
    make = tuple if (hint is tuple or origin is tuple) else list

    def convert(value: Any, where: str) -> Any:
        if not isinstance(value, list):
            raise ToolError(f"{where} must be an array, not {_json_type(value)}")
        return make(item(element, f"{where}[{i}]") for i, element in enumerate(value))

    return {"type": "array", "items": item_schema}, convert


def _mapping(args: tuple[Any, ...]) -> tuple[JSONSchema, Convert]:
    if args and args[0] is not str:
        raise Unsupported(f"dict with {getattr(args[0], '__name__', args[0])} keys")
    value_schema, item = describe(args[1]) if args else ({}, lambda value, where: value)

    def convert(value: Any, where: str) -> Any:
        if not isinstance(value, dict):
            raise ToolError(f"{where} must be an object, not {_json_type(value)}")
        return {key: item(element, f"{where}[{key!r}]") for key, element in value.items()}

    return {"type": "object", "additionalProperties": value_schema}, convert


def _pydantic(model: Any) -> tuple[JSONSchema, Convert]:
    """A pydantic model: its own JSON schema, and its own validation of the model's value."""
    schema: JSONSchema = model.model_json_schema()

    def convert(value: Any, where: str) -> Any:
        try:
            return model.model_validate(value)
        except ValueError as err:  # pydantic's ValidationError is a ValueError
            raise ToolError(f"{where}: {err}") from None

    return schema, convert


def _exact_none(value: Any, where: str) -> None:
    if value is not None:
        raise ToolError(f"{where} must be null, not {_json_type(value)}")


def is_json(value: Any) -> bool:
    """True for values JSON can carry (NaN and infinities cannot: the request would fail)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if value is None or isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and is_json(item) for key, item in value.items())
    return False


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names.update({list: "an array", dict: "an object", type(None): "null"})
    return names.get(type(value), type(value).__name__)
