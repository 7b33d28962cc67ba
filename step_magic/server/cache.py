"""A stand-in for StepFun's prompt cache, so clients can show cached tokens and their price.

StepFun reports ``cached_tokens`` when a prompt starts with a prefix it has seen recently and
that prefix is at least 256 tokens long. Here a prefix is a whole number of messages.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

MIN_CACHED_TOKENS = 256


class PromptCache:
    """Remembers message prefixes per model and reports how much of a prompt was cached."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[str] = set()

    def clear(self) -> None:
        """Forget every prefix seen so far."""
        with self._lock:
            self._seen.clear()

    def use(self, model: str, messages: list[Any], costs: list[int]) -> int:
        """Return the cached tokens of this prompt, then remember all its prefixes.

        ``costs`` holds the prompt tokens of each message, aligned with ``messages``.
        """
        digest = hashlib.sha256(model.encode())
        prefixes: list[tuple[str, int]] = []
        total = 0
        for message, cost in zip(messages, costs, strict=True):
            digest.update(json.dumps(message, sort_keys=True, default=str).encode())
            total += cost
            prefixes.append((digest.hexdigest(), total))
        with self._lock:
            hits = [tokens for key, tokens in prefixes if key in self._seen]
            self._seen.update(key for key, _ in prefixes)
        cached = max(hits, default=0)
        return cached if cached >= MIN_CACHED_TOKENS else 0
