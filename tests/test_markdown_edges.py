"""The answer renderer at its edges: image links, code colours, unknown languages, the copy.

What a reader sees, exactly: a remote image is a link naming it and the host it would be
fetched from (as the address spells it); fenced code is coloured with the frontend's own
editor colours; the text/markdown copy escapes every line of prose and no line of code.
"""

from __future__ import annotations

import re

import pytest

from step_magic.display.markdown import _live, _runs_script, answer_html, code_spans, safe_markdown

CODE = ' style="background: transparent; padding: 0; white-space: pre">'


def colour(variable: str, fallback: str, text: str) -> str:
    return (
        f'<span style="color: var(--jp-mirror-editor-{variable}-color, {fallback})">{text}</span>'
    )


def image_label(answer: str) -> str:
    rendered = answer_html(answer)
    return rendered[rendered.index("[image: ") : rendered.index("]</a>") + 1]


# Images: a link naming the image and its host.


def test_an_image_with_no_address_is_a_link_to_nothing_naming_a_relative_address() -> None:
    rendered = answer_html("![chart]()")
    assert '<a href="" rel="noreferrer noopener">[image: chart — a relative address]</a>' in (
        rendered
    )


def test_an_image_with_no_description_is_called_untitled() -> None:
    assert image_label("![](http://x.example/a.png)") == "[image: untitled — x.example]"


def test_a_relative_image_says_so() -> None:
    assert image_label("![plot](plots/a.png)") == "[image: plot — a relative address]"


def test_an_address_python_cannot_read_is_named_unreadable() -> None:
    assert image_label("![x](http://[g::1]/a.png)") == "[image: x — an unreadable address]"


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("http://EVIL.example@evil.example/x.png", "evil.example"),  # not the user part
        ("http://a@evil.example@EVIL.example/x.png", "EVIL.example"),  # after the last @
        ("http://Tracker.Example:8080/x.png", "Tracker.Example"),  # as written, no port
        ("http://ab:AB/x.png", "ab"),  # a port spelled like the host is not the host
        ("http://[::1]]/x.png", "::1%5D"),  # a zone the address spells otherwise
    ],
)
def test_the_host_named_is_the_one_the_address_would_reach_as_written(
    address: str, host: str
) -> None:
    assert image_label(f"![x]({address})") == f"[image: x — {host}]"


def test_remote_images_when_allowed_keep_their_description() -> None:
    rendered = answer_html("![a *bold* chart](http://x.example/a.png)", remote_images=True)
    assert '<img src="http://x.example/a.png" alt="a bold chart" />' in rendered


# Code: the frontend's colours, comments in italics, unknown languages as plain text.


def test_code_tokens_take_the_editor_colours_with_light_fallbacks() -> None:
    rendered = answer_html('```python\n# note\nx = True + print("s") and y\n```')
    assert (
        f'<code class="language-python"{CODE}<span style="font-style: italic"># note</span>\n'
        in (rendered)
    )
    assert "<span>x</span> " in rendered
    assert colour("operator", "#aa22ff", "=") in rendered
    assert colour("keyword", "#008000", "True") in rendered  # a keyword constant
    assert colour("builtin", "#008000", "print") in rendered
    assert colour("string", "#ba2121", '"s"') in rendered  # a double-quoted string
    assert colour("keyword", "#008000", "and") in rendered  # a word operator
    assert "<div" not in rendered
    assert 'class="' not in rendered.replace('<code class="language-python"', "")


def test_html_tags_are_coloured_as_tags_and_attributes() -> None:
    rendered = answer_html('```html\n<a href="x">\n```')
    assert "<span>&lt;</span>" + colour("tag", "#117700", "a") in rendered
    assert colour("attribute", "#0000cc", "href") in rendered


def test_code_in_an_unknown_language_is_shown_escaped_and_uncoloured() -> None:
    rendered = answer_html("```notalanguage\n<b>x</b> & y\n```")
    expected = (
        f'<code class="language-notalanguage"{CODE}&lt;b&gt;x&lt;/b&gt; &amp; y\n</code></pre>'
    )
    assert expected in rendered
    assert "<span" not in rendered


def test_a_fence_with_no_language_has_no_language_class_and_no_colours() -> None:
    rendered = answer_html("```\nif a < b:\n    pass\n```")
    assert f"<code{CODE}if a &lt; b:\n    pass\n</code></pre>" in rendered
    assert "language-" not in rendered


# Links: script-capable schemes never become links, whatever their spelling.


@pytest.mark.parametrize(
    "address",
    ["javascript:alert(1)", "JavaScript:alert(1)", "vbscript:msgbox(1)", "file:///etc/passwd"],
)
def test_script_and_file_links_are_shown_as_text(address: str) -> None:
    rendered = answer_html(f"[click]({address})")
    assert "<a " not in rendered


