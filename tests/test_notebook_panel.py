"""The live panel in a real ipykernel, as a Jupyter frontend receives it over iopub."""

from __future__ import annotations

import json
import time
from typing import Any

from step_magic.server import LocalServer

from .conftest import TEST_KEY

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_reasoning_streams_into_a_collapsed_panel_then_becomes_static_html(
    kernel: Any, server: LocalServer
) -> None:
    run = kernel.execute("%%step --effort high\nExplain <b>tides</b> & moons.")
    assert run.error() is None
    models = sorted(run.comm_models().values())
    assert models == ["AnswerPart", "LayoutModel", "LayoutModel", "LayoutModel", "ReasoningPart",
                      "StatusPart"]  # fmt: skip
    panel = next(m for m in run.of_type("comm_open") if "expanded" in m["content"]["data"]["state"])
    assert panel["content"]["data"]["state"]["expanded"] is False  # collapsed
    reasoning = run.panel_text("r")
    assert "effort high" in reasoning
    assert "&lt;b&gt;tides&lt;/b&gt; &amp; moons" in run.panel_text("b") + run.panel_text("t")

    live = [m["content"]["data"] for m in run.of_type("display_data")]
    shown_as_text = {bundle["text/plain"] for bundle in live if WIDGET_VIEW in bundle}
    assert shown_as_text == {  # where widgets are not rendered (a notebook saved mid-reply)
        f"step-magic {part} (a live widget; the finished reply replaces it)"
        for part in ("reasoning", "answer", "status")
    }
    final = list(run.final_outputs().values())
    assert all(WIDGET_VIEW not in bundle for bundle in final)
    details, answer, footer = final
    assert details["text/html"].startswith('<details class="step-magic-reasoning">')
    assert "&lt;b&gt;tides&lt;/b&gt; &amp; moons" in details["text/html"]
    assert "<b>tides</b>" not in details["text/html"]
    assert "&lt;b&gt;tides&lt;/b&gt; &amp; moons" in answer["text/html"]
    assert "<h2>Simulated answer</h2>" in answer["text/html"]
    assert "&lt;b>tides&lt;/b> &amp; moons" in answer["text/markdown"]
    assert "trace id" in footer["text/plain"]
    assert len(footer["text/plain"].split("trace id ")[1].split()[0]) == 32
    closed = {m["content"]["comm_id"] for m in run.of_type("comm_close")}
    assert len(closed) >= 4  # the answer and the status, with their layouts
    assert TEST_KEY not in json.dumps(run.messages, default=str)


def test_updates_are_coalesced_and_bytes_grow_linearly(kernel: Any, server: LocalServer) -> None:
    sizes = []
    for reasoning_tokens in (5_000, 20_000):
        server.config.reasoning_tokens = reasoning_tokens
        server.config.answer_tokens = reasoning_tokens // 5
        run = kernel.execute("%%step\nShort")
        assert run.error() is None
        text = text_size(kernel)
        assert run.wire_bytes < 4 * text  # live stream + final static form + small overhead
        sizes.append((text, run.wire_bytes, len(run.messages)))
    (small_text, small_bytes, _), (large_text, large_bytes, large_messages) = sizes
    assert large_bytes / small_bytes < 1.3 * large_text / small_text  # linear, not quadratic
    assert large_messages < 1_500  # 24,000 chunks; a few messages per 50 ms flush


def text_size(kernel: Any) -> int:
    run = kernel.execute("print(len(_step.reasoning) + len(_step.answer))")
    return int(run.stdout())


def test_show_reasoning_opens_the_panel_and_the_saved_block(kernel: Any) -> None:
    run = kernel.execute("%%step --show-reasoning\nHi")
    panel = next(m for m in run.of_type("comm_open") if "expanded" in m["content"]["data"]["state"])
    assert panel["content"]["data"]["state"]["expanded"] is True
    details = next(iter(run.final_outputs().values()))
    assert details["text/html"].startswith('<details class="step-magic-reasoning" open>')


