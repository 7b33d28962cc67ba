"""Tools the model may call: what they look like on the wire, and running one safely.

A ``Tool`` is a name, a description, a JSON schema of its parameters and a function that
takes the (already checked) arguments. User functions become tools in ``schema.py``;
DataFrames get read-only tools in ``frametools.py``. Whatever goes wrong inside a call is
turned into a message for the model, so it can correct itself: a tool never raises into
the loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from step_magic.core.errors import ToolError
from step_magic.core.text import bounded, clean_text, read_json

JSONSchema = dict[str, Any]
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class Tool:
    """One function the model can call: ``run`` receives the arguments as keywords."""

    name: str
    description: str
    parameters: JSONSchema
    run: Callable[..., Any]

    def spec(self) -> dict[str, Any]:
        """The Chat Completions ``tools`` entry."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True)
class Outcome:
    """What a call returned, as sent to the model, and whether it failed."""

    text: str
    failed: bool


class Toolbox:
    """The tools of one call, by name; runs the model's calls and never raises for them."""

    def __init__(self, tools: Sequence[Tool], *, budget_chars: int) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self.budget_chars = budget_chars

    def specs(self) -> tuple[dict[str, Any], ...]:
        """The ``tools`` of the request."""
        return tuple(tool.spec() for tool in self.tools.values())

    def call(self, name: str, arguments: str) -> Outcome:
        """Run one call; a bad call or an exception in the function becomes a failed outcome.

        Whatever comes back is cleaned and bounded, even an error message: a tool can return
        or raise anything. KeyboardInterrupt is not caught: the loop stops on it.
        """
        tool = self.tools.get(name)
        if tool is None:
            known = ", ".join(self.tools)
            return self._outcome(f"Error: there is no tool {name!r}; the tools are {known}", True)
        try:
            value = tool.run(**parse_arguments(arguments))
        except ToolError as err:
            return self._outcome(f"Error: {_said(err)}", True)
        except (Exception, SystemExit) as err:  # sys.exit() in a wrapped CLI is an error too
            return self._outcome(f"Error: {type(err).__name__}: {_said(err)}", True)
        try:
            return self._outcome(result_text(value, self.budget_chars), False)
        except ToolError as err:
            return self._outcome(f"Error: {err}", True)
        except Exception as err:  # a __repr__ or __str__ that raises
            return self._outcome(
                f"Error: the result ({type(value).__name__}) could not be shown: "
                f"{type(err).__name__}",
                True,
            )

    def _outcome(self, text: str, failed: bool) -> Outcome:
        return Outcome(clean_text(bounded(text, self.budget_chars)), failed)


def _said(err: BaseException) -> str:
    """An exception's message, or its type when even ``str()`` fails on it."""
    try:
        return str(err)
    except Exception:
        return f"({type(err).__name__} whose message cannot be shown)"


def parse_arguments(text: str) -> dict[str, Any]:
    """The model's argument JSON as keywords; an empty string means no arguments."""
    if not text.strip():
        return {}
    try:
        value = read_json(text)
    except ValueError as err:
        raise ToolError(f"the arguments are not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise ToolError("the arguments must be a JSON object")
    return value


def result_text(value: Any, budget_chars: int) -> str:
    """A return value as the model reads it: text as is, JSON when it is JSON, else a summary.

    DataFrames, arrays and other objects go through the same bounded summaries as ``--with``.
    """
    from step_magic.context.attachments import render_value

    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):
            try:
                text = render_value(value, budget_chars).strip()
            except ValueError:  # an image: a tool result is text
                raise ToolError(
                    f"the function returned an image ({type(value).__name__}), which cannot go "
                    "back as a tool result; the user can attach it with --with"
                ) from None
    return bounded(text, budget_chars)
