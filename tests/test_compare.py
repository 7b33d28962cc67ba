"""Comparisons: one prompt at several efforts or on several models, run at once, side by side.

Through the Python API and the magic (an in-process shell here; ``test_compare_kernel`` shows
the notebook panel), against the local server, which reports the effort it was asked with.
"""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError

import step_magic
from step_magic.core.comparison import Comparison
from step_magic.server import LocalServer

from .conftest import TEST_KEY


def compare(server: LocalServer, **keywords: Any) -> Comparison:
    return step_magic.compare(
        "Why is the sky blue?", base_url=server.base_url, api_key=TEST_KEY, history=False,
        **keywords,
    )  # fmt: skip


def test_each_effort_is_asked_once_at_the_same_time(server: LocalServer) -> None:
    server.config.tokens_per_second = 200
    comparison = compare(server, efforts=["low", "high"])
    assert comparison.labels == ("effort low", "effort high")
    assert [r.effort for r in comparison.results] == ["low", "high"]
    assert all(r.status == "complete" for r in comparison.results)
    sent = sorted(request.body["reasoning_effort"] for request in server.requests)
    assert sent == ["high", "low"]
    starts = [r.first_token for r in comparison.results]
    assert all(s is not None for s in starts)
    # at once, not one after the other: the high-effort call did not wait for the low one
    assert comparison.results[1].elapsed < sum(r.elapsed for r in comparison.results)
    assert len(comparison.results[1].reasoning) > len(comparison.results[0].reasoning)


def test_every_model_and_effort_pair_and_its_summary_row(server: LocalServer) -> None:
    comparison = compare(
        server, models=["step-3.7-flash", "step-3.5-flash-2603"], efforts=["low", "high"]
    )
    assert comparison.labels == (
        "step-3.7-flash · effort low", "step-3.7-flash · effort high",
        "step-3.5-flash-2603 · effort low", "step-3.5-flash-2603 · effort high",
    )  # fmt: skip
    row = comparison.rows()[0]
    assert row["variant"] == "step-3.7-flash · effort low"
    assert row["status"] == "complete"
    assert row["tokens"] > 0
    table = comparison.table()
    assert list(table.index) == list(comparison.labels)


def test_a_pair_the_model_cannot_take_is_refused_before_anything_is_sent(
    server: LocalServer,
) -> None:
    with pytest.raises(step_magic.InputError, match=r"^step-3.5-flash · effort low: "):
        compare(server, models=["step-3.7-flash", "step-3.5-flash"], efforts=["low", "high"])
    assert server.requests == []
    with pytest.raises(step_magic.InputError, match="at most 6"):
        compare(server, models=["step-3.7-flash", "m2", "m3", "m4"], efforts=["low", "high"])


def test_one_failing_variant_leaves_the_others_whole(server: LocalServer) -> None:
    comparison = compare(server, models=["step-3.7-flash", "fault-500"], max_retries=0)
    ok, failed = comparison.results
    assert ok.status == "complete"
    assert ok.answer
    assert failed.status == "failed"
    assert "server had an error" in (failed.error or "")


def test_the_magic_compares_efforts_and_binds_the_comparison(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell("%%step --effort low,high -o both\nWhy is the sky blue?").raise_error()
    comparison = ip.user_ns["_step"]
    assert isinstance(comparison, Comparison)
    assert ip.user_ns["both"] is comparison
    assert [r.effort for r in comparison.results] == ["low", "high"]
    out = capsys.readouterr().out
    assert "== effort low (status complete" in out
    assert "== effort high (status complete" in out


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("%%step --effort low,hihg\nHi", "not 'hihg'; did you mean high?"),
        ("%%step --effort low,high --tools f\nHi", "takes no --tools"),
        ("%%step --model step-3.7-flash,step-3.5-flash --effort low\nHi", "step-3.5-flash"),
    ],
)
def test_a_comparison_that_cannot_run_is_one_usage_error(
    ip: Any, server: LocalServer, cell: str, message: str
) -> None:
    ip.user_ns["f"] = lambda: 1
    error = ip.run_cell(cell).error_in_exec
    assert isinstance(error, UsageError)
    assert message in str(error)
    assert server.requests == []


def test_ctrl_c_stops_every_variant_and_keeps_what_arrived(server: LocalServer) -> None:
    """Ctrl-C (a real SIGINT to this process, with Python's own handler in place) once both
    variants have reached the server: both stop, and what each had received is kept."""
    import os
    import signal
    import threading
    import time

    server.config.tokens_per_second = 100
    server.config.reasoning_tokens = 2_000  # twenty seconds: always stopped midway

    def press_ctrl_c_once_both_stream() -> None:
        deadline = time.monotonic() + 60
        while len(server.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=press_ctrl_c_once_both_stream, daemon=True).start()
        with pytest.raises(step_magic.StepInterrupted) as caught:
            compare(server, efforts=["low", "high"])
    finally:
        signal.signal(signal.SIGINT, previous)
    comparison = caught.value.result
    assert isinstance(comparison, Comparison)
    assert [r.status for r in comparison.results] == ["interrupted", "interrupted"]
    assert all(r.reasoning for r in comparison.results)
