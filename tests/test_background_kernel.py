"""``%%step --background`` in a real kernel: the cell returns at once, other cells run while
the reply streams into the first cell's panel, and the panel ends as the static form.

The local server is paced so a reply lasts seconds; every wait is for accumulated state (a
call's ``done``, text received so far), never for one message.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from step_magic.server import LocalServer

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def slow(server: LocalServer) -> LocalServer:
    """Replies that take about five seconds: long enough to run cells beside them."""
    server.config.tokens_per_second = 150
    server.config.reasoning_tokens = 700
    return server


def warm(kernel: Any) -> None:
    """One finished call first, so the timed cell does not pay for the first imports."""
    run = kernel.execute("%%step --background -o w\nWarm up\n", timeout=60)
    assert run.error() is None
    assert "w: complete" in kernel.execute("%step_wait w", timeout=60).stdout()


def test_the_cell_returns_at_once_and_the_next_cell_runs_while_it_streams(
    kernel: Any, slow: LocalServer
) -> None:
    warm(kernel)
    timed = (
        "import time as _t\n_t0 = _t.perf_counter()\n"
        "get_ipython().run_cell_magic('step', '--background -o {name}', 'Why is the sky blue?')\n"
        "print(f'took {{_t.perf_counter() - _t0:.3f}}', {name}.done)"
    )
    other = kernel.execute(timed.format(name="r0"))  # the best of two: load spikes happen
    started = kernel.execute(timed.format(name="r"))
    timings = [re.search(r"took ([\d.]+) (\w+)", run.stdout()) for run in (other, started)]
    assert min(float(found.group(1)) for found in timings) < 0.5
    assert timings[1].group(2) == "False"  # it returned while the call streamed
    kernel.execute("r0.cancel()")
    meanwhile = kernel.execute(
        "_a = len(r.reasoning); _t.sleep(1.0); _b = len(r.reasoning)\n"
        "print(r.done, _b > _a, type(_step).__name__)"
    )
    assert meanwhile.stdout().split() == ["False", "True", "Pending"]
    waited = kernel.execute(
        "res = r.wait(60)\nprint(res.status, res.answer == r.answer, len(res.reasoning) > 1000)",
        timeout=90,
    )
    assert waited.stdout().split() == ["complete", "True", "True"]
    shown = kernel.sent_to(started)
    final = {**shown.final_outputs(), **waited.final_outputs()}
    assert len(final) == 3  # the reasoning, the answer, the footer: each under its display id
    assert all(WIDGET_VIEW not in bundle for bundle in final.values())
    reasoning, answer, footer = final.values()
    assert reasoning["text/html"].startswith('<details class="step-magic-reasoning">')
    assert answer["text/markdown"]
    assert re.search(r"trace id <code[^>]*>[0-9a-f]{32}</code>", footer["text/html"])
    # the panel streamed into the first cell, not into the cell that ran meanwhile
    assert not meanwhile.of_type("display_data", "update_display_data")
    assert "Thinking" not in meanwhile.stdout()


@pytest.mark.parametrize("how", ["button", "magic", "method"])
def test_a_background_call_is_stopped_by_its_button_by_the_magic_or_by_cancel(
    kernel: Any, slow: LocalServer, how: str
) -> None:
    started = kernel.execute("%%step --background -o r\nWhy is the sky blue?")
    status = started.comm_of("StatusPart")
    opened = next(m for m in started.of_type("comm_open") if m["content"]["comm_id"] == status)
    assert opened["content"]["data"]["state"]["stoppable"] is True  # it shows a Stop button
    kernel.execute("import time as _t\nwhile len(r.reasoning) < 50: _t.sleep(0.05)", timeout=60)
    if how == "button":
        kernel.click_stop(status)
    elif how == "magic":
        assert "r: stopping" in kernel.execute("%step_cancel r").stdout()
    else:
        kernel.execute("r.cancel()")
    waited = kernel.execute("%step_wait r", timeout=60)
    assert waited.stdout().startswith("r: interrupted")
    result = kernel.execute("print(len(r.result.reasoning) >= 50, r.result.trace_id is not None)")
    assert result.stdout().split() == ["True", "True"]
    footer = list(kernel.sent_to(started).final_outputs().values())[-1]
    assert footer["text/plain"].startswith("⚠ interrupted")


def test_flags_a_background_call_cannot_take_are_refused_in_one_line(kernel: Any) -> None:
    run = kernel.execute("def f(x: int) -> int: return x\n%step --background --tools f Hi")
    assert "UsageError: --background takes no --tools" in run.stdout()
    assert not run.of_type("comm_open")


def test_a_notebook_run_headless_saves_the_static_form(
    slow: LocalServer, tmp_path: Any, run_notebook: Any, api_env: LocalServer
) -> None:
    notebook = run_notebook(
        [
            "%load_ext step_magic",
            "%%step --background -o r\nWhy is the sky blue?",
            "print('still running:', not r.done)",
            "%step_wait all",
        ],
        tmp_path / "background.ipynb",
    )
    for cell in notebook.cells:
        for output in cell.outputs:
            assert WIDGET_VIEW not in output.get("data", {})
    reasoning, answer, footer = notebook.cells[1].outputs
    assert reasoning.data["text/html"].startswith('<details class="step-magic-reasoning">')
    assert answer.data["text/markdown"]
    assert "trace id" in footer.data["text/plain"]
    assert notebook.cells[2].outputs[0].text == "still running: True\n"
    assert notebook.cells[3].outputs[0].text.startswith("r: complete")


def panel_texts(messages: list[dict[str, Any]]) -> dict[str, str]:
    """comm id -> the reasoning its live panel was sent, joined in the order received."""
    texts: dict[str, str] = {}
    for message in messages:
        data = message["content"].get("data", {})
        if message["msg_type"] == "comm_msg" and data.get("method") == "custom":
            texts.setdefault(message["content"]["comm_id"], "")
            texts[message["content"]["comm_id"]] += data["content"].get("r", "")
    return texts


def test_two_background_calls_from_one_cell_stream_into_their_own_panels(
    kernel: Any, slow: LocalServer
) -> None:
    started = kernel.execute(
        "import step_magic\n"
        "a = step_magic.ask('First question', background=True)\n"
        "b = step_magic.ask('Second question', background=True)\n"
        "print('in the cell itself')"
    )
    waited = kernel.execute("print(a.wait(60).status, b.wait(60).status)", timeout=120)
    assert waited.stdout() == "complete complete\n"
    everything = kernel.sent_to(started)
    assert everything.stdout() == "in the cell itself\n"  # nothing of the panels as output
    panels = set(everything.comm_models())  # whichever cell's request the text came under
    every = [*everything.messages, *kernel.elsewhere, *waited.messages]
    seen = {m["header"]["msg_id"]: m for m in every}  # sent_to's share of elsewhere, once
    texts = panel_texts(sorted(seen.values(), key=lambda m: m["received"]))
    streamed = {text for comm, text in texts.items() if comm in panels and text}
    reasoning = kernel.execute("print(repr((a.reasoning, b.reasoning)))").stdout()
    assert streamed == set(eval(reasoning))  # each panel got its own call's text, whole
    answers = [b["text/markdown"] for b in everything.final_outputs().values()
               if "text/markdown" in b]  # fmt: skip
    assert sorted(a.split("You wrote: ")[-1][:18] for a in answers) == [
        '"First question"',
        '"Second question"',
    ]


def test_a_call_that_ended_before_the_last_cell_is_still_saved_static(
    slow: LocalServer, tmp_path: Any, run_notebook: Any, api_env: LocalServer
) -> None:
    slow.config.reasoning_tokens = 100
    notebook = run_notebook(
        [
            "%load_ext step_magic",
            "%%step --background -o r\nWhy is the sky blue?",
            "import time\nwhile not r.done: time.sleep(0.1)",
            "%step_wait all",
        ],
        tmp_path / "ended.ipynb",
    )
    assert all(
        WIDGET_VIEW not in output.get("data", {})
        for cell in notebook.cells
        for output in cell.outputs
    )
    assert notebook.cells[1].outputs[0].data["text/html"].startswith("<details")
    assert notebook.cells[3].outputs[0].text.startswith("r: complete")


def test_thirty_background_cells_then_wait_all_run_headless(
    server: LocalServer, tmp_path: Any, run_notebook: Any, api_env: LocalServer
) -> None:
    """nbclient and papermill run notebooks of many background calls (one such run used to
    abort at cell 22); every call ends complete and is saved in its static form."""
    server.config.tokens_per_second = 400
    cells = ["%load_ext step_magic"]
    cells += [f"%%step --background -o r{i}\nQuestion {i}?" for i in range(30)]
    cells += ["%step_wait all"]
    notebook = run_notebook(cells, tmp_path / "thirty.ipynb")
    waited = "".join(output.get("text", "") for output in notebook.cells[-1].outputs)
    assert waited.count(": complete") == 30, waited
    for cell in notebook.cells[1:31]:
        assert all(WIDGET_VIEW not in output.get("data", {}) for output in cell.outputs)
        assert any("text/markdown" in output.get("data", {}) for output in cell.outputs)
