"""``--with @error``, ``%step --fix`` and ``step_magic.explain``: asking why a cell failed.

In a real kernel, a cell fails the way analysts' cells do (a mistyped column, a typo in a
name, an error raised from another, one deep inside pandas, one inside a function from an
earlier cell); then the question goes to the bundled server, and the test reads the request
it received: the error and its chain, the failing code, only the user's frames in full
(library frames one line each, none of their source), what the names on the failing line
held; a few thousand characters however deep the library traceback was.
"""

from __future__ import annotations

from typing import Any

import pytest

from step_magic.server import LocalServer

from .conftest import TEST_KEY

SALES = (
    "import pandas as pd\n"
    "sales = pd.DataFrame({'month': ['2026-01', '2026-02', '2026-03'],"
    " 'revenue': [120.0, 118.5, 87.5]})"
)
PANDAS_SOURCE = "raise KeyError(key) from err"  # a line of pandas' own code: never sent


def asked(server: LocalServer) -> str:
    """The text of the last user message the server received (attachments included)."""
    (request,) = [r for r in server.requests if r.path.endswith("/chat/completions")][-1:]
    content = request.body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content)


def fail(kernel: Any, *cells: str) -> None:
    """Run ``cells``; the last must fail (as the user's did)."""
    for cell in cells[:-1]:
        assert kernel.execute(cell).error() is None, cell
    assert kernel.execute(cells[-1]).error() is not None


def ask_about_it(kernel: Any, line: str = "%%step --with @error\nWhy did that fail?") -> Any:
    run = kernel.execute(line, timeout=90)
    assert run.error() is None, run.error()
    return run


def test_a_mistyped_column_sends_the_error_the_line_and_the_frames_columns(
    kernel: Any, server: LocalServer
) -> None:
    fail(kernel, SALES, "march = sales['revnue'].iloc[2]")
    ask_about_it(kernel)

    text = asked(server)
    assert "KeyError: 'revnue'" in text
    assert "march = sales['revnue'].iloc[2]" in text  # the failing code, as typed
    assert "| revenue |" in text  # what `sales` holds: the model can see the typo
    assert "(library)" in text  # pandas' frames, one line each
    assert PANDAS_SOURCE not in text
    assert len(text) < 8_000


def test_a_name_typo_sends_the_name_error_and_the_cell(kernel: Any, server: LocalServer) -> None:
    fail(kernel, "revenue_total = 326.0", "share = revenue_totl / 3")
    ask_about_it(kernel)

    text = asked(server)
    assert "NameError: name 'revenue_totl' is not defined" in text
    assert "share = revenue_totl / 3" in text
    assert "### the code of In[" in text


def test_a_chained_error_keeps_its_chain(kernel: Any, server: LocalServer) -> None:
    parse = (
        "def parse_amount(text):\n"
        "    try:\n"
        "        return float(text)\n"
        "    except ValueError as err:\n"
        "        raise RuntimeError(f'bad amount {text!r}') from err"
    )
    fail(kernel, parse, "parse_amount('12,5')")
    ask_about_it(kernel)

    text = asked(server)
    assert "ValueError: could not convert string to float: '12,5'" in text
    assert "direct cause" in text
    assert "RuntimeError: bad amount '12,5'" in text
    body = text[text.index("### The error") :]
    assert body.index("ValueError") < body.index("RuntimeError")  # oldest first, as Python
    assert "raise RuntimeError(f'bad amount {text!r}') from err" in text


def test_an_error_deep_inside_pandas_stays_short_and_shows_only_the_users_code(
    kernel: Any, server: LocalServer
) -> None:
    fail(kernel, SALES, "dates = pd.to_datetime(['2026-13-45'], format='%Y-%m-%d')")
    ask_about_it(kernel)

    text = asked(server)
    assert "ValueError" in text
    assert "dates = pd.to_datetime(['2026-13-45'], format='%Y-%m-%d')" in text
    user_frames = [line for line in text.splitlines() if line.startswith("  In[")]
    library_frames = [line for line in text.splitlines() if line.endswith("(library)")]
    assert len(user_frames) == 1
    assert library_frames
    assert len(text) < 8_000


