"""A user function as a tool: JSON schema from its signature, arguments checked on the way in.

The signature and type hints give the parameters (``jsontypes.py`` describes each type and
converts the model's values to it), the docstring the descriptions. Anything we cannot
describe is a ValueError that names the parameter, before any request is sent.
"""

from __future__ import annotations

import enum
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from step_magic.core.errors import InputError, ToolError
from step_magic.tools.docstrings import parse_docstring
from step_magic.tools.jsontypes import SCALARS, SUPPORTED, Convert, Unsupported, describe, is_json
from step_magic.tools.toolbox import JSONSchema, Tool


def function_tool(name: str, func: Callable[..., Any]) -> Tool:
    """Describe ``func`` as the tool ``name``; ValueError (naming the parameter) if we can't."""
    target = _described(func)
    if inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target):
        raise InputError(
            f"--tools {name}: async functions cannot be tools yet (the kernel's event loop is "
            "busy running this cell); wrap it in a plain function"
        )
    try:  # eval_str resolves string annotations; it sees through partials and __call__
        signature = inspect.signature(func, eval_str=True)
    except (TypeError, ValueError, NameError) as err:
        raise InputError(f"--tools {name}: cannot read its signature ({err})") from None
    hints = {
        p.name: p.annotation
        for p in signature.parameters.values()
        if p.annotation is not inspect.Parameter.empty
    }
    summary, param_docs = parse_docstring(target)
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


def _described(func: Callable[..., Any]) -> Callable[..., Any]:
    """What a tool's docstring and async-ness come from: a partial's function, a callable
    object's ``__call__`` when it has a docstring (else its class), or the function itself."""
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.isroutine(func) or inspect.isclass(func):
        return func
    method: Callable[..., Any] = type(func).__call__
    return method if inspect.getdoc(method) else type(func)


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
        self._nullable = {name for name, convert in converters.items() if _accepts_none(convert)}

    def __call__(self, **arguments: Any) -> Any:
        unknown = sorted(set(arguments) - set(self._converters))
        if unknown:
            raise ToolError(f"unknown argument(s): {', '.join(unknown)}")
        missing = [name for name in self._required if name not in arguments]
        if missing:
            raise ToolError(f"missing required argument(s): {', '.join(missing)}")
        arguments = {  # a null for a parameter that has a default means "the default"
            name: value
            for name, value in arguments.items()
            if not (value is None and name not in self._required and name not in self._nullable)
        }
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


def _accepts_none(convert: Convert) -> bool:
    try:
        convert(None, "")
    except ToolError:
        return False
    return True


def _parameter(tool: str, param: inspect.Parameter, hint: Any) -> tuple[JSONSchema, Convert]:
    where = f"--tools {tool}: parameter {param.name!r}"
    if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        raise InputError(f"{where} is *args/**kwargs; a tool needs named, typed parameters")
    has_default = param.default is not inspect.Parameter.empty
    if hint is None:
        if not (has_default and type(param.default) in SCALARS):
            raise InputError(f"{where} has no type hint; add one ({SUPPORTED})")
        hint = type(param.default)
    try:
        schema, convert = describe(hint)
    except Unsupported as err:
        raise InputError(f"{where} has type {err}, which has no JSON form ({SUPPORTED})") from None
    default = param.default
    if isinstance(default, enum.Enum) and default.value in schema.get("enum", ()):
        default = default.value
    if has_default and is_json(default):
        schema = {**schema, "default": default}
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
