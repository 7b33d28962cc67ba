"""Bounded everywhere: what a server, a file or an input can make step-magic hold, show or keep
has a limit, and hitting it is one line that loses nothing already received.

Each test is one hostile or broken peer (real sockets on 127.0.0.1) or input, and checks what
the user meets: the error line, the result, the history row.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import step_magic
from step_magic.core.text import MAX_MESSAGE_CHARS
from step_magic.memory.history import History
from step_magic.server import LocalServer

from .conftest import TEST_KEY
from .sse_peer import SSEPeer


class Refusing(BaseHTTPRequestHandler):
    """Answers every POST with ``status`` and ``body`` (set on the server)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = self.server.body  # type: ignore[attr-defined]
        self.send_response(self.server.status)  # type: ignore[attr-defined]
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def refusing() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url_of(server: ThreadingHTTPServer, credentials: str = "") -> str:
    return f"http://{credentials}127.0.0.1:{server.server_address[1]}/v1"


# --- error bodies -----------------------------------------------------------------------------


def test_a_huge_error_body_is_a_bounded_line_in_the_error_and_the_history(
    api_env: LocalServer, refusing: ThreadingHTTPServer
) -> None:
    message = "too long: " + "x" * 10_000_000 + " :end"
    refusing.status, refusing.body = 400, json.dumps({"error": {"message": message}}).encode()  # type: ignore[attr-defined]
    with pytest.raises(step_magic.StepAPIError) as caught:
        step_magic.ask("Hi", base_url=url_of(refusing), display=False)
    line = str(caught.value)
    assert len(line) < MAX_MESSAGE_CHARS + 200
    assert line.count("\n") == 0
    assert "too long: xxx" in line
    assert "characters cut" in line
    assert line.rstrip(")").endswith(":end") or " :end" in line  # head and tail are kept
    history = History()
    (row,) = history.recent(1)
    history.close()
    assert row.status == "failed"
    assert len(row.error or "") < MAX_MESSAGE_CHARS + 200


def test_an_echoed_authorization_header_never_shows_the_password_or_the_key(
    api_env: LocalServer, refusing: ThreadingHTTPServer
) -> None:
    basic = base64.b64encode(b"ada:s3cret-pass").decode()
    echoed = (
        f"Invalid auth. You sent Authorization: Basic {basic} and Bearer {TEST_KEY}; "
        f"as base64 {base64.b64encode(TEST_KEY.encode()).decode()}, "
        f"percent-encoded {urllib.parse.quote(TEST_KEY, safe='')}"
    )
    refusing.status, refusing.body = 401, json.dumps({"error": {"message": echoed}}).encode()  # type: ignore[attr-defined]
    with pytest.raises(step_magic.StepAPIError) as caught:
        step_magic.ask("Hi", base_url=url_of(refusing, "ada:s3cret-pass@"), display=False)
    line = str(caught.value)
    for secret in ("s3cret", basic, TEST_KEY, base64.b64encode(TEST_KEY.encode()).decode()[4:-4]):
        assert secret not in line
    assert urllib.parse.quote(TEST_KEY, safe="") not in line
    assert "Basic ***" in line


def test_a_chat_never_shows_its_key_in_its_attributes(api_env: LocalServer) -> None:
    chat = step_magic.Chat("secret", api_key=TEST_KEY, history=False)
    public = {name: value for name, value in vars(chat).items() if not name.startswith("_")}
    assert TEST_KEY not in repr(public) + repr(chat)
    assert chat.keywords == {"api_key": "***"}


# --- numbers from the server ----------------------------------------------------------------------


def test_an_impossible_token_count_is_left_out_and_the_reply_kept(api_env: LocalServer) -> None:
    usage = {"prompt_tokens": 10**30, "completion_tokens": 5, "total_tokens": 10**30 + 5}
    chunk = {
        "id": "chatcmpl-big",
        "choices": [{"index": 0, "delta": {"content": "Fine."}, "finish_reason": "stop"}],
        "usage": usage,
    }
    with SSEPeer([f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()]) as peer:
        result = step_magic.ask("Hi", base_url=peer.base_url, display=False)
    assert (result.status, result.answer, result.usage, result.cost) == (
        "complete",
        "Fine.",
        None,
        None,
    )
    assert "impossible token count" in result.notes[0]
    history = History()
    (row,) = history.recent(1)
    history.close()
    assert (row.answer, row.prompt_tokens) == ("Fine.", None)
