"""Results show themselves: ``_repr_mimebundle_`` for any frontend (marimo, VS Code, terminal
IPython), with the same safe HTML as the saved form and plain text that holds the answer."""

from __future__ import annotations

from typing import Any

import pytest

import step_magic
from step_magic.core.result import StepResult
from step_magic.server import LocalServer


def test_a_result_renders_itself_as_the_static_form(api_env: LocalServer) -> None:
    result = step_magic.ask("Explain <b>tides</b>", effort="high", display=False)
    bundle = result._repr_mimebundle_()
    html = bundle["text/html"]
    assert html.index('<details class="step-magic-reasoning">') < html.index("step-magic-answer")
    assert html.index("step-magic-answer") < html.index("step-magic-footer")
    assert "<b>tides</b>" not in html
    assert "&lt;b&gt;tides&lt;/b&gt;" in html
    assert bundle["text/markdown"].strip()
    plain = bundle["text/plain"]
    assert plain.startswith("[reasoning: ")
    assert result.answer in plain
    assert f"trace id {result.trace_id}" in plain


def test_an_answer_shown_as_json_keeps_its_text_in_the_html(api_env: LocalServer) -> None:
    import step_magic.display  # noqa: F401  (registers the renderers, as every call does)

    result = StepResult("step-3.7-flash", None, answer='{"a": [1, 2]}', display_format="json")
    bundle = result._repr_mimebundle_()
    assert "text/markdown" not in bundle
    assert '"a": [' in bundle["text/plain"]
    assert "<pre" in bundle["text/html"]


def test_display_of_a_result_in_terminal_ipython_prints_the_answer(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # store_history, as terminal IPython runs cells: each its own execution count
    ip.run_cell("%step --no-reasoning Hi", store_history=True).raise_error()
    capsys.readouterr()
    ip.run_cell("display(_step)", store_history=True).raise_error()
    shown = capsys.readouterr().out
    assert ip.user_ns["_step"].answer.strip().splitlines()[-1] in shown
    assert "trace id" in shown


def test_a_comparison_and_a_pending_call_render_themselves(api_env: LocalServer) -> None:
    comparison = step_magic.compare("Hi", efforts=["low", "high"], display=False)
    html = comparison._repr_mimebundle_()["text/html"]
    assert html.count('class="step-magic-column"') == 2
    pending = step_magic.ask("Hi", background=True, display=False)
    result = pending.wait(timeout=30)
    assert pending._repr_mimebundle_() == result._repr_mimebundle_()


def test_the_magic_returns_its_result_and_the_cell_does_not_repeat_it(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell("r = %step --no-reasoning Hi", store_history=True).raise_error()
    assert ip.user_ns["r"] is ip.user_ns["_step"]
    capsys.readouterr()
    ended = ip.run_cell("%step --no-reasoning Hi again", store_history=True)
    ended.raise_error()
    assert ended.result is ip.user_ns["_step"]  # Out[n] holds it
    out = capsys.readouterr().out
    answer = ip.user_ns["_step"].answer.strip().splitlines()[-1]
    assert out.count(answer) == 1  # streamed once; Out[n] says what it is, not the answer again
    assert "StepResult: complete, " in out


def test_a_comparison_is_returned_too_and_printed_once(
    ip: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = ip.run_cell("%step --effort low,high Hi", store_history=True)
    ran.raise_error()
    assert ran.result is ip.user_ns["_step"]
    assert [r.status for r in ran.result.results] == ["complete", "complete"]
    assert capsys.readouterr().out.count("== effort low (") == 1
