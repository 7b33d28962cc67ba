"""How the panel looks in a real browser: the live answer and reasoning look like the final
ones, the header says the phase, and code, footer and warnings are readable in
JupyterLab's light and dark themes (WCAG contrast measured on computed colours).

Same JupyterLab-in-Chromium set-up as ``test_browser.py`` (its fixtures are reused).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import Page, expect

from step_magic.core.cassette import Cassette, RecordedReply
from step_magic.core.request import ChatRequest
from step_magic.core.result import StepResult
from step_magic.display.bundles import answer_bundle, footer_bundle
from step_magic.server import LocalServer

from .browser import CHROMIUM, JupyterServer, NotebookPage
from .test_browser import ARTIFACTS, open_notebook

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing"),
]
TYPE = "(p) => [getComputedStyle(p).fontSize, getComputedStyle(p).lineHeight]"
CHANGE_THEME = "(theme) => window.jupyterapp.commands.execute('apputils:change-theme', {theme})"
ANSWERING = re.compile(r"^Thought for [\d.]+ s · answering…$")
FONT = "(box) => [getComputedStyle(box).fontFamily, getComputedStyle(box).fontSize]"
# Every text-bearing element under ``root``: its colour, the colour behind it, its opacity.
COLOURS = """(root) => {
    const opaque = (c) => c && !/rgba\\(.*,\\s*0\\)$/.test(c) && c !== 'transparent';
    const behind = (el) => {
        for (let e = el; e; e = e.parentElement) {
            const bg = getComputedStyle(e).backgroundColor;
            if (opaque(bg)) return bg;
        }
        return 'rgb(255, 255, 255)';
    };
    const opacity = (el) => {
        let o = 1;
        for (let e = el; e; e = e.parentElement) o *= parseFloat(getComputedStyle(e).opacity);
        return o;
    };
    return [...root.querySelectorAll('p, span, div, code, summary, button')]
        .filter((el) => [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim()))
        .map((el) => ({text: el.textContent.trim().slice(0, 30),
                       colour: getComputedStyle(el).color, behind: behind(el),
                       opacity: opacity(el)}));
}"""


def rgb(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in re.findall(r"[\d.]+", text)[:3])


def contrast(fore: str, back: str, opacity: float) -> float:
    """WCAG 2 contrast ratio of ``fore`` drawn at ``opacity`` over ``back``."""
    front, rear = rgb(fore), rgb(back)
    seen = tuple(f * opacity + b * (1 - opacity) for f, b in zip(front, rear, strict=True))

    def luminance(colour: tuple[float, ...]) -> float:
        linear = [
            c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
            for c in (v / 255 for v in colour)
        ]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(seen), luminance(rear)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def poorly_contrasted(found: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """The texts of ``COLOURS`` under 4.5:1 (WCAG AA), with their ratios."""
    ratios = [
        (item["text"], contrast(item["colour"], item["behind"], item["opacity"])) for item in found
    ]
    return [(text, round(ratio, 2)) for text, ratio in ratios if ratio < 4.5]


def test_the_live_panel_looks_like_the_final_form(
    page: Page, jupyter: JupyterServer, server: LocalServer
) -> None:
    server.config.tokens_per_second = 150
    server.config.reasoning_tokens = 1_500
    server.config.answer_tokens = 600
    view = open_notebook(page, jupyter, "follow.ipynb", "%%step\nWhy is the sky blue?")
    view.run_cell(1)
    panel = view.output(1).locator("details.step-magic-live")
    header = panel.locator("summary")
    header.click()
    live_box = panel.locator(":scope > div")
    expect(live_box).to_be_visible()
    live_font = live_box.evaluate(FONT)
    expect(header).to_have_text(ANSWERING, timeout=30_000)
    # Read in one script, so the paragraph cannot be re-rendered between finding and reading.
    live_type = page.wait_for_function(
        "() => { const p = document.querySelector('.step-magic-live-answer p');"
        " const s = p && p.isConnected ? getComputedStyle(p) : null;"
        " return s && s.fontSize ? [s.fontSize, s.lineHeight] : null; }",
        timeout=30_000,
    ).json_value()
    view.wait_until_ran(1)
    final = view.answer(1).locator("p").first
    final_type = final.evaluate(TYPE)
    assert live_type == final_type
    saved = view.output(1).locator("details.step-magic-reasoning > div")
    assert saved.evaluate(FONT) == live_font  # one font live and saved: nothing reflows
    code = view.answer(1).locator("pre").first  # long code lines scroll, never wrap
    scrolls = code.evaluate(
        "(p) => [getComputedStyle(p).whiteSpace, getComputedStyle(p).overflowX]"
    )
    assert scrolls == ["pre", "auto"]


def saved_reply(path: Path) -> None:
    answer = (
        "Here is the fix:\n\n```python\nimport os\n\n\n@cache\ndef total(rows: list[int]) -> int:"
        '\n    """Sum."""\n    # a comment\n    return sum(rows) + 1 if rows else None\n```\n'
    )
    result = StepResult(
        model="step-3.7-flash", effort="high", answer=answer, status="interrupted",
        trace_id="0123456789abcdef0123456789abcdef",
    )  # fmt: skip
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    cell = nbformat.v4.new_code_cell("%%step\nFix it")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data=answer_bundle(result)),
        nbformat.v4.new_output("display_data", data=footer_bundle(result)),
    ]
    notebook.cells = [cell]
    nbformat.write(notebook, path)


def trust(path: Path, jupyter: JupyterServer) -> None:
    """Sign the notebook as its author's JupyterLab would on saving: its HTML is not sanitised."""
    env = {**os.environ, "JUPYTER_DATA_DIR": str(jupyter.base / "data")}
    command = [sys.executable, "-m", "nbformat.sign", str(path)]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted", "untrusted"])
