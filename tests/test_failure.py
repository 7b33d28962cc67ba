"""How an exception becomes prompt text (``context.failure``), bounded whatever it holds.

Real exceptions with real tracebacks, raised here; the kernel tests
(``test_explain_errors.py``) do the same from notebook cells.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import step_magic
from step_magic.context import failure
from step_magic.context.attachments import collect, render_value
from step_magic.server import LocalServer

from .conftest import TEST_KEY


def caught(function: object, *args: object) -> BaseException:
    try:
        function(*args)  # type: ignore[operator]
    except BaseException as err:
        return err
    raise AssertionError("it did not raise")


def dive(depth: int) -> int:
    return dive(depth + 1)


def test_a_recursion_of_a_thousand_frames_is_a_few_lines() -> None:
    error = caught(dive, 0)
    text = failure.describe(error, render_value).text

    assert "RecursionError: maximum recursion depth exceeded" in text
    assert "[the frame above repeated" in text
    assert len(text) < 3_000


def test_this_files_frames_are_the_users_and_pytests_are_the_librarys() -> None:
    error = caught(int, "x")
    frames = list(failure._frames(error))
    assert [f.mine for f in frames] == [True]  # int() is C code: no frame of its own
    error = caught(Path("/no/such/dir/file").read_text)
    frames = list(failure._frames(error))
    assert frames[0].mine  # this test's line
    assert not any(f.mine for f in frames[1:])  # pathlib's


def test_one_walk_of_each_traceback_gives_the_text_the_headline_and_the_label(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--with @error`` shows the headline above the text and the label in the footer; all
    three come from one ``describe``, which walks each traceback of the chain once."""
    error = caught(a_key_error_while_handling_a_missing_file)
    walked: list[BaseException] = []
    walk = failure._frames
    monkeypatch.setattr(failure, "_frames", lambda exc: walked.append(exc) or walk(exc))

    described = failure.describe(error, render_value)

    assert walked == [error.__context__, error]  # the cause, then the error: once each
    assert described.headline == "KeyError: 'revnue'"
    assert described.label == "KeyError, 2 of 2 frames yours"  # caught() and the function
    assert "During handling of the above exception" in described.text


def a_key_error_while_handling_a_missing_file() -> None:
    try:
        Path("/no/such/dir/file").read_text()
    except OSError:
        {"revenue": 1}["revnue"]


def test_an_object_whose_methods_raise_is_named_not_summarised() -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

        __repr__ = __str__

    hostile = Hostile()
    error = caught(lambda: hostile.missing)
    text = failure.describe(error, render_value).text

    assert "AttributeError" in text
    assert "- `hostile` (Hostile):\n  (cannot be summarised: RuntimeError)" in text


def test_a_long_message_and_many_causes_stay_bounded() -> None:
    def chain(depth: int) -> None:
        if depth == 0:
            raise ValueError("x" * 100_000)
        try:
            chain(depth - 1)
        except ValueError as err:
            raise ValueError(f"level {depth}: " + "y" * 50_000) from err

    error = caught(chain, 30)
    text = failure.describe(error, render_value).text

    assert len(text) <= failure.MAX_CHARS
    links = [line for line in text.splitlines() if line.startswith("The above exception")]
    assert len(links) == failure.MAX_CHAIN - 1
    assert "level 30" in text  # the newest is always kept


def test_with_error_before_anything_failed_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(sys, "last_value", raising=False)
    monkeypatch.delattr(sys, "last_exc", raising=False)
    with pytest.raises(step_magic.InputError, match=r"^@error: no cell has failed yet"):
        collect(["@error"], {})
    with pytest.raises(step_magic.InputError, match=r"^no error to explain"):
        step_magic.explain()


def test_explain_takes_an_exception_caught_in_a_script(api_env: LocalServer) -> None:
    error = caught(lambda: {"revenue": 1}["revnue"])
    result = step_magic.explain(error, "Which key did I mean?", display=False, history=False)

    (request,) = [r for r in api_env.requests if r.path.endswith("/chat/completions")]
    sent = request.body["messages"][-1]["content"]
    assert "KeyError: 'revnue'" in sent
    assert 'error = caught(lambda: {"revenue": 1}["revnue"])' in sent
    assert "Which key did I mean?" in sent
    assert TEST_KEY not in sent
    assert result.answer


def test_the_calls_own_key_is_removed_even_when_not_in_the_environment(
    api_env: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STEPFUN_API_KEY")
    error = caught(lambda: {"k": TEST_KEY}[f"rejected with {TEST_KEY}"])

    step_magic.explain(error, api_key=TEST_KEY, display=False, history=False)

    (request,) = [r for r in api_env.requests if r.path.endswith("/chat/completions")]
    sent = str(request.body)
    assert TEST_KEY not in sent
    assert "rejected with ***" in sent


def test_no_piece_of_the_key_survives_a_cut_whatever_the_lengths(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STEPFUN_API_KEY", raising=False)
    monkeypatch.delenv("STEP_API_KEY", raising=False)
    piece = TEST_KEY[:10]
    for size in range(0, 8_000, 97):
        error = caught(fails_with, "x" * size + TEST_KEY + "y" * size)
        described = failure.describe(error, render_value, secrets=(TEST_KEY,))
        assert piece not in described.text, size
        assert piece not in described.headline, size


def fails_with(payload: str) -> None:
    raise ValueError(payload)  # the failing line names `payload`: its value is summarised


def test_the_environments_key_is_removed_when_the_call_uses_another(
    api_env: LocalServer,
) -> None:
    """Asking the simulator (or another server) with its own key must not carry the
    StepFun key out in an error's text."""
    from step_magic.server import ServerConfig

    error = caught(lambda: {"k": 1}[f"rejected with {TEST_KEY}"])
    other = "sk-other-server-key-000000"
    with LocalServer(ServerConfig(api_key=other)) as elsewhere:
        step_magic.explain(
            error, api_key=other, base_url=elsewhere.base_url, display=False, history=False
        )
        (request,) = [r for r in elsewhere.requests if r.path.endswith("/chat/completions")]
    assert TEST_KEY not in str(request.body)  # STEPFUN_API_KEY is set (api_env)
    assert "rejected with ***" in str(request.body)


def test_explain_inside_except_explains_the_error_being_handled(api_env: LocalServer) -> None:
    try:
        {"revenue": 1}["revnue"]
    except KeyError:
        result = step_magic.explain(display=False, history=False)
    assert "KeyError: 'revnue'" in result.messages[-1]["content"]
