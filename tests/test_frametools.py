"""Read-only DataFrame tools on real pandas and polars frames: answers, errors, bounds, safety."""

# the shapes under test use a real multiplication sign

from __future__ import annotations

import builtins
import datetime as dt
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from step_magic.core.errors import ToolError
from step_magic.tools.frame_args import AGGS, MAX_ROWS, OPS
from step_magic.tools.frametools import frame_tools
from step_magic.tools.toolbox import Tool

LIBRARIES = ["pandas", "polars"]
OP_NAMES = [
    "columns",
    "describe",
    "value_counts",
    "group_by",
    "filter",
    "sort",
    "sample",
    "correlation",
]


def shop(library: str) -> Any:
    """Eight sales with nulls in every kind of column, and values small enough to check."""
    data = {
        "city": ["Paris", "Lyon", "Paris", None, "Nice", "Paris", "Lyon", "Paris"],
        "price": [10.0, 20.0, None, 40.0, 50.0, 30.0, 20.0, 70.0],
        "units": [1, 2, 3, 4, 5, 6, 7, 8],
        "when": [dt.datetime(2024, 1, day) for day in range(1, 9)],
        "promo": [True, False, True, False, True, True, False, False],
    }
    return pd.DataFrame(data) if library == "pandas" else pl.DataFrame(data)


def tools_of(frame: Any, name: str = "df", **options: Any) -> dict[str, Tool]:
    return {
        tool.name.removeprefix(f"{name}_"): tool for tool in frame_tools(name, frame, **options)
    }


def error_of(tool: Tool, **arguments: Any) -> str:
    with pytest.raises(ToolError) as caught:
        tool.run(**arguments)
    return str(caught.value)


# ---- the API ---------------------------------------------------------------------------


@pytest.mark.parametrize("library", LIBRARIES)
def test_tool_names_and_schemas(library: str) -> None:
    tools = frame_tools("df", shop(library))
    assert [tool.name for tool in tools] == [f"df_{op}" for op in OP_NAMES]
    for tool in tools:
        assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", tool.name)
        assert tool.parameters["type"] == "object"
        assert tool.parameters["additionalProperties"] is False
        assert set(tool.parameters["required"]) <= set(tool.parameters["properties"])
        assert "`df`" in tool.description
        assert tool.spec()["function"]["name"] == tool.name
    schemas = {tool.name: tool.parameters for tool in tools}
    column = {"type": "string", "enum": ["city", "price", "units", "when", "promo"]}
    assert schemas["df_describe"]["properties"]["column"] == column
    assert schemas["df_group_by"]["required"] == ["by", "agg"]
    assert schemas["df_group_by"]["properties"]["agg"]["enum"] == AGGS
    assert schemas["df_group_by"]["properties"]["by"]["maxItems"] == 3
    condition = schemas["df_filter"]["properties"]["conditions"]["items"]
    assert condition["properties"]["op"]["enum"] == OPS
    assert condition["required"] == ["column", "op"]
    assert schemas["df_sort"]["properties"]["n"]["maximum"] == MAX_ROWS


def test_wide_frames_describe_columns_instead_of_listing_them() -> None:
    frame = pd.DataFrame(np.zeros((2, 250)), columns=[f"c{i}" for i in range(250)])
    schema = tools_of(frame)["describe"].parameters["properties"]["column"]
    assert "enum" not in schema
    assert "df_columns" in schema["description"]


