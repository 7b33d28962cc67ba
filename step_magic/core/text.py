"""Text from outside (the model, a server, a tool) made safe to show and to store.

Control characters (but tab and newlines) and lone surrogates cannot travel as Jupyter
messages or be stored in SQLite, and escape sequences would reach a terminal raw; they are
replaced where the text enters the program.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Replace characters that would break a Jupyter message or a database with U+FFFD."""
    return _UNSAFE.sub("\ufffd", text)
