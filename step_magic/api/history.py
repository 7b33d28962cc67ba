"""``step_magic.history``: the call log from Python, the same rows ``step-magic history`` and
``%step_history`` list, as records or as a pandas DataFrame."""

from __future__ import annotations

import importlib
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Literal, overload

from step_magic.memory.history import History
from step_magic.memory.records import CallRecord

COLUMNS = tuple(item.name for item in fields(CallRecord))


@overload
def history(
    n: int | None = 10,
    search: str | None = None,
    chat: str | None = None,
    *,
    as_frame: Literal[False] = False,
    path: str | Path | None = None,
) -> list[CallRecord]: ...


@overload
def history(
    n: int | None = 10,
    search: str | None = None,
    chat: str | None = None,
    *,
    as_frame: Literal[True],
    path: str | Path | None = None,
) -> Any: ...


def history(
    n: int | None = 10,
    search: str | None = None,
    chat: str | None = None,
    *,
    as_frame: bool = False,
    path: str | Path | None = None,
) -> list[CallRecord] | Any:
    """The ``n`` newest logged calls (all for ``None``), newest first, as ``CallRecord``s.

    ``search``: full-text over the prompt, reasoning and answer (every word; ``scatter*`` for
    a prefix), or text in the model name or trace id. ``chat``: only that named thread.
    ``as_frame=True``: a pandas DataFrame, one row per call (pandas is imported only then).
    ``path``: another history file (default ``$STEP_MAGIC_HISTORY`` or the user data
    directory). A record holds no API key: the log has no place for one.
    """
    log = History(None if path is None else Path(path).expanduser())
    try:
        records = log.recent(-1 if n is None else n, search, chat)
    finally:
        log.close()
    return frame(records) if as_frame else records


def frame(records: list[CallRecord]) -> Any:
    """``records`` as a DataFrame: a column per field, ``started_at`` as a timestamp."""
    pd: Any = importlib.import_module("pandas")  # untyped without pandas-stubs
    table = pd.DataFrame([asdict(record) for record in records], columns=list(COLUMNS))
    table["started_at"] = pd.to_datetime(table["started_at"], unit="s")
    return table
