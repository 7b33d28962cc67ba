"""A real ipykernel driven over ZMQ, recording every iopub message a cell produced.

This is what a Jupyter frontend sees, so tests can assert on the wire traffic of a cell
(widget comms, stream and display messages, their count and their bytes).
"""

from __future__ import annotations

import itertools
import json
import queue
import time
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.manager import KernelManager


@dataclass
class CellRun:
    """The iopub messages one execution produced, and its reply."""

    messages: list[dict[str, Any]]
    reply: dict[str, Any] = field(default_factory=dict)
    msg_id: str = ""

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["msg_type"] in types]

    @property
    def wire_bytes(self) -> int:
        """Size of the messages' content as JSON: what grows with the text."""
        return sum(len(json.dumps(m["content"])) for m in self.messages)

    def comm_models(self) -> dict[str, str]:
        """comm id -> widget model name (an anywidget's class name, ``ReasoningPart``), for
        every widget the cell opened."""
        models = {}
        for message in self.of_type("comm_open"):
            state = message["content"]["data"]["state"]
            name = state.get("_anywidget_id", state.get("_model_name", "")).rsplit(".", 1)[-1]
            models[message["content"]["comm_id"]] = name
        return models

    def comm_of(self, model: str) -> str:
        """The comm id of the one widget of class ``model`` the cell opened."""
        (comm,) = [comm for comm, name in self.comm_models().items() if name == model]
        return comm

    def panel_text(self, key: str = "r") -> str:
        """What the live panel was sent, joined: ``r`` the reasoning, ``b`` the answer's
        finished blocks (custom widget messages, in order; a stream may split anywhere)."""
        return "".join(
            message["content"]["data"]["content"].get(key, "")
            for message in self.of_type("comm_msg")
            if message["content"]["data"].get("method") == "custom"
        )

    def final_outputs(self) -> dict[str, dict[str, Any]]:
        """display id -> the last bundle shown under it (what a saved notebook keeps)."""
        shown: dict[str, dict[str, Any]] = {}
        for message in self.of_type("display_data", "update_display_data"):
            display_id = message["content"].get("transient", {}).get("display_id")
            if display_id:
                shown[display_id] = message["content"]["data"]
        return shown

    def stdout(self) -> str:
        """All the text the cell streamed, joined: a frontend shows it as one text, and the
        kernel may split it across messages anywhere, so tests never look inside one."""
        return "".join(m["content"]["text"] for m in self.of_type("stream"))

    def error(self) -> dict[str, Any] | None:
        errors = self.of_type("error")
        return errors[-1]["content"] if errors else None


