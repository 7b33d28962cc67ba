"""The ``%%step`` flags, declared once: ``%%step?`` prints them, ``parse_argstring`` reads them.

Kept apart from the magic so the flow of a call (``magics/step.py``) reads on one screen.
Values are checked by the converters in ``argtypes``; combinations by ``parsing``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core.magic_arguments import argument, magic_arguments

from step_magic.core.settings import APIS
from step_magic.magics import argtypes as flags

DETAILS = ["low", "high"]


def step_arguments(magic: Callable[..., Any]) -> Any:
    """Attach every ``%%step`` flag to ``magic``; ``%%step?`` lists them in this order.

    Returns what IPython's decorators return (the function, with a ``parser``), untyped.
    """
    for flag in reversed(FLAGS):
        magic = flag(magic)
    documented = magic_arguments()(magic)
    # IPython writes the usage as a reST literal block ("::"); %%step? shows it as plain text,
    # so the marker and the reST quotes would only be noise there.
    documented.__doc__ = (documented.__doc__ or "").replace("::\n\n", "", 1).replace("``", "")
    return documented


def names_flag(*names: str, **options: Any) -> Any:
    """A flag that takes comma-separated names (``--with``, ``--tools``)."""
    return argument(*names, type=flags.names, default=(), metavar="NAMES", **options)


FLAGS = [
    argument(
        "-m",
        "--model",
        help="Model name (default: StepMagics.model, step-3.7-flash); a comma list compares "
        "models side by side.",
    ),
    argument(
        "-e",
        "--effort",
        type=flags.efforts,
        metavar="EFFORT",
        help="Reasoning effort: low, medium or high; a comma list (low,high) compares them "
        "side by side.",
    ),
    argument("--system", help="System prompt for this call."),
    argument("--max-tokens", type=flags.positive_int, help="Cap on the reply's tokens."),
    argument("--temperature", type=flags.temperature, help="Sampling temperature, 0 to 2."),
    argument("--base-url", help="API base URL, e.g. a compatible or local server."),
    argument(
        "--api", choices=list(APIS), help="chat (Chat Completions) or messages (Messages API)."
    ),
    argument("--timeout", type=flags.positive_seconds, help="Seconds without data to fail."),
    argument(
        "--deadline", type=flags.positive_seconds, help="Seconds for the whole call to finish."
    ),
    argument("--show-reasoning", action="store_true", help="Open the reasoning panel."),
    argument("--no-reasoning", action="store_true", help="Do not display the reasoning."),
    argument(
        "--remote-images",
        action="store_true",
        help="Load the answer's images from other hosts (by default they are links).",
    ),
    argument("-o", "--output", metavar="NAME", help="Also bind the result to NAME."),
    argument(
        "--background",
        action="store_true",
        help="Return at once; the reply streams into its panel while other cells run. _step "
        "is the pending call (.wait(), .cancel(), .done, .answer); the kernel's interrupt "
        "does not reach it (its Stop button and %%step_cancel do).",
    ),
    names_flag(
        "-w",
        "--with",
        dest="attach",
        help="Attach kernel objects, comma-separated: variables (DataFrames, figures, images, "
        "arrays, text), Out[N], @last / @N (image an earlier cell displayed), file paths.",
    ),
    argument("--budget", type=flags.positive_int, help="Token budget per attached object."),
    argument("--detail", choices=DETAILS, help="Image detail sent to the model."),
    argument("--dry-run", action="store_true", help="Show what would be sent; send nothing."),
    argument("--no-interpolate", action="store_true", help="Send {braces} verbatim."),
    argument("--strict", action="store_true", help="An unknown {name} is an error."),
    argument("--new", action="store_true", help="Start the conversation afresh."),
    argument("--chat", metavar="NAME", default="default", help="Use the named thread."),
    argument("--no-memory", action="store_true", help="One-off call: no earlier turns."),
    argument("--replay", action="store_true", help="Answer from a recorded reply only."),
    argument("--refresh", action="store_true", help="Call the API even when replaying."),
    argument("--cassette", metavar="FILE", help="Record to / replay from this JSONL file."),
    argument(
        "--code",
        nargs="?",
        const="first",
        choices=["first", "all"],
        help="Put the answer's first (or all) code block(s) into a new cell below.",
    ),
    argument(
        "--format",
        choices=["markdown", "text", "json", "code"],
        default="markdown",
        help="How the answer is shown.",
    ),
    names_flag(
        "--tools",
        help="Let the model call these functions (schema from their signatures) or explore "
        "these DataFrames with read-only tools, comma-separated.",
    ),
    argument("--max-steps", type=flags.positive_int, help="--tools: model turns allowed (8)."),
    argument("--confirm", action="store_true", help="--tools: ask before each call."),
    argument("--map", metavar="NAME", help="Run the prompt once per row of this frame/list."),
    argument("--as", dest="as_column", default="answer", metavar="COLUMN", help="--map column."),
    argument("--concurrency", type=flags.positive_int, default=4, help="--map parallel calls."),
    argument("--rpm", type=float, help="--map: at most this many requests a minute."),
    argument("--limit", type=flags.positive_int, help="--map: only the first N rows."),
    argument("--inplace", action="store_true", help="--map: add the column to the frame itself."),
    argument("--reasoning-col", metavar="COLUMN", help="--map: keep the reasoning too."),
    argument(
        "--fields", metavar="SPEC", help="--map: parse answers into typed columns a:int,b:str."
    ),
]
