"""The model's Markdown is shown formatted, but nothing it writes becomes live markup."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from step_magic.core.answers import code_blocks
from step_magic.display.markdown import answer_html, safe_markdown

TAGS = {
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "pre", "code", "em", "strong",
    "a", "img", "blockquote", "hr", "br", "table", "thead", "tbody", "tr", "th", "td", "s",
    "span",
}  # fmt: skip
ATTACKS = [
    "\\`<img src=x onerror=alert(1)>`",
    "``<img src=x onerror=alert(1)>`",
    "- item\n  ```\n<img src=x onerror=alert(1)>\n```\n",
    "[c](&#106;avascript:alert(1))",
    "[c](javascript&#58;alert(1))",
    "[c](\njavascript:alert(1))",
    "[c]:\njavascript:alert(1)\n\n[c]",
    '<https://x.y/"onmouseover=alert(1)>',
    "![x](javascript:alert(1))",
    '[t](https://x.y "a\\" onmouseover=alert(1)")',
    "<details><summary>x</summary><script>alert(1)</script></details>",
    "&#60;script&#62;alert(1)&#60;/script&#62;",
]


def _script_url(url: str) -> bool:
    """What a browser runs: it drops tabs and newlines anywhere in a URL and leading
    controls and spaces, then reads the scheme up to the colon (``%E2%80%8B`` is no
    scheme, and ``javascript&#58;`` has no colon once the parser has decoded it)."""
    cleaned = re.sub(r"[\t\n\r]", "", url).lstrip("".join(map(chr, range(33)))).lower()
    return cleaned.startswith(("javascript:", "vbscript:", "data:text"))


class _Markup(HTMLParser):
    """Collects what a browser would treat as markup: tags and their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or (
                name in ("style", "srcdoc") and tag not in ("span", "pre", "code")
            ):
                self.problems.append(f"{tag} {name}")
            if name in ("href", "src") and _script_url(value or ""):
                self.problems.append(f"{tag} {name}={value}")


def live_markup(html: str) -> list[str]:
    """Tags outside what the Markdown renderer itself produces, and script-capable bits."""
    parser = _Markup()
    parser.feed(html)
    return parser.problems


@pytest.mark.parametrize("attack", ATTACKS)
def test_known_sanitiser_bypasses_render_as_text(attack: str) -> None:
    assert live_markup(answer_html(attack)) == []


# Code spans the copy keeps as written must be the ones a renderer finds: these pair
# backticks across blocks, table cells, escapes and a paragraph that could swallow code.
SPAN_ATTACKS = [
    "`a\n\n<img src=x onerror=alert(1)>\n\nb`",
    "<!-- x -->\n    <img src=x onerror=alert(1)>",
    "| `<img src=x onerror=alert(1)> | b` |\n|---|---|\n| 1 | 2 |",
    "| a | b |\n|---|---|\n| `<img src=x onerror=alert(1)> | b` |",
    "> `x\n<img src=x onerror=alert(1)>`",
    "`a`<img src=x onerror=alert(1)>`",
    "\\\\`<img src=x onerror=alert(1)>`",
    "\\`` `<img src=x onerror=alert(1)>` ``",
    "$<img src=x onerror=alert(1)>$ and $[c](javascript:alert(1))$",
    "# `<b>` title\n<img src=x onerror=alert(1)>",
    "[a](`x) <img src=x onerror=alert(1)> `",  # a backtick in a link's address is no span
    "[a](/u '`') <script>alert(1)</script> `",
    "[a](<`x>) <img src=x onerror=alert(1)> `",
    "x\u2028\u2028\u2028\n\n<script>alert(1)</script>\n\n```\na\nb\n```\n",  # line ends
    "x\x0c\x0c\n\n<script>alert(1)</script>\n\n```\na\n```\n",
    "$[a](javascript&#58;alert(1))$",  # an entity inside maths
    "[a](javascript\\:alert(1)) and [b]: vbscript\\:x\n\n[b]",  # an escaped colon
]


def unsanitised(markdown: str) -> str:
    """What a Markdown renderer that passes raw HTML through and checks no link makes of
    ``markdown`` (a trusted output in JupyterLab is rendered without a sanitiser)."""
    from markdown_it import MarkdownIt

    renderer = MarkdownIt("commonmark", {"html": True}).enable(["table"])
    renderer.validateLink = lambda url: True  # type: ignore[method-assign]  # as marked does
    return str(renderer.render(markdown))


@pytest.mark.parametrize("attack", ATTACKS + SPAN_ATTACKS)
def test_the_markdown_copy_is_inert_even_where_raw_html_is_rendered(attack: str) -> None:
    assert live_markup(unsanitised(safe_markdown(attack))) == []


@settings(max_examples=300)
@given(
    st.text(
        alphabet=st.sampled_from(list("<>/=\"'`&#;:()[]!*_-|$\\\n\r\f\u2028\t abcjsvriptonerlmg"))
    )
)
def test_no_text_can_make_the_markdown_copy_live(text: str) -> None:
    assert live_markup(unsanitised(safe_markdown(text))) == []


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(list("<>/=\"'`&#;:()[]!*_-\n abcjsvriptonerlmg"))))
def test_no_text_can_produce_live_markup(text: str) -> None:
    assert live_markup(answer_html(text)) == []


def test_formatting_survives() -> None:
    html = answer_html("# Title\n\n- one\n- **two**\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert "<h1>Title</h1>" in html
    assert "<li><strong>two</strong></li>" in html
    assert "<td>1</td>" in html


def test_maths_is_kept_for_mathjax_with_its_symbols_escaped() -> None:
    html = answer_html("Since $a_1 < b_2$ and $$x^2 > 0$$, done; `$not math$`.")
    assert "$a_1 &lt; b_2$" in html
    assert "$$x^2 &gt; 0$$" in html


def test_code_keeps_its_characters_and_is_highlighted() -> None:
    html = answer_html("```python\nif a < b:\n    pass\n```")
    assert '<code class="language-python"' in html
    assert "&lt;" in html
    assert 'color: var(--jp-mirror-editor-keyword-color, #008000)">if</span>' in html
    assert code_blocks("text\n```python\nif a < b:\n    pass\n```\n") == [
        ("python", "if a < b:\n    pass\n")
    ]
