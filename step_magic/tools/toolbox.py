"""Tools the model may call: what they look like on the wire, and running one safely.

A ``Tool`` is a name, a description, a JSON schema of its parameters and a function that
takes the (already checked) arguments. User functions become tools in ``schema.py``;
DataFrames get read-only tools in ``frametools.py``. Whatever goes wrong inside a call is
turned into a message for the model, so it can correct itself: a tool never raises into
the loop.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from step_magic.core.text import clean_text

JSONSchema = dict[str, Any]
TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ToolError(Exception):
    """Bad arguments or a refused operation; the message is sent to the model as the result."""


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


def bounded(text: str, budget_chars: int, why: str = "cut: {total} chars in all") -> str:
    """``text`` cut to ``budget_chars``, saying why and how long it was (``{total}``)."""
    if len(text) <= budget_chars:
        return text
    return text[:budget_chars] + f"\n… ({why.format(total=f'{len(text):,}')})"


def parse_arguments(text: str) -> dict[str, Any]:
    """The model's argument JSON as keywords; an empty string means no arguments."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
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


def build_toolbox(
    names: Sequence[str], namespace: Mapping[str, Any], *, budget_chars: int
) -> Toolbox:
    """``--tools a,b``: functions become tools as they are, DataFrames get read-only tools.

    Every problem (unknown name, not callable, an undescribable parameter) is a one-line
    ValueError before anything is sent.
    """
    from step_magic.frames.tables import library_of
    from step_magic.tools.schema import function_tool

    tools: list[Tool] = []
    for name in dict.fromkeys(names):
        if name not in namespace:
            close = difflib.get_close_matches(name, [str(key) for key in namespace], n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"--tools: no variable {name!r} in the notebook{hint}")
        value = namespace[name]
        if library_of(value) is not None:
            from step_magic.tools.frametools import frame_tools

            tools.extend(frame_tools(name, value, budget_chars=budget_chars))
        elif callable(value):
            if not TOOL_NAME.fullmatch(name):
                raise ValueError(f"--tools: {name!r} cannot be a tool name (ASCII, up to 64)")
            tools.append(function_tool(name, value))
        else:
            raise ValueError(
                f"--tools: {name} is a {type(value).__name__}, not a function or a DataFrame"
            )
    taken = [tool.name for tool in tools]
    twice = sorted({name for name in taken if taken.count(name) > 1})
    if twice:
        raise ValueError(f"--tools: two tools would be called {', '.join(twice)}")
    return Toolbox(tools, budget_chars=budget_chars)
