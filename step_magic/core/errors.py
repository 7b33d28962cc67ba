"""Every exception step-magic raises on purpose, under one base class.

IPython asks an exception for ``_render_traceback_`` before formatting a traceback; these
errors answer with a single line, so a failed call never shows a stack of our internals.
Callers catch the narrow type they can handle: ``InputError`` is bad input found before
anything is sent (the magics show it as a ``UsageError``), ``StepAPIError`` a failed call.
"""

from __future__ import annotations

from typing import Any

from step_magic.core.redact import redact_url
from step_magic.core.text import excerpt


class StepMagicError(Exception):
    """An error whose message says everything the user needs; no traceback is shown.

    ``result`` is what a call had produced when it failed (a ``StepResult``), for code that
    called the Python API: the partial reply is never lost.
    """

    result: Any = None
    debug_trace: str | None = None  # the cause's traceback, redacted (core.diagnostics)

    def __init__(self, *args: object) -> None:
        # a base URL's password or query key never reaches a message, whoever wrote it, and
        # whatever a server sent is shown as a bounded excerpt
        super().__init__(*(_safe(arg) if isinstance(arg, str) else arg for arg in args))

    def _render_traceback_(self) -> list[str]:
        line = f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"
        if self.debug_trace:  # the debug switch is on: the cause, under the line
            return [line, "", "The cause (STEP_MAGIC_DEBUG):", self.debug_trace]
        return [line]


def _safe(text: str) -> str:
    return excerpt(redact_url(text))


class InputError(StepMagicError, ValueError):
    """Bad input found before anything was sent: a flag, a name, a value, a missing key."""


class UnknownReference(InputError):
    """A reference that does not resolve; the message suggests close names."""

    def __init__(self, name: str, suggestions: tuple[str, ...] = ()) -> None:
        self.name = name
        self.suggestions = suggestions
        hint = f"; did you mean {' or '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"{name} is not defined{hint}")


class StepAPIError(StepMagicError):
    """A failed call, described in one line a user can paste into a bug report."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        trace_id: str | None = None,
        completion_id: str | None = None,
        server: str | None = None,
    ) -> None:
        self.status = status
        self.server = server  # None: StepFun's own API
        self.detail = _safe(message)
        self.trace_id = trace_id
        self.completion_id = completion_id
        super().__init__(self._line())

    def _line(self) -> str:
        status = f" {self.status}" if self.status else ""
        # an error from another server must not send the user to StepFun's status page
        head = (
            f"StepFun API error{status}"
            if self.server is None
            else (f"API error{status} from {self.server}")
        )
        ids = [f"trace id {self.trace_id}"] if self.trace_id else []
        if self.completion_id:
            ids.append(f"id {self.completion_id}")
        tail = f" ({', '.join(ids)})" if ids else ""
        return f"{head}: {self.detail}{tail}"


class ReplayError(StepMagicError):
    """Nothing recorded for this request, or a cassette that cannot be read."""


class AnswerFormatError(StepMagicError, ValueError):
    """The answer does not have the ``--format`` asked for (e.g. not JSON)."""


class ToolError(StepMagicError):
    """Bad arguments or a refused operation; the message is sent to the model as the result."""


class StepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a call; IPython shows one line instead of our stack.

    A ``KeyboardInterrupt``, not a ``StepMagicError``: ``except Exception`` must not swallow it.
    ``result`` is the partial reply, as on ``StepMagicError``.
    """

    result: Any = None

    def _render_traceback_(self) -> list[str]:
        return ["KeyboardInterrupt: reply interrupted; the partial text above is kept"]
