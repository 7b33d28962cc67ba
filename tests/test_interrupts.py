"""Ctrl-C during a call is noted, and a second press right after the first is the same wish.

Real SIGINTs to this process, on the main thread (where Python runs signal handlers); a fake
clock stands in for the grace period so no test waits for it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from step_magic.core import interrupts


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """A monotonic clock the test moves; the SIGINT handler is put back afterwards."""
    now = SimpleNamespace(t=1000.0)
    monkeypatch.setattr(interrupts, "time", SimpleNamespace(monotonic=lambda: now.t))
    saved = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield now
    signal.signal(signal.SIGINT, saved)


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_during_a_call_is_noted_not_raised(clock: SimpleNamespace) -> None:
    with interrupts.interrupts_noted() as received:
        ctrl_c()
        ctrl_c()
    assert received == [signal.SIGINT, signal.SIGINT]


def test_a_second_ctrl_c_just_after_an_interrupted_call_is_absorbed(
    clock: SimpleNamespace,
) -> None:
    with interrupts.interrupts_noted() as received:
        ctrl_c()
    assert received
    clock.t += interrupts.GRACE_SECONDS / 2
    ctrl_c()  # while the interrupted call's error is raised and shown: not a second error
    clock.t += interrupts.GRACE_SECONDS
    with pytest.raises(KeyboardInterrupt):
        ctrl_c()  # later, Ctrl-C is Ctrl-C again


def test_after_a_call_that_was_not_interrupted_ctrl_c_raises_at_once(
    clock: SimpleNamespace,
) -> None:
    with interrupts.interrupts_noted() as received:
        pass
    assert not received
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        ctrl_c()


def test_a_call_stopped_by_another_thread_leaves_ctrl_c_as_it_was(
    clock: SimpleNamespace,
) -> None:
    stop: list[int] = []
    with interrupts.interrupts_noted(stop):
        stop.append(signal.SIGINT)  # as compare() or a closed stream stops a call
    with pytest.raises(KeyboardInterrupt):
        ctrl_c()  # a real press right after is not absorbed: nobody pressed before it


def test_interrupted_calls_in_a_row_do_not_stack_handlers(clock: SimpleNamespace) -> None:
    for _ in range(3):
        with interrupts.interrupts_noted():
            ctrl_c()
    handler = signal.getsignal(signal.SIGINT)
    assert isinstance(handler, interrupts._Grace)
    assert handler.previous is signal.default_int_handler