def test_a_click_made_while_streaming_keeps_the_saved_block_open(
    kernel: Any, server: LocalServer
) -> None:
    server.config.tokens_per_second = 400
    server.config.reasoning_tokens = 200
    msg_id = kernel.client.execute("%%step\nHi")
    panel_id = None
    while panel_id is None:
        message = kernel.client.get_iopub_msg(timeout=10)
        if (
            message["parent_header"].get("msg_id") == msg_id
            and message["msg_type"] == "comm_open"
            and "expanded" in message["content"]["data"]["state"]
        ):
            panel_id = message["content"]["comm_id"]
    click = kernel.client.session.msg(  # what the browser sends when the summary is clicked
        "comm_msg",
        {
            "comm_id": panel_id,
            "data": {"method": "custom", "content": {"expanded": True}},
        },
    )
    kernel.client.shell_channel.send(click)
    bundles: list[dict[str, Any]] = []
    while not any(
        b.get("text/html", "").startswith('<details class="step-magic-reasoning" open')
        for b in bundles
    ):
        message = kernel.client.get_iopub_msg(timeout=20)
        if message["msg_type"] == "update_display_data":
            bundles.append(message["content"]["data"])
    assert bundles[-1]["text/html"].count("<details") == 1


def test_no_reasoning_shows_no_panel(kernel: Any) -> None:
    run = kernel.execute("%%step --no-reasoning\nHi")
    assert "ReasoningPart" not in run.comm_models().values()
    assert [set(b) for b in run.final_outputs().values()] == [
        {"text/html", "text/markdown"},
        {"text/html", "text/plain"},
    ]


def test_a_dropped_connection_keeps_the_partial_reply_and_fails_the_cell(
    kernel: Any, server: LocalServer
) -> None:
    server.config.fault = "drop-answer"
    run = kernel.execute("%%step\nHi")
    error = run.error()
    assert error is not None
    assert error["ename"] == "StepAPIError"
    assert len(error["traceback"]) == 1
    assert "trace id" in error["evalue"]
    details, answer, footer = run.final_outputs().values()
    assert "effort" in details["text/html"]
    assert answer["text/markdown"].strip()
    assert "incomplete" in footer["text/plain"]
    assert run.reply["status"] == "error"


def test_ctrl_c_keeps_what_arrived_marked_interrupted(kernel: Any, server: LocalServer) -> None:
    server.config.tokens_per_second = 200
    server.config.reasoning_tokens = 5_000
    run = kernel.execute("%%step\nA long think", interrupt_on_text="The request", timeout=30)
    error = run.error()
    assert error is not None
    assert error["ename"] == "StepInterrupted"
    assert error["traceback"] == [
        "KeyboardInterrupt: reply interrupted; the partial text above is kept"
    ]
    details, _answer, footer = run.final_outputs().values()
    assert "Interrupted after thinking" in details["text/html"]
    assert "interrupted" in footer["text/plain"]
    assert kernel.execute("print(_step.status)").stdout() == ("interrupted\n")
    assert kernel.execute("1 + 1").error() is None


def test_the_plot_above_is_sent_with_at_last(kernel: Any, server: LocalServer) -> None:
    shown = kernel.execute(
        "%matplotlib inline\nimport matplotlib.pyplot as plt\nplt.plot([1, 3, 2]);"
    )
    assert any("image/png" in m["content"]["data"] for m in shown.of_type("display_data"))
    run = kernel.execute("%%step --with @last\nExplain the plot above")
    assert run.error() is None
    content = server.requests[-1].body["messages"][-1]["content"]
    image = next(part for part in content if part["type"] == "image_url")
    assert image["image_url"]["url"].startswith("data:image/png;base64,")
    assert "@last" in content[0]["text"]


def test_rerunning_a_cell_replaces_its_turn(kernel: Any, server: LocalServer) -> None:
    kernel.execute("%%step --new\nFirst", cell_id="cell-a")
    kernel.execute("%%step\nSecond", cell_id="cell-b")
    kernel.execute("%%step\nFirst, asked again", cell_id="cell-a")
    assert server.requests[-1].body["messages"] == [
        {"role": "user", "content": "First, asked again"}
    ]
    kernel.execute("%%step\nThird", cell_id="cell-c")
    users = [m["content"] for m in server.requests[-1].body["messages"] if m["role"] == "user"]
    assert users == ["First, asked again", "Second", "Third"]


def test_code_is_offered_in_a_new_cell_not_run(kernel: Any) -> None:
    run = kernel.execute("%%step --code\nShow me code")
    payload = run.reply["payload"]
    assert payload[0]["source"] == "set_next_input"
    assert payload[0]["text"].startswith("print(")


