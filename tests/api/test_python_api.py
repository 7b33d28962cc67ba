"""The Python API without IPython: ``ask``, ``stream``, ``map_rows`` and ``Chat``.

Every test talks to the bundled server over real HTTP through the real openai client (or the
Messages API client), exactly as a script would; nothing here starts a shell.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import step_magic
from step_magic.server import LocalServer

from ..conftest import TEST_KEY


def last_user_content(server: LocalServer) -> Any:
    return server.requests[-1].body["messages"][-1]["content"]


def test_ask_returns_the_reasoning_the_answer_and_the_provenance(api_env: LocalServer) -> None:
    result = step_magic.ask("Why is the sky blue?", effort="high", system="Be brief.")

    assert result.status == "complete"
    assert result.reasoning
    assert result.answer
    assert result.trace_id
    assert result.completion_id
    assert result.usage is not None
    assert result.cost is not None
    body = api_env.requests[-1].body
    assert body["reasoning_effort"] == "high"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Why is the sky blue?"},
    ]


@pytest.mark.slow  # a process of its own
def test_a_plain_python_process_asks_without_ipython(server: LocalServer, tmp_path: Path) -> None:
    script = (
        "import sys, step_magic\n"
        f"r = step_magic.ask('2+2?', base_url={server.base_url!r}, api_key={TEST_KEY!r},"
        " history=False)\n"
        "print(r.status, bool(r.answer), 'IPython' in sys.modules, 'ipywidgets' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert done.stdout.split() == ["complete", "True", "False", "False"]
    assert TEST_KEY not in done.stdout + done.stderr


def test_stream_yields_events_while_the_reply_is_still_arriving(api_env: LocalServer) -> None:
    api_env.config.tokens_per_second = 100
    api_env.config.reasoning_tokens, api_env.config.answer_tokens = 90, 30
    seen: list[tuple[float, str]] = []
    started = time.monotonic()
    for event in step_magic.stream("Think slowly"):
        seen.append((time.monotonic() - started, event.kind))
    kinds = [kind for _, kind in seen]
    assert kinds[0] == "reasoning"
    assert kinds[-1] == "done"
    assert {"reasoning", "answer", "usage"} <= set(kinds)
    first_text, done_at = seen[0][0], seen[-1][0]
    assert done_at - first_text > 0.5  # text came while the server was still sending
    assert isinstance(event, step_magic.Done)
    assert event.result.answer
    assert event.result.status == "complete"


def test_closing_a_stream_closes_the_connection_and_keeps_what_arrived(
    api_env: LocalServer,
) -> None:
    api_env.config.tokens_per_second = 40
    api_env.config.reasoning_tokens = 400  # ten seconds of reasoning
    events = step_magic.stream("A long thought")
    started = time.monotonic()
    first = next(iter(events))
    events.close()
    assert first.kind == "reasoning"
    assert time.monotonic() - started < 5


def test_bad_input_is_refused_before_anything_is_sent(api_env: LocalServer) -> None:
    with pytest.raises(step_magic.InputError, match="takes no reasoning effort"):
        step_magic.ask("hi", model="step-3.5-flash", effort="high")
    with pytest.raises(step_magic.InputError, match="temperature = 5"):
        step_magic.ask("hi", temperature=5)
    with pytest.raises(step_magic.InputError, match=r"api = 'completions' is not valid"):
        step_magic.stream("hi", api="completions")
    with pytest.raises(step_magic.InputError) as mistyped:
        step_magic.stream("hi", efort="high")
    assert str(mistyped.value) == "unknown keyword(s): efort (did you mean effort?)"
    with pytest.raises(step_magic.InputError, match=r"atach \(did you mean attach\?\)$"):
        step_magic.ask("hi", atach="notes")
    with pytest.raises(step_magic.InputError) as nameless:
        step_magic.ask("hi", tools=[1])
    assert str(nameless.value) == (
        "tools: this int has no name to call it by; pass a mapping, e.g. tools={'sales': df}"
    )
    assert api_env.requests == []


def test_a_failed_call_raises_one_line_with_the_partial_reply(api_env: LocalServer) -> None:
    with pytest.raises(step_magic.StepAPIError) as caught:
        step_magic.ask("hi", model="fault-drop-answer")
    partial = caught.value.result
    assert partial.status == "failed"
    assert partial.reasoning
    assert TEST_KEY not in str(caught.value)


def test_the_messages_api_is_one_keyword_away(api_env: LocalServer) -> None:
    result = step_magic.ask("Compare", api="messages", effort="low")
    assert result.answer
    assert api_env.requests[-1].path == "/v1/messages"
    assert api_env.requests[-1].body["output_config"] == {"effort": "low"}


def test_attachments_are_summarised_as_with_does(api_env: LocalServer, tmp_path: Path) -> None:
    import pandas as pd
    from PIL import Image

    chart = tmp_path / "chart.png"
    Image.new("RGB", (32, 16), "red").save(chart)
    frame = pd.DataFrame({"month": ["Jan", "Feb", "Mar"], "revenue": [10, 12, 7]})
    result = step_magic.ask("Why the dip?", attach={"sales": frame, "chart": chart})

    parts = last_user_content(api_env)
    assert [part["type"] for part in parts] == ["text", "text", "image_url", "text"]
    assert parts[0]["text"].startswith("### `sales` (pandas DataFrame)")
    assert parts[2]["image_url"]["url"].startswith("data:image/")
    assert parts[-1] == {"type": "text", "text": "Why the dip?"}
    assert result.attachments[0].startswith("sales (3×2")
    step_magic.ask("And this file?", attach=str(chart))
    assert any(part["type"] == "image_url" for part in last_user_content(api_env))


def test_tools_are_called_and_recorded(api_env: LocalServer) -> None:
    import pandas as pd

    calls: list[str] = []

    def revenue(month: str) -> float:
        """Revenue of one month (YYYY-MM)."""
        calls.append(month)
        return 1234.5

    result = step_magic.ask("Why does revenue dip in March?", tools=[revenue])
    assert calls
    assert [record.name for record in result.tool_calls] == ["revenue"] * len(calls)
    assert result.tool_calls[0].status == "ok"
    assert result.steps == 2
    with pytest.raises(step_magic.InputError, match="this DataFrame has no name to call it by"):
        step_magic.ask("hi", tools=[pd.DataFrame({"a": [1]})])


def test_map_rows_answers_each_row_and_resumes_from_the_cache(
    api_env: LocalServer, tmp_path: Path
) -> None:
    cassette = tmp_path / "rows.jsonl"
    rows = step_magic.map_rows(["apple", "kiwi"], "Colour of {item}?", cassette=cassette)
    assert [row["item"] for row in rows] == ["apple", "kiwi"]
    assert all(row["answer"] for row in rows)
    assert len(api_env.requests) == 2

    again = step_magic.map_rows(["apple", "kiwi"], "Colour of {item}?", cassette=cassette)
    assert again == rows
    assert len(api_env.requests) == 2  # answered from the cassette, nothing paid twice


def test_a_chat_remembers_and_a_named_chat_outlives_its_process(api_env: LocalServer) -> None:
    with step_magic.Chat("lesson", effort="low") as chat:
        chat.ask("My name is Ada.")
        chat.ask("What is my name?")
        sent = api_env.requests[-1].body["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "user"]
        assert sent[0]["content"] == "My name is Ada."
        assert len(chat.turns) == 2

    with step_magic.Chat("lesson") as resumed:  # a new process would start just like this
        assert len(resumed.turns) == 2
        resumed.ask("And again?")
        sent = api_env.requests[-1].body["messages"]
        assert [m["content"] for m in sent if m["role"] == "user"] == [
            "My name is Ada.",
            "What is my name?",
            "And again?",
        ]
        assert all("reasoning" not in m for m in sent)  # reasoning is never sent back

    with step_magic.Chat() as fresh:  # the default thread starts empty
        assert fresh.turns == []


def test_a_failed_stream_raises_after_its_done_event(api_env: LocalServer) -> None:
    seen: list[str] = []
    events = step_magic.stream("hi", model="fault-drop-answer")
    with pytest.raises(step_magic.StepAPIError) as caught:
        seen.extend(event.kind for event in events)
    assert seen[0] == "reasoning"
    assert seen[-1] == "done"
    assert caught.value.result.reasoning


def api_docs_example(section: str, tmp_path: Path) -> str:
    """Run the first Python block under ``## section`` of docs/api.md as it is; its stdout."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    example = docs.split(f"## {section}", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    env = {**os.environ, "STEP_MAGIC_HISTORY": str(tmp_path / "history.sqlite3")}
    done = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow  # a process of its own
