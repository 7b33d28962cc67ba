"""No answer text can make the renderer fetch, crash, stall or show forged text.

The renderer's promises, checked directly and with generated text: remote images become links
(a saved notebook must fetch nothing when opened), maths placeholders cannot be forged, the
maths scan is linear and finds what the old regular expression found, and whatever the text,
rendering returns the answer's words intact.
"""

from __future__ import annotations

import html
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from step_magic.core.answers import parse_json_answer
from step_magic.core.result import StepResult
from step_magic.display.bundles import answer_bundle
from step_magic.display.markdown import answer_html, safe_markdown
from step_magic.display.maths import maths_spans

# The expression the scanner replaced: right, but quadratic on unclosed openers.
OLD_MATHS = re.compile(
    r"\$\$.+?\$\$|\\\[.+?\\\]|(?<![\\$\w])\$[^\s$][^$\n]*?(?<![\s\\])\$(?!\w)", re.S
)
ADVERSARIAL = ["\\[a", "$$a", "$a ", "$a\n", "\\]$", "![a", "[a](", "*a_", "`a", "> "]


def pieces(alphabet: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(alphabet), max_size=60).map("".join)


def sources(html_text: str) -> list[str]:
    return re.findall(r'<img[^>]*src="([^"]*)"', html_text)


@pytest.mark.parametrize(
    "answer",
    [
        "![chart](http://tracker.example/t.png?id=x)",
        "![chart](HTTPS://tracker.example/t.png)",
        "![chart](//tracker.example/t.png)",
        "![chart](t.png)",
        "![chart][ref]\n\n[ref]: http://tracker.example/t.png",
        "[![chart](http://tracker.example/t.png)](http://example.org)",
    ],
)
def test_an_image_from_elsewhere_becomes_a_link_naming_it(answer: str) -> None:
    rendered = answer_html(answer)
    assert sources(rendered) == []
    assert "[image: chart — " in rendered
    assert "<a href=" in rendered


def test_the_link_says_which_host_the_image_is_on() -> None:
    rendered = answer_html("![sales *chart*](http://tracker.example/t.png?id=x)")
    assert "[image: sales chart — tracker.example]</a>" in rendered
    assert 'rel="noreferrer noopener"' in rendered


def test_data_images_fetch_nothing_and_stay_images() -> None:
    pixel = "data:image/png;base64,iVBORw0KGgo="
    assert sources(answer_html(f"![dot]({pixel})")) == [pixel]


def test_remote_images_load_only_when_asked_for() -> None:
    answer = "![chart](http://tracker.example/t.png)"
    assert sources(answer_html(answer, remote_images=True)) == ["http://tracker.example/t.png"]
    assert "![chart]" in safe_markdown(answer, remote_images=True)
    result = StepResult(model="m", effort=None, answer=answer, remote_images=True)
    assert sources(answer_bundle(result)["text/html"]) == ["http://tracker.example/t.png"]


def test_the_markdown_copy_has_no_image_syntax() -> None:
    copy = safe_markdown("See ![chart](http://tracker.example/t.png) and ![x][r]\n\n[r]: //t/x")
    assert "![" not in copy
    assert "!\\[chart](http://tracker.example/t.png)" in copy


@pytest.mark.parametrize(
    "answer",
    [
        "A literal STEPMAGICMATH7END in the text",
        "$x^2$ and then STEPMAGICMATH0END",
        "$a$ STEPMAGICMATHQEND STEPMAGICMATHAAAAAAAAAAQEND",
    ],
)
def test_placeholder_lookalikes_in_the_answer_are_shown_as_written(answer: str) -> None:
    rendered = html.unescape(answer_html(answer))
    assert re.sub(r"<[^>]+>", "", rendered).strip() == answer


def test_maths_inside_highlighted_code_comes_back_whole() -> None:
    rendered = answer_html("```python\nprice = '$a$' + '$b$'\n```")
    text = html.unescape(re.sub(r"<[^>]+>", "", rendered))
    assert "price = '$a$' + '$b$'" in text


def test_a_json_bomb_is_not_json_rather_than_a_crash() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json_answer("[" * 100_000)
    result = StepResult(model="m", effort=None, answer="[" * 100_000, display_format="json")
    assert answer_bundle(result) == {"text/plain": "[" * 100_000}


def test_an_answer_the_renderer_cannot_handle_is_shown_as_escaped_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(text: str, **_: object) -> str:
        raise RecursionError("deep")

    monkeypatch.setattr("step_magic.display.markdown.answer_html", broken)
    bundle = answer_bundle(StepResult(model="m", effort=None, answer="# <b>kept</b>"))
    shown = bundle["text/html"]
    assert '<pre style="white-space: pre-wrap"># &lt;b&gt;kept&lt;/b&gt;</pre>' in shown


@settings(max_examples=400)
@given(pieces([*list("$\\[]a_ \n\t2é"), "$$", "\\[", "\\]"]))
def test_the_maths_scan_finds_what_the_old_expression_found(text: str) -> None:
    old = [match.span() for match in OLD_MATHS.finditer(text)]
    assert list(maths_spans(text)) == old


@settings(max_examples=300, deadline=None)
@given(pieces([*list("$\\[]*_#>!-= \nabcXYZ"), "STEPMAGICMATH", "QEND"]))
def test_rendering_never_raises_and_keeps_every_letter(text: str) -> None:
    rendered = html.unescape(re.sub(r"<[^>]+>", "", answer_html(text)))
    assert re.sub(r"[^A-Za-z]", "", rendered) == re.sub(r"[^A-Za-z]", "", text)


@pytest.mark.parametrize("unit", ADVERSARIAL)
def test_the_maths_scan_is_linear_on_adversarial_text(unit: str) -> None:
    """480 KB of an unclosed opener: the old expression needed minutes, the scan needs
    well under a second; the bound leaves a wide margin for a busy machine (ratios measured
    side by side are in benchmarks/render_bench.py)."""
    text = unit * (480_000 // len(unit))
    started = time.perf_counter()
    list(maths_spans(text))
    assert time.perf_counter() - started < 5.0


def test_tool_arguments_nested_too_deeply_are_bad_json_not_a_crash() -> None:
    from step_magic.core.toolrecords import ToolCall, signature

    call = ToolCall("call_1", "lookup", "[" * 100_000)
    assert signature(call).startswith("lookup(")
    assert call.entry()["function"]["arguments"] == "{}"
