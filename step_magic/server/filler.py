"""Filler prose that gives a simulated reply the length a test or a rehearsal asks for.

Whole sentences from a small vocabulary, seeded by the request, so the same request always
gets the same text, and token counts (word-sized pieces) come out exactly as configured.
"""

from __future__ import annotations

import random
import re

_TOKEN = re.compile(r"\S+\s*|\s+")
SENTENCES_PER_PARAGRAPH = 4

_OPENERS = ("Next,", "Then", "Also,", "Still,", "Now", "First,", "After that,", "So")
_VERBS = ("check", "compare", "weigh", "revisit", "outline", "test", "trace", "estimate")
_NOUNS = (
    "assumption",
    "edge case",
    "definition",
    "example",
    "constraint",
    "notation",
    "premise",
    "counterexample",
    "simple case",
    "main claim",
)
_LINKS = ("against", "before", "alongside", "after", "in light of", "without")


def tokenize(text: str) -> list[str]:
    """Split ``text`` into word-sized tokens whose concatenation is exactly ``text``."""
    return _TOKEN.findall(text)


def _filler_sentence(rng: random.Random) -> str:
    first, second = rng.sample(_NOUNS, 2)
    return (
        f"{rng.choice(_OPENERS)} I {rng.choice(_VERBS)} the {first} "
        f"{rng.choice(_LINKS)} the {second}."
    )


def grow(text: str, rng: random.Random, target: int) -> str:
    """Append whole filler sentences, in paragraphs, until ``text`` has ``target`` tokens."""
    parts = [text]
    count = len(tokenize(text))
    sentences = 0
    while count < target:
        sentence = _filler_sentence(rng)
        separator = "\n\n" if sentences % SENTENCES_PER_PARAGRAPH == 0 else " "
        parts.append(separator + sentence)
        # The separator joins the previous token, so only the new words add tokens.
        count += len(sentence.split())
        sentences += 1
    return "".join(parts)


def exact(text: str, rng: random.Random, count: int) -> list[str]:
    """Exactly ``count`` tokens: ``text`` cut short or grown with filler."""
    tokens = tokenize(grow(text, rng, count))[: max(count, 0)]
    if tokens:
        tokens[-1] = tokens[-1].rstrip()
    return tokens