def test_the_key_can_be_typed_without_it_reaching_the_notebook(kernel: Any) -> None:
    kernel.execute("import os\nsaved_key = os.environ.pop('STEPFUN_API_KEY')")
    missing = kernel.execute("%step Hi")  # a local server takes no key, so the server says 401
    assert missing.error() is not None
    assert "API error 401 from 127.0.0.1:" in missing.error()["evalue"]
    typed = kernel.execute("%step_config --key", stdin=TEST_KEY)
    assert typed.error() is None
    assert TEST_KEY not in json.dumps(typed.messages, default=str)
    assert "not saved" in typed.stdout()
    assert kernel.execute("%step Hi").error() is None
    kernel.execute("os.environ['STEPFUN_API_KEY'] = saved_key")


def test_the_messages_api_streams_into_the_same_panel(kernel: Any, server: LocalServer) -> None:
    run = kernel.execute("%%step --api messages --effort low\nExplain tides")
    assert run.error() is None
    assert server.requests[-1].path == "/v1/messages"
    assert "effort low" in run.panel_text("r")
    details, answer, footer = run.final_outputs().values()
    assert details["text/html"].startswith("<details")
    assert "<h2>Simulated answer</h2>" in answer["text/html"]
    assert "trace id" in footer["text/plain"]


def test_a_long_reasoning_crosses_the_wire_once_and_is_saved_whole(
    kernel: Any, server: LocalServer
) -> None:
    server.config.reasoning_tokens = 30_000  # about 180,000 characters
    run = kernel.execute("%%step\nThink at length")
    assert run.error() is None
    reasoning = kernel.execute("print(len(_step.reasoning))")
    streamed = run.panel_text("r")
    assert len(streamed) == int(reasoning.stdout())  # each character sent once, in order
    head = [m for m in run.of_type("comm_msg") if "head" in m["content"]["data"].get("state", {})]
    assert sum(len(json.dumps(m["content"])) for m in head) < 12_000  # the bounded recovery
    details = next(b["text/html"] for b in run.final_outputs().values() if "<details" in str(b))
    assert len(details) > len(streamed)  # the saved form holds all of it
    assert details.count('class="step-magic-chunk"') > len(streamed) // 16_000


def test_loading_warms_the_call_path_in_the_background_silently(fresh_kernel: Any) -> None:
    """``%load_ext`` imports nothing heavy itself; half a second later a background thread
    has imported the SDK and the widgets, so the first call does not pay for them."""
    heavy = "sorted(m for m in ('openai', 'ipywidgets', 'markdown_it') if m in sys.modules)"
    loaded = fresh_kernel.execute(f"import sys\n%load_ext step_magic\nprint({heavy})")
    assert loaded.error() is None
    assert loaded.stdout().strip() == "[]"
    deadline = time.monotonic() + 30
    warmed = ""
    while time.monotonic() < deadline and warmed != "['ipywidgets', 'markdown_it', 'openai']":
        time.sleep(0.5)
        warmed = fresh_kernel.execute(f"print({heavy})").stdout().strip()
    assert warmed == "['ipywidgets', 'markdown_it', 'openai']"
    quiet = fresh_kernel.execute("print('still quiet')")
    assert quiet.stdout() == "still quiet\n"  # nothing from the warm-up reached any output
    assert quiet.of_type("error", "display_data") == []


def test_the_warm_up_can_be_switched_off(fresh_kernel: Any) -> None:
    fresh_kernel.execute("get_ipython().config.StepMagics.warm_up = False\n%load_ext step_magic")
    time.sleep(2)  # four times the warm-up's delay
    run = fresh_kernel.execute("import sys\nprint('openai' in sys.modules)")
    assert run.stdout().strip() == "False"


def test_the_magic_returns_its_result_without_a_second_output(kernel: Any) -> None:
    run = kernel.execute("%%step --no-reasoning\nHi")
    assert run.error() is None
    assert run.of_type("execute_result") == []  # Out[n] holds it, the panel shows it once
    bound = kernel.execute("r = %step --no-reasoning Hi\nprint(r is _step)")
    assert bound.stdout() == "True\n"
    shown = kernel.execute("display(r)")  # shown again from another cell: the static form
    assert len(shown.of_type("display_data")) == 3  # the reasoning, the answer, the footer
