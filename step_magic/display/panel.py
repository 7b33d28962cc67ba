"""The live panel: three small anywidgets shown as three parts of a cell (reasoning, answer,
status), each the static form's place holder while the reply streams.

Why anywidget: the same widget runs in JupyterLab, Notebook 7, VS Code, Colab and marimo, and
its own small scripts (``static/*.js``, shipped in the package, fetched from nowhere) append
what the kernel sends, so each character crosses the wire about once:
- the kernel sends *appended* text and HTML as custom messages, numbered;
- the browser keeps them per model and draws them into every view of it;
- the first messages are also kept in the ``head`` trait (state is never lost; custom
  messages sent before the script has loaded are), shared twice at most and for the first
  ``HEAD_LIMIT`` characters or ``HEAD_SECONDS`` only, so the recovery costs a bounded
  couple of kilobytes.
The reasoning part is a native ``<details>``/``<summary>`` shaped like the saved form, so it is
reachable by Tab, toggled by Enter and Space, exposes its expanded state, and gives way to
the static form at the end without moving the page. Each part ships only the script it
needs, without comments or indentation: every call's widgets carry their script.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import traitlets

HEAD_LIMIT = 2_000  # characters of the first messages kept as state
HEAD_SECONDS = 2.0  # ... for at most this long: the script has loaded by then
_STATIC = Path(__file__).with_name("static")


# What a finished part's model keeps instead of its script: nbclient and papermill save every
# widget's state, closed or not, and a notebook of many calls would hold the scripts as often.
RETIRED = "export default {};"


class _Retiring(anywidget.AnyWidget):
    label = "panel"

    def __repr__(self) -> str:
        """The ``text/plain`` of the widget, shown where widgets are not (a notebook saved
        mid-reply, read as text): what it is, not ``<… object at 0x…>``."""
        return f"step-magic {self.label} (a live widget; the finished reply replaces it)"

    def retire(self) -> None:
        """Swap the script of a part whose views are gone for ``RETIRED``."""
        self._esm = RETIRED
        if self.has_trait("_css"):
            self._css = ""


def script(*names: str) -> str:
    """The named files of ``static/`` as one text, comments and indentation dropped (none of
    our strings holds ``//`` at a line start or ``/*``)."""
    text = "\n".join((_STATIC / name).read_text(encoding="utf-8") for name in names)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("//"))


class _Part(_Retiring):
    """What the parts share: a key the browser keeps their text under, numbered messages,
    and the ``head`` that recovers the first ones."""

    key = traitlets.Unicode().tag(sync=True)
    head = traitlets.Dict().tag(sync=True)  # {"messages": [...], "closed": bool}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(key=uuid.uuid4().hex, **kwargs)
        self._sent = 0  # messages sent so far, numbered from 0
        self._head: list[dict[str, Any]] | None = []  # None once closed
        self._head_chars = 0
        self._since = time.monotonic()

    def append(self, **message: str) -> None:
        """Send one message (``r`` reasoning text, ``b`` finished HTML blocks, ``t`` the
        answer's tail, ``clear``) to every view, and keep it in ``head`` while it is young.

        ``head`` is shared twice at most: with the first message (the likeliest lost) and
        when it closes, after ``HEAD_LIMIT`` characters or ``HEAD_SECONDS``; a script that
        missed messages in between waits for the second."""
        numbered = {"n": self._sent, **message}
        self._sent += 1
        self.send(numbered)
        if self._head is None:
            return
        self._head.append(numbered)
        self._head_chars += sum(len(value) for value in message.values())
        old = time.monotonic() - self._since >= HEAD_SECONDS
        if old or self._head_chars >= HEAD_LIMIT:
            self.head = {"messages": self._head, "closed": True}
            self._head = None
        elif len(self._head) == 1:
            self.head = {"messages": list(self._head), "closed": False}

    def forget(self) -> None:
        """Drop the kept messages once the static form holds the text: tools that save
        widget state (nbclient, papermill) then keep no second copy of it."""
        self._head = None
        self.head = {}


class ReasoningPart(_Part):
    """The collapsible reasoning; ``status`` is its summary line."""

    label = "reasoning"

    _esm = script("protocol.js", "reasoning.js")
    _css = script("panel.css")
    status = traitlets.Unicode("").tag(sync=True)
    expanded = traitlets.Bool(False).tag(sync=True)  # two-way: the reader's click comes back
    body_style = traitlets.Unicode("").tag(sync=True)  # the reasoning box, as saved

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_msg(self._toggled)

    def _toggled(self, _: Any, content: dict[str, Any], buffers: Any) -> None:
        """The reader opened or closed it (as a message: the page keeps a snapshot of the
        text in the model's state, which ``save_changes`` would send along)."""
        if isinstance(content.get("expanded"), bool):
            self.expanded = content["expanded"]


class AnswerPart(_Part):
    """The answer so far: finished Markdown blocks and the unfinished tail, as safe HTML."""

    label = "answer"

    _esm = script("protocol.js", "answer.js")


class StatusPart(_Retiring):
    """The status line; a Stop button for a background call; phases for screen readers."""

    label = "status"

    _esm = script("controls.js", "status.js")
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
