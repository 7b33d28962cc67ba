"""What the Jupyter frontend tells the kernel about the running cell, and what we show it.

A call behaves differently in JupyterLab, VS Code, nbclient and terminal IPython: only a
notebook frontend gets the live panel, only some say which cell and notebook are running (for
the history), and only a frontend can offer a new cell. Each of these reads the shell's
parent message or environment defensively, so every frontend gets what it supports and none
breaks on what it lacks; ``magics.step`` keeps only the flow of a call.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from step_magic.core.errors import StepAPIError

if TYPE_CHECKING:
    from step_magic.core.request import ChatRequest
    from step_magic.core.settings import Settings


def cell_id(shell: Any) -> str | None:
    """The notebook cell running this call, when the frontend says (JupyterLab, nbclient)."""
    parent = shell.get_parent() if getattr(shell, "kernel", None) is not None else None
    cell = ((parent or {}).get("metadata") or {}).get("cellId")
    return cell if isinstance(cell, str) and cell else None


def notebook_path(shell: Any) -> str | None:
    """The notebook's path where the frontend tells (Jupyter Server, VS Code), for history."""
    namespace = getattr(shell, "user_ns", {})
    path = os.environ.get("JPY_SESSION_NAME") or namespace.get("__vsc_ipynb_file__")
    return str(path) if path else None


def code_to_next_cell(shell: Any, answer: str, *, every: bool) -> None:
    """Offer the answer's code in a new cell below; it is never run automatically."""
    from step_magic.core.answers import code_blocks

    blocks = [code for _, code in code_blocks(answer)]
    if not blocks:
        print("--code: the answer has no fenced code block", file=sys.stderr)
    elif shell is not None:
        shell.set_next_input("\n".join(blocks if every else blocks[:1]).rstrip())


def show_dry_run(settings: Settings, request: ChatRequest) -> None:
    """Show the body the chosen API would be sent, and where; a body the API cannot carry is a
    UsageError, as it would be before a live call opened a connection."""
    from step_magic.display.dryrun import show_dry_run as show  # display code loads on first use
    from step_magic.wire.transport import endpoint, request_body

    try:
        body = request_body(settings, request)
    except StepAPIError as err:
        raise UsageError(err.detail) from None
    show(body, endpoint(settings), settings.api)


def json_error(answer: str) -> BaseException | None:
    """``--format json``: the error for an answer that is not JSON, or None."""
    from step_magic.core.answers import parse_json_answer
    from step_magic.core.errors import AnswerFormatError

    try:
        parse_json_answer(answer)
    except ValueError as err:
        return AnswerFormatError(f"--format json: the answer is not valid JSON ({err})")
    return None
