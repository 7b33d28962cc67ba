"""``step-magic map``: ``map_rows`` over a table file from the shell, into another file.

``step-magic map reviews.parquet "Classify: {text}" -o labelled.parquet`` reads the source in
batches, asks the prompt once per row and writes the finished rows as they come; Ctrl-C (or a
crash) keeps them, and the same command again asks only the rest. The call settings and
``--base-url``/``--local`` are ``ask``'s (``cli_ask.add_call_arguments``), the map's options
those of ``%%step --map`` (``batch.mapflags``). A progress line on stderr while it runs (on a
terminal), the summary on stderr at the end; stdout stays empty. Exit status: 0 when every row
is answered, 1 when a row failed or the input is wrong (one line on stderr), 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from step_magic import cli_ask
from step_magic.batch.mapflags import MAP_FLAGS, count, parse_fields
from step_magic.cli_local import local_simulator

DESCRIPTION = (
    "Ask PROMPT once per row of a table file (Parquet, CSV or JSON Lines; {column} is the "
    "row's value) and write the rows with the answers to OUTPUT, batch by batch. Interrupted, "
    "the same command again asks only the rows not done. Needs pip install 'step-magic[files]'."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``step-magic map``'s options."""
    parser.add_argument("source", help="the table: .parquet, .csv, .jsonl or .ndjson")
    parser.add_argument("prompt", help="the prompt of each row, {column} for a value")
    parser.add_argument("-o", "--output", required=True, help="where the rows go (same kinds)")
    cli_ask.add_call_arguments(parser, skip=("reasoning",))
    for names, options in MAP_FLAGS:
        parser.add_argument(*names, **options)
    parser.add_argument(
        "--json", action="store_true", help="answers are JSON objects: one column per key"
    )
    parser.add_argument(
        "--schema",
        metavar="MODULE:MODEL",
        help="structured output (a pydantic model, dataclass or JSON-schema dict): one typed "
        "column per field",
    )
    parser.add_argument(
        "--batch-size", type=count, default=1_000, help="rows read and held at a time"
    )
    parser.add_argument("--cassette", metavar="FILE", help="keep the replies in this file")
    parser.add_argument(
        "--no-history", action="store_true", help="do not log the calls (nor resume from the log)"
    )
    parser.add_argument("--strict", action="store_true", help="an unknown {name} is an error")


def run_map(args: argparse.Namespace) -> int:
    """Map as the module docstring says; return the exit status."""
    import step_magic
    from step_magic.display.progress import TerminalProgress

    problem = cli_ask.key_problem(args)
    if problem is not None:
        return _fail(problem)
    server: AbstractContextManager[str | None] = (
        local_simulator("map", "answers", file=sys.stderr, tokens_per_second=400)
        if args.local
        else nullcontext(args.base_url)
    )
    view = TerminalProgress(0, sys.stderr)
    try:
        with server as base_url:
            summary = step_magic.map_rows(
                args.source,
                args.prompt,
                output=args.output,
                base_url=base_url,
                display=False,
                progress=view if sys.stderr.isatty() else None,
                **_keywords(args),
            )
    except step_magic.StepInterrupted as stop:
        view.finish(stop.result)
        return 130
    except step_magic.StepMagicError as err:
        return _fail(str(err))
    except KeyboardInterrupt:  # before the first row, or while the output is joined
        return _fail("interrupted", status=130)
    view.finish(summary)
    return 1 if summary.failed or summary.stopped else 0


def _keywords(args: argparse.Namespace) -> dict[str, Any]:
    keywords = cli_ask.call_keywords(args)
    keywords.update(
        column=args.as_column,
        concurrency=args.concurrency,
        rpm=args.rpm,
        limit=args.limit,
        reasoning_column=args.reasoning_col,
        fields=parse_fields(args.fields),
        json=args.json,
        strict=args.strict,
        batch_size=args.batch_size,
        cassette=args.cassette,
        history=not args.no_history,
    )
    if args.schema:
        keywords["schema"] = cli_ask.imported(args.schema, "--schema")
    return keywords


def _fail(message: str, status: int = 1) -> int:
    print(f"step-magic map: {' '.join(message.split())}", file=sys.stderr)
    return status
