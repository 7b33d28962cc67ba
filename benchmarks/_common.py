"""Helpers shared by the benchmarks: the server process, the bare SDK loop, a timed kernel.

Every benchmark compares step-magic with a baseline measured in the same run, against the
bundled StepFun-compatible server running in its own process (so its CPU time is never
counted as ours). Only loopback traffic: the server listens on 127.0.0.1.

This module is also imported inside benchmark kernels (``PYTHONPATH`` points here), so its
top level imports nothing heavy; openai and jupyter_client load inside the functions.
"""

from __future__ import annotations

import ast
import json
import os
import queue
import re
import select
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
API_KEY = "sk-bench-local"
MODEL = "step-3.7-flash"
PROMPT = "Why does the Moon always show us the same face?"
SERVER_START_SECONDS = 30
# Messages that say the kernel is busy or echo the code: not output of the cell.
HOUSEKEEPING = frozenset({"status", "execute_input"})


class Unmeasurable(RuntimeError):
    """The benchmark could not take its measurement (server, kernel or call failed)."""


def run(main: Callable[[], None]) -> None:
    """Run a benchmark's ``main``; exit 2 with one line if it could not measure."""
    try:
        main()
    except Unmeasurable as err:
        print(f"cannot measure: {err}", file=sys.stderr)
        raise SystemExit(2) from None


# --- the server --------------------------------------------------------------------------


def split(chunks: int) -> tuple[int, int]:
    """A reply of ``chunks`` chunks as (reasoning, answer) tokens: four fifths reasoning."""
    reasoning = chunks * 4 // 5
    return reasoning, max(chunks - reasoning, 1)


@contextmanager
def local_server(
    reasoning_tokens: int,
    answer_tokens: int,
    tokens_per_second: float = 0,
    first_byte_delay: float = 0,
) -> Iterator[str]:
    """Run ``python -m step_magic.server`` in a subprocess; yield its base URL, then stop it.

    Replies have exactly ``reasoning_tokens`` + ``answer_tokens`` chunks, sent as fast as the
    client reads them unless ``tokens_per_second`` paces them, each starting
    ``first_byte_delay`` seconds late (a network's latency).
    """
    command = [sys.executable, "-m", "step_magic.server", "--port", "0"]
    command += ["--reasoning-tokens", str(reasoning_tokens)]
    command += ["--answer-tokens", str(answer_tokens)]
    command += ["--tokens-per-second", str(tokens_per_second)]
    command += ["--first-byte-delay", str(first_byte_delay)]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True)
        try:
            yield _base_url(process, errors)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()


def _base_url(process: subprocess.Popen[str], errors: Any) -> str:
    """The URL the server prints on its first line, or ``Unmeasurable`` with its stderr."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], SERVER_START_SECONDS)
    line = process.stdout.readline() if ready else ""
    match = re.search(r"http://127\.0\.0\.1:\d+/v1", line)
    if match is None:
        errors.seek(0)
        detail = errors.read().decode(errors="replace").strip()
        raise Unmeasurable(f"the local server did not start: {line.strip() or detail!r}")
    return match.group(0)


def bare_stream(
    base_url: str, *, prompt: str = PROMPT, sink: Callable[[str], object] | None = None
) -> tuple[str, str]:
    """The baseline: the openai SDK stream, concatenating reasoning and content, nothing else.

    ``sink`` (used for the naive display approaches) receives every non-empty piece.
    Returns ``(reasoning, content)``.
    """
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0)
    reasoning: list[str] = []
    content: list[str] = []
    try:
        stream = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": prompt}], stream=True
        )
        for chunk in stream:
            for choice in chunk.choices:
                delta = choice.delta
                extra = delta.model_extra or {}
                thought = getattr(delta, "reasoning", None) or extra.get("reasoning")
                for text, into in ((thought, reasoning), (delta.content, content)):
                    if text:
                        into.append(text)
                        if sink is not None:
                            sink(text)
    finally:
        client.close()
    return "".join(reasoning), "".join(content)


def print_now(text: str) -> None:
    """A sink for the baseline cells: print a piece and flush it (ipykernel otherwise holds
    stdout for up to 0.2 s, which would make the baseline look slower than it is)."""
    print(text, end="", flush=True)


def print_into(output: Any) -> Callable[[str], None]:
    """A sink printing each piece inside ``with output:`` (a naive per-chunk widget display)."""

    def sink(text: str) -> None:
        with output:
            print(text, end="")

    return sink


def step_cell(base_url: str, prompt: str = PROMPT) -> str:
    """The ``%%step`` cell every benchmark runs (the URL on the flag: one kernel, many servers)."""
    return f"%%step --base-url {base_url}\n{prompt}"


# --- kernels -----------------------------------------------------------------------------


@dataclass
class TimedRun:
    """One execution: when it was sent, and each iopub message with its arrival time."""

    sent: float
    arrivals: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=dict)

    @property
    def outputs(self) -> list[dict[str, Any]]:
        """The cell's messages, without busy/idle and the echoed code."""
        return [m for _, m in self.arrivals if m["msg_type"] not in HOUSEKEEPING]

    def first(self, accept: Callable[[dict[str, Any]], bool]) -> float:
        """Seconds from sending to the first message ``accept`` takes."""
        for arrived, message in self.arrivals:
            if accept(message):
                return arrived - self.sent
        raise Unmeasurable("no such message in the cell's output")


