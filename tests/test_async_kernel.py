"""The asyncio API in a real kernel: top-level ``await`` in a cell shows the same live panel
and saves the same static form as ``%%step``; several calls awaited together each stream
into their own panel; Ctrl-C cancels the awaited call and keeps what arrived."""

from __future__ import annotations

from typing import Any

from step_magic.server import LocalServer

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_an_awaited_call_streams_into_the_panel_and_saves_the_static_form(
    kernel: Any, server: LocalServer
) -> None:
    server.config.tokens_per_second = 300
    server.config.reasoning_tokens = 300
    run = kernel.execute(
        "import step_magic\n"
        "r = await step_magic.ask_async('Why is the sky blue?')\n"
        "print(r.status, len(r.reasoning) > 500)",
        timeout=60,
    )
    assert run.error() is None
    assert run.stdout().split() == ["complete", "True"]
    assert len(run.panel_text("r")) > 500  # the reasoning streamed into the live panel
    final = run.final_outputs()
    reasoning, answer, footer = final.values()
    assert all(WIDGET_VIEW not in bundle for bundle in final.values())
    assert reasoning["text/html"].startswith('<details class="step-magic-reasoning">')
    assert answer["text/markdown"]
    assert "trace id" in footer["text/plain"]


def test_calls_awaited_together_stream_into_their_own_panels(
    kernel: Any, server: LocalServer
) -> None:
    server.config.tokens_per_second = 200
    server.config.reasoning_tokens = 200
    run = kernel.execute(
        "import asyncio, step_magic\n"
        "a, b = await asyncio.gather(step_magic.ask_async('First?'), "
        "step_magic.ask_async('Second?'))\n"
        "print(a.status, b.status)",
        timeout=60,
    )
    assert run.error() is None
    assert run.stdout().split() == ["complete", "complete"]
    assert len(run.final_outputs()) == 6  # reasoning, answer and footer, twice
    arrived = sorted(request.received_at for request in server.requests)
    assert arrived[1] - arrived[0] < 0.5  # both were sent before either reply ended


def test_ctrl_c_cancels_the_awaited_call_and_keeps_what_arrived(
    kernel: Any, server: LocalServer
) -> None:
    server.config.tokens_per_second = 100
    server.config.reasoning_tokens = 2000  # twenty seconds of reasoning
    run = kernel.execute(
        "import step_magic\nr = await step_magic.ask_async('A long thought')",
        interrupt_on_text="The request",  # the simulator's reasoning begins so
        timeout=25,
    )
    assert run.error() is not None
    *_, footer = run.final_outputs().values()
    assert footer["text/plain"].startswith("⚠ interrupted")
    after = kernel.execute(
        "import step_magic\n[c] = step_magic.history(1)\nprint(c.status, len(c.reasoning) > 0)"
    )
    assert after.stdout().split() == ["interrupted", "True"]