def test_an_error_in_a_function_from_an_earlier_cell_sends_both_cells(
    kernel: Any, server: LocalServer
) -> None:
    load = "def monthly(frame, column):\n    return frame.groupby('month')[column].sum()"
    fail(kernel, SALES, load, "totals = monthly(sales, 'revnue')")
    ask_about_it(kernel)

    text = asked(server)
    assert "totals = monthly(sales, 'revnue')" in text
    assert "return frame.groupby('month')[column].sum()" in text
    assert text.count("### the code of In[") == 2
    assert "- `column` (str):\n  revnue" in text  # the failing line's names, from its frame


def test_the_key_in_an_error_never_reaches_the_request(kernel: Any, server: LocalServer) -> None:
    leak = f"raise ValueError('rejected https://user:pw@example.com/v1 with key {TEST_KEY}')"
    fail(kernel, leak)
    ask_about_it(kernel)

    text = asked(server)
    assert TEST_KEY not in text
    assert "user:pw@" not in text
    assert "rejected https://user:***@example.com/v1 with key ***" in text


def test_fix_explains_the_last_error_and_puts_a_corrected_cell_below(
    kernel: Any, server: LocalServer
) -> None:
    fail(kernel, SALES, "march = sales['revnue'].iloc[2]")
    run = ask_about_it(kernel, "%step --fix")

    text = asked(server)
    assert "corrected code of the cell that failed" in text
    assert "KeyError: 'revnue'" in text
    payloads = run.reply.get("payload", [])
    new_cells = [p["text"] for p in payloads if p.get("source") == "set_next_input"]
    assert new_cells == ['print("simulated reply from step-3.7-flash")']  # never run
    assert "simulated reply" not in "".join(m["content"].get("text", "") for m in run.messages)


def test_fix_with_words_adds_them_to_the_question(kernel: Any, server: LocalServer) -> None:
    fail(kernel, "1 / 0")
    ask_about_it(kernel, "%%step --fix\nI meant the average over zero months to be 0.")

    text = asked(server)
    assert "ZeroDivisionError: division by zero" in text
    assert "I meant the average over zero months to be 0." in text


def test_the_code_of_an_earlier_cell_is_labelled_as_such(kernel: Any, server: LocalServer) -> None:
    run = kernel.execute("x = 41 + 1")
    number = run.reply["execution_count"]
    ask_about_it(kernel, f"%%step --with In[{number}]\nWhat does this cell do?")

    text = asked(server)
    assert f"### `In[{number}]` (the code of cell {number})\n```python\nx = 41 + 1\n```" in text


@pytest.mark.parametrize("how", ["explain()", "ask(attach='@error')"])
def test_the_python_api_explains_the_last_error_too(
    kernel: Any, server: LocalServer, how: str
) -> None:
    fail(kernel, "{'a': 1}['b']")
    call = (
        "step_magic.explain()"
        if how == "explain()"
        else ("step_magic.ask('Why?', attach='@error')")
    )
    run = kernel.execute(f"import step_magic\nr = {call}", timeout=90)
    assert run.error() is None, run.error()

    assert "KeyError: 'b'" in asked(server)


@pytest.fixture
def explaining(kernel: Any) -> Any:
    """The kernel with ``StepMagics.explain_errors`` on (it is off by default)."""
    kernel.execute("%config StepMagics.explain_errors = True")
    yield kernel
    kernel.execute("%config StepMagics.explain_errors = False")


def reserved_ids(run: Any) -> list[str]:
    return [
        m["content"]["transient"]["display_id"]
        for m in run.of_type("display_data")
        if m["content"].get("transient", {}).get("display_id")
    ]


def chat_requests(server: LocalServer) -> int:
    return sum(r.path.endswith("/chat/completions") for r in server.requests)