def test_the_first_example_in_the_api_docs_runs_as_written(tmp_path: Path) -> None:
    stdout = api_docs_example("A first call", tmp_path)
    status, answer, cost = stdout.splitlines()[0], stdout, stdout.splitlines()[-1]
    assert status.startswith("complete ")
    assert "Simulated answer" in answer
    assert "tokens, ≈ $" in cost


@pytest.mark.slow  # a process of its own
def test_the_api_docs_example_of_a_result_showing_itself_runs_as_written(
    tmp_path: Path,
) -> None:
    stdout = api_docs_example("Showing a result", tmp_path)
    assert stdout.splitlines() == ["['text/html', 'text/markdown', 'text/plain']", "True"]


@pytest.mark.slow  # a process of its own
def test_the_api_docs_example_of_structured_output_runs_as_written(tmp_path: Path) -> None:
    stdout = api_docs_example("Structured output", tmp_path)
    assert stdout.splitlines() == [
        "Review 1",
        "['answer', 'answer_parse_error', 'item', 'label', 'stars']",
    ]


def test_chat_reset_starts_afresh_for_a_resumed_chat_too(api_env: LocalServer) -> None:
    with step_magic.Chat("reset") as chat:
        chat.ask("Before the reset.")
        chat.reset()
        chat.ask("After the reset.")
    with step_magic.Chat("reset") as resumed:
        assert [turn.user["content"] for turn in resumed.turns] == ["After the reset."]
    with pytest.raises(step_magic.InputError, match="unknown keyword"):
        step_magic.Chat("x", efort="high")
    with pytest.raises(step_magic.InputError, match="temperature"):
        step_magic.ask("hi", temperature="0.3")  # type: ignore[arg-type]


