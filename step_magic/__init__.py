"""step-magic: stream StepFun reasoning models into Jupyter, IPython and plain Python.

``%load_ext step_magic`` registers ``%%step`` and its companions. From Python, with or without
IPython: ``ask``, ``stream`` (``ask_async``, ``stream_async`` for asyncio), ``map_rows``,
``compare``, ``Chat`` and ``history`` (``docs/api.md``).
Importing this package stays cheap: every name below loads on first use (PEP 562), and
openai, widgets and the data libraries only when a call needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> module that defines it; everything else in the package is internal.
_PUBLIC = {
    "ask": "step_magic.api.calls",
    "stream": "step_magic.api.calls",
    "ask_async": "step_magic.api.calls",
    "stream_async": "step_magic.api.calls",
    "map_rows": "step_magic.api.rows",
    "compare": "step_magic.api.compare",
    "explain": "step_magic.api.explain",
    "Chat": "step_magic.api.chat",
    "history": "step_magic.api.history",
    "CallRecord": "step_magic.memory.records",
    "Comparison": "step_magic.core.comparison",
    "Pending": "step_magic.engine.background",
    "StepResult": "step_magic.core.result",
    "Usage": "step_magic.core.events",
    "ReasoningDelta": "step_magic.core.events",
    "AnswerDelta": "step_magic.core.events",
    "Rethought": "step_magic.core.events",
    "Retrying": "step_magic.engine.relay",
    "ToolEvent": "step_magic.engine.relay",
    "UsageReported": "step_magic.engine.relay",
    "Done": "step_magic.engine.relay",
    "StepMagicError": "step_magic.core.errors",
    "InputError": "step_magic.core.errors",
    "StepAPIError": "step_magic.core.errors",
    "ReplayError": "step_magic.core.errors",
    "StepInterrupted": "step_magic.core.errors",
}
__all__ = [
    "AnswerDelta",
    "CallRecord",
    "Chat",
    "Comparison",
    "Done",
    "InputError",
    "Pending",
    "ReasoningDelta",
    "ReplayError",
    "Rethought",
    "Retrying",
    "StepAPIError",
    "StepInterrupted",
    "StepMagicError",
    "StepResult",
    "ToolEvent",
    "Usage",
    "UsageReported",
    "__version__",
    "ask",
    "ask_async",
    "compare",
    "explain",
    "history",
    "load_ipython_extension",
    "map_rows",
    "stream",
    "stream_async",
    "unload_ipython_extension",
]

if TYPE_CHECKING:
    from step_magic.api.calls import ask, ask_async, stream, stream_async
    from step_magic.api.chat import Chat
    from step_magic.api.compare import compare
    from step_magic.api.explain import explain
    from step_magic.api.history import history
    from step_magic.api.rows import map_rows
    from step_magic.core.comparison import Comparison
    from step_magic.core.errors import (
        InputError,
        ReplayError,
        StepAPIError,
        StepInterrupted,
        StepMagicError,
    )
    from step_magic.core.events import AnswerDelta, ReasoningDelta, Rethought, Usage
    from step_magic.core.result import StepResult
    from step_magic.engine.background import Pending
    from step_magic.engine.relay import Done, Retrying, ToolEvent, UsageReported
    from step_magic.memory.records import CallRecord


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'step_magic' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics with the running shell (``%load_ext step_magic``)."""
    from step_magic.magics.background import StepBackgroundMagics
    from step_magic.magics.bookkeeping import StepToolMagics
    from step_magic.magics.step import StepMagics
    from step_magic.magics.warmup import warm_up_later

    magics = StepMagics(shell=ipython)
    ipython.register_magics(magics)
    ipython.register_magics(StepToolMagics(ipython, magics))
    ipython.register_magics(StepBackgroundMagics(ipython))
    if magics.warm_up:
        warm_up_later(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics, stop the simulator, close the history (``%unload_ext``)."""
    from step_magic.magics.background import StepBackgroundMagics
    from step_magic.magics.bookkeeping import StepToolMagics
    from step_magic.magics.step import StepMagics

    manager = ipython.magics_manager
    for cls in (StepMagics, StepToolMagics, StepBackgroundMagics):
        instance = manager.registry.pop(cls.__name__, None)
        if instance in ipython.configurables:
            ipython.configurables.remove(instance)
        if isinstance(instance, StepMagics):
            instance.release()
        for kind, names in cls.magics.items():
            for name in names:
                manager.magics[kind].pop(name, None)