def test_names_that_are_not_identifiers_still_make_valid_tool_names() -> None:
    names = [tool.name for tool in frame_tools("données-2024 €" + "x" * 80, shop("pandas"))]
    assert all(re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", name) for name in names)


def test_importing_the_module_imports_no_frame_library() -> None:
    code = (
        "import sys, step_magic.tools.frametools, step_magic.tools.frame_args, "
        "step_magic.frames.backends, step_magic.frames.pandas_frame, "
        "step_magic.frames.polars_frame, step_magic.tools.frame_ops, step_magic.frames.text; "
        "print(sorted({'pandas', 'polars', 'numpy'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "obj", [shop("pandas")["price"], pl.Series("a", [1]), {"a": [1]}, np.zeros(3)]
)
def test_only_dataframes_are_accepted(obj: object) -> None:
    with pytest.raises(ValueError, match="not a pandas or polars DataFrame"):
        frame_tools("x", obj)


# ---- each tool on a small known frame -----------------------------------------------------


@pytest.mark.parametrize("library", LIBRARIES)
def test_columns_lists_shape_dtypes_and_nulls(library: str) -> None:
    text = tools_of(shop(library))["columns"].run()
    assert text.startswith(f"{library} DataFrame `df`: 8 rows × 5 columns.")
    price_dtype = "float64" if library == "pandas" else "Float64"
    assert f"| 1 | price | {price_dtype} | 1 |" in text
    assert "| 0 | city |" in text
    assert "| 2 | units |" in text


def test_columns_can_be_paged_and_searched_on_wide_frames() -> None:
    frame = pd.DataFrame(np.zeros((3, 400)), columns=[f"feature_{i}" for i in range(400)])
    columns = tools_of(frame, budget_chars=2_000)["columns"]
    first = columns.run()
    assert len(first) <= 2_000
    match = re.search(r"call again with offset=(\d+)", first)
    assert match
    assert f"| {match.group(1)} | feature_{match.group(1)} |" in columns.run(offset=int(match[1]))
    found = columns.run(contains="FEATURE_39")
    assert "11 column names contain 'FEATURE_39'" in found
    assert "| 399 | feature_399 |" in found


@pytest.mark.parametrize("library", LIBRARIES)
def test_describe_numbers_text_dates(library: str) -> None:
    describe = tools_of(shop(library))["describe"]
    price = describe.run(column="price")
    for line in ["| count (non-null) | 7 |", "| nulls | 1 |", "| distinct (non-null) | 6 |"]:
        assert line in price
    for line in ["| min | 10 |", "| 50% | 30 |", "| max | 70 |", "| mean | 34.2857 |"]:
        assert line in price
    assert "| 25% | 20 |" in price
    assert "| 75% | 45 |" in price
    assert "| std | 20.702 |" in price
    city = describe.run(column="city")
    assert "| distinct (non-null) | 3 |" in city
    assert "| top 1 | Paris (4) |" in city
    assert "| top 2 | Lyon (2) |" in city
    assert "| top 3 | Nice (1) |" in city
    when = describe.run(column="when")
    assert "| min | 2024-01-01 00:00:00 |" in when
    assert "| max | 2024-01-08 00:00:00 |" in when


@pytest.mark.parametrize("library", LIBRARIES)
def test_value_counts_counts_nulls_and_distinct_values(library: str) -> None:
    value_counts = tools_of(shop(library))["value_counts"]
    text = value_counts.run(column="city")
    assert "3 distinct non-null values; null in 1 of 8 rows" in text
    assert "| Paris | 4 | 50.0% |" in text
    assert "| Lyon | 2 | 25.0% |" in text
    assert "| null | 1 | 12.5% |" in text
    top = value_counts.run(column="city", top=1)
    assert "| Paris | 4 |" in top
    assert "Lyon" not in top


@pytest.mark.parametrize("library", LIBRARIES)
def test_group_by_aggregates_sorts_and_counts_groups(library: str) -> None:
    group_by = tools_of(shop(library))["group_by"]
    text = group_by.run(by=["city"], agg="sum", column="price")
    assert text.startswith("4 groups in all")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows == [
        "| city | sum(price) |",
        "| Paris | 110 |",
        "| Nice | 50 |",
        "| Lyon | 40 |",  # ties in order of first appearance
        "| null | 40 |",
    ]
    ascending = group_by.run(by=["city"], agg="mean", column="units", descending=False, top=2)
    assert table_rows(ascending) == [["null", "4"], ["Paris", "4.5"]]  # Lyon ties, comes later
    counted = group_by.run(by=["city", "promo"], agg="count")
    assert counted.startswith("5 groups in all")
    assert table_rows(counted) == [
        ["Paris", "True", "3"],
        ["Lyon", "False", "2"],
        ["null", "False", "1"],
        ["Nice", "True", "1"],
        ["Paris", "False", "1"],
    ]
    distinct = group_by.run(by=["promo"], agg="nunique", column="city")
    assert "| True | 2 |" in distinct


@pytest.mark.parametrize("library", LIBRARIES)
def test_filter_counts_matches_and_shows_the_first(library: str) -> None:
    run = tools_of(shop(library))["filter"].run
    text = run(
        conditions=[
            {"column": "price", "op": ">=", "value": 20},
            {"column": "city", "op": "in", "value": ["Paris", "Lyon"]},
        ],
        columns=["city", "price"],
        limit=2,
    )
    assert text.startswith("4 of 8 rows match. The first 2:")
    index = "index" if library == "pandas" else "#"
    assert f"| {index} | city | price |" in text
    assert "| 1 | Lyon | 20.0 |" in text
    assert "| 5 | Paris | 30.0 |" in text
    assert "| 6 |" not in text
    assert run(conditions=[{"column": "city", "op": "isnull"}]).startswith("1 of 8 rows match")
    assert run(conditions=[{"column": "price", "op": "notnull"}]).startswith("7 of 8 rows")
    # SQL-like: a null price is neither equal nor unequal to 10
    assert run(conditions=[{"column": "price", "op": "!=", "value": 10}]).startswith("6 of 8")
    assert run(conditions=[{"column": "promo", "op": "==", "value": True}]).startswith("4 of")
    assert run(conditions=[{"column": "price", "op": "in", "value": [10, 20]}]).startswith("3 of")
    assert run(conditions=[{"column": "units", "op": "in", "value": [2.0, 2.5]}]).startswith("1 of")
    in_dates = [{"column": "when", "op": "in", "value": ["2024-01-02", "2024-01-05T00:00"]}]
    assert run(conditions=in_dates).startswith("2 of 8 rows match")
    dates = run(conditions=[{"column": "when", "op": ">", "value": "2024-01-06T12:00"}])
    assert dates.startswith("2 of 8 rows match")
    nothing = run(conditions=[{"column": "city", "op": "==", "value": "Rome"}])
    assert nothing == "0 of 8 rows match."


@pytest.mark.parametrize("library", LIBRARIES)
def test_sort_puts_nulls_last_and_keeps_ties_in_frame_order(library: str) -> None:
    sort = tools_of(shop(library))["sort"]
    top = table_rows(sort.run(by="price", descending=True, n=3, columns=["units"]))
    assert top == [["7", "70.0", "8"], ["4", "50.0", "5"], ["3", "40.0", "4"]]
    ties = table_rows(sort.run(by="price", n=8, columns=["units"]))
    assert [row[2] for row in ties] == ["1", "2", "7", "6", "4", "5", "8", "3"]
    assert ties[-1] == ["2", "null", "3"]
    cities = table_rows(sort.run(by="city", descending=True, n=8, columns=["units"]))
    assert [row[1] for row in cities] == ["Paris"] * 4 + ["Nice"] + ["Lyon"] * 2 + ["null"]
    assert [row[2] for row in cities[:4]] == ["1", "3", "6", "8"]


def table_rows(text: str) -> list[list[str]]:
    """The body cells of the Markdown table in ``text`` (no header, no separator)."""
    lines = [line for line in text.splitlines() if line.startswith("| ")][1:]
    return [line[2:-2].split(" | ") for line in lines if not line.startswith("|---")]


@pytest.mark.parametrize("library", LIBRARIES)
def test_sample_is_seeded(library: str) -> None:
    sample = tools_of(shop(library))["sample"]
    first = sample.run(n=3)
    assert first.startswith("3 random rows of 8 (seed 0)")
    assert sample.run(n=3) == first
    assert sample.run(n=3, seed=0) == first
    others = {sample.run(n=3, seed=seed) for seed in range(1, 6)}
    assert others - {first}
    assert sample.run(n=50).startswith("8 random rows of 8")


@pytest.mark.parametrize("library", LIBRARIES)
def test_correlation_pearson_and_spearman(library: str) -> None:
    x = np.arange(1.0, 11.0)
    data = {"x": x, "cube": x**3, "noise": [1.0, None, 3.0, 2.0, 5.0, 4.0, 7.0, 6.0, 9.0, 8.0]}
    frame = pd.DataFrame(data) if library == "pandas" else pl.DataFrame(data)
    correlation = tools_of(frame)["correlation"]
    spearman = correlation.run(a="x", b="cube", method="spearman")
    assert spearman == (
        "Spearman correlation of `x` and `cube`: 1.0000 over 10 pairs of non-null values."
    )
    pearson = correlation.run(a="x", b="cube")
    assert pearson.startswith("Pearson correlation of `x` and `cube`: 0.92")
    assert "over 9 pairs" in correlation.run(a="x", b="noise")


# ---- errors the model can act on --------------------------------------------------------


@pytest.mark.parametrize("library", LIBRARIES)
def test_errors_explain_what_to_change(library: str) -> None:
    tools = tools_of(shop(library))
    assert error_of(tools["describe"], column="prices") == (
        "df has no column 'prices'; did you mean 'price'? (df_columns lists them)"
    )
    assert "did you mean 'city'?" in error_of(tools["describe"], column="City")
    assert "must be one of ==, !=, <" in error_of(
        tools["filter"], conditions=[{"column": "price", "op": "~=", "value": 1}]
    )
    assert "agg must be one of count, sum" in error_of(tools["group_by"], by=["city"], agg="avg")
    assert "top must be between 1 and 100, not 1,000" in error_of(
        tools["value_counts"], column="city", top=1000
    )
    assert "n must be between 1 and 100, not 0" in error_of(tools["sample"], n=0)
    assert "n must be an integer, not a boolean (true)" in error_of(
        tools["sort"], by="price", n=True
    )
    numeric = error_of(tools["filter"], conditions=[{"column": "price", "op": ">", "value": "20"}])
    assert "column 'price' is numeric" in numeric
    assert "compare it with a number, not '20'" in numeric
    text = error_of(tools["filter"], conditions=[{"column": "city", "op": "==", "value": 3}])
    assert "compare it with a string" in text
    assert "op 'in' needs value to be a list" in error_of(
        tools["filter"], conditions=[{"column": "city", "op": "in", "value": "Paris"}]
    )
    assert "takes no value" in error_of(
        tools["filter"], conditions=[{"column": "city", "op": "isnull", "value": "x"}]
    )
    assert "not an ISO date" in error_of(
        tools["filter"], conditions=[{"column": "when", "op": ">", "value": "last tuesday"}]
    )
    assert "column is required with agg='sum'" in error_of(
        tools["group_by"], by=["city"], agg="sum"
    )
    assert "cannot mean column 'city'" in error_of(
        tools["group_by"], by=["promo"], agg="mean", column="city"
    )
    assert "correlation needs two numeric columns" in error_of(
        tools["correlation"], a="price", b="city"
    )
    assert "has no argument(s) 'query'" in error_of(tools["sample"], query="price > 0")
    assert "by is required" in error_of(tools["group_by"], agg="count")
    assert "1 to 3 column names" in error_of(
        tools["group_by"], by=["city", "promo", "units", "price"], agg="count"
    )


def test_comparisons_the_library_refuses_become_tool_errors() -> None:
    frame = pd.DataFrame({"mixed": [1, "two", 3.5, None], "tags": [["a"], ["b"], [], None]})
    tools = tools_of(frame)
    ordered = error_of(tools["filter"], conditions=[{"column": "mixed", "op": "<", "value": 2}])
    assert "cannot apply < to column 'mixed'" in ordered
    assert "could not run on this data" in error_of(tools["value_counts"], column="tags")
    assert tools["filter"].run(conditions=[{"column": "tags", "op": "notnull"}]).startswith("3 of")
    assert "| 0 | ['a'] |" in tools["sample"].run(columns=["tags"])


# ---- odd labels, odd cells, nulls -------------------------------------------------------


def test_multiindex_int_and_duplicate_labels() -> None:
    columns = pd.MultiIndex.from_tuples([("sales", "q1"), ("sales", "q2"), ("cost", "q1")])
    frame = pd.DataFrame([[1, 2, 3], [4, 5, 6], [1, 8, 9]], columns=columns)
    tools = tools_of(frame)
    assert tools["describe"].parameters["properties"]["column"]["enum"] == [
        "sales / q1",
        "sales / q2",
        "cost / q1",
    ]
    assert "| 1 | 2 | 66.7% |" in tools["value_counts"].run(column="sales / q1")
    assert "| 1 | 12 |" in tools["group_by"].run(by=["sales / q1"], agg="sum", column="cost / q1")
    numbered = tools_of(pd.DataFrame({0: [3, 1], 1: ["x", "y"]}))
    assert "| 1 | 1 | y |" in numbered["sort"].run(by="0")
    twice = pd.DataFrame([[1, 2], [3, 4]], columns=["a", "a"])
    enum = tools_of(twice)["describe"].parameters["properties"]["column"]["enum"]
    assert enum == ["a", "a (2)"]
    assert "| max | 4 |" in tools_of(twice)["describe"].run(column="a (2)")


@pytest.mark.parametrize("library", LIBRARIES)
def test_all_null_columns(library: str) -> None:
    frame = pd.DataFrame({"x": [None, None]}, dtype=float)
    if library == "polars":
        frame = pl.DataFrame({"x": [None, None]}, schema={"x": pl.Float64})
    tools = tools_of(frame)
    text = tools["describe"].run(column="x")
    assert "| nulls | 2 |" in text
    assert "| distinct (non-null) | 0 |" in text
    assert "| null | 2 | 100.0% |" in tools["value_counts"].run(column="x")
    assert "undefined (0 pairs" in tools["correlation"].run(a="x", b="x")


def test_time_zones_and_polars_dates() -> None:
    zoned = pd.DataFrame({"t": pd.date_range("2024-03-01", periods=4, freq="D", tz="Europe/Paris")})
    run = tools_of(zoned)["filter"].run
    assert run(conditions=[{"column": "t", "op": ">=", "value": "2024-03-03"}]).startswith("2 of")
    days = pl.DataFrame({"d": [dt.date(2024, 1, d) for d in (1, 2, 3)]})
    text = tools_of(days)["filter"].run(
        conditions=[{"column": "d", "op": "<", "value": "2024-01-03"}]
    )
    assert text.startswith("2 of 3 rows match")


class Grumpy:
    """A cell whose ``str`` raises: shown by its type name instead."""

    def __str__(self) -> str:
        raise RuntimeError("no")


def test_cells_that_cannot_be_printed() -> None:
    frame = pd.DataFrame({"odd": [Grumpy(), {"a": 1}], "n": [1, 2]})
    text = tools_of(frame)["sample"].run()
    assert "<Grumpy>" in text
    assert "{'a': 1}" in text


# ---- bounded output ---------------------------------------------------------------------


def wide_long(library: str) -> Any:
    rng = np.random.default_rng(3)
    rows = 3_000
    data: dict[str, Any] = {f"metric_with_a_long_name_{i}": rng.random(rows) for i in range(60)}
    data["essay"] = ["lorem | ipsum\n" * 40 + str(i) for i in range(rows)]
    data["key"] = [f"k{i % 700}-" + "x" * 90 for i in range(rows)]
    return pd.DataFrame(data) if library == "pandas" else pl.DataFrame(data)


def calls() -> list[tuple[str, dict[str, Any]]]:
    essay = {"column": "essay", "op": "notnull"}
    return [
        ("columns", {}),
        ("describe", {"column": "essay"}),
        ("value_counts", {"column": "key", "top": 100}),
        (
            "group_by",
            {"by": ["key", "essay"], "agg": "mean", "column": "metric_with_a_long_name_1"},
        ),
        ("filter", {"conditions": [essay], "limit": 100}),
        ("sort", {"by": "essay", "n": 100}),
        ("sample", {"n": 100}),
        ("correlation", {"a": "metric_with_a_long_name_0", "b": "metric_with_a_long_name_1"}),
    ]


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("budget", [120, 1_500, 8_000])
def test_every_answer_fits_the_budget(library: str, budget: int) -> None:
    tools = tools_of(wide_long(library), budget_chars=budget)
    for op, arguments in calls():
        text = tools[op].run(**arguments)
        assert len(text) <= budget, op


@pytest.mark.parametrize("library", LIBRARIES)
def test_what_is_left_out_is_said(library: str) -> None:
    tools = tools_of(wide_long(library))
    rows = tools["sample"].run(n=100)
    assert re.search(r"\(\+\d+ more columns not shown, to fit the budget: pass columns\)", rows)
    essays = tools["sample"].run(n=3, columns=["essay"])
    assert "| lorem \\| ipsum⏎lorem \\| ipsum⏎" in essays  # pipes and newlines cannot break it
    assert "…" in essays  # long cells are clipped
    narrow = tools["sample"].run(n=100, columns=["metric_with_a_long_name_3"])
    assert "more columns not shown" not in narrow
    counts = tools_of(wide_long(library), budget_chars=2_000)["value_counts"].run(
        column="key", top=100
    )
    assert re.search(r"\(\+\d+ more rows not shown, to fit the budget\)", counts)
    assert "700 distinct non-null values" in counts
    tiny = tools_of(wide_long(library), budget_chars=300)["columns"].run()
    assert len(tiny) <= 300
    assert "more columns not shown" in tiny


# ---- no built-in tool can run code ------------------------------------------------------

PAYLOADS = [
    "__import__('os').system('touch PWNED')",
    "@x",
    "`a` > 0",
    "df.drop(columns=df.columns)",
    "lambda: 0",
    "city == 'Paris' or __import__('os').system('touch PWNED')",
    "SELECT * FROM df; DROP TABLE df",
    "price.__class__",
]


def hostile(library: str) -> Any:
    data = {
        "city": ["Paris", None, "Lyon", "Paris"],
        "price": [1.5, 2.0, None, -3.0],
        "units": [1, 2, 3, 4],
        "when": [dt.datetime(2024, 1, d) for d in (1, 2, 3, 4)],
        "promo": [True, False, True, None],
    }
    frame = pd.DataFrame(data) if library == "pandas" else pl.DataFrame(data)
    if library == "pandas":
        frame["mixed"] = [1, "two", None, 3.5]
        frame["code"] = pd.Categorical(["a", "b", "a", None])
    return frame


COLUMNS = ["city", "price", "units", "when", "promo", "mixed", "code"]
scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(PAYLOADS),
    st.sampled_from([*COLUMNS, "Paris", "2024-01-02", "2024-01-02T12:00:00+05:00", "a"]),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["column", "op", "value", "x"]), inner, max_size=4),
    ),
    max_leaves=12,
)


