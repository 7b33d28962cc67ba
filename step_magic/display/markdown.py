"""The model's Markdown, made safe to show: rendered to HTML by a real parser, never by regex.

Jupyter renders trusted Markdown and HTML without sanitising, so markup from the model must
not reach the page. ``answer_html`` renders with markdown-it (CommonMark) with raw HTML
disabled (it is shown as text) and its link validation (``javascript:`` and friends dropped,
entity tricks decoded first); maths is set aside before parsing and put back escaped, so
MathJax still typesets it. ``safe_markdown`` is the text/markdown form for frontends that
prefer Markdown: the answer as written, its prose escaped, checked by parsing it again.

Images the model links to are not loaded unless the caller opts in: a saved notebook would
fetch them when opened, telling their host who opened it and from where. They become links
naming the image and its host; ``data:`` images, which fetch nothing, are shown.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import html
import re
import secrets
import string
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from step_magic.display.maths import maths_spans

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

# Placeholders are letters only (a code highlighter keeps an identifier whole) and carry a
# random part absent from the text, so no answer can forge or break one.
_DIGITS = "QRSTUVWXYZ"


@functools.cache
def _parser() -> MarkdownIt:
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False, "highlight": _highlight}).enable(
        ["table", "strikethrough"]
    )
    parser.add_render_rule("image", _image)
    return parser


def _image(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    """An image inline only if it fetches nothing (``data:``) or remote images are allowed;
    otherwise a link saying what the image is and where it lives, which loads on a click."""
    token = tokens[idx]
    source = str(token.attrGet("src") or "")
    if source.lower().startswith("data:image/") or env.get("remote_images"):
        return str(self.image(tokens, idx, options, env))
    alt = self.renderInlineAsText(token.children or [], options, env)
    host = _host(source)
    label = html.escape(f"[image: {alt or 'untitled'} — {host}]")
    return f'<a href="{html.escape(source)}" rel="noreferrer noopener">{label}</a>'


_PRE = (
    '<pre style="background: var(--jp-cell-editor-background, #f7f7f7); padding: 0.6em 0.8em;'
    " margin: 0.4em 0 0.8em; border-radius: 3px; overflow-x: auto; white-space: pre;"
    ' color: var(--jp-content-font-color1, inherit)">'
)
# Pygments token classes → the frontend's own editor colours, so code reads in light and dark
# themes alike (fixed light colours were 1.9:1 on JupyterLab Dark); the fallbacks are
# JupyterLab Light's, for nbviewer and nbconvert. Only the tokens whose JupyterLab colours
# reach 4.5:1 in both Light and Dark are coloured (its comment, number, decorator and
# function-name colours do not, measured in tests/test_browser_look.py); comments are
# italic instead. Inline styles, because a saved output's <style> may be stripped; an
# untrusted notebook's sanitiser drops ``var()`` colours, and the code keeps the text colour.
_TOKEN_COLOURS = {
    "k": ("keyword", "#008000"),
    "ow": ("keyword", "#008000"),  # ``and``, ``in``: words, coloured as keywords
    "s": ("string", "#ba2121"),
    "o": ("operator", "#aa22ff"),
    "nb": ("builtin", "#008000"),
    "bp": ("builtin", "#008000"),
    "nt": ("tag", "#117700"),
    "na": ("attribute", "#0000cc"),
}
_TOKEN = re.compile(r'<span class="([a-z0-9]+)">')


def _token_style(match: re.Match[str]) -> str:
    name = match.group(1)
    if name.startswith("c"):
        return '<span style="font-style: italic">'
    colour = _TOKEN_COLOURS.get(name) or _TOKEN_COLOURS.get(name[:1] if name[:1] in "ks" else "")
    if colour is None:
        return "<span>"
    variable, fallback = colour
    return f'<span style="color: var(--jp-mirror-editor-{variable}-color, {fallback})">'


def _highlight(code: str, language: str, attrs: Any) -> str:
    """Fenced code in a visible box that scrolls sideways (a wrapped row would read as a new
    line), coloured by Pygments with the theme's colours.

    A result starting with ``<pre`` is used as is by markdown-it; everything from the
    model in it is escaped here (Pygments escapes its tokens, and the only markup kept from
    it is the span classes, turned into fixed styles).
    """
    body = html.escape(code)
    if language:
        # HtmlFormatter from its submodule: ``pygments.formatters`` replaces itself in
        # sys.modules, and a thread importing it while another does (the warm-up) may get
        # the old module, which has no such name
        from pygments import highlight
        from pygments.formatters.html import HtmlFormatter
        from pygments.lexers import get_lexer_by_name
        from pygments.util import ClassNotFound

        with contextlib.suppress(ClassNotFound):
            body = _TOKEN.sub(
                _token_style,
                highlight(code, get_lexer_by_name(language), HtmlFormatter(nowrap=True)),
            )
    language_class = f' class="language-{html.escape(language)}"' if language else ""
    code_style = ' style="background: transparent; padding: 0; white-space: pre"'
    return f"{_PRE}<code{language_class}{code_style}>{body}</code></pre>\n"


def _host(url: str) -> str:
    """The host as written: ``hostname`` lower-cases it, and the case of a maths
    placeholder inside it (``http://$x$.evil.com``) must survive to be restored."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # a malformed IPv6 host, say
        return "an unreadable address"
    if not hostname:
        return "a relative address"
    netloc = parts.netloc.rpartition("@")[2]
    start = netloc.lower().find(hostname)
    return netloc[start : start + len(hostname)] if start >= 0 else hostname


def answer_html(markdown: str, *, remote_images: bool = False) -> str:
    """Safe HTML for an answer: no raw HTML, no script links, maths left for MathJax.

    Linear in the length of the text (the maths scan and markdown-it both are).
    """
    prefix = _unused_prefix(markdown)
    maths: list[str] = []
    pieces: list[str] = []
    position = 0
    for start, end in maths_spans(markdown):
        pieces += (markdown[position:start], f"{prefix}{_letters(len(maths))}END")
        maths.append(markdown[start:end])
        position = end
    pieces.append(markdown[position:])
    env = {"remote_images": remote_images}
    rendered = str(_parser().render("".join(pieces), env))
    if not maths:
        return rendered

    def restore(match: re.Match[str]) -> str:
        index = int(match.group(1).translate(_FROM_LETTERS))
        return html.escape(maths[index]) if index < len(maths) else match.group(0)

    return re.sub(re.escape(prefix) + f"([{_DIGITS}]+)END", restore, rendered)


_TO_LETTERS = str.maketrans(string.digits, _DIGITS)
_FROM_LETTERS = str.maketrans(_DIGITS, string.digits)


def _letters(number: int) -> str:
    return str(number).translate(_TO_LETTERS)


def _unused_prefix(text: str) -> str:
    """``STEPMAGICMATH`` and random capitals that do not occur in ``text``."""
    while True:
        prefix = "STEPMAGICMATH" + "".join(secrets.choice("ABCDEFGHIJKLMNOP") for _ in range(10))
        if prefix not in text:
            return prefix


def safe_markdown(markdown: str, *, remote_images: bool = False) -> str:
    """The answer's Markdown for frontends that prefer it: as written, except that no
    Markdown renderer, even one that passes raw HTML through and checks no link, can make
    markup or a script link of it.

    Code is left exactly as written, since a renderer shows it literally: fenced code, an
    indented block after a blank line, and code spans inside paragraphs and headings. In
    the prose ``<`` and ``&`` are escaped, images become text (unless ``remote_images``) and
    a link to a script scheme is broken; in maths ``<`` is written ``\\lt``, which MathJax
    reads alike. The result is parsed again as such a renderer would (``_live``): where it
    finds markup or a script link (a backtick inside a link's address is no code span, say),
    the code spans are escaped too, and then, if need be, everything.
    """
    lines = _lines(markdown)
    fences, code, blocks = _structure(markdown, lines)
    for keep, spans in ((fences | code, blocks), (fences, []), (set(), [])):
        pieces = [
            line if number in keep else _escape_prose(line, remote_images)
            for number, line in enumerate(lines)
        ]
        for start, end in spans:
            pieces[start:end] = [_escape_block("".join(lines[start:end]), remote_images)] + [""] * (
                end - start - 1
            )
        copy = "".join(pieces)
        if not _live(copy, remote_images):
            break
    return copy


def _lines(text: str) -> list[str]:
    """``text`` in lines as markdown-it counts them (only ``\\n``, ``\\r\\n`` and ``\\r``
    end one; ``str.splitlines`` also splits at U+2028, form feeds…), each with its end."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)


def _structure(markdown: str, lines: list[str]) -> tuple[set[int], set[int], list[tuple[int, int]]]:
    """The lines of fenced code, of indented code after a blank line (without that line, an
    escaped line before it could become a paragraph that swallows it as text), and the line
    ranges of paragraphs and headings, whose code spans may be kept (not table cells: a
    cell ends at a pipe, not at a backtick)."""
    fences: set[int] = set()
    code: set[int] = set()
    blocks: list[tuple[int, int]] = []
    tokens = _blocks().parse(markdown)
    for index, token in enumerate(tokens):
        start, end = token.map or (0, 0)
        end = min(end, len(lines))
        if token.type == "fence":
            closed = end - start > 1 and lines[end - 1].strip().startswith(token.markup)
            fences.update(range(start + 1, end - 1 if closed else end))
        elif token.type == "code_block" and (start == 0 or not lines[start - 1].strip()):
            code.update(range(start, end))
        elif token.type == "inline" and tokens[index - 1].type in _SPANNED:
            blocks.append((start, end))
    return fences, code, blocks


def _live(copy: str, remote_images: bool) -> bool:
    """Whether a renderer that passes raw HTML through and checks no link would make markup,
    a script link or (unless ``remote_images``) an image of ``copy``."""
    for token in _checker().parse(copy):
        for part in (token, *(token.children or ())):
            if part.type in ("html_block", "html_inline"):
                return True
            if part.type == "image" and not remote_images:
                return True
            address = str(part.attrGet("href") or part.attrGet("src") or "")
            if part.type in ("link_open", "image") and _runs_script(address):
                return True
    return False


@functools.cache
def _blocks() -> MarkdownIt:
    """The answer's parser, its blocks only: their inline content is not parsed (a third of
    the time, on a long answer)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable(["table"]).disable("inline")


