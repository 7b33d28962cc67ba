"""Split ``<think>…</think>`` reasoning out of answer text that arrives in arbitrary pieces.

Some OpenAI-compatible servers put the reasoning inline in ``content``. The tags can be split
across chunks at any character, so the splitter holds back only the few characters that could
still turn out to be the start of a tag.
"""

from __future__ import annotations

OPEN = "<think>"
CLOSE = "</think>"


class ThinkTagSplitter:
    """Feed content deltas; get back (reasoning, answer) text, in order, never reordered.

    Only a ``<think>`` at the very start of the content (after white space) opens reasoning,
    so an answer that merely mentions the tag is left alone. R1-style chat templates put the
    ``<think>`` in the prompt, so the reply holds only the closing tag: text that came before
    a ``</think>`` with no opening one was reasoning after all, and ``rethought`` says so once
    (whoever showed it as answer text moves it).
    """

    def __init__(self) -> None:
        self._state = "start"  # start -> thinking -> answer, or start -> untagged -> answer
        self._pending = ""
        self.rethought = False

    def feed(self, text: str) -> tuple[str, str]:
        """Consume ``text``; return the reasoning and answer text that are now certain."""
        self._pending += text
        if self._state == "start":
            stripped = self._pending.lstrip()
            if stripped.startswith(OPEN):
                self._state = "thinking"
                self._pending = stripped[len(OPEN) :]
            elif OPEN.startswith(stripped):
                return "", ""  # could still become "<think>"
            else:
                self._state = "untagged"
        if self._state == "thinking":
            return self._take_reasoning()
        if self._state == "untagged":
            return self._take_untagged()
        answer, self._pending = self._pending, ""
        return "", answer

    def _take_untagged(self) -> tuple[str, str]:
        """Answer text, unless a closing tag shows it was reasoning (see the class docstring).

        An opening tag first means an answer that talks about the tags: left alone.
        """
        opens, end = self._pending.find(OPEN), self._pending.find(CLOSE)
        if opens >= 0 and (end < 0 or opens < end):
            self._state = "answer"
            answer, self._pending = self._pending, ""
            return "", answer
        if end >= 0:
            reasoning, answer = self._pending[:end], self._pending[end + len(CLOSE) :]
            self._state, self._pending, self.rethought = "answer", "", True
            return reasoning, answer
        keep = max(_partial_suffix(self._pending, CLOSE), _partial_suffix(self._pending, OPEN))
        cut = len(self._pending) - keep
        answer, self._pending = self._pending[:cut], self._pending[cut:]
        return "", answer

    def finish(self) -> tuple[str, str]:
        """Flush what was held back when the stream ends (an unclosed tag stays reasoning)."""
        held, self._pending = self._pending, ""
        if self._state == "thinking":
            return held, ""
        return "", held

    def _take_reasoning(self) -> tuple[str, str]:
        end = self._pending.find(CLOSE)
        if end >= 0:
            reasoning = self._pending[:end]
            answer = self._pending[end + len(CLOSE) :]
            self._state, self._pending = "answer", ""
            return reasoning, answer
        keep = _partial_suffix(self._pending, CLOSE)
        cut = len(self._pending) - keep
        reasoning, self._pending = self._pending[:cut], self._pending[cut:]
        return reasoning, ""


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0
