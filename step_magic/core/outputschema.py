"""Structured output: the shape an answer must have, and the check that it has it.

``schema=`` (``--schema NAME``) takes a pydantic model, a dataclass or a JSON-schema dict. Each
wire API sends it in its own structured-output field where it has one (Chat Completions
``response_format``, Responses ``text.format``); where it has none, or the server refuses the
field, the schema is asked for in the instructions instead (``instruction``), and the footer
says so. Whatever was sent, the answer is checked here: ``parse`` gives the validated value
(an instance of the model or dataclass, or the JSON data a dict schema accepts) or one line
saying why the answer does not fit; the text is kept either way.

pydantic (which the openai SDK brings) validates models and dataclasses and writes their
JSON schema; a dict schema is checked with ``jsonschema`` (which nbformat brings). Both are
imported only when a schema is used.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from step_magic.core.answers import parse_json_answer
from step_magic.core.errors import InputError
from step_magic.core.text import excerpt

MAX_SCHEMA_CHARS = 50_000  # a schema goes into every request (and, on fallback, the prompt)
_NAME = re.compile(r"[^A-Za-z0-9_-]")
JSON_KINDS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}


@dataclass(frozen=True)
class OutputSchema:
    """A JSON schema with a name (``response_format`` needs one), and what it came from."""

    name: str
    schema: Mapping[str, Any]
    source: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, given: object) -> OutputSchema:
        """``given`` as an output schema; InputError (one line) for anything else."""
        if isinstance(given, OutputSchema):
            return given
        if isinstance(given, Mapping):
            schema, name = dict(given), str(given.get("title") or "answer")
            if schema.get("type") != "object" and "properties" not in schema:
                raise InputError(
                    'schema: a JSON-schema dict describes an object ("type": "object")'
                )
        elif isinstance(given, type) and hasattr(given, "model_json_schema"):
            schema, name = given.model_json_schema(), given.__name__
        elif isinstance(given, type) and dataclasses.is_dataclass(given):
            import pydantic

            schema, name = pydantic.TypeAdapter(given).json_schema(), given.__name__
        else:
            raise InputError(
                "schema: give a pydantic model, a dataclass or a JSON-schema dict, "
                f"not {type(given).__name__}"
            )
        if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
            raise InputError(f"schema: the JSON schema is over {MAX_SCHEMA_CHARS:,} characters")
        return cls(_NAME.sub("_", name)[:64] or "answer", schema, given)

    def instruction(self) -> str:
        """The request for the shape in words, where no structured-output field carries it."""
        return (
            "Answer with one JSON value and nothing else (no prose, no code fence) that "
            f"matches this JSON schema:\n{json.dumps(self.schema, ensure_ascii=False)}"
        )

    def parse(self, answer: str) -> tuple[Any, str | None]:
        """The validated value, or None and one line saying why the answer does not fit."""
        try:
            data = parse_json_answer(answer)
        except ValueError as err:
            return None, f"the answer is not JSON ({err})"
        source = self.source
        try:
            if isinstance(source, type) and hasattr(source, "model_validate"):
                return source.model_validate(data), None
            if isinstance(source, type):
                import pydantic

                return pydantic.TypeAdapter(source).validate_python(data), None
            import jsonschema  # type: ignore[import-untyped]

            jsonschema.validate(data, dict(self.schema))
            return data, None
        except Exception as err:  # pydantic's or jsonschema's ValidationError
            return None, _one_line(err)

    def columns(self) -> tuple[tuple[str, str], ...]:
        """A column per top-level property, typed where JSON says (others as JSON text)."""
        properties = self.schema.get("properties") or {}
        return tuple(
            (str(name), JSON_KINDS.get(_kind(spec) or "", "str"))
            for name, spec in properties.items()
        )


def _kind(spec: Any) -> str | None:
    if not isinstance(spec, Mapping):
        return None
    kind = spec.get("type")
    if isinstance(kind, str):
        return kind
    options = [o.get("type") for o in spec.get("anyOf", ()) if isinstance(o, Mapping)]
    kinds = [k for k in options if k != "null"]  # Optional[int] is anyOf int, null
    return kinds[0] if len(kinds) == 1 and isinstance(kinds[0], str) else None


def _one_line(err: Exception) -> str:
    """A validation error as one line: the first problem and where it is."""
    errors = getattr(err, "errors", None)
    if callable(errors):  # pydantic
        found = errors()
        if found:
            first = found[0]
            where = ".".join(str(part) for part in first.get("loc", ())) or "the answer"
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            return excerpt(f"the answer does not fit the schema: {where}: {first.get('msg')}{more}")
    message = getattr(err, "message", None) or str(err)
    path = ".".join(str(part) for part in getattr(err, "absolute_path", ()))
    where = f"{path}: " if path else ""
    return excerpt(f"the answer does not fit the schema: {where}{str(message).splitlines()[0]}")
