"""A notebook executed for real (nbclient + ipykernel) and saved must read well without a kernel."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

from step_magic.server import LocalServer

from .conftest import TEST_KEY

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
HOSTILE = (
    "Explain <script>window.__pwned=1</script> </details> <img src=x onerror=alert(1)> & tides"
)


@pytest.fixture
def saved(api_env: LocalServer, tmp_path: Path, run_notebook: Any) -> tuple[Any, Path]:
    path = tmp_path / "saved.ipynb"
    notebook = run_notebook(
        [
            "%load_ext step_magic",
            f"%%step --effort high\n{HOSTILE}",
            "%%step --model fault-drop-answer\nThis one breaks",
        ],
        path,
    )
    return notebook, path


def test_the_saved_notebook_holds_static_outputs_only(saved: tuple[Any, Path]) -> None:
    notebook, _ = saved
    nbformat.validate(notebook)
    for cell in notebook.cells:
        for output in cell.outputs:
            assert WIDGET_VIEW not in output.get("data", {})
    reasoning, answer, footer = notebook.cells[1].outputs
    assert reasoning.data["text/html"].startswith('<details class="step-magic-reasoning">')
    assert "Thought for" in reasoning.data["text/html"]
    assert answer.data["text/markdown"].startswith("##")
    assert re.search(r"trace id <code[^>]*>[0-9a-f]{32}</code>", footer.data["text/html"])
    assert "step-3.7-flash · effort high" in footer.data["text/plain"]


def test_everything_the_model_wrote_is_escaped(saved: tuple[Any, Path]) -> None:
    notebook, _ = saved
    reasoning, answer, _footer = notebook.cells[1].outputs
    html = reasoning.data["text/html"]
    assert "<script" not in html
    assert "<img" not in html
    assert html.count("</details>") == 1
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    markdown = answer.data["text/markdown"]
    assert "<script" not in markdown
    assert "<img" not in markdown
    assert "&lt;script>window.__pwned=1&lt;/script>" in markdown


def test_a_failed_call_is_saved_with_its_partial_reply_and_one_line_error(
    saved: tuple[Any, Path],
) -> None:
    notebook, _ = saved
    outputs = notebook.cells[2].outputs
    error = outputs[-1]
    assert error.output_type == "error"
    assert error.ename == "StepAPIError"
    assert len(error.traceback) == 1
    reasoning, answer, footer = outputs[:3]
    assert reasoning.data["text/html"].startswith("<details")
    assert answer.data["text/markdown"]
    assert "incomplete" in footer.data["text/plain"]


def test_the_reasoning_is_stored_once_and_the_key_never(saved: tuple[Any, Path]) -> None:
    notebook, path = saved
    text = path.read_text()
    assert TEST_KEY not in text
    first_sentence = "The request is for step-3.7-flash with reasoning effort high."
    assert first_sentence in notebook.cells[1].outputs[0].data["text/html"]
    assert text.count(first_sentence) == 1
    assert "reasoning effort" not in json.dumps(notebook.metadata)


def test_nbconvert_renders_the_saved_form_without_scripts(saved: tuple[Any, Path]) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(saved[0])
    assert '<details class="step-magic-reasoning">' in body
    assert "window.__pwned=1</script>" not in body
    assert "onerror=alert(1)>" not in body
