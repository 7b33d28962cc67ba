"""Frame summaries on real pandas and polars objects: content, budget, determinism, scale."""

# the labels and headers under test use a real multiplication sign

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from step_magic.frames.summary import SAMPLE_ROWS, is_frame, summarize_frame


def sales(rows: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "price": rng.gamma(2.0, 10.0, rows).round(2),
            "units": rng.integers(1, 20, rows),
            "city": rng.choice(["Paris", "Lyon", "Nice"], rows),
            "when": pd.date_range("2024-01-01", periods=rows, freq="h"),
            "promo": rng.random(rows) > 0.7,
            "segment": pd.Categorical(rng.choice(["retail", "online"], rows)),
            "comment": [
                "spilled | coffee\non the receipt " * 4 if i % 9 == 0 else None for i in range(rows)
            ],
            "mixed": [1, "two", 3.5, None] * (rows // 4),
            "empty": [None] * rows,
        }
    )


def test_is_frame_detects_both_libraries_without_false_positives() -> None:
    frame = sales(8)
    assert is_frame(frame)
    assert is_frame(frame["price"])
    assert is_frame(pl.DataFrame({"a": [1]}))
    assert is_frame(pl.Series("a", [1]))
    assert not is_frame(frame.to_numpy())
    assert not is_frame({"a": [1]})
    assert not is_frame(pd.Index([1, 2]))


def test_pandas_summary_has_shape_schema_stats_categories_and_rows() -> None:
    summary = summarize_frame(sales(), name="df", budget_chars=10_000)
    text = summary.text
    assert summary.label == "df (500×9, summarised)"
    assert summary.shape == (500, 9)
    assert text.startswith("pandas DataFrame, 500 rows × 9 columns.")
    assert "| price | float64 | 0 | count 500 · mean " in text
    assert "· 25% " in text
    assert "· max " in text
    assert "| city | str | 0 | 3 distinct: " in text
    assert "| segment | category | 0 | 2 distinct: " in text
    assert "| when | datetime64[us] | 0 | min 2024-01-01 00:00:00 · max " in text
    assert "| mixed | object (int, str, float) | 125 |" in text
    assert "| empty | object | 500 | all null |" in text
    assert "Rows (first rows, then random rows, seed 0):" in text
    # Long cells are cut with a marker; pipes and newlines cannot break the table.
    assert "spilled \\| coffee⏎on the receipt" in text
    assert "…" in text
    assert len(text) <= 10_000


def test_polars_summary_goes_through_the_same_layout() -> None:
    frame = pl.DataFrame(
        {
            "price": [1.5, 2.5, None, 4.0],
            "city": ["Paris", "Lyon", "Paris", None],
            "when": [dt.date(2024, 1, d) for d in (1, 2, 3, 4)],
            "tags": [["a"], ["b", "c"], [], ["a"]],
        }
    )
    summary = summarize_frame(frame, name="pf", budget_chars=5_000)
    assert summary.label == "pf (4×4)"
    assert summary.text.startswith("polars DataFrame, 4 rows × 4 columns.")
    assert "| price | Float64 | 1 | count 3 · mean 2.66667 ·" in summary.text
    assert "| city | String | 1 | 2 distinct: Paris 66.7%, Lyon 33.3% |" in summary.text
    assert "| when | Date | 0 | min 2024-01-01 · max 2024-01-04 |" in summary.text
    assert "| # | price | city | when | tags |" in summary.text
    assert "| 2 | null | Paris | 2024-01-03 | [] |" in summary.text


def test_series_of_both_libraries() -> None:
    pandas_series = pd.Series([3.0, None, 5.0])
    summary = summarize_frame(pandas_series, name="s", budget_chars=2_000)
    assert summary.label == "s (3 values)"
    assert summary.shape == (3,)
    assert summary.text.startswith("pandas Series of 3 values.")
    assert "| s | float64 | 1 | count 2 · mean 4 ·" in summary.text
    polars_series = pl.Series("ratio", [0.25, 0.5])
    assert (
        "| ratio | Float64 | 0 |"
        in summarize_frame(polars_series, name="r", budget_chars=2_000).text
    )


def test_empty_frames_and_frames_without_columns() -> None:
    no_rows = summarize_frame(
        pd.DataFrame({"a": pd.Series([], dtype="float64")}), name="e", budget_chars=500
    )
    assert "| a | float64 | 0 | — |" in no_rows.text
    assert no_rows.text.endswith("(no rows)")
    nothing = summarize_frame(pl.DataFrame(), name="e", budget_chars=500)
    assert nothing.text == "polars DataFrame, 0 rows × 0 columns.\n\n(no columns)"