@pytest.mark.parametrize(
    ("prose", "copy"),
    [
        ("[a](javascript:x)", "[a](javascript\u200b:x)"),
        ("[a](JaVaScRiPt :x)", "[a](JaVaScRiPt \u200b:x)"),
        ("[a](vbscript:x)", "[a](vbscript\u200b:x)"),
        ("[a](data:text/html,x)", "[a](data\u200b:text/html,x)"),
        ("[a](file:///etc)", "[a](file\u200b:///etc)"),
        ("[a](https://x.example)", "[a](https://x.example)"),
    ],
)
def test_the_markdown_copy_breaks_every_script_scheme_and_no_other(prose: str, copy: str) -> None:
    assert safe_markdown(prose) == copy


# The text/markdown copy: prose escaped line by line, fenced code verbatim.


def test_every_line_of_a_long_paragraph_is_escaped_in_the_markdown_copy() -> None:
    prose = "one <b>\ntwo <i> & ![x](y)\nthree <u>\n"
    assert safe_markdown(prose) == "one &lt;b>\ntwo &lt;i> &amp; !\\[x](y)\nthree &lt;u>\n"


def test_the_markdown_copy_keeps_fenced_code_and_newlines_exactly() -> None:
    answer = "Run <this>:\n\n```python\nif a < b & c:\n    print('![x](y)')\n```\nDone <ok>\r\n"
    assert safe_markdown(answer) == (
        "Run &lt;this>:\n\n```python\nif a < b & c:\n    print('![x](y)')\n```\nDone &lt;ok>\r\n"
    )


def test_the_markdown_copy_is_the_answer_as_written_where_nothing_could_be_live() -> None:
    """Code spans show their text literally, so ``&lt;`` there would be shown as such; maths
    gets ``\\lt`` (MathJax reads it as ``<``); prose that only names a scheme is kept."""
    answer = "Use `a < b && c > d` … $a<b$ and $x & y$ … javascript: is a word.\n"
    assert safe_markdown(answer) == (
        "Use `a < b && c > d` … $a\\lt b$ and $x & y$ … javascript: is a word.\n"
    )


def test_code_in_headings_lists_quotes_and_indented_blocks_is_kept() -> None:
    answer = (
        "# The `<T>` type\n\n- call `f(a<b)`\n\n> quote `x && y`\n\n    if a < b:\n"
        "        pass\n\ntext <b>\n"
    )
    assert safe_markdown(answer) == answer.replace("text <b>", "text &lt;b>")


def test_table_cells_and_unclosed_spans_are_escaped() -> None:
    """A table cell ends at a pipe, not at a backtick: its code is escaped like prose."""
    table = "| a | b |\n|---|---|\n| `x<y` | 2 |\n"
    assert safe_markdown(table) == table.replace("x<y", "x&lt;y")
    assert safe_markdown("`a < b") == "`a &lt; b"


def test_maths_placeholders_are_all_restored_in_order() -> None:
    rendered = answer_html(" ".join(f"${n} < x$" for n in range(12)))
    assert rendered == "<p>" + " ".join(f"${n} &lt; x$" for n in range(12)) + "</p>\n"


# The copy's code spans are the ones CommonMark pairs; its checker finds what would be live.


@pytest.mark.parametrize(
    ("answer", "copy"),
    [
        ("`<a>` `<b>`", "`<a>` `<b>`"),
        ("a `` <b> ` <c> `` d <e>", "a `` <b> ` <c> `` d &lt;e>"),  # a run closes its length
        ("\\`<a>` <b>`", "\\`&lt;a>` <b>`"),  # an escaped backtick opens nothing
        ("\\\\`<a>` <b>", "\\\\`<a>` &lt;b>"),  # an escaped backslash: the backtick opens
        (
            "x \\\\\\``<y>`` z",
            "x \\\\\\``&lt;y>`` z",
        ),  # three: one escaped, a run of one left, never closed
        ("`a` <b> \\`c` <d>`", "`a` &lt;b> \\`c` <d>`"),  # after a span, backslashes count
        ("``a` <b>", "``a` &lt;b>"),  # no closing run of two
        ("```\na<b\nc<d", "```\na<b\nc<d"),  # a fence left open keeps its last line
        ("```\na<b\n```\n<c>", "```\na<b\n```\n&lt;c>"),
        (
            "    if a < b:\n        pass\n\ntext <b>\n",
            "    if a < b:\n        pass\n\ntext &lt;b>\n",
        ),
        ("$a &#58; b$ and $x & y$", "$a &amp;#58; b$ and $x & y$"),  # an entity in maths
        ("[a](`x) <img src=x> `", "[a](`x) &lt;img src=x> `"),  # a link first: no span kept
        ("| a |\n|---|\n| <b> |\n```\nx<y\n```\n", "| a |\n|---|\n| &lt;b> |\n```\nx<y\n```\n"),
        ("| <b> |\n|---|\n\n    x<y\n", "| &lt;b> |\n|---|\n\n    x<y\n"),  # a table, then code
    ],
)
def test_the_markdown_copy_keeps_exactly_the_code_spans_a_renderer_finds(
    answer: str, copy: str
) -> None:
    assert safe_markdown(answer) == copy


