"""One adapter per frame library, so the summary code in ``frames.py`` is written once.

pandas and polars are never imported: the frame object brings its own methods, and each
adapter exposes the few operations the shared code needs (positional columns, sampling,
dtypes, nulls, floats, value counts, rows).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Positions = npt.NDArray[np.int64]
    Floats = npt.NDArray[np.float64]

# pandas/polars objects: untyped here because neither library is imported (see module doc).
Frame = Any
Column = Any
CELL_CHARS = 40
ELLIPSIS = "…"


class Table(Protocol):
    """The few operations the shared summary code needs from one library's frame."""

    library: str
    n_rows: int
    names: list[str]
    index_header: str

    def column(self, j: int) -> Column: ...
    def take(self, column: Column, positions: Positions) -> Column: ...
    def dtype(self, column: Column) -> tuple[str, str]: ...
    def nulls(self, full: Column, sampled: Column | None) -> tuple[int, bool]: ...
    def floats(self, column: Column) -> Floats: ...
    def value_counts(self, column: Column) -> tuple[Column, Column] | None: ...
    def rows(self, positions: list[int], k: int) -> tuple[list[object], list[list[object]]]: ...


def library_of(obj: object) -> str | None:
    for cls in type(obj).__mro__:
        root = cls.__module__.partition(".")[0]
        if root in ("pandas", "polars") and cls.__name__ in ("DataFrame", "Series"):
            return root
    return None


def is_series(obj: object) -> bool:
    return any(cls.__name__ == "Series" for cls in type(obj).__mro__)


def clip_cell(text: str, limit: int = CELL_CHARS) -> str:
    """One Markdown table cell: no newlines or pipes, long text cut with a marker."""
    text = text.replace("\r", "").replace("\n", "⏎").replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


class PandasTable:
    """pandas adapter: positional access everywhere (duplicate and MultiIndex names work)."""

    library = "pandas"

    def __init__(self, obj: Frame, name: str) -> None:
        if is_series(obj):
            obj = obj.to_frame(name=obj.name if obj.name is not None else name)
        self.frame = obj
        self.n_rows = len(obj)
        self.names = [flat_name(c) for c in obj.columns]
        self.index_header = clip_cell(" / ".join(str(n) for n in obj.index.names if n is not None))

    def column(self, j: int) -> Column:
        return self.frame.iloc[:, j]

    def take(self, column: Column, positions: Positions) -> Column:
        return column.take(positions)

    def dtype(self, column: Column) -> tuple[str, str]:
        """Object columns also list the Python types seen in them, since they may be mixed."""
        dtype = column.dtype
        if str(dtype) == "category" or dtype.kind == "b":
            return str(dtype), "values"
        if dtype.kind in "iuf":
            return str(dtype), "numeric"
        if dtype.kind in "mM":
            return str(dtype), "temporal"
        if str(dtype) != "object":
            return str(dtype), "values"
        seen = dict.fromkeys(type(v).__name__ for v in column.iloc[:1000].dropna().tolist())
        return (f"object ({', '.join(seen)})" if seen else "object"), "values"

    def nulls(self, full: Column, sampled: Column | None) -> tuple[int, bool]:
        """Exact, except on sampled big frames for Python-object cells (isna is slow there)."""
        if sampled is None or full.dtype.kind != "O":
            return int(full.isna().sum()), True
        return round(int(sampled.isna().sum()) * len(full) / len(sampled)), False

    def floats(self, column: Column) -> Floats:
        return column.to_numpy(dtype="float64", na_value=float("nan"))  # type: ignore[no-any-return]

    def value_counts(self, column: Column) -> tuple[Column, Column] | None:
        try:
            counts = column.value_counts(dropna=True)
        except TypeError:  # unhashable cells (lists, dicts)
            return None
        counts = counts[counts > 0]  # unused categories
        return counts.index, counts

    def rows(self, positions: list[int], k: int) -> tuple[list[object], list[list[object]]]:
        picked = self.frame.iloc[positions, :k]
        return picked.index.tolist(), [picked.iloc[:, j].tolist() for j in range(k)]


class PolarsTable:
    """polars adapter: null counts are free (kept in metadata), rows have no index."""

    library = "polars"
    index_header = "#"

    def __init__(self, obj: Frame, name: str) -> None:
        if is_series(obj):
            obj = obj.alias(obj.name or name).to_frame()
        self.frame = obj
        self.n_rows = obj.height
        self.names = list(obj.columns)

    def column(self, j: int) -> Column:
        return self.frame.to_series(j)

    def take(self, column: Column, positions: Positions) -> Column:
        return column.gather(positions)

    def dtype(self, column: Column) -> tuple[str, str]:
        dtype = column.dtype
        kind = "numeric" if dtype.is_numeric() else "temporal" if dtype.is_temporal() else "values"
        return str(dtype), kind

    def nulls(self, full: Column, sampled: Column | None) -> tuple[int, bool]:
        return int(full.null_count()), True

    def floats(self, column: Column) -> Floats:
        return column.cast(float).to_numpy()  # type: ignore[no-any-return]

    def value_counts(self, column: Column) -> tuple[Column, Column] | None:
        try:
            counts = column.drop_nulls().value_counts()
        except Exception:  # polars raises its own error types for unhashable dtypes
            return None
        return counts.to_series(0), counts.to_series(1)

    def rows(self, positions: list[int], k: int) -> tuple[list[object], list[list[object]]]:
        picked = self.frame.select(self.frame.columns[:k])[positions]
        return list(positions), [picked.to_series(j).to_list() for j in range(k)]


def flat_name(label: object) -> str:
    """MultiIndex column labels are tuples: join their levels so each column has one name."""
    if isinstance(label, tuple):
        return " / ".join(str(level) for level in label if str(level) != "")
    return str(label)
