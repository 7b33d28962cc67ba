"""The debug switch: the cause of an unexpected failure, kept and logged, redacted.

A bug of ours (or of a library) during a call becomes one line, "unexpected failure during
the call: …", so a notebook never shows a stack of internals. To report or fix such a bug the
real traceback is needed: with ``%config StepMagics.debug = True`` or ``STEP_MAGIC_DEBUG=1``
the error keeps its cause (``__cause__``: a ``FailureCause`` holding the traceback as text),
shows it under the line, and logs it to ``logging.getLogger("step_magic")``; the key, and any
secret in a URL, is removed first.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Sequence

from step_magic.core.errors import StepMagicError
from step_magic.core.settings import redact

LOGGER = logging.getLogger("step_magic")
_SWITCH = {"on": False}
_OFF = ("", "0", "false", "no", "off")


def set_debug(on: bool) -> None:
    """Turn the switch on or off for this process (the ``StepMagics.debug`` trait)."""
    _SWITCH["on"] = on


def debugging() -> bool:
    """True when the trait or ``STEP_MAGIC_DEBUG`` (anything but 0, false, no, off) asks."""
    return _SWITCH["on"] or os.environ.get("STEP_MAGIC_DEBUG", "").strip().lower() not in _OFF


class FailureCause(Exception):
    """The cause of an unexpected failure, as redacted text: the original exception is not
    kept (its message and its frames' variables may hold the key)."""


def keep_cause(error: BaseException, cause: BaseException, secrets: Sequence[str]) -> None:
    """In debug mode: chain the redacted traceback of ``cause`` to ``error``, show it under
    the error's line, and log it."""
    if not debugging():
        return
    text = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    shown = redact(text, *secrets)
    error.__cause__ = FailureCause(shown)
    if isinstance(error, StepMagicError):
        error.debug_trace = shown
    LOGGER.error("%s\n%s", redact(str(error), *secrets), shown)
