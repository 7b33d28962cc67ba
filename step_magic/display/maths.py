"""Find the maths in an answer (``$…$``, ``$$…$$``, ``\\[…\\]``) in one pass, in linear time.

Hand-written rather than one regular expression because the expression is quadratic: on an
opener that is never closed (120 KB of ``\\[a``) a lazy ``.+?`` scans to the end of the text
from every opener, which froze a kernel for 25 s, in C code that Ctrl-C cannot interrupt.
Here a failed search for a closer is remembered, so each character is looked at a bounded
number of times. The spans found are the ones that expression found (the tests compare them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_OPENER = re.compile(r"\$|\\\[")
_CLOSER = {"$$": "$$", "\\[": "\\]"}


def maths_spans(text: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each piece of maths, left to right, never overlapping."""
    never_closed: set[str] = set()  # display openers whose closer does not occur further on
    position = 0
    while match := _OPENER.search(text, position):
        start = match.start()
        end = _display_end(text, start, never_closed) or _inline_end(text, start)
        if end:
            yield start, end
            position = end
        else:
            position = start + 1


def _display_end(text: str, start: int, never_closed: set[str]) -> int | None:
    """The end of ``$$…$$`` or ``\\[…\\]`` opened at ``start`` (at least one character inside)."""
    opener = text[start : start + 2]
    if opener not in _CLOSER or opener in never_closed:
        return None
    closer = text.find(_CLOSER[opener], start + 3)
    if closer < 0:
        never_closed.add(opener)
        return None
    return closer + 2


def _inline_end(text: str, start: int) -> int | None:
    """The end of ``$x$`` at ``start``: TeX-like rules that leave prices such as $5 alone.

    The opening ``$`` follows no backslash, ``$`` or word character and precedes no space;
    the closing one is the next ``$`` on the same line, after no space or backslash and
    before no word character.
    """
    if text[start] != "$" or start + 1 >= len(text):
        return None
    before, first = text[start - 1] if start else "", text[start + 1]
    if before in ("\\", "$") or _word(before) or first == "$" or first.isspace():
        return None
    close = text.find("$", start + 2)
    if close < 0 or "\n" in text[start + 1 : close]:
        return None
    last, after = text[close - 1], text[close + 1 : close + 2]
    if last.isspace() or last == "\\" or _word(after):
        return None
    return close + 1


def _word(char: str) -> bool:
    return bool(char) and (char.isalnum() or char == "_")
