"""IPython glue for ``%%step --background``, ``%step_wait`` and ``%step_cancel``.

The cell is checked and prepared as a foreground one (bad input is a one-line ``UsageError``
before anything is sent), its panel shown, then it returns: the reply streams into the panel
on a thread of its own while other cells run. ``_step`` (and ``-o NAME``) is the pending
call at once. The kernel's interrupt (Ctrl-C, the stop button of the notebook) does not
reach a background call: the Stop button in its panel, ``%step_cancel`` and ``.cancel()`` do.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from step_magic.core.text import a_type
from step_magic.magics.parsing import refuse

if TYPE_CHECKING:
    from step_magic.engine.background import Pending

# Flags a background call cannot take, with the reason shown to the user.
REFUSED = {
    "tools": "--tools (your functions must run on the kernel's main thread)",
    "confirm": "--confirm (it asks on the kernel's main thread)",
    "code": "--code (the next cell may already be running)",
    "map": "--map (a --map batch runs in the foreground)",
    "dry_run": "--dry-run (nothing runs)",
    "new": "--new (it would clear the conversation when the call ends, after other cells)",
}


def check_background_flags(args: argparse.Namespace) -> None:
    """One line for a flag ``--background`` cannot take, before anything is built or sent."""
    refuse(args, REFUSED, "--background")


def start_in_background(magics: Any, args: argparse.Namespace, call: Any, cell: str | None) -> None:
    """Start the prepared call, bind ``_step`` / ``-o NAME`` to it, and return at once."""
    from step_magic.api.background import POOL, start
    from step_magic.core.errors import InputError
    from step_magic.display.frontend import parent_msg_id

    POOL.limit = magics.background_limit
    try:
        pending = start(magics.session, call, None, cell=cell)
    except InputError as err:
        raise UsageError(str(err)) from None
    magics._namespace["_step"] = pending
    if args.output:
        magics._namespace[args.output] = pending
    if parent_msg_id(magics.shell) is None:  # terminal IPython: nothing shows it running
        name = args.output or "_step"
        print(
            f"Running in the background: {name}.wait() gives the result, {name}.cancel() stops it."
        )


@magics_class
class StepBackgroundMagics(Magics):
    """Wait for background calls, or stop them."""

    @magic_arguments()
    @argument("name", nargs="?", help="The call's name (-o NAME, or _step); 'all': every one.")
    @argument("--timeout", type=float, help="Give up waiting after this many seconds.")
    @line_magic
    def step_wait(self, line: str) -> None:
        """Wait for a background call (default: _step) or all of them, then show how each ended.

        The finished panels are republished from this cell, so a notebook run headless
        (nbclient, papermill, nbconvert --execute) saves them: end such a notebook with
        ``%step_wait all``. Ctrl-C stops the waiting; the calls go on.
        """
        args = parse_argstring(self.step_wait, line)
        chosen = self._chosen(args.name, waiting=True)
        if not chosen:
            print("No background call to wait for.")
        ends = time.monotonic() + args.timeout if args.timeout is not None else None
        for number, (name, pending) in enumerate(chosen):
            left = None if ends is None else max(ends - time.monotonic(), 0.0)
            try:
                result = pending.wait(left)
            except (TimeoutError, KeyboardInterrupt) as err:
                still = ", ".join(n for n, p in chosen[number:] if not p.done)
                why = f"after {args.timeout:g} s" if isinstance(err, TimeoutError) else "now"
                raise UsageError(
                    f"stopped waiting {why}; still running: {still} (%step_cancel stops them)"
                ) from None
            print(f"{name}: {_ending(result)}")

    @magic_arguments()
    @argument("name", nargs="?", help="The call's name (-o NAME, or _step); 'all': every one.")
    @line_magic
    def step_cancel(self, line: str) -> None:
        """Stop a background call (default: _step) or all of them; what arrived is kept."""
        args = parse_argstring(self.step_cancel, line)
        chosen = self._chosen(args.name, waiting=False)
        if not chosen:
            print("No background call is running.")
        for name, pending in chosen:
            if pending.cancel():
                print(f"{name}: stopping (the panel keeps what arrived)")
            else:
                print(f"{name}: already {pending.state}")

    def _chosen(self, name: str | None, *, waiting: bool) -> list[tuple[str, Pending]]:
        """The calls ``name`` means: one variable; for ``all``, every call not waited for
        yet (finished ones too: waiting republishes their final form) or every running one."""
        from step_magic.api.background import POOL
        from step_magic.engine.background import Pending

        namespace = self.shell.user_ns if self.shell is not None else {}
        if name == "all":
            names: dict[int, str] = {}
            for key, value in namespace.items():  # a -o NAME before _step, the newest
                if isinstance(value, Pending) and names.get(id(value), "_").startswith("_"):
                    names[id(value)] = key
            calls = POOL.unwaited() if waiting else POOL.running()
            return [(names.get(id(p), p.label), p) for p in calls]
        name = name or "_step"
        value = namespace.get(name)
        if not isinstance(value, Pending):
            what = "not defined" if name not in namespace else a_type(value)
            raise UsageError(f"{name} is {what}, not a background call (%%step --background)")
        return [(name, value)]


def _ending(result: Any) -> str:
    figures = f"{len(result.answer):,} chars of answer in {result.elapsed:.1f} s"
    error = f" ({result.error})" if result.error else ""
    trace = f", trace id {result.trace_id}" if result.trace_id else ""
    return f"{result.status}{error}, {figures}{trace}"