@pytest.mark.parametrize("theme", ["JupyterLab Light", "JupyterLab Dark"])
def test_code_footer_and_warnings_are_readable_in_light_and_dark(
    page: Page, jupyter: JupyterServer, theme: str, trusted: bool
) -> None:
    """Trusted (the author's own notebook, or the live session) the code takes the theme's
    editor colours; untrusted, JupyterLab's sanitiser drops ``var()`` colours and the code
    keeps the text colour. Either way every text meets 4.5:1."""
    saved = jupyter.root / f"contrast-{trusted}.ipynb"
    saved_reply(saved)
    if trusted:
        trust(saved, jupyter)
    view = NotebookPage(page, jupyter, saved.name, ARTIFACTS)
    view.open_without_kernel()
    output = view.output(0)
    expect(output.locator("pre code span").first).to_be_visible()
    try:
        page.evaluate(
            f"window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{theme}'}})"
        )
        expect(page.locator("body")).to_have_attribute("data-jp-theme-name", theme)
        page.wait_for_timeout(500)  # the theme's stylesheet applies
        found: list[dict[str, Any]] = output.evaluate(COLOURS)
        texts = [item["text"] for item in found]
        assert any(t.startswith("def") for t in texts)
        assert any("interrupted" in t for t in texts)
        assert any(t.startswith("step-3.7-flash") for t in texts)
        poor = poorly_contrasted(found)
        view.screenshot(f"8-contrast-{theme.split()[-1].lower()}-{trusted}", cell=0)
        assert poor == [], str(poor)
        code_colours = {item["colour"] for item in found if item["text"] in ("def", "import")}
        body = {item["colour"] for item in found if item["text"].startswith("Here is")}
        assert (code_colours != body) is trusted  # keywords coloured only when trusted
    finally:
        page.evaluate(CHANGE_THEME, "JupyterLab Light")


def test_a_comparison_shows_its_columns_side_by_side(
    page: Page, jupyter: JupyterServer, server: LocalServer
) -> None:
    server.config.tokens_per_second = 200
    server.config.reasoning_tokens = 600
    cell = "%%step --effort low,high\nWhy does the Moon always show us the same face?"
    view = open_notebook(page, jupyter, "compare.ipynb", cell)
    view.run_cell(1)
    live = view.output(1).locator(".step-magic-compare-live .step-magic-column")
    expect(live).to_have_count(2, timeout=30_000)  # a live column per effort, side by side
    expect(live.nth(1)).to_contain_text(re.compile(r"Thinking… [\d,]+ chars"), timeout=30_000)
    expect(live.nth(1)).to_contain_text("reasoning effort high")  # its own reasoning
    view.screenshot("9-compare-streaming", cell=1)
    view.wait_until_ran(1)
    columns = view.output(1).locator(".step-magic-column")
    expect(columns).to_have_count(2)
    left, right = (columns.nth(i).bounding_box() for i in range(2))
    assert left is not None
    assert right is not None
    assert abs(left["y"] - right["y"]) < 2  # one row, two columns
    assert right["x"] > left["x"] + left["width"] - 1
    view.screenshot("10-compare-final", cell=1)


