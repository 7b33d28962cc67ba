"""The live panel: three small anywidgets shown as three parts of a cell (reasoning, answer,
status), each the static form's place holder while the reply streams.

Why anywidget: the same widget runs in JupyterLab, Notebook 7, VS Code, Colab and marimo, and
its own small scripts (``static/*.js``, shipped in the package, fetched from nowhere) append
what the kernel sends, so each character crosses the wire about once:
- the kernel sends *appended* text and HTML as custom messages, numbered;
- the browser keeps them per model and draws them into every view of it;
- the first messages are also kept in the ``head`` trait (state is never lost; custom
  messages sent before the script has loaded are), re-sent only when they have doubled, up
  to ``HEAD_LIMIT`` characters, so the recovery costs a bounded few kilobytes.
The reasoning part is a native ``<details>``/``<summary>`` shaped like the saved form, so it is
reachable by Tab, toggled by Enter and Space, exposes its expanded state, and gives way to
the static form at the end without moving the page. Each part ships only the script it
needs, without comments or indentation: every call's widgets carry their script.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import traitlets

HEAD_LIMIT = 4_000  # characters of the first messages kept as state
_STATIC = Path(__file__).with_name("static")


def script(*names: str) -> str:
    """The named files of ``static/`` as one ES module, comment lines and indentation
    dropped (none of our strings holds ``//`` at a line start)."""
    text = "\n".join((_STATIC / name).read_text(encoding="utf-8") for name in names)
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line and not re.match(r"//", line))


class _Part(anywidget.AnyWidget):
    """What the parts share: a key the browser keeps their text under, numbered messages,
    and the ``head`` that recovers the first ones."""

    key = traitlets.Unicode().tag(sync=True)
    head = traitlets.Dict().tag(sync=True)  # {"messages": [...], "closed": bool}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(key=uuid.uuid4().hex, **kwargs)
        self._sent = 0  # messages sent so far, numbered from 0
        self._head: list[dict[str, Any]] = []
        self._head_chars = 0
        self._head_shared = 0  # characters in the ``head`` trait now

    def append(self, **message: str) -> None:
        """Send one message (``r`` reasoning text, ``b`` finished HTML blocks, ``t`` the
        answer's tail, ``clear``) to every view, and keep it in ``head`` while it is young."""
        numbered = {"n": self._sent, **message}
        self._sent += 1
        self.send(numbered)
        if self._head_chars >= HEAD_LIMIT:
            return
        self._head.append(numbered)
        self._head_chars += sum(len(value) for value in message.values())
        full = self._head_chars >= HEAD_LIMIT
        if full or self._head_chars >= 2 * self._head_shared:
            self.head = {"messages": list(self._head), "closed": full}
            self._head_shared = self._head_chars

    def forget(self) -> None:
        """Drop the kept messages once the static form holds the text: tools that save
        widget state (nbclient, papermill) then keep no second copy of it."""
        self._head, self._head_chars = [], HEAD_LIMIT
        self.head = {}


class ReasoningPart(_Part):
    """The collapsible reasoning; ``status`` is its summary line."""

    _esm = script("protocol.js", "reasoning.js")
    _css = script("panel.css")
    status = traitlets.Unicode("").tag(sync=True)
    expanded = traitlets.Bool(False).tag(sync=True)  # two-way: the reader's click comes back
    body_style = traitlets.Unicode("").tag(sync=True)  # the reasoning box, as saved


class AnswerPart(_Part):
    """The answer so far: finished Markdown blocks and the unfinished tail, as safe HTML."""

    _esm = script("protocol.js", "answer.js")


class StatusPart(anywidget.AnyWidget):
    """The status line; a Stop button for a background call; phases for screen readers."""

    _esm = script("status.js")
    _css = script("panel.css")
    status = traitlets.Unicode("").tag(sync=True)
    phase = traitlets.Unicode("").tag(sync=True)  # announced politely to screen readers
    stoppable = traitlets.Bool(False).tag(sync=True)

    def __init__(self, stop: Callable[[], object] | None = None, **kwargs: Any) -> None:
        super().__init__(stoppable=stop is not None, **kwargs)
        self._stop = stop
        self.on_msg(self._received)

    def _received(self, _: Any, content: dict[str, Any], buffers: Any) -> None:
        if content.get("stop") and self._stop is not None:
            self._stop()
