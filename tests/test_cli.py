"""The ``step-magic`` command: the README's demo works offline and says so plainly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("STEPFUN_API_KEY", "STEP_API_KEY", "STEPFUN_BASE_URL")
    }
    env["STEP_MAGIC_HISTORY"] = str(tmp_path / "history.sqlite3")
    command = [sys.executable, "-m", "step_magic.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_demo_without_a_key_uses_the_simulator_and_says_so(tmp_path: Path) -> None:
    done = run_cli("demo", "How many r in strawberry", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no STEPFUN_API_KEY is set, so the bundled local simulator answers" in done.stdout
    assert "does not come from StepFun" in done.stdout
    assert "How many r in strawberry" in done.stdout  # the simulator quotes the question
    assert "trace id" in done.stdout


def test_demo_reports_a_failed_call_with_a_non_zero_status(tmp_path: Path) -> None:
    done = run_cli("demo", "--local", "-m", "fault-500", "Hi", tmp_path=tmp_path)
    assert done.returncode == 1
    assert "StepFun API error 500" in done.stdout + done.stderr