@pytest.mark.parametrize(
    "answer",
    ["Write \\<b> for a tag", "\\&amp; is how HTML writes &", "a \\\\<b> c", "x \\\\\\<y> & z"],
)
def test_an_escaped_lt_or_amp_reads_in_the_copy_as_the_answer_wrote_it(answer: str) -> None:
    """``\\<b>`` is the text "<b>" to any renderer: the copy leaves it alone rather than
    showing "&lt;b>". The copy with raw HTML on reads as the answer with it off."""
    from markdown_it import MarkdownIt

    html_on, html_off = MarkdownIt("commonmark"), MarkdownIt("commonmark", {"html": False})

    assert html_on.render(safe_markdown(answer)) == html_off.render(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "see http://x.com/\\<img src=x onerror=alert(1)>",  # GitHub links the address
        "www.x.com\\<img src=x onerror=alert(1)>",
        "| a |\n|---|\n| http://x.com/\\<img src=x onerror=alert(1)> |\n",
        "[x](javascript\\&#58;alert(1))",  # marked decodes the entity in the address
        "[y](\\&#106;avascript:alert(1))",
    ],
)
def test_an_escaped_lt_or_amp_is_an_entity_where_a_renderer_ignores_the_backslash(
    answer: str,
) -> None:
    """Not every renderer takes ``\\<`` as an escape (an autolinked address swallows the
    backslash), so the copy holds no ``<`` and no ``&`` that is not an entity's own."""
    copy = safe_markdown(answer)

    assert "<" not in copy
    assert re.search(r"&(?!lt;|amp;)", copy) is None  # every & starts one of the two


def test_an_escaped_lt_is_no_markup_even_with_bare_addresses_linked() -> None:
    from markdown_it import MarkdownIt  # with linkify-it-py (the test extra) for "linkify"

    renderer = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable("linkify")
    copy = safe_markdown("see http://x.com/\\<img src=x onerror=alert(1)>")

    assert "<img" not in renderer.render(copy)


def test_code_spans_are_paired_as_commonmark_pairs_them() -> None:
    assert code_spans("`a` ``b`` `c") == [(0, 3), (4, 9)]
    assert code_spans("\\`a` b`") == [(3, 7)]
    assert code_spans("\\\\`a` b") == [(2, 5)]
    assert code_spans("`a\\` b") == [(0, 4)]  # no escape inside a span: it closes there


@pytest.mark.parametrize(
    ("copy", "images", "live"),
    [
        ("plain *text* and `<b>`", False, False),
        ("a <b>bold</b> word", False, True),
        ("<div>\nblock\n</div>", False, True),
        ("![a](https://x.example/a.png)", False, True),
        ("![a](https://x.example/a.png)", True, False),
        ("![a](javascript:alert(1))", True, True),
        ("[a](JavaScript:alert(1))", False, True),
        ("[a](https://x.example)", False, False),
    ],
)
def test_the_copy_checker_finds_markup_script_links_and_images(
    copy: str, images: bool, live: bool
) -> None:
    assert _live(copy, images) is live


@pytest.mark.parametrize(
    ("url", "runs"),
    [
        ("javascript:alert(1)", True),
        ("JAVASCRIPT:alert(1)", True),
        (" \x01javascript:alert(1)", True),  # leading controls and spaces are dropped
        ("java\tscr\nipt:alert(1)", True),  # and tabs and newlines anywhere
        ("vbscript:x", True),
        ("data:text/html,x", True),
        ("file:///etc/passwd", True),
        ("https://x.example/javascript:", False),
        ("javascript", False),
        ("x javascript:y", False),
    ],
)
def test_the_checker_reads_an_address_as_a_browser_does(url: str, runs: bool) -> None:
    assert _runs_script(url) is runs


def test_images_asked_for_stay_images_beside_code_and_in_tables() -> None:
    answer = "![a](https://x.example/a.png) `a<b`\n\n| ![c](https://x.example/c.png) |\n|---|\n"
    assert safe_markdown(answer, remote_images=True) == answer
