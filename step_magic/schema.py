"""A user function as a tool: JSON schema from its signature, arguments checked on the way in.

Each supported annotation gives two things at once: the JSON schema the model sees and a
converter that checks the model's value and turns it into what the function expects (an
Enum member, a pydantic model, a tuple). Keeping both in one place means the schema never
promises what the converter would refuse. Anything we cannot describe is a ValueError that
names the parameter, before any request is sent.
"""

from __future__ import annotations

import enum
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .docstrings import parse_docstring
from .tools import JSONSchema, Tool, ToolError

Convert = Callable[[Any, str], Any]
SUPPORTED = (
    "str, int, float, bool, Literal, Enum, list/tuple/dict of those, Optional, "
    "Annotated, pydantic models"
)
_SCALARS: dict[type, tuple[str, tuple[type, ...]]] = {
    str: ("string", (str,)),
    int: ("integer", (int,)),
    float: ("number", (int, float)),
    bool: ("boolean", (bool,)),
}


class Unsupported(Exception):
    """An annotation with no JSON form; the message names it."""


def function_tool(name: str, func: Callable[..., Any]) -> Tool:
    """Describe ``func`` as the tool ``name``; ValueError (naming the parameter) if we can't."""
    try:
        signature = inspect.signature(func)
        hints = typing.get_type_hints(func, include_extras=True)
    except (TypeError, ValueError, NameError) as err:
        raise ValueError(f"--tools {name}: cannot read its signature ({err})") from None
    summary, param_docs = parse_docstring(func)
    properties: dict[str, JSONSchema] = {}
    required: list[str] = []
    converters: dict[str, Convert] = {}
    for param in signature.parameters.values():
        schema, convert = _parameter(name, param, hints.get(param.name))
        if param_docs.get(param.name) and "description" not in schema:
            schema["description"] = param_docs[param.name]
        properties[param.name] = schema
        converters[param.name] = convert
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
    parameters: JSONSchema = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    definitions = _hoist_definitions(properties)
    if definitions:
        parameters["$defs"] = definitions
    description = summary or f"The Python function {name}{signature}."
    runner = _Caller(func, signature, converters)
    return Tool(name, description, parameters, runner)


class _Caller:
    """Check and convert the model's arguments, then call the function with them."""

    def __init__(
        self,
        func: Callable[..., Any],
        signature: inspect.Signature,
        converters: Mapping[str, Convert],
    ) -> None:
        self._func = func
        self._converters = converters
        params = signature.parameters.values()
        self._required = [p.name for p in params if p.default is inspect.Parameter.empty]
        self._positional = [p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_ONLY]

    def __call__(self, **arguments: Any) -> Any:
        unknown = sorted(set(arguments) - set(self._converters))
        if unknown:
            raise ToolError(f"unknown argument(s): {', '.join(unknown)}")
        missing = [name for name in self._required if name not in arguments]
        if missing:
            raise ToolError(f"missing required argument(s): {', '.join(missing)}")
        values = {name: self._converters[name](value, name) for name, value in arguments.items()}
        positional = []
        for name in self._positional:  # positional-only: in order, up to the first left out
            if name not in values:
                break
            positional.append(values.pop(name))
        skipped = [name for name in self._positional if name in values]
        if skipped:
            raise ToolError(f"{', '.join(skipped)} needs the arguments before it")
        return self._func(*positional, **values)


def _parameter(tool: str, param: inspect.Parameter, hint: Any) -> tuple[JSONSchema, Convert]:
    where = f"--tools {tool}: parameter {param.name!r}"
    if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        raise ValueError(f"{where} is *args/**kwargs; a tool needs named, typed parameters")
    has_default = param.default is not inspect.Parameter.empty
    if hint is None:
        if not (has_default and type(param.default) in _SCALARS):
            raise ValueError(f"{where} has no type hint; add one ({SUPPORTED})")
        hint = type(param.default)
    try:
        schema, convert = describe(hint)
    except Unsupported as err:
        raise ValueError(f"{where} has type {err}, which has no JSON form ({SUPPORTED})") from None
    default = param.default
    if isinstance(default, enum.Enum) and default.value in schema.get("enum", ()):
        default = default.value
    if has_default and _is_json(default):
        schema = {**schema, "default": default}
    return schema, convert


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
    if isinstance(hint, type) and hint in _SCALARS:
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
    kind, accepted = _SCALARS[hint]

    def convert(value: Any, where: str) -> Any:
        if (isinstance(value, bool) and hint is not bool) or not isinstance(value, accepted):
            raise ToolError(f"{where} must be a {kind}, not {_json_type(value)}")
        return float(typing.cast(float, value)) if hint is float else value

    return {"type": kind}, convert


def _literal(values: tuple[Any, ...]) -> tuple[JSONSchema, Convert]:
    if not all(_is_json(value) and not isinstance(value, (list, dict)) for value in values):
        raise Unsupported(f"Literal{list(values)}")

    def convert(value: Any, where: str) -> Any:
        for option in values:
            if value == option and type(value) is type(option):
                return option
        raise ToolError(f"{where} must be one of {values!r}, not {value!r}")

    return {"enum": list(values)}, convert


def _enum(hint: type[enum.Enum]) -> tuple[JSONSchema, Convert]:
    members = list(hint)
    use_values = all(_is_json(m.value) and not isinstance(m.value, (list, dict)) for m in members)
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


def _hoist_definitions(properties: dict[str, JSONSchema]) -> JSONSchema:
    """Move pydantic's ``$defs`` to the top, where its ``#/$defs/...`` references point."""
    found: JSONSchema = {}

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            found.update(node.pop("$defs", {}))
            for child in node.values():
                visit(child)
        elif isinstance(node, list):
            for child in node:
                visit(child)

    visit(properties)
    return found


def _exact_none(value: Any, where: str) -> None:
    if value is not None:
        raise ToolError(f"{where} must be null, not {_json_type(value)}")


def _is_json(value: Any) -> bool:
    """True for values JSON can carry (NaN and infinities cannot: the request would fail)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if value is None or isinstance(value, (str, bool, int)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_json(item) for key, item in value.items())
    return False


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names.update({list: "an array", dict: "an object", type(None): "null"})
    return names.get(type(value), type(value).__name__)