# Counts the frames in which a finished paragraph shows twice: the newest finished block's
# first words still inside the visible unfinished tail below it.
COUNT_DOUBLED_FRAMES = """() => {
    window.__frames = 0; window.__doubled = 0;
    const tick = () => {
        const box = document.querySelector('.step-magic-live-answer');
        if (box) {
            window.__frames += 1;
            const [blocks, tail] = box.children;
            const done = blocks.querySelectorAll('p');
            const last = done.length ? done[done.length - 1].innerText.trim() : '';
            const head = last.slice(0, 40);
            if (head && tail.innerText.includes(head)) window.__doubled += 1;
        }
        requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
}"""


def test_a_finished_paragraph_never_shows_twice_while_the_answer_streams(
    page: Page, jupyter: JupyterServer, server: LocalServer, tmp_path: Path
) -> None:
    prompt = "Tell me thirty things"
    paragraphs = [
        f"Paragraph {n}: " + " ".join(f"word{n}x{i}" for i in range(14)) for n in range(30)
    ]
    request = ChatRequest("step-3.7-flash", ({"role": "user", "content": prompt},))
    reply = RecordedReply("A short thought.", "\n\n".join(paragraphs), "stop", None, None, None)
    cassette = tmp_path / "paragraphs.jsonl"
    Cassette(cassette).store(request.cache_key(), request, reply)
    server.config.cassette = str(cassette)
    server.config.tokens_per_second = 120
    view = open_notebook(page, jupyter, "doubled.ipynb", f"%%step --no-memory\n{prompt}")
    page.evaluate(COUNT_DOUBLED_FRAMES)
    view.run_and_wait(1)
    frames, doubled = page.evaluate("() => [window.__frames, window.__doubled]")
    assert frames > 30  # the sampler saw the answer stream
    assert doubled == 0, f"a finished paragraph showed twice in {doubled} of {frames} frames"
    expect(view.output(1)).to_contain_text("Paragraph 29: word29x0")


def test_a_comparison_fits_a_narrow_window_with_the_file_browser_open(
    browser: Any, jupyter: JupyterServer
) -> None:
    """At 600 px with the file browser open, each column fits the output area (they stack)."""
    from step_magic.core.comparison import Comparison
    from step_magic.display.compare import comparison_bundle

    results = tuple(
        StepResult("step-3.7-flash", effort, answer=f"An answer at effort {effort}. " * 20)
        for effort in ("low", "high")
    )
    comparison = Comparison("Why?", ("effort low", "effort high"), results)
    saved = jupyter.root / "narrow-compare.ipynb"
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    cell = nbformat.v4.new_code_cell("%%step --effort low,high\nWhy?")
    cell.outputs = [nbformat.v4.new_output("display_data", data=comparison_bundle(comparison))]
    notebook.cells = [cell]
    nbformat.write(notebook, saved)
    context = browser.new_context(viewport={"width": 600, "height": 900})
    try:
        view = NotebookPage(context.new_page(), jupyter, saved.name, ARTIFACTS)
        view.open_without_kernel()
        view.page.evaluate("() => window.jupyterapp.shell.activateById('filebrowser')")
        expect(view.page.locator("#filebrowser")).to_be_visible()
        columns = view.output(0).locator(".step-magic-column")
        expect(columns).to_have_count(2)
        view.page.wait_for_timeout(500)  # the layout settles after the sidebar opened
        area = view.output(0).locator(".jp-OutputArea-output").first.bounding_box()
        assert area is not None
        for index in range(2):
            box = columns.nth(index).bounding_box()
            assert box is not None
            assert box["x"] + box["width"] <= area["x"] + area["width"] + 1, (box, area)
        view.screenshot("11-compare-narrow", cell=0)
    finally:
        context.close()
