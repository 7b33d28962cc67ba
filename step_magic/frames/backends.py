"""What the DataFrame tools (``frame_ops.py``) need from a frame, so they are written once.

The tools need more from a frame than its summary does (``frame_tables.py``): masks for
conditions, grouped aggregates, the first rows in some order. One adapter per library
(``frame_pandas.py``, ``frame_polars.py``) does them with vectorised library calls, so they
take a second or two on tens of millions of rows, and turns only the few values shown into
Python objects. Columns go by position (duplicate and MultiIndex labels work). pandas and
polars are not imported up front: the frame brings its own methods, and polars is imported
only where expressions are needed.
"""

from __future__ import annotations

import datetime as dt
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Floats = npt.NDArray[np.float64]
    Mask = npt.NDArray[np.bool_]

COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
Cells = list[list[object]]


class Backend(Protocol):
    """The operations the tools need from one library's frame; columns go by position."""

    library: str
    n_rows: int
    labels: list[str]
    index_header: str

    def dtype(self, j: int) -> str: ...
    def kind(self, j: int) -> str: ...
    def nulls(self, j: int) -> int: ...
    def distinct(self, j: int) -> int: ...
    def floats(self, j: int) -> Floats: ...
    def extremes(self, j: int) -> tuple[object, object]: ...
    def counts(self, j: int, top: int) -> tuple[list[object], list[int], int]:
        """The top values (null as None) with their counts, and how many non-null distinct."""

    def group(
        self, by: list[int], agg: str, j: int | None, top: int, descending: bool
    ) -> tuple[Cells, list[object], int]: ...
    def mask(self, j: int, op: str, value: Any) -> Mask: ...
    def time(self, j: int, moment: dt.datetime) -> object:
        """``moment`` as a value comparable with column j: a date, or in its time zone."""

    def order(self, j: int, descending: bool, n: int) -> list[int]: ...
    def rows(self, positions: list[int], columns: list[int]) -> tuple[list[object], Cells]: ...
