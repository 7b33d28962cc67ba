"""``step-magic history``: the call log from the shell, as ``%step_history`` shows it.

One line per call by default, ``--json`` for one JSON object per line (for ``jq``), or
``--markdown`` for a readable transcript; always newest first. ``--search`` is the log's
full-text search, ``--chat`` one named thread. The rows come from ``step_magic.history``,
so the shell, the notebook and Python list the same calls.
"""

from __future__ import annotations

import argparse
import sys

from step_magic.core.catalog import POSITIVE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``step-magic history``'s options."""
    parser.add_argument(
        "-n",
        type=_count,
        default=10,
        metavar="N",
        help="how many of the newest calls to show: a number, or 'all' (default 10)",
    )
    parser.add_argument(
        "--search",
        metavar="TEXT",
        help="only calls with every word of TEXT in the prompt, reasoning or answer "
        "(full-text; 'scatter*' for a prefix), or TEXT in the model or trace id",
    )
    parser.add_argument("--chat", metavar="NAME", help="only the calls of the thread NAME")
    shape = parser.add_mutually_exclusive_group()
    shape.add_argument("--json", action="store_true", help="one JSON object per call and line")
    shape.add_argument("--markdown", action="store_true", help="a Markdown transcript")


def run_history(args: argparse.Namespace) -> int:
    """List the calls; exit status 0, also when none match (a note on stderr says so)."""
    from step_magic.api.history import history
    from step_magic.display.calllog import call_line, calls_markdown
    from step_magic.memory.history import default_path

    records = history(args.n, args.search, args.chat)
    if not records:
        matching = " match" if args.search or args.chat else ""
        print(f"step-magic history: no calls{matching} in {default_path()}", file=sys.stderr)
        return 0
    if args.markdown:
        sys.stdout.write(calls_markdown(records))
    else:
        for record in records:
            print(record.json_line() if args.json else call_line(record))
    return 0


def _count(text: str) -> int | None:
    """``-n``: a positive whole number (the catalogue's check), or ``all`` (None: no limit,
    as ``step_magic.history`` takes it); else argparse's one line."""
    if text.strip().casefold() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number or 'all', not {text!r}") from None
    if not POSITIVE.holds(value):
        raise argparse.ArgumentTypeError(f"{POSITIVE.describe(int)}, not {text}")
    return value
