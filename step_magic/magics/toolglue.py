"""IPython glue for ``--tools``: check the flags, build the tools, ask the user before calls.

Kept apart from ``magics.step`` like ``--map``; the loop itself (``toolloop.py``) and the tools
(``tools.toolbox``, ``schema.py``, ``frametools.py``) know nothing about IPython.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from IPython.core.error import StdinNotImplementedError, UsageError

from step_magic.core.errors import InputError
from step_magic.core.request import CHARS_PER_TOKEN
from step_magic.engine.toolloop import ToolLoop
from step_magic.tools.build import build_toolbox


def check_tool_flags(args: argparse.Namespace, replay: bool) -> None:
    """Refuse combinations that cannot work, before anything is built or sent."""
    if not args.tools:  # --confirm and --max-steps without it: ``parsing.check_needs``
        return
    if args.map:
        raise UsageError("--tools cannot be combined with --map")
    if replay:
        raise UsageError(
            "--tools cannot be replayed: the answer depends on what the functions return now"
        )


def tool_loop(
    args: argparse.Namespace,
    namespace: Mapping[str, Any],
    *,
    budget_tokens: int,
    max_steps: int,
) -> ToolLoop | None:
    """The tools ``--tools`` names, or a UsageError that says which name or parameter fails."""
    if not args.tools:
        return None
    try:
        toolbox = build_toolbox(args.tools, namespace, budget_chars=budget_tokens * CHARS_PER_TOKEN)
    except InputError as err:
        raise UsageError(str(err)) from None
    return ToolLoop(
        toolbox,
        max_steps=args.max_steps or max_steps,
        confirm=ask_user if args.confirm else None,
    )


def ask_user(question: str) -> bool:
    """``--confirm``: a yes/no on stdin (the frontend's input box in Jupyter).

    A button would not do: the kernel runs one request at a time, so a click on a widget
    reaches it only after the cell ends. A frontend that cannot answer (nbclient, papermill)
    declines every call, and says so.
    """
    try:
        answer = input(question)
    except (StdinNotImplementedError, EOFError):
        print(
            "--confirm: this frontend cannot answer questions; the call is declined",
            file=sys.stderr,
        )
        return False
    return answer.strip().lower() in ("y", "yes")