class KernelSession:
    """One kernel for a test session; ``execute`` blocks until the cell is idle."""

    def __init__(self, env: dict[str, str]) -> None:
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        # Messages read while another cell ran: what a background thread sent to its own
        # cell after that cell ended (``sent_to``) lands here.
        self.elsewhere: list[dict[str, Any]] = []
        self._received = itertools.count()

    def execute(
        self,
        code: str,
        *,
        timeout: float = 60,
        interrupt_after: str | None = None,
        interrupt_on_text: str | None = None,
        cell_id: str | None = None,
        stdin: str | None = None,
        allow_stdin: bool = False,
    ) -> CellRun:
        """Run ``code``; with ``interrupt_after``, interrupt once a message of that type came
        (with ``interrupt_on_text``, once the text streamed or sent to the live panel so far
        contains it: a stream can split anywhere, so the text is accumulated, never looked for
        inside one message).

        ``cell_id`` is sent in the request metadata as JupyterLab does (``cellId``);
        ``stdin`` answers the cell's input request (getpass), as a user typing would;
        ``allow_stdin`` says, as JupyterLab does and nbclient does not, that a person is there.
        """
        msg_id = self._send(code, cell_id, stdin is not None or allow_stdin)
        run = CellRun(messages=[], msg_id=msg_id)
        deadline = time.monotonic() + timeout
        interrupted = False
        streamed: list[str] = []
        while time.monotonic() < deadline:
            if stdin is not None and self._answer_input(stdin):
                stdin = None
            try:
                message = self.client.get_iopub_msg(timeout=0.2 if stdin else 1)
            except queue.Empty:
                continue
            message["received"] = next(self._received)  # the order they came in, across cells
            if message["parent_header"].get("msg_id") != msg_id:
                self.elsewhere.append(message)  # a background call's, or a late one
                continue
            if message["msg_type"] == "status":
                if message["content"]["execution_state"] == "idle":
                    run.reply = self._reply_to(msg_id)
                    return run
                continue
            run.messages.append(message)
            if message["msg_type"] == "stream":
                streamed.append(message["content"].get("text", ""))
            elif message["msg_type"] == "comm_msg":  # the live panel's text
                streamed.append(message["content"]["data"].get("content", {}).get("r", ""))
            wanted = (
                interrupt_on_text in "".join(streamed)
                if interrupt_on_text is not None
                else message["msg_type"] == interrupt_after
            )
            if (interrupt_after or interrupt_on_text) and not interrupted and wanted:
                self.manager.interrupt_kernel()
                interrupted = True
        raise TimeoutError(f"cell did not finish in {timeout} s: {code[:80]!r}")

    def sent_to(self, run: CellRun) -> CellRun:
        """Everything ``run``'s cell received, also after it ended (as a frontend shows it)."""
        late = [m for m in self.elsewhere if m["parent_header"].get("msg_id") == run.msg_id]
        return CellRun(messages=run.messages + late, reply=run.reply, msg_id=run.msg_id)

    def click_stop(self, comm_id: str) -> None:
        """Press the Stop button of the status line whose widget has ``comm_id``, as the
        panel's script does (``static/status.js``)."""
        content = {"comm_id": comm_id, "data": {"method": "custom", "content": {"stop": True}}}
        self.client.shell_channel.send(self.client.session.msg("comm_msg", content))

    def click(self, comm_id: str, content: dict[str, Any], timeout: float = 60) -> CellRun:
        """Send a widget's custom message (a click in its script) and collect what the kernel
        sent while handling it, until it is idle again."""
        data = {"comm_id": comm_id, "data": {"method": "custom", "content": content}}
        message = self.client.session.msg("comm_msg", data)
        self.client.shell_channel.send(message)
        msg_id = message["header"]["msg_id"]
        run = CellRun(messages=[], msg_id=msg_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                received = self.client.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            received["received"] = next(self._received)
            if received["parent_header"].get("msg_id") != msg_id:
                self.elsewhere.append(received)
            elif received["msg_type"] == "status":
                if received["content"]["execution_state"] == "idle":
                    return run
            else:
                run.messages.append(received)
        raise TimeoutError(f"the kernel did not handle {content} in {timeout} s")

    def _answer_input(self, text: str) -> bool:
        try:
            request = self.client.stdin_channel.get_msg(timeout=0.05)
        except queue.Empty:
            return False
        if request["msg_type"] != "input_request":
            return False
        self.client.input(text)
        return True

    def _send(self, code: str, cell_id: str | None, allow_stdin: bool) -> str:
        if cell_id is None:
            return str(self.client.execute(code, allow_stdin=allow_stdin))
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": allow_stdin,
            "stop_on_error": True,
        }
        message = self.client.session.msg("execute_request", content, metadata={"cellId": cell_id})
        self.client.shell_channel.send(message)
        return str(message["header"]["msg_id"])

    def _reply_to(self, msg_id: str) -> dict[str, Any]:
        """The execute reply of ``msg_id``, skipping replies to requests nobody waited for."""
        while True:
            reply = self.client.get_shell_msg(timeout=10)
            if reply["parent_header"].get("msg_id") == msg_id:
                return dict(reply["content"])

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