def message_bytes(message: dict[str, Any]) -> int:
    """What one iopub message carries that grows with the text: content JSON and buffers."""
    buffers = sum(memoryview(b).nbytes for b in message.get("buffers") or ())
    return len(json.dumps(message["content"])) + buffers


class Kernel:
    """A real ipykernel (python3) driven over ZMQ, as a Jupyter frontend drives it."""

    def __init__(self, env: dict[str, str]) -> None:
        from jupyter_client.manager import KernelManager

        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    @property
    def pid(self) -> int:
        """The kernel's process id (for its CPU time)."""
        return int(self.manager.provisioner.pid)  # type: ignore[union-attr]

    def execute(
        self, code: str, *, timeout: float = 600, user_expressions: dict[str, str] | None = None
    ) -> TimedRun:
        """Run ``code`` and wait until the kernel is idle; fail on an error reply."""
        run = TimedRun(sent=time.perf_counter())
        msg_id = self.client.execute(code, user_expressions=user_expressions or {})
        deadline = run.sent + timeout
        while time.perf_counter() < deadline:
            try:
                message = self.client.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            run.arrivals.append((time.perf_counter(), message))
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                run.reply = self._reply_to(msg_id)
                if run.reply.get("status") != "ok":
                    raise Unmeasurable(f"{code[:60]!r} failed: {run.reply.get('evalue')}")
                return run
        raise Unmeasurable(f"cell did not finish in {timeout} s: {code[:60]!r}")

    def evaluate(self, expression: str) -> Any:
        """The value of a Python literal expression evaluated in the kernel."""
        reply = self.execute("", user_expressions={"value": expression}).reply
        result = reply["user_expressions"]["value"]
        if result.get("status") != "ok":
            raise Unmeasurable(f"{expression!r} failed in the kernel: {result.get('evalue')}")
        return ast.literal_eval(result["data"]["text/plain"])

    def _reply_to(self, msg_id: str) -> dict[str, Any]:
        while True:
            reply = self.client.get_shell_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == msg_id:
                return dict(reply["content"])

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@contextmanager
def ipython_dir() -> Iterator[str]:
    """A throwaway ``IPYTHONDIR`` (set for this process too): no history or profile left behind."""
    saved = os.environ.get("IPYTHONDIR")
    with tempfile.TemporaryDirectory(prefix="step-bench-ipython-") as path:
        os.environ["IPYTHONDIR"] = path
        try:
            yield path
        finally:
            if saved is None:
                os.environ.pop("IPYTHONDIR", None)
            else:
                os.environ["IPYTHONDIR"] = saved


def kernel_env(base_url: str = "") -> dict[str, str]:
    """The environment of a benchmark kernel: a key, the server, this folder importable."""
    env = {**os.environ, "STEPFUN_API_KEY": API_KEY, "STEPFUN_BASE_URL": base_url}
    env.pop("STEP_API_KEY", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    return env


@contextmanager
def kernel(base_url: str = "", *, load: bool = True) -> Iterator[Kernel]:
    """A fresh kernel (with ``%load_ext step_magic`` run when ``load``), always shut down."""
    session = Kernel(kernel_env(base_url))
    try:
        if load:
            session.execute("%load_ext step_magic")
        yield session
    finally:
        session.shutdown()


def check_reply(session: Kernel, chunks: int) -> tuple[int, float]:
    """Text length and elapsed seconds of ``_step``; ``Unmeasurable`` unless it completed."""
    status, text, elapsed = session.evaluate(
        "(_step.status, len(_step.reasoning) + len(_step.answer), _step.elapsed)"
    )
    if status != "complete":
        raise Unmeasurable(f"the {chunks:,}-chunk reply ended {status!r}")
    return int(text), float(elapsed)


# --- reporting ---------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median, or ``Unmeasurable`` when nothing was measured."""
    if not values:
        raise Unmeasurable("no samples")
    return statistics.median(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        rest = [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join([row[0].ljust(widths[0]), *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def verdict(ok: bool, target: str, measured: str) -> str:
    """One plain line: met or missed, with the figures."""
    return f"target {target}: {'MET' if ok else 'MISSED'} ({measured})"
