"""What a user function's docstring says: its description, and a note per parameter.

A tool's description and its parameters' descriptions are what the model reads to decide when
and how to call it, and users already write them, in one of three common styles. Reading them
is plain text parsing with no tie to JSON schemas, so it lives apart from ``schema.py``, which
only asks for the result.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?)\s*:?\s*$")
_SPHINX_PARAM = re.compile(r"^\s*:param\s+(?:\w+\s+)?(\w+):\s*(.*)$")
_GOOGLE_PARAM = re.compile(r"^\s+\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


def parse_docstring(func: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The description (the docstring before its sections) and per-parameter notes.

    Google style (``Args:`` then indented ``name: text``), NumPy (``Parameters``, a dashed
    line, then ``name : type`` over indented text) and Sphinx (``:param name: text``).
    """
    summary: list[str] = []
    params: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in (inspect.getdoc(func) or "").splitlines():
        sphinx = _SPHINX_PARAM.match(line)
        if sphinx:
            section, current = "sphinx", sphinx.group(1)
            params[current] = sphinx.group(2).strip()
        elif _SECTION.match(line):
            section, current = line.strip().rstrip(":"), None
        elif re.fullmatch(r"-{3,}", line.strip()):  # NumPy underlines its section names
            continue
        elif section is None:
            summary.append(line)
        elif section in ("Args", "Arguments", "Parameters"):
            current = _parameter_line(line, params, current)
        elif section == "sphinx" and current and line.startswith(" "):
            params[current] = f"{params[current]} {line.strip()}"
    return "\n".join(summary).strip(), params


def _parameter_line(line: str, params: dict[str, str], current: str | None) -> str | None:
    """One line of an Args/Parameters section; returns the parameter it belongs to."""
    numpy = re.match(r"(\w+)\s*:\s*\S", line)  # NumPy: unindented "name : type"
    google = _GOOGLE_PARAM.match(line)
    if numpy:
        params[numpy.group(1)] = ""
        return numpy.group(1)
    if google and (current is None or (line.startswith("    ") and not line.startswith("     "))):
        params[google.group(1)] = google.group(2).strip()
        return google.group(1)
    if current is not None and line.strip():
        params[current] = f"{params[current]} {line.strip()}".strip()
    return current
