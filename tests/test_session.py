"""What a session keeps between calls (``engine.session``): the thread, the reply cache (a
cassette or the history), the call log, and what a result is told of how it was prepared.

Driven through the Python API against the bundled server on 127.0.0.1, as a user would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import step_magic
from step_magic import ReplayError, StepAPIError
from step_magic.server import LocalServer


def area(width: int, height: int) -> int:
    """The area of a rectangle."""
    return width * height


def test_a_recorded_reply_replays_from_its_cassette_without_a_request(
    api_env: LocalServer, tmp_path: Path
) -> None:
    tape = tmp_path / "lesson.jsonl"
    live = step_magic.ask("Why is the sky blue?", cassette=tape, display=False)
    sent = len(api_env.requests)
    again = step_magic.ask("Why is the sky blue?", cassette=tape, replay=True, display=False)
    assert len(api_env.requests) == sent  # nothing sent
    assert (again.answer, again.reasoning, again.replayed) == (live.answer, live.reasoning, True)
    assert live.replayed is False
    assert len(tape.read_text().splitlines()) == 1  # a replay is not recorded again


def test_a_replay_with_nothing_recorded_says_where_it_looked(
    api_env: LocalServer, tmp_path: Path
) -> None:
    tape = tmp_path / "empty.jsonl"
    tape.write_text("")
    with pytest.raises(ReplayError) as caught:
        step_magic.ask("Never asked", cassette=tape, replay=True, display=False)
    assert str(caught.value) == (
        f"no recorded reply for this request in {tape}: run it once without --replay "
        "(or with --refresh) to record it"
    )
    with pytest.raises(ReplayError) as caught:
        step_magic.ask("Never asked either", replay=True, display=False)
    assert "no recorded reply for this request in the history:" in str(caught.value)
    assert api_env.requests == []


def test_a_replay_from_the_history_finds_the_same_request(api_env: LocalServer) -> None:
    live = step_magic.ask("Why do tides happen?", display=False)
    again = step_magic.ask("Why do tides happen?", replay=True, display=False)
    assert (again.answer, again.replayed) == (live.answer, True)
    assert len(api_env.requests) == 1


def test_a_cassette_is_not_read_from_the_history(api_env: LocalServer, tmp_path: Path) -> None:
    """With a cassette named, a miss there is a miss: the history is not asked instead."""
    step_magic.ask("Why do tides happen?", display=False)
    with pytest.raises(ReplayError):
        step_magic.ask(
            "Why do tides happen?", cassette=tmp_path / "t.jsonl", replay=True, display=False
        )


def test_failed_calls_and_calls_that_used_tools_are_not_recorded(
    api_env: LocalServer, tmp_path: Path
) -> None:
    """Replaying a tool call's answer would skip the calls the answer depends on."""
    tape = tmp_path / "t.jsonl"
    with pytest.raises(StepAPIError):
        step_magic.ask("Hi", model="fault-drop-answer", cassette=tape, display=False)
    used = step_magic.ask("How big is 2 by 3?", tools=[area], cassette=tape, display=False)
    assert used.tool_calls
    assert not tape.exists() or tape.read_text() == ""
    kept = step_magic.ask("Hi", cassette=tape, display=False)
    assert kept.status == "complete"
    assert len(tape.read_text().splitlines()) == 1


def test_a_chat_turn_is_kept_with_its_tokens_and_the_result_names_its_thread(
    api_env: LocalServer,
) -> None:
    with step_magic.Chat("lesson", history=False) as chat:
        result = chat.ask("My name is Ada.", display=False)
        (turn,) = chat.turns
    assert result.usage is not None
    assert turn.tokens == result.usage.total > 0
    assert turn.user == {"role": "user", "content": "My name is Ada."}
    assert result.thread == "lesson"
    with step_magic.Chat(history=False) as default:
        assert default.ask("Hi", display=False).thread is None
    assert step_magic.ask("Hi", display=False, history=False).thread is None


