"""The ``%%step`` flags, declared once: ``%%step?`` prints them, ``parse_argstring`` reads them.

Kept apart from the magic so the flow of a call (``magics/step.py``) reads on one screen.
Values are checked by the converters in ``argtypes``; combinations by ``parsing``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from IPython.core.magic_arguments import argument, magic_arguments

from step_magic.batch.mapflags import MAP_FLAGS
from step_magic.core.catalog import BY_NAME
from step_magic.magics import argtypes as flags


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


def map_flags() -> list[Any]:
    """The map's options (``batch.mapflags``, shared with ``step-magic map``), as flags."""
    return [argument(*names, **{**options, "help": f"--map: {options['help']}"})
            for names, options in MAP_FLAGS]  # fmt: skip


def names_flag(*names: str, **options: Any) -> Any:
    """A flag that takes comma-separated names (``--with``, ``--tools``)."""
    return argument(*names, type=flags.names, default=(), metavar="NAMES", **options)


def setting(name: str, **override: Any) -> Any:
    """The flag of the catalogue's setting ``name`` (``core.catalog``), as declared there."""
    names, options = BY_NAME[name].argument(**override)
    return argument(*names, **options)


FLAGS = [
    setting(
        "model",
        help="Model name (default: StepMagics.model, step-3.7-flash); a comma list compares "
        "models side by side.",
    ),
    setting(
        "effort",
        type=flags.efforts,
        choices=None,
        metavar="EFFORT",
        help="Reasoning effort: low, medium or high; a comma list (low,high) compares them "
        "side by side.",
    ),
    setting("system"),
    setting("max_tokens"),
    setting("temperature"),
    setting("top_p"),
    argument("--base-url", help="API base URL, e.g. a compatible or local server."),
    setting("api"),
    setting("timeout"),
    setting("deadline"),
    setting("show_reasoning"),
    setting("reasoning"),
    setting(
        "remote_images",
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
        "arrays, text), Out[N], In[N] (the code of cell N), @last / @N (image an earlier cell "
        "displayed), @error (the last error: its traceback, code and names), file paths.",
    ),
    setting("budget"),
    setting("detail"),
    argument(
        "--schema",
        metavar="NAME",
        help="Structured output: the answer must fit this pydantic model, dataclass or "
        "JSON-schema dict from the notebook; _step.parsed holds it validated (with --map, one "
        "typed column per field).",
    ),
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
        "--fix",
        action="store_true",
        help="Explain the last error and put a corrected cell below (never run); the prompt, "
        "if any, adds your own words.",
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
    setting("max_steps"),
    argument("--confirm", action="store_true", help="--tools: ask before each call."),
    argument("--map", metavar="NAME", help="Run the prompt once per row of this frame/list."),
    *map_flags()[:4],
    argument("--inplace", action="store_true", help="--map: add the column to the frame itself."),
    *map_flags()[4:],
]
