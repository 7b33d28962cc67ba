"""The package stays ruff- and mypy --strict-clean and keeps its layers (import-linter's
contracts in pyproject.toml): part of the suite, so CI enforces it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "step_magic", "tests", "benchmarks"],
        ["ruff", "format", "--check", "step_magic", "tests", "benchmarks"],
        pytest.param(["mypy", "step_magic"], marks=pytest.mark.slow),
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_code_is_clean(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_layers_hold() -> None:
    """``lint-imports``: every contract in pyproject.toml kept (layers, no cycles, the server
    apart), so an import against the architecture fails the suite."""
    lint = [
        sys.executable,
        "-c",
        "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())",
        "--no-cache",
    ]
    done = subprocess.run(lint, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