@functools.cache
def _checker() -> MarkdownIt:
    from markdown_it import MarkdownIt

    checker = MarkdownIt("commonmark", {"html": True}).enable(["table"])
    checker.validateLink = lambda url: True  # type: ignore[method-assign]  # checks no link
    return checker


def _runs_script(url: str) -> bool:
    """What a browser would run or open as a document: it drops tabs and newlines anywhere
    in an address and controls and spaces before it, then reads the scheme."""
    cleaned = re.sub(r"[\t\n\r]", "", url).lstrip("".join(map(chr, range(33)))).lower()
    return cleaned.startswith(("javascript:", "vbscript:", "data:", "file:"))


_SPANNED = ("paragraph_open", "heading_open")
_RUN = re.compile(r"`+")


def _escape_block(text: str, remote_images: bool) -> str:
    """A paragraph or heading: its code spans as written, the rest escaped."""
    pieces: list[str] = []
    position = 0
    for start, end in code_spans(text):
        pieces += (_escape_prose(text[position:start], remote_images), text[start:end])
        position = end
    pieces.append(_escape_prose(text[position:], remote_images))
    return "".join(pieces)


def code_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each code span in one block of inline text, as CommonMark pairs
    them: a run of backticks opens one that the next run of the same length closes; a
    backslash before an opening run escapes its first backtick (none works inside a span).
    Linear: each length's runs are found by bisection, and an unclosed length stays so."""
    runs = [(match.start(), match.end()) for match in _RUN.finditer(text)]
    by_length: dict[int, list[int]] = {}
    for start, end in runs:
        by_length.setdefault(end - start, []).append(start)
    spans: list[tuple[int, int]] = []
    position = 0
    for start, end in runs:
        if start < position:
            continue
        slashes = 0
        while start - slashes > position and text[start - slashes - 1] == "\\":
            slashes += 1
        opening = start + slashes % 2
        starts = by_length.get(end - opening, [])
        closer = bisect.bisect_left(starts, end)
        if end > opening and closer < len(starts):
            position = starts[closer] + end - opening
            spans.append((opening, position))
    return spans


