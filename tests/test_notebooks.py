"""The example notebooks run top to bottom offline, and their committed outputs are current.

Each is executed by nbclient in a real kernel with no API key (so its first cell starts the
local simulator), and the shape of every cell's outputs is compared with the committed file:
a cell that now errors, or whose outputs changed kind, fails the test. Refresh them with
``python scripts/refresh_notebooks.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest

from .conftest import TEST_KEY

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def notebook_refresher(tmp_path: Path) -> Callable[[Path], Any]:
    """Run scripts/refresh_notebooks.py on one notebook, as a maintainer runs it: a command.

    The script's client polls for each cell's reply in slices (``PatientClient``): plain
    nbclient was seen leaving a reply unread until the cell's timeout on a loaded machine.
    """

    def run(path: Path) -> Any:
        command = [sys.executable, str(ROOT / "scripts/refresh_notebooks.py")]
        command += ["--output", str(tmp_path), path.stem]
        done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return nbformat.read(tmp_path / path.name, as_version=4)

    return run


def shape(notebook: Any) -> list[list[str]]:
    """Per code cell, the kind of each output: stream name, error, or its mimetypes."""
    shapes = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kinds = []
        for output in cell.outputs:
            if output.output_type == "stream":
                # one text to a reader, however many messages the kernel flushed it in
                if kinds[-1:] != [f"stream:{output.name}"]:
                    kinds.append(f"stream:{output.name}")
            elif output.output_type == "error":
                kinds.append(f"error:{output.ename}")
            else:
                kinds.append(f"{output.output_type}:{','.join(sorted(output.data))}")
        shapes.append(kinds)
    return shapes


def test_there_are_example_notebooks() -> None:
    assert {path.stem for path in NOTEBOOKS} >= {"quickstart", "data_exploration", "teaching"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_the_notebook_runs_offline_and_matches_what_is_committed(
    path: Path, notebook_refresher: Callable[[Path], Any]
) -> None:
    committed = nbformat.read(path, as_version=4)
    executed = notebook_refresher(path)
    assert shape(executed) == shape(committed), "outputs changed: run scripts/refresh_notebooks.py"
    for cell in executed.cells:
        expected_error = "raises-exception" in cell.metadata.get("tags", [])
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        if errors:
            assert expected_error, f"unexpected error in {cell.source[:60]!r}: {errors[0].evalue}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_the_committed_notebook_reads_without_a_kernel(path: Path) -> None:
    text = path.read_text()
    notebook = nbformat.reads(text, as_version=4)
    nbformat.validate(notebook)
    assert WIDGET_VIEW not in text
    assert TEST_KEY not in text
    assert "sk-" not in json.dumps([cell.outputs for cell in notebook.cells if "outputs" in cell])
    assert "<details" in text