def test_a_failed_turn_does_not_join_the_thread_nor_clear_it(api_env: LocalServer) -> None:
    with step_magic.Chat("lesson", history=False) as chat:
        chat.ask("My name is Ada.", display=False)
        chat.reset()
        with pytest.raises(StepAPIError):
            chat.ask("Hi", model="fault-401", display=False)
        chat.ask("What is my name?", display=False)
        sent = api_env.requests[-1].body["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == ["What is my name?"]


def test_the_call_log_names_a_chats_thread_and_where_it_started_again(
    api_env: LocalServer,
) -> None:
    with step_magic.Chat("lesson") as chat:
        chat.ask("My name is Ada.", display=False)
        chat.reset()
        chat.ask("Start again.", display=False)
    step_magic.ask("One-off", display=False)
    rows = {r.prompt: r for r in step_magic.history()}
    assert rows["My name is Ada."].thread == "lesson"
    assert rows["One-off"].thread is None  # a one-off call joins no thread
    with step_magic.Chat("lesson") as resumed:  # resumed from the call after the reset
        assert [t.user["content"] for t in resumed.turns] == ["Start again."]


def test_the_call_log_keeps_the_messages_as_sent_and_when_the_call_started(
    api_env: LocalServer,
) -> None:
    import time

    before = time.time()
    step_magic.ask("Why is the sky blue?", display=False, system="Be brief.")
    (row,) = step_magic.history()
    assert before <= row.started_at <= time.time()
    assert row.prompt == "Why is the sky blue?"


def test_a_named_chat_with_a_history_sends_each_earlier_turn_once(api_env: LocalServer) -> None:
    """The history is read when a named thread is first seen, not again at every call."""
    with step_magic.Chat("lesson") as chat:
        for prompt in ("One.", "Two.", "Three."):
            chat.ask(prompt, display=False)
        sent = api_env.requests[-1].body["messages"]
        assert [m["content"] for m in sent if m["role"] == "user"] == ["One.", "Two.", "Three."]
        assert len(chat.turns) == 3


def test_a_chat_on_a_model_the_catalog_does_not_know_keeps_its_turns(
    api_env: LocalServer,
) -> None:
    """Another server's model: the default context window is assumed, and turns are kept."""
    with step_magic.Chat("other", history=False, model="fault-usage-on-request") as chat:
        chat.ask("My name is Ada.", display=False)
        result = chat.ask("What is my name?", display=False)
    sent = api_env.requests[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert not any("left out" in note for note in result.notes)


def test_a_turn_from_a_server_that_sends_no_usage_is_kept_with_no_tokens(
    api_env: LocalServer,
) -> None:
    from .sse_peer import SSEPeer

    reply = [
        b'data: {"id":"c","choices":[{"delta":{"content":"Hi."},"finish_reason":"stop"}]}\n\n',
        b"data: [DONE]\n\n",
    ]
    with SSEPeer(reply) as peer, step_magic.Chat("bare", history=False) as chat:
        result = chat.ask("Hello", base_url=peer.base_url, display=False)
        (turn,) = chat.turns
    assert (result.status, result.usage) == ("complete", None)
    assert turn.tokens == 0


def test_the_call_log_keeps_a_tool_calls_messages_as_finally_sent(api_env: LocalServer) -> None:
    step_magic.ask("How big is 2 by 3?", tools=[area], display=False)
    (row,) = step_magic.history()
    roles = [m["role"] for m in row.messages]
    assert roles[0] == "user"
    assert "tool" in roles  # the tool turn, not only the prompt as first sent


def test_a_notebook_cell_run_again_replaces_its_own_turn(api_env: LocalServer) -> None:
    """What ``%%step`` passes as the cell (the notebook's cell id): running a cell again
    replaces its turn, in this kernel's thread and in the thread rebuilt from the history."""
    from step_magic.api.inputs import call_settings
    from step_magic.api.prepare import one_off_session, prepare_call
    from step_magic.context.compose import ComposeOptions
    from step_magic.display.frontend import auto_view
    from step_magic.engine.session import CallOptions

    session = one_off_session(history=True)
    options = CallOptions(chat="lesson", memory=True)
    settings = call_settings({}, base_url=None, api_key=None)

    def run_cell(cell: str, prompt: str) -> None:
        call = prepare_call(session, settings, prompt, ComposeOptions(), {}, options, cell=cell)
        view = auto_view(False, settings)
        result, error = session.ask(settings, call.prepared, options, view, cell)
        assert (result.status, error) == ("complete", None)

    run_cell("cell-a", "First")
    run_cell("cell-b", "Second")
    run_cell("cell-a", "First, asked again")
    sent = [m["content"] for m in api_env.requests[-1].body["messages"] if m["role"] == "user"]
    assert sent == ["First, asked again"]  # what came after cell-a's first run is not before it
    thread = session.thread("lesson")
    assert [t.user["content"] for t in thread.turns] == ["First, asked again", "Second"]
    assert [t.cell for t in thread.turns] == ["cell-a", "cell-b"]
    session.history.close()  # type: ignore[union-attr]
    with step_magic.Chat("lesson") as resumed:
        assert [t.user["content"] for t in resumed.turns] == ["First, asked again", "Second"]


REPLY = [
    b'data: {"id":"c","choices":[{"delta":{"content":"Hi, Ada."},"finish_reason":"stop"}]}\n\n',
    b"data: [DONE]\n\n",
]


@pytest.mark.parametrize("model", ["step-3.5-flash", "a-model-of-another-server"])
@pytest.mark.parametrize(("spare", "kept"), [(0, True), (1, False)])
def test_earlier_turns_fill_the_context_to_its_last_token(
    api_env: LocalServer, model: str, spare: int, kept: bool
) -> None:
    """The room for earlier turns is the model's context (256,000 tokens; assumed for a
    model the catalog does not know) less the reply's budget (``max_tokens``) and this
    prompt, by the same rough count: a turn that fits exactly is sent; one token less room
    and it is left out, with a note."""
    import json

    from step_magic.core.request import estimate_tokens

    from .sse_peer import SSEPeer

    with SSEPeer(REPLY) as peer, step_magic.Chat("lesson", history=False, model=model) as chat:
        chat.ask("My name is Ada.", base_url=peer.base_url, display=False)
        earlier = estimate_tokens(chat.turns[0].messages(keep_media=False))
        prompt = estimate_tokens([{"role": "user", "content": "What is my name?"}])
        budget = 256_000 - earlier - prompt + spare
        result = chat.ask(
            "What is my name?", base_url=peer.base_url, max_tokens=budget, display=False
        )
        sent = json.loads(peer.bodies[-1])["messages"]
    assert len(sent) == (3 if kept else 1)
    assert any("left out" in note for note in result.notes) is not kept


def test_the_call_log_keeps_the_prompt_as_typed_and_what_was_attached(
    api_env: LocalServer,
) -> None:
    """Not the last message sent (a tool result, or the prompt with its attachments)."""
    step_magic.ask("How big is 2 by 3?", tools=[area], display=False)
    step_magic.ask("Describe the sales.", attach={"sales": [3, 1, 2]}, display=False)
    tool_call, attached = step_magic.history()[::-1]
    assert tool_call.prompt == "How big is 2 by 3?"
    assert attached.prompt == "Describe the sales."
    assert "[3, 1, 2]" in json.dumps(attached.messages)  # sent, but not the prompt
    assert [label.split()[0] for label in attached.attachments] == ["sales"]


def test_the_call_log_names_the_notebook_a_cell_ran_in(
    ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", "lessons/tides.ipynb")  # as Jupyter Server sets it
    ip.run_cell("%step Why do tides happen").raise_error()
    (row,) = step_magic.history()
    assert row.notebook == "lessons/tides.ipynb"


def test_an_attached_image_counts_against_the_room_for_earlier_turns(
    api_env: LocalServer,
) -> None:
    """This prompt's images take their share of the context (400 tokens each at low
    detail), so an earlier turn that would fit beside the words alone is left out."""
    from PIL import Image

    from step_magic.core.request import estimate_tokens

    from .sse_peer import SSEPeer

    photo = Image.new("RGB", (8, 8), "red")
    with SSEPeer(REPLY) as peer, step_magic.Chat("lesson", history=False) as chat:
        chat.ask("My name is Ada.", base_url=peer.base_url, display=False)
        earlier = estimate_tokens(chat.turns[0].messages(keep_media=False))
        words = estimate_tokens([{"role": "user", "content": "What is in it?"}])
        budget = 256_000 - earlier - words - 50  # room for the words and 50 tokens more
        result = chat.ask(
            "What is in it?",
            attach={"photo": photo},
            base_url=peer.base_url,
            max_tokens=budget,
            display=False,
        )
        sent = json.loads(peer.bodies[-1])["messages"]
    assert len(sent) == 1  # the earlier turn did not fit beside the image
    assert any("left out" in note for note in result.notes)
