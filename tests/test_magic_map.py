"""``%%step --map`` in a real shell: one call per row, answers in a new column, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from step_magic.server import LocalServer


def run(ip: Any, cell: str) -> Any:
    return ip.run_cell(cell, store_history=False)


def chat_prompts(server: LocalServer) -> list[str]:
    return [
        r.body["messages"][-1]["content"]
        for r in server.requests
        if r.path.endswith("/chat/completions")
    ]


def test_each_row_is_asked_once_and_answers_land_in_a_copy(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    reviews = pd.DataFrame({"text": ["great phone", "broke in a week", "meh"], "stars": [5, 1, 3]})
    ip.user_ns["reviews"] = reviews
    cell = "%%step --map reviews --as label --concurrency 2 -o labelled\n"
    run(ip, cell + "Classify this review ({stars} stars): {text}").raise_error()
    labelled = ip.user_ns["labelled"]
    assert labelled is ip.user_ns["_step_map"]
    assert "label" not in reviews.columns  # a copy unless --inplace
    assert sorted(chat_prompts(server)) == sorted(
        f"Classify this review ({s} stars): {t}"
        for t, s in zip(reviews.text, reviews.stars, strict=True)
    )
    for text, answer in zip(labelled["text"], labelled["label"], strict=True):
        assert text in answer  # the simulator quotes each row's prompt, in row order
    assert "3" in capsys.readouterr().out


def test_a_rerun_after_the_cache_holds_the_rows_sends_nothing(
    ip: Any, server: LocalServer, tmp_path: Path
) -> None:
    ip.user_ns["items"] = ["apple", "kiwi"]
    cell = f"%%step --map items --as kind --cassette {tmp_path / 'map.jsonl'}\nWhat is {{item}}"
    run(ip, cell).raise_error()
    sent = len(server.requests)
    run(ip, cell).raise_error()
    assert len(server.requests) == sent
    assert [row["kind"] is not None for row in ip.user_ns["_step_map"]] == [True, True]


def test_map_dry_run_and_bad_input_send_nothing(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    ip.user_ns["df"] = pd.DataFrame({"city": ["Paris", "Oslo"]})
    run(ip, "%%step --map df --as fact --dry-run\nA fact about {city}").raise_error()
    assert "A fact about Paris" in capsys.readouterr().out
    for cell in (
        "%%step --map nothing_here --as x\nHi {city}",
        "%%step --map df --as x\nNo column referenced",
        "%%step --map df --as x --fields a:complex\nHi {city}",
    ):
        assert type(run(ip, cell).error_in_exec).__name__ == "UsageError"
    assert server.requests == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ("--concurrency 3", "--concurrency only makes sense with --map NAME"),
        ("--as label", "--as only makes sense with --map NAME"),
        ("--limit 3 --inplace", "--limit and --inplace only make sense with --map NAME"),
        ("--rpm 10 --fields a:int", "--rpm and --fields only make sense with --map NAME"),
        ("--reasoning-col why", "--reasoning-col only makes sense with --map NAME"),
    ],
)
def test_a_map_flag_without_map_is_refused_not_ignored(
    ip: Any, server: LocalServer, flags: str, message: str
) -> None:
    """An ordinary call would look as if the flag had worked."""
    error = run(ip, f"%%step {flags}\nHi").error_in_exec
    assert type(error).__name__ == "UsageError"
    assert str(error) == message
    assert server.requests == []


def test_map_honours_the_messages_api_for_every_row_and_its_dry_run(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: ``--map`` used to build its own Chat Completions stream whatever --api said."""
    ip.user_ns["rows"] = ["red", "green"]
    run(
        ip, "%%step --map rows --as out --api messages --dry-run\nName a {item} fruit"
    ).raise_error()
    shown = capsys.readouterr().out
    assert "/v1/messages" in shown
    assert '"max_tokens"' in shown
    assert server.requests == []

    run(ip, "%%step --map rows --as out --api messages\nName a {item} fruit").raise_error()
    assert sorted(r.path for r in server.requests) == ["/v1/messages", "/v1/messages"]
    assert all(row["out"] for row in ip.user_ns["_step_map"])