def test_the_explain_control_sends_nothing_until_clicked_then_streams_into_the_failed_cell(
    explaining: Any, server: LocalServer
) -> None:
    failed = explaining.execute("total = undefined_sales * 2", allow_stdin=True)
    assert failed.error() is not None
    control = failed.comm_of("ExplainControl")
    reserved = reserved_ids(failed)
    assert len(reserved) == 3  # where the panel's three parts will go
    assert chat_requests(server) == 0

    clicked = explaining.click(control, {"explain": True}, timeout=90)

    assert "NameError: name 'undefined_sales' is not defined" in asked(server)
    assert clicked.comm_models()  # the live panel's widgets
    final = clicked.final_outputs()
    assert list(final) == reserved  # each part replaced in place, in the failed cell
    reasoning, answer, footer = final.values()
    assert reasoning["text/html"].startswith('<details class="step-magic-reasoning">')
    assert "Simulated answer" in answer["text/markdown"]
    assert "trace id" in footer["text/html"]
    later = explaining.execute("1 + 1", allow_stdin=True)
    assert not later.of_type("update_display_data")  # the explanation stays


def test_an_unclicked_control_is_taken_away_when_the_next_cell_runs(
    explaining: Any, server: LocalServer
) -> None:
    failed = explaining.execute("1 / 0", allow_stdin=True)
    control = failed.comm_of("ExplainControl")

    later = explaining.execute("x = 1", allow_stdin=True)

    emptied = {
        m["content"]["transient"]["display_id"]: m["content"]["data"]
        for m in later.of_type("update_display_data")
    }
    assert list(emptied) == reserved_ids(failed)
    assert all(data == {"text/plain": ""} for data in emptied.values())
    closed = [m["content"]["comm_id"] for m in later.of_type("comm_close")]
    assert control in closed
    assert chat_requests(server) == 0


@pytest.mark.parametrize(
    ("cell", "someone_there", "raised"),
    [
        ("1 / 0", False, "ZeroDivisionError"),  # nbclient and papermill send no allow_stdin
        ("%step --efort high Hi", True, None),  # a usage error: a line, not a traceback
        ("raise KeyboardInterrupt", True, "KeyboardInterrupt"),
    ],
    ids=["headless", "usage error", "interrupt"],
)
def test_no_control_for_headless_runs_usage_errors_or_interrupts(
    explaining: Any, cell: str, someone_there: bool, raised: str | None
) -> None:
    failed = explaining.execute(cell, allow_stdin=someone_there)
    if raised is None:
        assert "UsageError: unknown flag --efort" in failed.stdout()
    else:
        assert (failed.error() or {}).get("ename") == raised
    assert "ExplainControl" not in failed.comm_models().values()


def test_the_control_is_off_by_default(kernel: Any) -> None:
    failed = kernel.execute("1 / 0", allow_stdin=True)
    assert failed.error() is not None
    assert not failed.comm_models()


def test_at_error_is_the_users_failure_not_a_mistyped_flag_after_it(
    kernel: Any, server: LocalServer
) -> None:
    fail(kernel, SALES, "march = sales['revnue'].iloc[2]")
    assert "UsageError: unknown flag --effrt" in kernel.execute("%step --fix --effrt high").stdout()
    ask_about_it(kernel, "%step --fix")

    text = asked(server)
    assert "KeyError: 'revnue'" in text
    assert "UsageError" not in text


@pytest.mark.usefixtures("api_env")
def test_explain_errors_can_be_set_in_the_config_before_loading(
    request: pytest.FixtureRequest,
) -> None:
    from traitlets.config import Config

    _shell = request.getfixturevalue("_shell")  # the suite's one in-process IPython shell
    _shell.config.StepMagics = Config({"explain_errors": True})
    try:
        _shell.run_line_magic("load_ext", "step_magic")
        assert _shell.magics_manager.registry["StepMagics"].explain_errors is True
    finally:
        _shell.run_line_magic("unload_ext", "step_magic")
        _shell.config.StepMagics = Config()
