"""``step_magic.explain(exc)``: ask why an exception happened, with what the model needs.

The exception goes in as an attachment (``context.failure`` describes it: the user's frames
in full, library frames one line each, the chain, the failing cells' code, the names on the
failing line, bounded and redacted), so the call is an ordinary ``ask``: same panel, history,
errors and keywords. ``%step --fix`` asks the same question, plus a corrected cell.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from step_magic.api.keywords import CallKeywords
from step_magic.core.errors import InputError
from step_magic.core.result import StepResult

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing has it from Python 3.11

EXPLAIN = (
    "Explain the error attached: what went wrong and why, pointing at the line of my code "
    "that caused it, then how to fix it. Be brief."
)
FIX = (
    EXPLAIN + " Then give the corrected code of the cell that failed, whole, as one fenced "
    "Python block."
)


def error_prompt(words: str = "", *, fix: bool = False) -> str:
    """The question about an error, with the user's own words after it."""
    base = FIX if fix else EXPLAIN
    return f"{base}\n\n{words.strip()}" if words.strip() else base


def explain(
    error: BaseException | None = None,
    question: str = "",
    *,
    display: bool | None = None,
    history: bool = True,
    **keywords: Unpack[CallKeywords],
) -> StepResult:
    """Explain ``error`` (default: the one being handled, inside ``except:``; else the last
    one the interactive shell showed).

    ``question`` adds the user's own words. Works in any process: an exception caught in a
    script (``except Exception as err: step_magic.explain(err)``) carries its traceback.
    """
    from step_magic.api.calls import ask
    from step_magic.context.failure import handled_error, last_error

    error = error if error is not None else (handled_error() or last_error())
    if error is None:
        raise InputError("no error to explain: pass the exception, or run this after one")
    if not isinstance(error, BaseException):
        raise InputError(f"explain() takes an exception, not {type(error).__name__}")
    if keywords.get("attach") is not None:
        raise InputError("explain() attaches the error itself; use ask(attach=...) for more")
    keywords["attach"] = {"error": error}
    prompt = error_prompt(question)
    return ask(prompt, background=False, display=display, history=history, **keywords)
