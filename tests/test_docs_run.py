"""Every code block in README.md and docs/*.md runs as written, against the bundled server.

A reader pastes the README's Python blocks into one notebook, top to bottom: they run here in
that order in one real kernel, in a folder holding the files the shell examples name
(``sales.csv``, ``chart.png``, ``notes.txt``, ``mytools.py``). Each Python block of
``docs/*.md`` is a script of its own, so each must carry its own imports. Each shell block
runs in ``bash`` with the package's commands on ``PATH``. The key and base URL come from the
environment, as a user's would, and point at the bundled simulator.

A block that cannot run here (it installs packages, holds a placeholder, or is the suite's
own command) says so just above itself: ``<!-- excerpt: why -->``; a cell that shows a failure
on purpose says which: ``<!-- raises: KeyError -->``. A block that is not code is
marked ``text``. ``test_every_block_is_run_or_marked`` keeps it that way: a new block that is
neither fails the suite.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from step_magic.server import LocalServer

from .conftest import kernel_env

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOTEBOOK_DOCS = {"README.md"}  # the README is read as one notebook session
RUN = {"python", "bash"}
NOT_CODE = {"text"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")
EXCERPT = re.compile(r"<!--\s*excerpt:\s*(?P<why>.+?)\s*-->", re.DOTALL)
RAISES = re.compile(r"<!--\s*raises:\s*(?P<error>\w+)\s*-->")


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced block of a document: where it is, its language, its text, why it is not run."""

    doc: Path
    line: int
    lang: str
    text: str
    excerpt: str | None
    raises: str | None = None  # a cell that shows a failure on purpose, and which

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


def blocks(doc: Path) -> list[Block]:
    """The fenced blocks of ``doc``, read by the same Markdown parser the package renders with."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(doc.read_text(encoding="utf-8"))
    found = []
    for index, token in enumerate(tokens):
        if token.type != "fence":
            continue
        before = tokens[index - 1] if index else None
        comment = before.content if before and before.type == "html_block" else ""
        marker, raises = EXCERPT.search(comment), RAISES.search(comment)
        line = (token.map or [0])[0] + 1
        lang = token.info.split()[0] if token.info.strip() else ""
        why = marker.group("why") if marker else None
        error = raises.group("error") if raises else None
        found.append(Block(doc, line, lang, token.content, why, error))
    return found


ALL = [block for doc in DOCS for block in blocks(doc)]


def runnable(doc_name: str, lang: str) -> list[Block]:
    return [b for b in ALL if b.doc.name == doc_name and b.lang == lang and b.excerpt is None]


def test_every_block_is_run_or_marked() -> None:
    """A block is Python or shell (and run), marked as an excerpt with a reason, or ``text``."""
    unclear = [
        f"{block.where}: ```{block.lang or '(no language)'}"
        for block in ALL
        if block.lang not in RUN | NOT_CODE
    ]
    assert not unclear, "say what these blocks are (python, bash or text):\n" + "\n".join(unclear)
    assert sum(b.excerpt is None and b.lang in RUN for b in ALL) >= 20  # the parser found them


MYTOOLS = '''"""The reader's own module, as the shell examples name it (mytools:stock)."""
from pydantic import BaseModel


def stock(item: str) -> int:
    """How many of ``item`` are left in the shop."""
    return {"apples": 12, "pears": 3}.get(item, 0)


class Review(BaseModel):
    label: str
    stars: int
'''


@pytest.fixture
def reader_folder(tmp_path: Path) -> Path:
    """A folder with the files the examples name, as the reader's own would hold them."""
    import numpy as np
    from PIL import Image

    folder = tmp_path / "reader"
    folder.mkdir()
    months = ["2026-01", "2026-02", "2026-03", "2026-04"]
    rows = [f"{m},{r}" for m, r in zip(months, [120.0, 118.5, 87.5, 121.0], strict=True)]
    (folder / "sales.csv").write_text("month,revenue\n" + "\n".join(rows) + "\n")
    (folder / "notes.txt").write_text("Revenue fell in March; the shop was shut for a week.\n")
    (folder / "mytools.py").write_text(MYTOOLS)
    bars = np.zeros((60, 80, 3), dtype=np.uint8)
    bars[20:, 10:25], bars[22:, 30:45], bars[40:, 50:65] = 200, 190, 120
    Image.fromarray(bars).save(folder / "chart.png")
    return folder


@pytest.fixture
def reader_env(api_env: LocalServer, tmp_path: Path) -> dict[str, str]:
    """The environment a reader with a key has: here it points at the bundled simulator."""
    env = kernel_env(api_env, tmp_path)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT)
    env["STEP_MAGIC_CONFIG_DIR"] = str(tmp_path / "config")  # where `step-magic key set` writes
    return env


def _cell_errors(notebook: object, blocks: list[Block]) -> list[str]:
    """Every cell that failed unless its block says it raises, or did not raise what it says."""
    problems = []
    for cell, block in zip(getattr(notebook, "cells", []), blocks, strict=True):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        names = [o.get("ename") for o in errors]
        if block.raises is not None:
            if names != [block.raises]:
                problems.append(f"{block.where}: raised {names}, not [{block.raises}]")
            continue
        for output in errors:
            traceback = ANSI.sub("", "\n".join(output.get("traceback", [])))[-1500:]
            problems.append(f"{block.where} {cell.source[:80]!r}:\n{traceback}")
    return problems


def test_the_readme_runs_as_one_notebook(
    run_notebook_in: object, reader_folder: Path, reader_env: dict[str, str]
) -> None:
    """Every Python block of the README, in order, in one kernel: no cell fails."""
    cells = runnable("README.md", "python")
    assert len(cells) >= 10
    notebook = run_notebook_in([c.text for c in cells], reader_folder, reader_env)  # type: ignore[operator]
    problems = _cell_errors(notebook, cells)
    assert not problems, "\n\n".join(problems)
    answered = [
        c for c in notebook.cells if c.source.startswith("%%step\n") or "%%step " in c.source
    ]
    assert all(c.outputs for c in answered)


@pytest.mark.parametrize(
    "block",
    [b for b in ALL if b.lang == "python" and b.doc.name not in NOTEBOOK_DOCS and not b.excerpt],
    ids=lambda b: b.where,
)
def test_a_docs_python_block_runs_as_a_script(
    block: Block, reader_folder: Path, reader_env: dict[str, str]
) -> None:
    """Each block is a script of its own: its imports are its own."""
    done = subprocess.run(
        [sys.executable, "-c", block.text],
        cwd=reader_folder,
        env=reader_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{block.where} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "block", [b for b in ALL if b.lang == "bash" and not b.excerpt], ids=lambda b: b.where
)
def test_a_shell_block_runs(block: Block, reader_folder: Path, reader_env: dict[str, str]) -> None:
    """Each shell block runs in bash, stopping at the first failing command."""
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block.text],
        cwd=reader_folder,
        env=reader_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{block.where} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
    for target in re.findall(r">\s*(\S+\.(?:md|json))", block.text):  # what a block writes is there
        assert (reader_folder / target).read_text().strip()
