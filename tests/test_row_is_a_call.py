"""A ``--map`` row is a call: the same server shape gives a row what it gives ``ask``.

Each case below is one way a reply can arrive or end (think tags, a ``</think>`` that was never
opened, cut at the token limit, filtered, a dropped connection, the call's deadline). It is
sent once through ``step_magic.ask`` and once as the single row of ``step_magic.map_rows``,
and the row must hold what the call returned: the same reasoning/answer split, the same
ending, the same error line, and the same history row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

import step_magic
from step_magic.core.errors import StepMagicError
from step_magic.core.result import KEPT, StepResult
from step_magic.memory.history import History
from step_magic.server import LocalServer

from .sse_peer import SSEPeer


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
    payload = {
        "id": "chatcmpl-peer",
        "object": "chat.completion.chunk",
        "model": "step-3.7-flash",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    return f"data: {json.dumps(payload)}\n\n".encode()


def content_stream(*pieces: str, end: bool = True) -> list[bytes]:
    """An OpenAI-style stream whose answer text arrives in ``pieces``; ``end=False`` drops
    the connection after the last piece (no finish reason, no ``[DONE]``)."""
    body = [chunk({"role": "assistant", "content": piece}) for piece in pieces]
    if end:
        body += [chunk({}, "stop"), b"data: [DONE]\n\n"]
    return body


@dataclass(frozen=True)
class Case:
    name: str
    peer: list[bytes] | None = None  # raw bytes from a peer; None: the bundled server
    fault: str | None = None  # the bundled server's fault
    deadline: float | None = None


CASES = [
    Case("think-tags", peer=content_stream("<think>Weigh it", " up.</think>", "The answer.")),
    Case("closing-tag-only", peer=content_stream("Weigh it up.", "</think>The answer.")),
    Case("dropped", peer=content_stream("The answ", end=False)),
    Case("truncated", fault="length"),
    Case("filtered", fault="content-filter"),
    Case("deadline", fault="stall-mid", deadline=1),
]


@contextmanager
def base_url(case: Case, server: LocalServer) -> Iterator[str]:
    if case.peer is None:
        server.config.fault = case.fault
        server.config.stall_seconds = 30
        yield server.base_url
        return
    with SSEPeer(case.peer) as peer:
        yield peer.base_url


def through_ask(prompt: str, keywords: dict[str, Any]) -> tuple[StepResult, str | None]:
    try:
        return step_magic.ask(prompt, display=False, **keywords), None
    except StepMagicError as err:
        result: StepResult = err.result
        return result, str(err)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_row_holds_what_the_same_call_returns(case: Case, api_env: LocalServer) -> None:
    keywords: dict[str, Any] = {"model": "step-3.7-flash", "deadline": case.deadline}
    with base_url(case, api_env) as url:  # the row first: the call's reply is no cache for it
        started = time.monotonic()
        rows = step_magic.map_rows(
            ["Why?"], "{item}", reasoning_column="why", display=False, base_url=url, **keywords
        )
        row_seconds = time.monotonic() - started
        result, raised = through_ask("Why?", {**keywords, "base_url": url})

    (row,) = rows
    kept = result.status in KEPT
    assert row["answer"] == (result.answer if kept else None)
    assert row["why"] == (result.reasoning if kept else None)
    assert row.get("answer_error") == (raised or result.notice)
    if case.deadline is not None:
        assert row_seconds < case.deadline + 3  # the stall is 30 s: the row kept the deadline

    history = History()
    as_call, as_row = history.recent(2)  # newest first
    history.close()
    for field in ("status", "error", "answer", "reasoning", "finish_reason", "model"):
        assert getattr(as_row, field) == getattr(as_call, field), field
    assert as_row.status == result.status
    assert as_row.elapsed is not None
    assert as_row.first_token is not None


def test_the_cases_cover_every_ending_a_row_can_meet(api_env: LocalServer) -> None:
    """The parametrised cases are not all the same ending in disguise."""
    endings = set()
    for case in CASES:
        keywords = {"model": "step-3.7-flash", "deadline": case.deadline}
        with base_url(case, api_env) as url:
            endings.add(through_ask("Why?", {**keywords, "base_url": url})[0].status)
    assert {"complete", "truncated", "filtered", "failed"} <= endings


def test_a_closing_tag_alone_moves_the_text_before_it_into_the_reasoning(
    api_env: LocalServer,
) -> None:
    with SSEPeer(content_stream("Weigh it up.", "</think>The answer.")) as peer:
        (row,) = step_magic.map_rows(
            ["Why?"], "{item}", reasoning_column="why", display=False, base_url=peer.base_url
        )
    assert (row["why"], row["answer"]) == ("Weigh it up.", "The answer.")


def test_a_row_cut_at_the_token_limit_is_answered_from_the_cache_and_stays_flagged(
    api_env: LocalServer, tmp_path: Any
) -> None:
    api_env.config.fault = "length"
    for cassette in (None, tmp_path / "rows.jsonl"):  # the history, then a cassette
        runs = [
            step_magic.map_rows(["Why?", "How?"], "{item}", display=False, cassette=cassette)
            for _ in range(2)
        ]
        for rows in runs:
            assert all(row["answer"] for row in rows)
            assert all(row["answer_error"].startswith("cut off") for row in rows)
    assert len([r for r in api_env.requests if r.path.endswith("/completions")]) == 4


def test_a_failed_row_s_tokens_are_counted(api_env: LocalServer) -> None:
    api_env.config.fault, api_env.config.stall_seconds = "stall-mid", 30
    seen: list[Any] = []
    rows = step_magic.map_rows(["Why?"], "{item}", deadline=1, display=False, progress=seen.append)
    assert rows[0]["answer"] is None
    assert seen[-1].failed == 1
    assert seen[-1].completion_tokens > 0  # the reasoning that streamed was billed