def test_multiindex_columns_are_flattened() -> None:
    columns = pd.MultiIndex.from_product([["sales", "cost"], ["q1", "q2"]])
    frame = pd.DataFrame(np.arange(8).reshape(2, 4), columns=columns)
    text = summarize_frame(frame, name="m", budget_chars=3_000).text
    assert "| sales / q1 | int64 |" in text
    assert "|  | sales / q1 | sales / q2 | cost / q1 | cost / q2 |" in text


def test_wide_frames_drop_columns_and_say_how_many() -> None:
    frame = pd.DataFrame(np.ones((20, 300)), columns=[f"feature_{i}" for i in range(300)])
    summary = summarize_frame(frame, name="wide", budget_chars=6_000)
    assert len(summary.text) <= 6_000
    shown = summary.text.count("| float64 |")
    assert 5 <= shown < 300
    assert f"(+{300 - shown} more columns not shown, to fit the budget)" in summary.text
    assert summary.label == "wide (20×300, summarised)"


def tied(rows: int) -> pd.DataFrame:
    """Sales with a column whose values all have the same count: ties in the top values."""
    return sales(rows).assign(tier=["gold", "silver", "bronze", "iron"] * (rows // 4))


@pytest.mark.slow  # a process of its own
def test_same_frame_same_text_even_in_another_process() -> None:
    first = summarize_frame(tied(3_000), name="df", budget_chars=8_000).text
    assert (
        "| tier | str | 0 | 4 distinct: bronze 25.0%, gold 25.0%, iron 25.0%, silver 25.0% |"
        in first
    )
    assert summarize_frame(tied(3_000), name="df", budget_chars=8_000).text == first
    # String hashing is randomised per process: the order of ties must not depend on it.
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "from test_frames import tied; from step_magic.frames.summary import summarize_frame; "
        "print(summarize_frame(tied(3_000), name='df', budget_chars=8_000).text, end='')"
    )
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        other = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
        )
        assert other.stdout == first


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=4_000))
def test_the_budget_is_never_exceeded(budget: int) -> None:
    assert len(summarize_frame(sales(60), name="df", budget_chars=budget).text) <= budget


@pytest.mark.slow  # ten million rows
def test_big_frame_is_sampled_and_says_so() -> None:
    rows = 10_000_000
    rng = np.random.default_rng(0)
    base = rng.standard_normal(rows)
    columns: dict[str, object] = {f"x{i}": base + i for i in range(17)}
    codes = rng.integers(0, 3, rows)
    columns["code"] = pd.Categorical.from_codes(codes, ["a", "b", "c"])
    columns["label"] = np.array(["yes", "no", None], dtype=object)[codes]
    columns["day"] = pd.date_range("2020-01-01", periods=rows, freq="min")
    summary = summarize_frame(pd.DataFrame(columns), name="big", budget_chars=24_000)
    assert len(summary.text) <= 24_000
    assert summary.label == "big (10,000,000×20, summarised)"
    assert f"from a {SAMPLE_ROWS:,}-row random sample (seed 0)" in summary.text
    assert "| x0 | float64 | 0 | count 10,000,000 · mean " in summary.text
    assert summary.text.count("| float64 |") == 17
    # Null counts of Python-object columns are estimated from the sample, and marked.
    assert "| label | str | ≈3," in summary.text


@pytest.mark.parametrize("library", ["pandas", "polars"])
def test_all_null_and_unhashable_columns(library: str) -> None:
    data = {"nothing": [None, None], "lists": [[1], [2, 3]]}
    frame = pd.DataFrame(data) if library == "pandas" else pl.DataFrame(data)
    text = summarize_frame(frame, name="f", budget_chars=2_000).text
    assert "all null" in text
    assert "| lists |" in text


def test_over_budget_whole_sample_rows_go_from_the_end_and_the_text_says_how_many() -> None:
    """Two wide columns: all ten sample rows do not fit, so the last rows go, each whole,
    and a line counts them; never half a row, and the columns stay."""
    frame = pd.DataFrame({"note": ["lorem ipsum dolor sit amet " * 5] * 30, "n": range(30)})
    text = summarize_frame(frame, name="df", budget_chars=600).text

    assert text.splitlines()[-5:] == [
        "|---|---|---|",
        "| 0 | lorem ipsum dolor sit amet lorem ipsum … | 0 |",
        "| 1 | lorem ipsum dolor sit amet lorem ipsum … | 1 |",
        "| 2 | lorem ipsum dolor sit amet lorem ipsum … | 2 |",
        "(7 sample rows left out to fit the budget)",
    ]
    for budget in range(300, 1_000, 7):
        text = summarize_frame(frame, name="df", budget_chars=budget).text
        below = text.partition("Rows (first rows, then random rows")[2].splitlines()[3:]
        rows = [line for line in below if line.startswith("|")]  # under the header
        assert all(row.endswith(" |") for row in rows), budget
        left_out = re.search(r"\((\d+) sample rows? left out to fit the budget\)", text)
        assert len(rows) + (int(left_out[1]) if left_out else 0) == 10, budget
        assert len(text) <= budget