def mostly(plausible: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Plausible values three times in four (to reach the deep code), anything otherwise."""
    return st.one_of(plausible, plausible, plausible, anything)


column_like = mostly(st.sampled_from(COLUMNS))
condition = st.fixed_dictionaries(
    {"column": column_like, "op": mostly(st.sampled_from(OPS))},
    optional={"value": mostly(st.one_of(scalars, st.lists(scalars, max_size=3)))},
)
TARGETED: dict[str, st.SearchStrategy[Any]] = {
    "column": column_like,
    "a": column_like,
    "b": column_like,
    "by": column_like,
    "group_by.by": mostly(st.lists(column_like, min_size=1, max_size=4)),
    "columns": mostly(st.lists(column_like, min_size=1, max_size=4)),
    "agg": mostly(st.sampled_from(AGGS)),
    "method": mostly(st.sampled_from(["pearson", "spearman"])),
    "conditions": mostly(st.lists(condition, min_size=1, max_size=3)),
    "descending": mostly(st.booleans()),
    "contains": mostly(st.text(max_size=5)),
    **{key: mostly(st.integers(-2, 120)) for key in ["n", "top", "limit", "seed", "offset"]},
}


WARM_UP: dict[str, dict[str, Any]] = {
    "columns": {},
    "describe": {"column": "when"},
    "value_counts": {"column": "city"},
    "group_by": {"by": ["city"], "agg": "mean", "column": "price"},
    "filter": {"conditions": [{"column": "when", "op": "<", "value": "2024-01-03"}]},
    "sort": {"by": "city"},
    "sample": {},
    "correlation": {"a": "price", "b": "units", "method": "spearman"},
}


@st.composite
def tool_calls(draw: st.DrawFn, tools: list[Tool]) -> tuple[Tool, dict[str, Any]]:
    tool = draw(st.sampled_from(tools))
    op = tool.name.removeprefix("df_")
    arguments = {}
    for key in tool.parameters["properties"]:
        if draw(st.integers(0, 9)) < (9 if key in tool.parameters["required"] else 4):
            strategy = TARGETED.get(f"{op}.{key}", TARGETED.get(key, anything))
            arguments[key] = draw(strategy)
    if draw(st.integers(0, 9)) == 0:
        arguments[draw(st.sampled_from(["__class__", "query", "eval", "self"]))] = draw(anything)
    return tool, arguments


@contextmanager
def recording_code_paths() -> Iterator[list[str]]:
    """Patch every eval/exec/query/SQL entry point to note its use (and still work)."""
    seen: list[str] = []

    def recorder(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def record(*args: Any, **kwargs: Any) -> Any:
            seen.append(name)
            return original(*args, **kwargs)

        return record

    targets: list[tuple[Any, str]] = [(builtins, "eval"), (builtins, "exec"), (pd, "eval")]
    targets += [(pd.DataFrame, "query"), (pd.DataFrame, "eval"), (pl, "sql"), (pl, "SQLContext")]
    targets += [(pl.DataFrame, "sql"), (pl.LazyFrame, "sql")]
    with ExitStack() as stack:
        for owner, attribute in targets:
            original = getattr(owner, attribute, None)
            if original is not None:
                patched = recorder(f"{getattr(owner, '__name__', owner)}.{attribute}", original)
                stack.enter_context(mock.patch.object(owner, attribute, patched))
        yield seen


def test_the_recorder_sees_code_being_run() -> None:
    frame = hostile("pandas")
    with recording_code_paths() as seen:
        frame.query("price > 0")
        eval("1 + 1")
    assert "DataFrame.query" in seen
    assert "builtins.eval" in seen


def same(frame: Any, copy: Any) -> bool:
    if isinstance(frame, pd.DataFrame):
        return bool(frame.equals(copy)) and list(frame.columns) == list(copy.columns)
    return bool(frame.equals(copy, null_equal=True))


@pytest.mark.slow  # hundreds of generated attacks per library
@pytest.mark.parametrize("library", LIBRARIES)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_tool_can_run_code_or_change_the_frame(
    library: str, data: st.DataObject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    frame = hostile(library)
    copy = frame.copy() if library == "pandas" else frame.clone()
    tools = frame_tools("df", frame, budget_chars=1_000)
    for tool in tools:  # first calls import lazily (and dataclasses use exec): not recorded
        tool.run(**WARM_UP[tool.name.removeprefix("df_")])
    tool, arguments = data.draw(tool_calls(tools))
    with recording_code_paths() as seen:
        try:
            result = tool.run(**arguments)
        except ToolError:
            result = ""
    assert isinstance(result, str)
    assert len(result) <= 1_000
    assert seen == []
    assert same(frame, copy)
    assert not (tmp_path / "PWNED").exists()
