"""The debug switch: an unexpected failure shows one line, unless the user asks for its cause.

With ``STEP_MAGIC_DEBUG=1`` or ``%config StepMagics.debug = True`` the error keeps the real
exception as its cause, shows its traceback under the line and logs it to the ``step_magic``
logger; the key never appears in any of them.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from step_magic.core import diagnostics
from step_magic.core.events import Event, ReasoningDelta
from step_magic.core.request import ChatRequest
from step_magic.core.settings import Settings
from step_magic.display.frontend import QuietView
from step_magic.engine.runner import run_call

from .conftest import TEST_KEY


class Broken:
    """A reply source with a bug: some reasoning, then an exception quoting the key."""

    trace_id = "0123456789abcdef0123456789abcdef"

    def __iter__(self) -> Iterator[Event]:
        yield ReasoningDelta("Let me think.")
        raise RuntimeError(f"bug in a parser, Authorization: Bearer {TEST_KEY}")

    def close(self) -> None: ...


def broken_call() -> Any:
    settings = Settings(model="step-3.7-flash", base_url="http://127.0.0.1:9/v1", api_key=TEST_KEY)
    request = ChatRequest("step-3.7-flash", ({"role": "user", "content": "Hi"},))
    result, error = run_call(settings, request, QuietView(), stream=Broken())
    assert result.reasoning == "Let me think."  # what arrived is kept either way
    return error


@pytest.fixture(autouse=True)
def switch_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("STEP_MAGIC_DEBUG", raising=False)
    diagnostics.set_debug(False)
    yield
    diagnostics.set_debug(False)


def test_without_the_switch_an_unexpected_failure_is_one_line_without_the_key() -> None:
    error = broken_call()
    assert "unexpected failure while reading the reply: RuntimeError(" in str(error)
    assert TEST_KEY not in str(error)
    assert error.__cause__ is None
    assert len(error._render_traceback_()) == 1


def test_the_environment_variable_keeps_shows_and_logs_the_cause_redacted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("STEP_MAGIC_DEBUG", "1")
    with caplog.at_level(logging.ERROR, logger="step_magic"):
        error = broken_call()
    assert isinstance(error.__cause__, diagnostics.FailureCause)
    shown = "\n".join(error._render_traceback_())
    chained = "".join(traceback.format_exception(error))  # as a script's uncaught error shows
    assert "RuntimeError: bug in a parser" in chained
    assert "Traceback (most recent call last)" in shown
    assert "RuntimeError: bug in a parser" in shown
    assert "in __iter__" in shown  # where it happened
    logged = caplog.text
    assert "RuntimeError: bug in a parser" in logged
    assert TEST_KEY not in shown + logged + str(error) + chained


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_the_variable_set_to_a_no_leaves_the_switch_off(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("STEP_MAGIC_DEBUG", value)
    assert not diagnostics.debugging()


def test_the_trait_turns_the_switch_on_and_off(ip: Any) -> None:
    ip.run_line_magic("config", "StepMagics.debug = True")
    assert diagnostics.debugging()
    assert broken_call().__cause__ is not None
    ip.run_line_magic("config", "StepMagics.debug = False")
    assert not diagnostics.debugging()
