"""Run the fault matrix through a real ``%step`` and write what the user saw to docs/reliability.md.

Every fault the bundled server can play (``step_magic.server.FAULTS``), plus a refused
connection, a name that does not resolve, a self-signed certificate and a few hostile replies,
each through an IPython shell with the extension loaded, exactly as a user would meet it. For
each we record ``_step.status``, the one line the user read, whether the text that had
arrived was kept, whether a traceback or the API key showed anywhere, and how long the cell
took. Loopback only (the DNS case asks the resolver for a ``.invalid`` name, which it refuses).

    python scripts/reliability_report.py            # writes docs/reliability.md
    python scripts/reliability_report.py --stdout   # prints the table instead

Exit status 1 when the key leaked or a traceback showed in any case.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import html as html_module
import io
import json
import os
import platform
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.sse_peer: the raw-socket peer the tests use

from step_magic.core.cassette import Cassette, RecordedReply  # noqa: E402
from step_magic.core.request import ChatRequest  # noqa: E402
from step_magic.display.bundles import answer_bundle, reasoning_bundle  # noqa: E402
from step_magic.memory.history import History  # noqa: E402
from step_magic.server import FAULTS, LocalServer, ServerConfig  # noqa: E402
from step_magic.wire.sse import MAX_EVENT_CHARS  # noqa: E402
from tests.sse_peer import SSEPeer  # noqa: E402

KEY = "sk-step-report-5ecret-KEY-9876543210"
OUTPUT = ROOT / "docs" / "reliability.md"
COMMAND = "python scripts/reliability_report.py"
SELF_SIGNED = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
HEX_ID = re.compile(r"\b[0-9a-f]{32}\b")
PORT = re.compile(r"127\.0\.0\.1:\d+")

WHAT = {
    "400": "400 invalid parameters",
    "400-context": "400 context too long",
    "401": "401 invalid key",
    "402": "402 insufficient balance",
    "403": "403 permission denied",
    "404": "404 unknown model",
    "429": "429 with `Retry-After: 0.2`, every attempt",
    "429-bare": "429 without `Retry-After`, every attempt",
    "451": "451 content review",
    "500": "500, every attempt",
    "503": "503, every attempt",
    "content-filter": "stream ends with `finish_reason: content_filter`",
    "drop-answer": "connection cut in the middle of the answer",
    "drop-reasoning": "connection cut in the middle of the reasoning",
    "empty": "200 with only `data: [DONE]`",
    "error-event": "error event in the middle of the stream",
    "length": "stream ends with `finish_reason: length`",
    "malformed": "a chunk that is not JSON",
    "no-done": "no `data: [DONE]` after the last chunk",
    "reasoning-only": "reasoning, then no answer",
    "stall-before": "headers never come (`--timeout 1`)",
    "stall-mid": "stream stalls mid-reasoning (`--timeout 1`)",
    "unknown-shape": "chunks with `choices: []`, `delta: null`, unknown fields",
}

HOSTILE_PROMPT = "Say something odd"
HOSTILE_HTML = (
    "<script>window.__pwned=1</script></details><img src=x onerror=alert(1)>",
    "# Title\n\n<script>window.__pwned=2</script>\n\n[click](javascript:alert(1))\n\n"
    "<details><summary>x</summary>inner</details>\n",
)
HOSTILE_CHARS = (
    "NUL \x00, bell \x07, escape \x1b[31m, lone surrogate \ud800, RTL \u202eevil\u202c",
    "Answer with NUL \x00 and a lone surrogate \udfff.",
)
HOSTILE_HUGE = ("A" * 1_000_000, "Fine.")
HOSTILE_IMAGE = ("Thinking.", "The chart: ![c](http://tracker.invalid/t.png?id=reader)")
HOSTILE_PLACEHOLDER = ("Thinking.", "Literal STEPMAGICMATH7END, then $x^2$ and STEPMAGICMATH0END")
HOSTILE_MATHS = ("Thinking.", "\\[a" * 40_000)


@dataclass(frozen=True)
class Case:
    """One row: what goes wrong, the magic line that meets it, and how to arrange it."""

    name: str
    what: str
    line: str
    arrange: Callable[[Lab], Any] | None = None
    check: Callable[[Any], str] | None = None


@dataclass(frozen=True)
class Outcome:
    """What the user saw in one case."""

    case: Case
    status: str
    said: str
    kept: str
    traceback: bool
    key_shown: bool
    seconds: float
    notes: str


class Lab:
    """The local server, an IPython shell with step_magic loaded, and a scratch folder."""

    def __init__(self, scratch: Path) -> None:
        from IPython.core.interactiveshell import InteractiveShell

        self.scratch = scratch
        self.server = LocalServer(
            ServerConfig(api_key=KEY, stall_seconds=3, retry_after=0.2)
        ).start()
        self.history = scratch / "history.sqlite3"
        self._saved_env = dict(os.environ)
        os.environ.update(
            STEPFUN_API_KEY=KEY,
            STEPFUN_BASE_URL=self.server.base_url,
            STEP_MAGIC_HISTORY=str(self.history),
        )
        os.environ.pop("STEP_API_KEY", None)
        self.shell = InteractiveShell.instance()
        self.shell.run_line_magic("load_ext", "step_magic")
        self.peers: list[SSEPeer] = []
        with contextlib.redirect_stdout(io.StringIO()):  # imports openai: keep it out of row 1
            self.shell.run_cell("%step --no-memory warm up", store_history=False)

    def close(self) -> None:
        self.shell.run_line_magic("unload_ext", "step_magic")
        for peer in self.peers:
            peer.stop()
        self.server.stop()
        os.environ.clear()
        os.environ.update(self._saved_env)

    def reset(self) -> None:
        config = self.server.config
        config.fault, config.fault_times, config.cassette = None, None, None
        self.server.reset()
        self.shell.user_ns.pop("_step", None)

    def peer(
        self, pieces: list[bytes], tls: ssl.SSLContext | None = None, head: bytes | None = None
    ) -> SSEPeer:
        running = (
            SSEPeer(pieces, tls=tls, head=head) if head else SSEPeer(pieces, tls=tls)
        ).start()
        self.peers.append(running)
        return running

    def cassette(self, reasoning: str, answer: str) -> None:
        """Make the server answer HOSTILE_PROMPT with exactly this reply."""
        path = self.scratch / f"hostile-{len(list(self.scratch.glob('*.jsonl')))}.jsonl"
        request = ChatRequest("step-3.7-flash", ({"role": "user", "content": HOSTILE_PROMPT},))
        reply = RecordedReply(reasoning, answer, "stop", None, None, None)
        Cassette(path).store(request.cache_key(), request, reply)
        self.server.config.cassette = str(path)

    def run(self, case: Case) -> Outcome:
        self.reset()
        line = case.line
        if case.arrange is not None:
            url = case.arrange(self)
            line = line.replace("{url}", str(url))
        out = io.StringIO()
        started = time.monotonic()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            outcome = self.shell.run_cell(line, store_history=False)
        seconds = time.monotonic() - started
        seen = ANSI.sub("", out.getvalue())
        result = self.shell.user_ns.get("_step")
        error = outcome.error_in_exec or outcome.error_before_exec
        return Outcome(
            case=case,
            status=result.status if result is not None else "(unset)",
            said=_said(seen, error, result),
            kept=_kept(result, seen),
            traceback="Traceback" in seen,
            key_shown=KEY in seen or KEY in repr(result) or _key_in_history(self.history),
            seconds=seconds,
            notes=case.check(result) if case.check is not None and result is not None else "",
        )


def _said(seen: str, error: BaseException | None, result: Any) -> str:
    """The one line that tells the user what happened."""
    if error is not None:
        name = type(error).__name__
        lines = [line for line in seen.splitlines() if line.startswith(f"{name}:")]
        return _runs_folded(lines[-1] if lines else f"{name}: {error}")
    notice = result.notice if result is not None else None
    return f"ok — ⚠ {notice}" if notice else "ok"


def _runs_folded(line: str) -> str:
    """A long run of one character (a huge error body's filler) as ``x × 1,234``: the row
    must show the line's shape and length, not a screen of x."""
    return re.sub(r"(.)\1{39,}", lambda m: f"{m[1]} × {len(m[0]):,}", line)


def _kept(result: Any, seen: str) -> str:
    if result is None or not (result.reasoning or result.answer):
        return "nothing arrived"
    shown = all(text[:40] in seen for text in (result.reasoning, result.answer) if text)
    sizes = f"{len(result.reasoning):,} + {len(result.answer):,} chars"
    return f"{sizes}, {'shown' if shown else 'NOT shown'}"


def _key_in_history(path: Path) -> bool:
    files = [p for p in path.parent.glob(path.name + "*") if p.is_file()]
    return any(KEY.encode() in p.read_bytes() for p in files)


def _closed_port(_: Lab) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _self_signed(lab: Lab) -> str:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SystemExit("the openssl binary is needed for the self-signed certificate case")
    cert, key = lab.scratch / "cert.pem", lab.scratch / "key.pem"
    subprocess.run(
        [openssl, *SELF_SIGNED, "-days", "1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return lab.peer([b"data: [DONE]\n\n"], tls=context).base_url


def _echoes_key(lab: Lab) -> str:
    body = b'data: {"error": {"message": "invalid key ' + KEY.encode() + b'"}}\n\n'
    return lab.peer([body]).base_url


def _chunk(
    delta: dict[str, Any], usage: dict[str, Any] | None = None, end: str | None = None
) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": end}
    body: dict[str, Any] = {"id": "chatcmpl-report", "choices": [choice]}
    if usage is not None:
        body["usage"] = usage
    return f"data: {json.dumps(body)}\n\n".encode()


def _huge_error_body(lab: Lab) -> str:
    """A 400 whose JSON body is 20 MB (a proxy echoing what it got, say)."""
    message = "x" * 20_000_000
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error"}})
    head = (
        b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
    )
    return lab.peer([body.encode()], head=head).base_url


def _invalid_utf8(lab: Lab) -> str:
    """An invalid byte inside a long answer chunk: replaced, the reply goes on."""
    broken = _chunk({"content": "caf" + "é" * 100_000}, end="stop")
    broken = broken.replace("é".encode(), b"\xe9", 1)
    return lab.peer([_chunk({"reasoning": "Thinking."}), broken, b"data: [DONE]\n\n"]).base_url


def _impossible_usage(lab: Lab) -> str:
    """Usage of 10^30 tokens: left out, with a note; the reply is kept and recorded."""
    usage = {"prompt_tokens": 10**30, "completion_tokens": 5, "total_tokens": 10**30}
    pieces = [_chunk({"reasoning": "Thinking."}), _chunk({"content": "Fine."}, usage, "stop")]
    return lab.peer([*pieces, b"data: [DONE]\n\n"]).base_url


def _event_over_cap(lab: Lab) -> str:
    """``Hello `` arrives, then one chunk over the decoder's limit on a single event."""
    huge = _chunk({"content": "x" * (MAX_EVENT_CHARS + 1_000)})
    return lab.peer([_chunk({"content": "Hello "}), huge]).base_url


def _kept_in_history(result: Any) -> str:
    history = History()
    (row,) = history.recent(1)
    history.close()
    return f"the history keeps {row.answer!r}, {row.status}"


PASSWORD = "s3cret-pass-2026"
_BASIC = base64.b64encode(f"reader:{PASSWORD}".encode()).decode()


def _echoes_credentials(lab: Lab) -> str:
    """A gateway's 401 that quotes the Basic header a URL's ``user:password`` became."""
    body = json.dumps({"error": {"message": f"bad credentials: Authorization: Basic {_BASIC}"}})
    head = (
        b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n"
    )
    url = lab.peer([body.encode()], head=head).base_url
    return url.replace("://", f"://reader:{PASSWORD}@", 1)


def _password_hidden(result: Any) -> str:
    shown = repr(result) + str(result.error or "")
    history = Path(os.environ["STEP_MAGIC_HISTORY"]).read_bytes().decode("utf-8", "replace")
    leaked = [form for form in (PASSWORD, _BASIC) if form in shown + history]
    return f"password shown: {', '.join(leaked)}" if leaked else "password hidden (plain, base64)"


def _hostile(reasoning: str, answer: str) -> Callable[[Lab], str]:
    def arrange(lab: Lab) -> str:
        lab.cassette(reasoning, answer)
        return lab.server.base_url

    return arrange


def _no_live_markup(result: Any) -> str:
    html = reasoning_bundle(result).get("text/html", "")
    markdown = answer_bundle(result)["text/markdown"]
    outside_code = re.sub(r"```.*?```|`[^`]*`", "", markdown, flags=re.S)
    live = [tag for tag in ("<script", "<img", "<details>") if tag in html + outside_code]
    if html.count("</details>") > 1:
        live.append("</details>")
    return f"live markup in the saved form: {', '.join(live)}" if live else "no live markup"


def _clean_chars(result: Any) -> str:
    text = result.reasoning + result.answer
    bad = re.findall("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]", text)
    return f"{len(bad)} unsafe characters kept" if bad else "control chars and surrogates → U+FFFD"


def _no_remote_image(result: Any) -> str:
    html = answer_bundle(result)["text/html"]
    return "remote image loaded" if "<img" in html else "remote image shown as a link"


def _text_kept(result: Any) -> str:
    shown = html_module.unescape(re.sub(r"<[^>]+>", "", answer_bundle(result)["text/html"]))
    return "answer shown as written" if result.answer in shown else "answer text altered"


def _render_time(result: Any) -> str:
    started = time.perf_counter()
    answer_bundle(result)
    return f"saved form rendered in {time.perf_counter() - started:.2f} s"


def _error_line_length(result: Any) -> str:
    error = getattr(result, "error", None) or ""
    return f"error text {len(str(error)):,} characters"


def _usage_note(result: Any) -> str:
    return f"usage {'kept' if result.usage else 'left out'}; notes: {'; '.join(result.notes)}"


def _fault(name: str) -> Callable[[Lab], None]:
    def arrange(lab: Lab) -> None:
        lab.server.config.fault = name

    return arrange


def cases() -> Iterator[Case]:
    for fault in FAULTS:
        if fault in ("tool-loop", "chatty-tools"):  # tool calling, not delivery: test_tools_*
            continue
        stall = fault.startswith("stall")
        yield Case(
            fault,
            WHAT.get(fault, fault),
            "%step --timeout 1 Hi" if stall else "%step Hi",
            arrange=_fault(fault),
        )

    def twice_then_ok(lab: Lab) -> None:
        lab.server.config.fault, lab.server.config.fault_times = "429", 2

    yield Case("429x2", "429 twice, then a normal reply", "%step Hi", arrange=twice_then_ok)
    yield Case(
        "refused",
        "nothing listens on the port",
        "%step --base-url {url} Hi",
        arrange=_closed_port,
    )
    yield Case(
        "dns",
        "`no-such-host.invalid` does not resolve",
        "%step --base-url https://no-such-host.invalid/v1 --timeout 3 Hi",
    )
    yield Case(
        "self-signed",
        "HTTPS with a self-signed certificate",
        "%step --base-url {url} --timeout 3 Hi",
        arrange=_self_signed,
    )
    yield Case(
        "huge-error-body",
        "a 400 whose body is 20 MB",
        "%step --base-url {url} Hi",
        arrange=_huge_error_body,
        check=_error_line_length,
    )
    yield Case(
        "invalid-utf8",
        "an invalid UTF-8 byte inside a 200 KB answer chunk",
        "%step --base-url {url} Hi",
        arrange=_invalid_utf8,
    )
    yield Case(
        "usage-overflow",
        "usage of 10^30 tokens",
        "%step --base-url {url} Hi",
        arrange=_impossible_usage,
        check=_usage_note,
    )
    yield Case(
        "prompt-too-big",
        "a 1.6 M-character prompt (over the 256K-token context)",
        "%%step --no-memory\n" + "many words " * 150_000,
    )
    yield Case(
        "event-over-cap",
        f"a chunk over the {MAX_EVENT_CHARS:,}-character event limit, after `Hello `",
        "%step --base-url {url} Hi",
        arrange=_event_over_cap,
        check=_kept_in_history,
    )
    yield Case(
        "echoes-credentials",
        "a 401 quoting the Basic header of a URL's `user:password`",
        "%step --base-url {url} Hi",
        arrange=_echoes_credentials,
        check=_password_hidden,
    )
    yield Case(
        "echoes-key",
        "hostile: error event that quotes the API key",
        "%step --base-url {url} Hi",
        arrange=_echoes_key,
    )
    hostile = f"%%step --no-memory\n{HOSTILE_PROMPT}"
    yield Case(
        "html",
        "hostile: `<script>`, `<img onerror>`, `javascript:` links, `</details>`",
        hostile,
        arrange=_hostile(*HOSTILE_HTML),
        check=_no_live_markup,
    )
    yield Case(
        "control-chars",
        "hostile: NUL, escape codes, lone surrogates, RTL override",
        hostile,
        arrange=_hostile(*HOSTILE_CHARS),
        check=_clean_chars,
    )
    yield Case(
        "huge-line",
        "hostile: 1,000,000-character reasoning line",
        hostile,
        arrange=_hostile(*HOSTILE_HUGE),
    )
    yield Case(
        "remote-image",
        "hostile: an answer with a remote image (a beacon when the notebook is opened)",
        hostile,
        arrange=_hostile(*HOSTILE_IMAGE),
        check=_no_remote_image,
    )
    yield Case(
        "placeholders",
        "hostile: the renderer's maths placeholders written in the answer",
        hostile,
        arrange=_hostile(*HOSTILE_PLACEHOLDER),
        check=_text_kept,
    )
    yield Case(
        "maths-bomb",
        "hostile: 120 KB of unclosed `\\[` (was 26 s of rendering)",
        hostile,
        arrange=_hostile(*HOSTILE_MATHS),
        check=_render_time,
    )
    yield Case(
        "json-bomb",
        "hostile: `[` × 100,000 with `--format json`",
        f"%%step --no-memory --format json\n{HOSTILE_PROMPT}",
        arrange=_hostile("Thinking.", "[" * 100_000),
    )


def markdown(outcomes: list[Outcome], when: dt.datetime) -> str:
    versions = ", ".join(
        f"{name} {metadata.version(name)}" for name in ("step-magic", "openai", "ipython")
    )
    head = [
        "# Reliability: what a user sees when things go wrong",
        "",
        f"Generated by `{COMMAND}` on {when:%Y-%m-%d %H:%M} UTC "
        f"(Python {platform.python_version()}, {versions}). Do not edit by hand: run it again.",
        "",
        "How well the tests would notice a change in the core modules (mutation scores, per "
        "module, with the surviving mutants) is in [mutation.md](mutation.md), written by "
        "`python scripts/mutation.py`.",
        "",
        "Each row is one `%step` cell run in an IPython shell with the extension loaded, "
        "against the bundled local server (or a raw socket peer) on 127.0.0.1, with the "
        "default settings (3 retries for 429/5xx before any text arrived). "
        "*What the user saw* is the one line printed for a failed cell (ids shortened to …), "
        "or `ok` with the notice the footer showed. *Text kept* is what arrived before the "
        "failure (reasoning + answer), and whether it stayed on screen. *Traceback* and "
        "*key shown* must be `no` in every row; the key is looked for in the output, in "
        "`repr(_step)` and in the history database.",
        "",
        "| case | what happened | `_step.status` | what the user saw | text kept "
        "| traceback | key shown | time | notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [
        "| "
        + " | ".join(
            (
                f"`{o.case.name}`",
                o.case.what,
                f"`{o.status}`",
                _cell(o.said),
                o.kept,
                "**yes**" if o.traceback else "no",
                "**YES**" if o.key_shown else "no",
                f"{o.seconds:.2f} s",
                o.notes,
            )
        )
        + " |"
        for o in outcomes
    ]
    leaks = sum(o.key_shown for o in outcomes)
    tracebacks = sum(o.traceback for o in outcomes)
    summary = (
        f"{len(outcomes)} cases, {sum(o.seconds for o in outcomes):.1f} s in all; "
        f"tracebacks shown: {tracebacks}; key shown: {leaks}."
    )
    return "\n".join([*head, *rows, "", summary, ""])


def _cell(text: str) -> str:
    text = HEX_ID.sub("…", PORT.sub("127.0.0.1:PORT", text))
    return text.replace("|", "\\|").replace("<", "&lt;")  # a server's words are not markup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stdout", action="store_true", help="print instead of writing")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write")
    args = parser.parse_args(argv)
    when = dt.datetime.now(dt.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="step-reliability-") as folder:
        lab = Lab(Path(folder))
        try:
            outcomes = []
            for case in cases():
                outcome = lab.run(case)
                outcomes.append(outcome)
                print(f"{case.name:>15}  {outcome.status:<11} {outcome.seconds:5.2f} s", flush=True)
        finally:
            lab.close()
    text = markdown(outcomes, when)
    if args.stdout:
        print(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    bad = [o.case.name for o in outcomes if o.key_shown or o.traceback]
    if bad:
        print(f"key shown or traceback in: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
