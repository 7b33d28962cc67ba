"""IPython glue for ``%%step --effort low,high`` and ``--model a,b``: a side-by-side comparison.

The prompt and its attachments are composed from the notebook once per model, every variant
is prepared (and checked) before anything is sent, then ``api.compare.run_variants`` runs
them at once. ``_step`` (and ``-o NAME``) is bound to the ``Comparison``.
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

from IPython.core.error import UsageError

from step_magic.core.errors import InputError, StepInterrupted
from step_magic.magics.parsing import refuse

# Flags that make no sense once per column: refused with one line.
REFUSED = {
    "tools": "--tools (a function would run once per column)",
    "map": "--map",
    "code": "--code",
    "confirm": "--confirm",
    "dry_run": "--dry-run",
    "replay": "--replay",
    "background": "--background",
}


def is_comparison(args: argparse.Namespace) -> bool:
    """A comma in ``--effort`` or ``--model`` asks for a comparison."""
    return "," in (args.effort or "") or "," in (args.model or "")


def run_comparison(magics: Any, args: argparse.Namespace, prompt: str) -> Any:
    """Prepare every variant, run them at once, bind the ``Comparison`` (also when Ctrl-C
    stopped it); UsageError first for anything that cannot be compared."""
    from step_magic.api.compare import run_variants
    from step_magic.core.comparison import variants
    from step_magic.display.frontend import cell_token, parent_msg_id
    from step_magic.engine.session import CallOptions
    from step_magic.magics import frontend as magic_frontend

    refuse(args, REFUSED, "a comparison (a comma list in --effort or --model)")
    models = _split(args.model) or [magics.model]
    efforts: list[str | None] = list(_split(args.effort)) or [magics.effort]
    try:
        chosen = variants(models, efforts)
    except InputError as err:
        raise UsageError(str(err)) from None
    labels = tuple(v.label(models=len(models) > 1, efforts=len(efforts) > 1) for v in chosen)
    cell_id = magic_frontend.cell_id(magics.shell)
    options = CallOptions(memory=False, display_format=args.format)
    magics.session.history = magics.history_store()
    calls, schema = [], magics._schema(args)
    for variant, label in zip(chosen, labels, strict=True):
        one = copy.copy(args)
        one.model, one.effort = variant.model, variant.effort
        try:
            settings = magics._settings(one, need_key=True)
        except UsageError as err:
            raise UsageError(f"{label}: {err}") from None
        calls.append(magics.prepare(prompt, args, settings, options, cell=cell_id, schema=schema))
    try:
        comparison = run_variants(magics.session, prompt, calls, labels, display=None)
    except StepInterrupted as err:
        _bind(magics, args, err.result)
        raise
    _bind(magics, args, comparison)
    if parent_msg_id(magics.shell) is None:
        from step_magic.display.compare import comparison_bundle

        print(comparison_bundle(comparison)["text/plain"])  # terminal IPython
        comparison.shown_in = cell_token(magics.shell)  # Out[n] does not print it again
    return comparison


def _bind(magics: Any, args: argparse.Namespace, comparison: Any) -> None:
    magics._namespace["_step"] = comparison
    if args.output:
        magics._namespace[args.output] = comparison


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]
