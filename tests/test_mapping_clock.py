"""``--map``'s ``rpm`` spacing, read on a fake clock: exact, and without waiting for it.

The scheduler reads the time and waits for the spacing through its module's ``time``; this
test gives it a clock that moves only when the scheduler sleeps, so a batch at 6 requests a
minute (one every 10 s) runs at once, and each row must start exactly ``60 / rpm`` seconds
after the one before. The rows are real calls to the bundled server.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from step_magic.api.rows import row_call
from step_magic.batch import scheduler
from step_magic.batch.table import MapOptions
from step_magic.core.request import ChatRequest, build_request
from step_magic.core.result import StepResult
from step_magic.core.settings import Settings
from step_magic.server import LocalServer

from .conftest import TEST_KEY


class FakeClock:
    """``time.monotonic`` and ``time.sleep`` for one module: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now = 1000.0
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.mark.parametrize("rpm", [6, 60, 100, 240])  # 100: 0.6 s, not a multiple of a tick
def test_rows_start_exactly_sixty_over_rpm_seconds_apart(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch, rpm: int
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(scheduler, "time", clock)
    settings = Settings(model="step-3.7-flash", base_url=server.base_url, api_key=TEST_KEY)
    answer = row_call(settings)
    started: list[float] = []

    def call(request: ChatRequest) -> StepResult:
        started.append(clock.monotonic())
        return answer(request)

    def make(prompt: str) -> Any:
        return build_request(settings, prompt)

    options = MapOptions("a", concurrency=4, rpm=rpm)
    _, summary = scheduler.map_rows(list(range(4)), "n={item}", make, call, options)

    assert summary.done == 4
    spacing = 60 / rpm
    assert [at - started[0] for at in started] == pytest.approx(
        [0, spacing, 2 * spacing, 3 * spacing], abs=1e-9
    )
