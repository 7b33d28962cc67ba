"""Everything step-magic shows: the live notebook panel, the terminal stream, the static form.

Notebook, while streaming (one display id each, so each can be replaced in place):
  1. an Accordion whose header carries the live status and whose Output child receives the
     reasoning as appended stdout (append-only: each piece of text is sent once);
  2. the answer: finished Markdown blocks appended to an Output, plus the unfinished tail in an
     HTML widget, re-sent only when it has grown by half (linear bytes on the wire);
  3. a status line that becomes the footer.
When the reply ends, all three are replaced by static outputs with no widget view in them, and
the widgets are closed: a saved notebook then renders without a kernel (see rendering.md).
The bundles those static outputs hold are built, without displaying, in ``bundles.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from IPython.display import display, update_display

from step_magic.core.result import StepResult
from step_magic.core.text import seconds
from step_magic.core.toolrecords import ToolRecord, outcome_text, signature
from step_magic.display import static
from step_magic.display.bundles import (
    LIVE_ANSWER_CLASS,
    LIVE_BOX_CLASS,
    LIVE_CLASS,
    answer_bundle,
    answer_div,
    footer_bundle,
    parity,
    reasoning_bundle,
    status_html,
)
from step_magic.display.closing import close_lingering_panels, close_widgets, keep_until_next_call
from step_magic.display.mdblocks import BlockSplitter
from step_magic.display.window import LiveWindow

TAIL_REFRESH_SECONDS = 1.0
TITLE_REFRESH_SECONDS = 0.5


def show_static(result: StepResult) -> None:
    """Display a finished result in its static form (``display(_step)``)."""
    if result.reasoning or result.tool_calls:
        display(reasoning_bundle(result), raw=True)
    display(answer_bundle(result), raw=True)
    display(footer_bundle(result), raw=True)


class NotebookView:
    """The live panel in a Jupyter frontend; ``parent_msg_id`` is the running cell's request."""

    def __init__(
        self,
        parent_msg_id: str,
        *,
        show_reasoning: bool,
        reasoning: bool,
        tools: bool = False,
        remote_images: bool = False,
        footer: Callable[[Any], Any] | None = None,
        exclusive: AbstractContextManager[Any] | None = None,
    ) -> None:
        import ipywidgets as widgets

        self._parent = parent_msg_id
        self._remote_images = remote_images
        self._calls_only = tools and not reasoning  # --no-reasoning still lists tool calls
        self._ids = {part: uuid.uuid4().hex for part in ("reasoning", "answer", "footer")}
        self._reasoning_out: Any = None
        self._panel: Any = None
        if reasoning:
            self._reasoning_out = widgets.Output(
                layout=widgets.Layout(max_height="24em", overflow="auto")
            )
            self._reasoning_out.add_class(LIVE_CLASS)
            self._panel = widgets.Accordion(
                children=[self._reasoning_out], selected_index=0 if show_reasoning else None
            )
        self._blocks = widgets.Output()
        self._tail = widgets.HTML()
        self._tail.add_class(LIVE_ANSWER_CLASS)
        self._tail.add_class("jp-RenderedHTMLCommon")  # the final answer's own typography
        self._answer = widgets.VBox([self._blocks, self._tail])
        self._answer.add_class(LIVE_BOX_CLASS)
        self._flushes = 0  # finished blocks shown so far, in groups (see LIVE_STYLE)
        self._status = widgets.HTML()
        self._footer = self._status if footer is None else footer(self._status)
        # Set for a call that runs in the background: other calls started by the same cell
        # route into widgets of their own by the same request id, so each write holds this
        # lock and routes only for its own length, never across writes.
        self._exclusive = exclusive
        self._capturing: Any = None
        self._splitter = BlockSplitter()
        self._window = LiveWindow()
        self._reasoning_chars = 0
        self._answer_chars = 0
        self._tail_sent = (0, 0.0)  # (length, time) of the tail last sent
        self._answering_since: float | None = None  # when the answer started (elapsed)
        self._titled_at = float("-inf")  # the header's status is refreshed twice a second

    def start(self, status: str) -> None:
        """Show the empty panel at once, so the user sees the call has started."""
        close_lingering_panels()
        self._set_status(status)
        if self._panel is not None:
            display(self._panel, display_id=self._ids["reasoning"])
        elif self._calls_only:  # a slot above the answer for the list of calls
            display({"text/plain": ""}, raw=True, display_id=self._ids["reasoning"])
        display(self._answer, display_id=self._ids["answer"])
        display(self._footer, display_id=self._ids["footer"])

    def waiting(self, status: str) -> None:
        """A retry wait or another pause the user should know about."""
        self._set_status(status)

    def _set_status(self, status: str) -> None:
        """The header says it when there is one; the line below only when there is not."""
        if self._panel is not None:
            self._panel.set_title(0, status)
        self._status.value = status_html("" if self._panel is not None else status)

    def update(self, reasoning: str, answer: str, elapsed: float) -> None:
        """Append new reasoning and answer text (called at most ~10 times a second)."""
        if not self._reasoning_chars:  # the panel starts with text, not a blank line
            reasoning = reasoning.lstrip("\n")
        self._reasoning_chars += len(reasoning)
        self._answer_chars += len(answer)
        if answer and self._answering_since is None:
            self._answering_since = elapsed
        if reasoning:
            self._reasoning_line(reasoning)
        if answer:
            self._append_answer(answer)
        if elapsed - self._titled_at >= TITLE_REFRESH_SECONDS:
            self._refresh_status(bool(reasoning), elapsed)

    def tool(self, record: ToolRecord) -> None:
        """A tool call starts or ends: a line in the panel, the header says what runs.

        While the function runs nothing is captured, so whatever it prints or displays
        lands in the cell's own output and is saved with the notebook.
        """
        if record.status == "running":
            self._set_status(f"Calling {record.name}… (model turn {record.step})")
            self._reasoning_line(f"\n\n⚙ {signature(record)}\n")
            if self._capturing is not None:
                sys.stdout.flush()
                self._capturing.msg_id = ""
                self._capturing = None
        else:
            self._reasoning_line(f"   ↳ {outcome_text(record)}\n\n")
            self._set_status(f"Waiting for the model (turn {record.step + 1})…")
            self._titled_at = float("-inf")  # the next update shows "Thinking…" again
            self._answering_since = None

    def rethink(self) -> None:
        """The answer shown so far was reasoning: clear it (the buffer re-sends it as
        reasoning, into the panel)."""
        self._empty(self._blocks)
        self._tail.value = ""
        self._splitter = BlockSplitter()
        self._answer_chars = 0
        self._answering_since = None
        self._tail_sent = (0, 0.0)

    def _reasoning_line(self, text: str) -> None:
        """Append to the panel (as stdout: the frontend routes it into the Output)."""
        if self._panel is None:
            return
        with self._routed(self._reasoning_out):
            sys.stdout.write(text)
            sys.stdout.flush()
        restart = self._window.add(text)
        if restart is not None:  # after the text above, in message order
            restarted = {"output_type": "stream", "name": "stdout", "text": restart}
            self._reasoning_out.outputs = (restarted,)

    def _refresh_status(self, thinking: bool, elapsed: float) -> None:
        """Header at most twice a second; the status line says the phase.

        With the panel shown its header carries the live counts, so the line below changes
        only when the answer starts; without the panel the line is the only progress shown.
        """
        self._titled_at = elapsed
        thought = static.thinking_status(self._reasoning_chars, elapsed)
        answering = f"Answering… {self._answer_chars:,} chars · {seconds(elapsed)}"
        if self._panel is None:
            self._status.value = status_html(answering if self._answer_chars else thought)
        elif self._answering_since is not None:  # unchanged values send nothing
            self._panel.set_title(0, f"Thought for {seconds(self._answering_since)} · answering…")
        elif thinking:
            self._panel.set_title(0, thought)

    def _append_answer(self, text: str) -> None:
        blocks = self._splitter.feed(text)
        if blocks:  # tagged with the parity of the tail that still holds them
            html = answer_div("".join(blocks), remote_images=self._remote_images)
            with self._routed(self._blocks):
                display({"text/html": parity(html, "done", self._flushes)}, raw=True)
            self._flushes += 1
        tail = self._splitter.tail
        sent_length, sent_at = self._tail_sent
        grown = len(tail) - sent_length
        now = time.monotonic()
        stale = grown > 0 and now - sent_at >= TAIL_REFRESH_SECONDS
        if blocks or grown >= max(24, sent_length // 2) or stale:
            html = answer_div(tail, remote_images=self._remote_images)
            self._tail.value = parity(html, "tail", self._flushes)
            self._tail_sent = (len(tail), now)

    @contextlib.contextmanager
    def _routed(self, output: Any) -> Iterator[None]:
        """Route what is written inside into ``output``: from then on in the foreground
        (the cell writes nothing else meanwhile), only inside for a background call."""
        if self._exclusive is None:
            self._capture(output)
            yield
            return
        with self._exclusive:
            output.msg_id = self._parent
            try:
                yield
            finally:
                sys.stdout.flush()  # the text goes out before the routing is undone
                output.msg_id = ""

    def _capture(self, output: Any) -> None:
        """Route this cell's output messages into ``output`` (the frontend does the routing)."""
        if self._capturing is output:
            return
        if self._capturing is not None:
            self._capturing.msg_id = ""
        output.msg_id = self._parent
        self._capturing = output

    def finish(self, result: StepResult) -> None:
        """Replace the live widgets by the static form, then close them."""
        result.shown_in = self._parent
        if self._capturing is not None:
            sys.stdout.flush()
            self._capturing.msg_id = ""
            self._capturing = None
        if self._panel is not None:
            result.reasoning_open = self._panel.selected_index == 0
        self.show_final(result)
        if self._panel is not None:
            self._empty(self._reasoning_out)
            close_widgets(self._reasoning_out)
            self._follow_late_clicks(result)
        self._empty(self._blocks)
        footer = getattr(self._footer, "children", ())  # the status, and a Stop button
        close_widgets(self._answer, self._blocks, self._tail, self._status, self._footer, *footer)

    def show_final(self, result: StepResult) -> None:
        """Put the static form under the panel's display ids: at the end, and again from
        another cell (a background call's ``wait()``), which updates this cell's outputs."""
        if self._panel is not None:
            update_display(reasoning_bundle(result), display_id=self._ids["reasoning"], raw=True)
        elif self._calls_only:
            calls = dataclasses.replace(result, reasoning="")
            update_display(reasoning_bundle(calls), display_id=self._ids["reasoning"], raw=True)
        update_display(answer_bundle(result), display_id=self._ids["answer"], raw=True)
        update_display(footer_bundle(result), display_id=self._ids["footer"], raw=True)

    @staticmethod
    def _empty(output: Any) -> None:
        """Empty a finished Output, so tools that save widget state even for closed widgets
        (nbclient, papermill) do not store the text a second time next to the static form.

        Done through the widget's state, not a clear_output message: a frontend without a
        widget manager would apply that message to the whole cell.
        """
        output.outputs = ({"output_type": "stream", "name": "stdout", "text": ""},)
        output.outputs = ()

    def _follow_late_clicks(self, result: StepResult) -> None:
        """Keep the saved ``<details>`` open or closed as the user left the live panel.

        A click made while the reply streamed reaches the kernel only after the cell ends
        (the kernel runs one request at a time), so the header stays alive, without its
        content, until the next call, and re-renders the static block when a click lands.
        """
        import ipywidgets as widgets

        panel = self._panel
        placeholder = widgets.Box()  # an index must stay valid for the click to apply
        panel.children = (placeholder,)
        keep_until_next_call(panel, placeholder)

        def on_click(change: dict[str, Any]) -> None:
            result.reasoning_open = change["new"] == 0
            update_display(reasoning_bundle(result), display_id=self._ids["reasoning"], raw=True)

        panel.observe(on_click, names="selected_index")