def _escape_prose(text: str, remote_images: bool) -> str:
    """Prose: ``<`` and ``&`` escaped; maths inside it keeps its ``&`` and writes ``<`` as
    ``\\lt`` (an escaped ``&lt;`` would reach MathJax as those four characters)."""
    pieces: list[str] = []
    position = 0
    for start, end in maths_spans(text):
        maths = _ENTITY.sub("&amp;", text[start:end]).replace("<", "\\lt ")
        pieces += (_escape_text(text[position:start]), maths)
        position = end
    pieces.append(_escape_text(text[position:]))
    escaped = "".join(pieces)
    if not remote_images:  # ``!\[`` is an exclamation mark and a bracket, never an image
        escaped = escaped.replace("![", "!\\[")
    return _LINK_SCHEME.sub("\\1\\2\\3\u200b\\4:", escaped)


def _escape_text(text: str) -> str:
    """``<`` and ``&`` as entities; a backslash that escaped one goes (``\\<b>`` reads
    "<b>", and so does ``&lt;b>``; kept, it would read "&lt;b>"). Left as written, an
    escaped one would be live where a renderer does not take the backslash as an escape:
    inside an address it links (GitHub's autolinks), or a destination it decodes."""
    return _SPECIAL.sub(_entity, text)


def _entity(match: re.Match[str]) -> str:
    slashes, character = match.groups()
    kept = slashes[: len(slashes) - len(slashes) % 2]  # pairs are escaped backslashes
    return kept + ("&amp;" if character == "&" else "&lt;")


_SPECIAL = re.compile(r"(\\*)([&<])")


# A script-capable scheme where a link's address starts: ``](``, or a reference definition's
# ``]:`` (prose that merely mentions ``javascript:`` is left alone).
_LINK_SCHEME = re.compile(r"(?i)(\]\(\s*|\]:\s*)(javascript|vbscript|data|file)(\s*)(\\?):")
_ENTITY = re.compile(r"&(?=#?\w+;)")  # ``&#58;``: in maths ``&`` stays, an entity does not
