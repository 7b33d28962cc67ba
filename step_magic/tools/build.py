"""``--tools a,b``: the names the user gave, turned into the toolbox the model is offered."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from step_magic.core.errors import InputError
from step_magic.core.text import a_type
from step_magic.frames.tables import library_of
from step_magic.tools.frametools import frame_tools
from step_magic.tools.schema import function_tool
from step_magic.tools.toolbox import TOOL_NAME, Tool, Toolbox


def build_toolbox(
    names: Sequence[str], namespace: Mapping[str, Any], *, budget_chars: int
) -> Toolbox:
    """``--tools a,b``: functions become tools as they are, DataFrames get read-only tools.

    Every problem (unknown name, not callable, an undescribable parameter) is a one-line
    ValueError before anything is sent.
    """
    tools: list[Tool] = []
    for name in dict.fromkeys(names):
        if name not in namespace:
            close = difflib.get_close_matches(name, [str(key) for key in namespace], n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise InputError(f"--tools: no variable {name!r} in the notebook{hint}")
        value = namespace[name]
        if library_of(value) is not None:
            tools.extend(frame_tools(name, value, budget_chars=budget_chars))
        elif callable(value):
            if not TOOL_NAME.fullmatch(name):
                raise InputError(f"--tools: {name!r} cannot be a tool name (ASCII, up to 64)")
            tools.append(function_tool(name, value))
        else:
            raise InputError(f"--tools: {name} is {a_type(value)}, not a function or a DataFrame")
    taken = [tool.name for tool in tools]
    twice = sorted({name for name in taken if taken.count(name) > 1})
    if twice:
        raise InputError(f"--tools: two tools would be called {', '.join(twice)}")
    return Toolbox(tools, budget_chars=budget_chars)
