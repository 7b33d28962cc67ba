"""The polars adapter of the DataFrame tools (the ``Backend`` protocol of ``frame_backends.py``).

polars answers most questions with expressions, so unlike pandas it needs polars itself:
it is imported inside the calls that build expressions, never when this module loads, so
attaching a pandas frame (or none) never pays for importing polars.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from step_magic.frames.backends import COMPARISONS, Cells

if TYPE_CHECKING:
    from step_magic.frames.backends import Floats, Mask


class PolarsFrame:
    """polars: rows have no index (their position is shown), null counts are free."""

    library = "polars"
    index_header = "#"

    def __init__(self, frame: Any) -> None:
        self.frame = frame
        self.n_rows = frame.height
        self.labels = list(frame.columns)

    def _series(self, j: int) -> Any:
        return self.frame.to_series(j)

    def dtype(self, j: int) -> str:
        return str(self._series(j).dtype)

    def kind(self, j: int) -> str:
        import polars as pl

        dtype = self._series(j).dtype
        if dtype == pl.Boolean:
            return "bool"
        if dtype.is_numeric():
            return "numeric"
        if dtype == pl.Date or isinstance(dtype, pl.Datetime):
            return "temporal"
        if dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum)):
            return "text"
        return "other"

    def nulls(self, j: int) -> int:
        return int(self._series(j).null_count())

    def distinct(self, j: int) -> int:
        return int(self._series(j).drop_nulls().n_unique())

    def floats(self, j: int) -> Floats:
        return self._series(j).cast(float).to_numpy()  # type: ignore[no-any-return]

    def extremes(self, j: int) -> tuple[object, object]:
        series = self._series(j)
        return series.min(), series.max()

    def counts(self, j: int, top: int) -> tuple[list[object], list[int], int]:
        """Most common first; ties in order of first appearance, so the answer is stable."""
        import polars as pl

        table = (
            self._series(j)
            .alias("value")
            .to_frame()
            .group_by("value", maintain_order=True)
            .agg(pl.len().alias("count"))
        )
        _, picked = _polars_top(table, "count", top, descending=True)
        counts = [int(c) for c in picked.to_series(1).to_list()]
        return picked.to_series(0).to_list(), counts, table.height - table.to_series(0).null_count()

    def group(
        self, by: list[int], agg: str, j: int | None, top: int, descending: bool
    ) -> tuple[Cells, list[object], int]:
        import polars as pl

        keys = [f"k{i}" for i in range(len(by))]
        series = [self._series(k).alias(key) for k, key in zip(by, keys, strict=True)]
        if j is not None:
            series.append(self._series(j).alias("v"))
        v = pl.col("v")
        functions = {"sum": v.sum(), "mean": v.mean(), "min": v.min(), "max": v.max()}
        functions |= {"median": v.median(), "nunique": v.n_unique(), "count": v.count()}
        expression = pl.len() if j is None else functions[agg]
        result = pl.DataFrame(series).group_by(keys, maintain_order=True).agg(expression.alias("a"))
        _, ranked = _polars_top(result, "a", top, descending)
        columns = [ranked.to_series(i).to_list() for i in range(len(keys))]
        return (
            [list(key) for key in zip(*columns, strict=True)],
            ranked.to_series(len(keys)).to_list(),
            result.height,
        )

    def mask(self, j: int, op: str, value: Any) -> Mask:
        series = self._series(j)
        if op == "isnull":
            matched = series.is_null()
        elif op == "notnull":
            matched = series.is_not_null()
        elif op == "in" and series.dtype.is_float():
            matched = series.is_in([float(v) for v in value])  # polars will not mix 1 and 1.0
        elif op == "in" and series.dtype.is_integer() and any(isinstance(v, float) for v in value):
            matched = series.cast(float).is_in([float(v) for v in value])
        elif op == "in":
            matched = series.is_in(value)
        else:
            matched = COMPARISONS[op](series, value)
        return matched.fill_null(False).to_numpy()  # type: ignore[no-any-return]

    def time(self, j: int, moment: dt.datetime) -> object:
        import polars as pl

        dtype = self._series(j).dtype
        if dtype == pl.Date:
            return moment.date()
        zone = getattr(dtype, "time_zone", None)
        if zone is not None and moment.tzinfo is None:
            from zoneinfo import ZoneInfo

            return moment.replace(tzinfo=ZoneInfo(zone))
        if zone is None and moment.tzinfo is not None:
            return moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return moment

    def order(self, j: int, descending: bool, n: int) -> list[int]:
        return _polars_top(self._series(j).alias("v").to_frame(), "v", n, descending)[0]

    def rows(self, positions: list[int], columns: list[int]) -> tuple[list[object], Cells]:
        picked = [self._series(j).gather(positions).to_list() for j in columns]
        return list(positions), [[column[i] for column in picked] for i in range(len(positions))]


def _polars_top(table: Any, column: str, k: int, descending: bool) -> tuple[list[int], Any]:
    """The k rows of ``table`` first when sorted by ``column``, nulls last, ties in table order.

    ``bottom_k`` selects without sorting everything (several times faster than a sort on
    millions of rows); the row number breaks ties. Returns their positions and the rows.
    ``table``'s own column names are ours (``v``, ``a``...), so the helper names cannot clash.
    """
    import polars as pl

    keys = ["_null", column, "_i"]
    ranked = table.with_row_index("_i").with_columns(pl.col(column).is_null().alias("_null"))
    picked = ranked.bottom_k(k, by=keys, reverse=[False, descending, False])
    picked = picked.sort(keys, descending=[False, descending, False])
    positions = [int(p) for p in picked.get_column("_i").to_list()]
    return positions, picked.drop(["_null", "_i"])