def test_two_threads_asking_one_chat_take_turns(api_env: LocalServer) -> None:
    """Each call is sent with every turn that ended before it: none is lost or crossed."""
    from concurrent.futures import ThreadPoolExecutor

    prompts = [f"Question {n}." for n in range(4)]
    with step_magic.Chat("shared", history=False) as chat, ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda prompt: chat.ask(prompt, display=False), prompts))
        order = [t.user["content"] for t in chat.turns]
    assert sorted(order) == prompts
    for n, request in enumerate(api_env.requests):
        users = [m["content"] for m in request.body["messages"] if m["role"] == "user"]
        assert users == order[: n + 1]


def test_history_returns_the_logged_calls_and_a_frame_without_the_key(
    api_env: LocalServer,
) -> None:
    with step_magic.Chat("lesson") as chat:
        chat.ask("Why do tides happen?", display=False)
    step_magic.ask("Why is the sky blue?", display=False)
    with pytest.raises(step_magic.StepAPIError):
        step_magic.ask("Refused", model="fault-401", display=False)
    records = step_magic.history()
    assert [r.prompt for r in records] == [
        "Refused",
        "Why is the sky blue?",
        "Why do tides happen?",
    ]
    assert isinstance(records[1], step_magic.CallRecord)
    assert all((records[1].answer, records[1].reasoning, records[1].trace_id))
    assert (records[0].status, bool(records[0].error)) == ("failed", True)
    assert [r.prompt for r in step_magic.history(search="tides")] == ["Why do tides happen?"]
    assert [r.thread for r in step_magic.history(chat="lesson")] == ["lesson"]
    assert len(step_magic.history(1)) == 1
    frame = step_magic.history(n=None, as_frame=True)
    assert list(frame["prompt"]) == [r.prompt for r in records]
    assert str(frame["started_at"].dtype).startswith("datetime64")
    assert TEST_KEY not in repr(records) + frame.to_json(date_format="iso")


def test_history_imports_pandas_only_for_a_frame(tmp_path: Path) -> None:
    script = (
        "import sys, step_magic\n"
        "step_magic.history(search='anything')\n"
        "print('pandas' in sys.modules, 'openai' in sys.modules)\n"
        "print(len(step_magic.history(as_frame=True).columns) > 20, 'pandas' in sys.modules)\n"
    )
    env = {**os.environ, "STEP_MAGIC_HISTORY": str(tmp_path / "history.sqlite3")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.stdout.split() == ["False", "False", "True", "True"], done.stderr


@pytest.mark.slow  # a process of its own
def test_the_api_docs_example_of_the_call_log_runs_as_written(tmp_path: Path) -> None:
    stdout = api_docs_example("The call log", tmp_path)
    assert stdout.splitlines() == [
        "Why do tides happen? complete True",
        "['Why do tides happen?', 'Why is the sky blue?']",
    ]


def test_a_tool_may_ask_the_chat_it_serves(api_env: LocalServer) -> None:
    """The chat's asks take turns, but a tool of the running ask may ask the same chat."""
    import threading

    with step_magic.Chat("nested", history=False) as chat:

        def second_opinion(question: str) -> str:
            """Ask for a second opinion."""
            return chat.ask(f"Briefly: {question}", display=False).answer

        results: list[Any] = []
        worker = threading.Thread(
            target=lambda: results.append(
                chat.ask("What is 2 + 2?", tools=[second_opinion], display=False)
            ),
            daemon=True,
        )
        worker.start()
        worker.join(60)
        assert not worker.is_alive()  # no deadlock
    assert results[0].tool_calls
    assert results[0].tool_calls[0].status == "ok"
