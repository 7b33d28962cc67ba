"""The live panel in a notebook, and the static form it becomes.

While a reply streams, a cell holds three outputs (one display id each, so each can be
replaced in place), each a small anywidget (``display.panel``):
  1. the reasoning: a native ``<details>`` whose summary carries the live status, shaped like
     the saved form; the kernel sends appended text only;
  2. the answer: finished Markdown blocks as safe HTML, plus the unfinished tail, re-sent
     only when it has grown by half (bytes on the wire stay linear);
  3. a status line that becomes the footer (with a Stop button for a background call).
When the reply ends, each is replaced, bottom up, by a static output of the same shape with no
widget view in it, so a saved notebook renders without a kernel (rendering.md) and the page
does not move. The bundles are built, without displaying, in ``bundles.py``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from IPython.display import display

from step_magic.core.result import StepResult
from step_magic.core.settings import Settings
from step_magic.core.text import seconds
from step_magic.core.toolrecords import ToolRecord, outcome_text, signature
from step_magic.display import static
from step_magic.display.bundles import answer_bundle, answer_div, footer_bundle, reasoning_bundle
from step_magic.display.closing import close_lingering_panels, close_widgets, keep_until_next_call
from step_magic.display.mdblocks import BlockSplitter
from step_magic.display.slots import JupyterSlots

TAIL_REFRESH_SECONDS = 1.0
TITLE_REFRESH_SECONDS = 0.5


def show_static(result: StepResult) -> None:
    """Display a finished result in its static form (``display(_step)``)."""
    if result.reasoning or result.tool_calls:
        display(reasoning_bundle(result), raw=True)
    display(answer_bundle(result), raw=True)
    display(footer_bundle(result), raw=True)


class NotebookView:
    """The live panel in a Jupyter frontend (or marimo, through ``slots``); ``parent_msg_id``
    is the running cell's request; ``settings`` say which parts to show and how."""

    def __init__(
        self,
        parent_msg_id: str,
        settings: Settings,
        *,
        tools: bool = False,
        stop: Callable[[], object] | None = None,
        slots: Any = None,
    ) -> None:
        from step_magic.display.panel import AnswerPart, ReasoningPart, StatusPart

        self._slots = JupyterSlots() if slots is None else slots
        self._parent = parent_msg_id
        self._remote_images = settings.remote_images
        # --no-reasoning still lists tool calls
        self._calls_only = tools and not settings.reasoning
        self._panel: Any = None
        if settings.reasoning:
            style = static.REASONING_BODY_STYLE
            self._panel = ReasoningPart(expanded=settings.show_reasoning, body_style=style)
        self._answer = AnswerPart()
        self._status = StatusPart(stop)
        self._splitter = BlockSplitter()
        self._reasoning_chars = 0
        self._answer_chars = 0
        self._tail_sent = (0, 0.0)  # (length, time) of the tail last sent
        self._answering_since: float | None = None  # when the answer started (elapsed)
        self._titled_at = float("-inf")  # the header's status is refreshed twice a second

    def start(self, status: str) -> None:
        """Show the empty panel at once, so the user sees the call has started."""
        close_lingering_panels()
        self._set_status(status)
        parts: list[tuple[str, Any]] = []
        if self._panel is not None:
            parts.append(("reasoning", self._panel))
        elif self._calls_only:  # a slot above the answer for the list of calls
            parts.append(("reasoning", {"text/plain": ""}))
        self._slots.show([*parts, ("answer", self._answer), ("footer", self._status)])

    def waiting(self, status: str) -> None:
        """A retry wait or another pause the user should know about."""
        self._set_status(status)

    def _set_status(self, status: str) -> None:
        """The header says it when there is one; the line below only when there is not."""
        if self._panel is not None:
            self._panel.status = status
        self._status.status = "" if self._panel is not None else status

    def update(self, reasoning: str, answer: str, elapsed: float) -> None:
        """Append new reasoning and answer text (called at most ~10 times a second)."""
        if not self._reasoning_chars:  # the panel starts with text, not a blank line
            reasoning = reasoning.lstrip("\n")
        if reasoning and not self._reasoning_chars:
            self._status.phase = "Thinking…"
        self._reasoning_chars += len(reasoning)
        self._answer_chars += len(answer)
        if answer and self._answering_since is None:
            self._answering_since = elapsed
            self._status.phase = "Answering…"
        if reasoning:
            self._reasoning_line(reasoning)
        if answer:
            self._append_answer(answer)
        if elapsed - self._titled_at >= TITLE_REFRESH_SECONDS:
            self._refresh_status(bool(reasoning), elapsed)

    def tool(self, record: ToolRecord) -> None:
        """A tool call starts or ends: a line in the panel, the header says what runs.

        Nothing is captured while the function runs, so whatever it prints or displays
        lands in the cell's own output and is saved with the notebook.
        """
        if record.status == "running":
            self._set_status(f"Calling {record.name}… (model turn {record.step})")
            self._status.phase = f"Calling {record.name}…"
            self._reasoning_line(f"\n\n⚙ {signature(record)}\n")
        else:
            self._reasoning_line(f"   ↳ {outcome_text(record)}\n\n")
            self._set_status(f"Waiting for the model (turn {record.step + 1})…")
            self._titled_at = float("-inf")  # the next update shows "Thinking…" again
            self._answering_since = None

    def rethink(self) -> None:
        """The answer shown so far was reasoning: clear it (the buffer re-sends it as
        reasoning, into the panel)."""
        self._answer.append(clear="1")
        self._splitter = BlockSplitter()
        self._answer_chars = 0
        self._answering_since = None
        self._tail_sent = (0, 0.0)

    def _reasoning_line(self, text: str) -> None:
        if self._panel is not None:
            self._panel.append(r=text)

    def _refresh_status(self, thinking: bool, elapsed: float) -> None:
        """Header at most twice a second; the status line says the phase.

        With the panel shown its header carries the live counts, so the line below changes
        only when the answer starts; without the panel the line is the only progress shown.
        """
        self._titled_at = elapsed
        thought = static.thinking_status(self._reasoning_chars, elapsed)
        answering = f"Answering… {self._answer_chars:,} chars · {seconds(elapsed)}"
        if self._panel is None:
            self._status.status = answering if self._answer_chars else thought
        elif self._answering_since is not None:  # unchanged values send nothing
            self._panel.status = f"Thought for {seconds(self._answering_since)} · answering…"
        elif thinking:
            self._panel.status = thought

    def _append_answer(self, text: str) -> None:
        """New finished blocks and the tail that no longer holds them go in one message."""
        blocks = self._splitter.feed(text)
        tail = self._splitter.tail
        sent_length, sent_at = self._tail_sent
        grown = len(tail) - sent_length
        now = time.monotonic()
        stale = grown > 0 and now - sent_at >= TAIL_REFRESH_SECONDS
        message = {}
        if blocks:
            message["b"] = answer_div("".join(blocks), remote_images=self._remote_images)
        if blocks or grown >= max(24, sent_length // 2) or stale:
            message["t"] = answer_div(tail, remote_images=self._remote_images) if tail else ""
            self._tail_sent = (len(tail), now)
        if message:
            self._answer.append(**message)

    def finish(self, result: StepResult) -> None:
        """Replace the live parts by the static form, then close them.

        The reasoning part stays open (without its text) until the next call: a click made
        while the reply streamed reaches the kernel only after the cell ends, and the saved
        ``<details>`` follows it then.
        """
        result.shown_in = self._parent
        if self._panel is not None:
            result.reasoning_open = self._panel.expanded
        self.show_final(result)
        for part in (self._answer, self._panel):
            if part is not None:
                part.forget()
        self._answer.retire()
        self._status.retire()
        close_widgets(self._answer, self._status)
        if self._panel is not None:
            self._follow_late_clicks(result)

    def show_final(self, result: StepResult) -> None:
        """Put the static form under the panel's display ids, bottom up (what is below the
        answer's start moves nothing above it): at the end, and again from another cell (a
        background call's ``wait()``), which updates this cell's outputs."""
        self._slots.replace("footer", footer_bundle(result))
        self._slots.replace("answer", answer_bundle(result))
        if self._panel is not None:
            self._slots.replace("reasoning", reasoning_bundle(result, key=self._panel.key))
        elif self._calls_only:
            calls = dataclasses.replace(result, reasoning="")
            self._slots.replace("reasoning", reasoning_bundle(calls))

    def _follow_late_clicks(self, result: StepResult) -> None:
        """Keep the saved ``<details>`` open or closed as the user left the live panel."""
        panel = self._panel
        keep_until_next_call(panel)

        def on_click(change: dict[str, Any]) -> None:
            result.reasoning_open = bool(change["new"])
            self._slots.replace("reasoning", reasoning_bundle(result, key=panel.key))

        panel.observe(on_click, names="expanded")
