"""Bounded everywhere: what a server, a file or an input can make step-magic hold, show or keep
has a limit, and hitting it is one line that loses nothing already received.

Each test is one hostile or broken peer (real sockets on 127.0.0.1) or input, and checks what
the user meets: the error line, the result, the history row.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

import step_magic
from step_magic.core.text import MAX_MESSAGE_CHARS
from step_magic.memory.history import History
from step_magic.server import LocalServer

from .conftest import LOCAL_KEY, TEST_KEY
from .http_handler import Handler, serving
from .sse_peer import SSEPeer


class Refusing(Handler):
    """Answers every POST with ``status`` and ``body`` (set on the server)."""

    def do_POST(self) -> None:
        self.body()
        self.reply(self.server.status, self.server.body)  # type: ignore[attr-defined]


@pytest.fixture
def refusing() -> Iterator[ThreadingHTTPServer]:
    server = serving(Refusing)
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
    assert "characters cut" in line  # the head and the tail of what was read are kept
    assert "(cut: the error body is over 1,000,000 bytes)" in line  # not read further
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


def test_a_password_or_key_echoed_decoded_or_without_its_prefix_is_never_shown(
    api_env: LocalServer, refusing: ThreadingHTTPServer
) -> None:
    """A gateway that decodes the ``Basic`` header it got, and one that quotes the key
    without its ``sk-``: neither the error nor the history row shows them."""
    password, key_body = "s3cret-pass/9876", TEST_KEY.removeprefix("sk-")
    echoed = f"bad token (decoded ada:{password}); key={key_body}"
    refusing.status, refusing.body = 401, json.dumps({"error": {"message": echoed}}).encode()  # type: ignore[attr-defined]
    with pytest.raises(step_magic.StepAPIError) as caught:
        step_magic.ask(
            "Hi", base_url=url_of(refusing, "ada:s3cret-pass%2F9876@"), api_key=TEST_KEY,
            display=False,
        )  # fmt: skip
    history = History()
    (row,) = history.recent(1)
    history.close()
    for shown in (str(caught.value), row.error or ""):
        assert "bad token (decoded ada:***); key=***" in shown
        assert password not in shown
        assert "s3cret-pass%2F9876" not in shown
        assert key_body not in shown


@pytest.mark.parametrize(
    ("credentials", "key", "hint"),
    [
        ("", TEST_KEY, "check the key this server expects (step-magic sends STEPFUN_API_KEY"),
        ("ada:pw-1@", TEST_KEY, "check the user name and password in the base URL: they are"),
        ("", None, "this server wants a key and none was sent: set STEPFUN_API_KEY"),
    ],
)
def test_a_refused_login_says_what_was_sent(
    refusing: ThreadingHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    credentials: str,
    key: str | None,
    hint: str,
) -> None:
    """A key, the base URL's user name and password (which the HTTP client sends as Basic
    auth in the key's place), or, to a server on this machine, nothing."""
    monkeypatch.delenv("STEPFUN_API_KEY", raising=False)
    refusing.status, refusing.body = 401, b'{"error": {"message": "Unauthorized"}}'  # type: ignore[attr-defined]
    with pytest.raises(step_magic.StepAPIError) as caught:
        step_magic.ask(
            "Hi", base_url=url_of(refusing, credentials), api_key=key, display=False,
            history=False,
        )  # fmt: skip
    assert str(caught.value).split(" — ")[1].startswith(hint)


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


# --- inputs -------------------------------------------------------------------------------------


class Broken:
    """An object whose own methods raise while it is summarised."""

    def __len__(self) -> int:
        raise RuntimeError("len is broken")

    @property
    def shape(self) -> tuple[int, int]:
        raise RuntimeError("shape is broken")

    def __iter__(self) -> Iterator[int]:
        raise RuntimeError("iter is broken")


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"prompt": None}, "the prompt must be text (str), not NoneType"),
        ({"prompt": b"hi"}, "the prompt must be text (str), not bytes"),
        ({"prompt": " \n"}, "nothing to ask: the prompt is empty"),
        (
            {"prompt": "What is in it?", "attach": "photos/cat.jpg"},
            "attach: no such file photos/cat.jpg; to send the text, put it in the prompt",
        ),
        (
            {"prompt": "x " * 600_000},
            "the prompt is about 300,001 tokens, over the 256,000 that step-3.7-flash takes",
        ),
    ],
    ids=["none", "bytes", "empty", "missing-file", "over-the-context"],
)
def test_what_cannot_be_sent_is_one_line_before_anything_is_sent(
    api_env: LocalServer, keywords: dict[str, Any], message: str
) -> None:
    with pytest.raises(step_magic.InputError) as caught:
        step_magic.ask(**keywords, display=False)
    assert str(caught.value).startswith(message)
    assert api_env.requests == []


def test_an_unreadable_file_or_a_broken_object_is_one_line(api_env: LocalServer) -> None:
    from pathlib import Path

    with pytest.raises(step_magic.InputError, match=r"^/proc/self/mem: cannot read it \("):
        step_magic.ask("What is in it?", attach=Path("/proc/self/mem"), display=False)
    result = step_magic.ask("What is it?", attach={"thing": Broken()}, display=False)
    assert result.attachments[0].endswith("Broken)")  # summarised without len() or shape
    import pandas as pd

    class BrokenFrame(pd.DataFrame):  # summarised as a frame: its len() is called
        def __len__(self) -> int:
            raise RuntimeError("len is broken")

    frame = BrokenFrame({"a": [1, 2]})
    with pytest.raises(step_magic.InputError, match=r"^df: cannot be summarised \(RuntimeError: "):
        step_magic.ask("What is it?", attach={"df": frame}, display=False)
    assert len(api_env.requests) == 1


def test_the_shell_refuses_piped_input_over_its_limit_or_binary_and_reads_latin1_leniently(
    api_env: LocalServer, tmp_path: Any
) -> None:
    import subprocess
    import sys

    script = [sys.executable, "-m", "step_magic.cli", "ask", "--no-reasoning", "what is it?"]
    big = subprocess.run(
        script, input=b"a" * 4_000_001, capture_output=True, timeout=120, env=_env(api_env)
    )
    assert big.returncode == 1
    assert big.stderr.decode().strip().endswith("send a part of it, or a summary")
    assert api_env.requests == []
    binary = subprocess.run(
        script, input=bytes(range(256)) * 4, capture_output=True, timeout=120, env=_env(api_env)
    )
    assert binary.returncode == 1
    assert binary.stderr.decode().strip() == (
        "step-magic ask: the piped input looks like binary data (it holds NUL bytes): pipe "
        "text, or convert it first"
    )
    assert api_env.requests == []
    latin1 = subprocess.run(
        script, input="café crème".encode("latin-1"), capture_output=True, timeout=120,
        env=_env(api_env),
    )  # fmt: skip
    assert latin1.returncode == 0, latin1.stderr.decode()[-500:]
    assert b"Traceback" not in latin1.stderr
    assert "caf\ufffd cr\ufffdme" in api_env.requests[-1].body["messages"][-1]["content"]
    utf16 = subprocess.run(  # Windows' ``type`` and PowerShell pipe UTF-16 with its mark
        script, input="café\r\n".encode("utf-16"), capture_output=True, timeout=120,
        env=_env(api_env),
    )  # fmt: skip
    assert utf16.returncode == 0, utf16.stderr.decode()[-500:]
    assert api_env.requests[-1].body["messages"][-1]["content"].startswith("café\n")


def _env(server: LocalServer) -> dict[str, str]:
    import os

    return {**os.environ, "STEPFUN_BASE_URL": server.base_url, "STEPFUN_API_KEY": TEST_KEY}


# --- the bundled server -------------------------------------------------------------------------


def raw_request(port: int, data: bytes, timeout: float = 10) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_a_body_announced_as_a_petabyte_is_refused_unread(local: LocalServer) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000000000000000\r\n\r\n{"
    )
    reply = raw_request(local.port, head)
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b"The request body is over 64,000,000 bytes." in reply
    assert b"\r\nConnection: close\r\n" in reply  # the body is not read: no keep-alive
    again = f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {LOCAL_KEY}\r\n"
    assert raw_request(local.port, again.encode() + b"Connection: close\r\n\r\n").startswith(
        b"HTTP/1.1 200 "
    )  # the server goes on


def test_a_length_that_is_no_number_is_answered_not_a_console_traceback(
    local: LocalServer, capfd: pytest.CaptureFixture[str]
) -> None:
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
        "Content-Type: application/json\r\nContent-Length: ²\r\nConnection: close\r\n\r\n"
    )
    reply = raw_request(local.port, head.encode("latin-1"))  # "²", which isdigit() takes

    assert reply.startswith(b"HTTP/1.1 4")
    assert "Traceback" not in capfd.readouterr().err


def test_idle_connections_are_dropped_and_their_number_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket
    import time

    from step_magic.server import ServerConfig, handler, httpserver

    monkeypatch.setattr(handler.StepRequestHandler, "timeout", 0.5)
    monkeypatch.setattr(httpserver, "MAX_CONNECTIONS", 4)
    with LocalServer(ServerConfig()) as server:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(4)]
        time.sleep(0.2)  # they hold every slot, sending nothing
        busy = raw_request(server.port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
        assert busy.startswith(b"HTTP/1.1 503 ")
        started = time.monotonic()
        for sock in idle:  # each is dropped by the server after its idle timeout
            sock.settimeout(10)
            assert sock.recv(1) == b""
            sock.close()
        assert time.monotonic() - started < 5
        models = raw_request(
            server.port,
            b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
            b"Connection: close\r\n\r\n",
        )
        assert models.startswith(b"HTTP/1.1 200 ")


def test_a_request_that_trickles_in_is_dropped_at_its_time_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Slowloris: a byte every 0.1 s never trips the idle limit, so the whole request has a
    limit of its own; a request sent at once, and the reply after it, are not affected."""
    import socket
    import time

    from step_magic.server import ServerConfig, httpserver

    monkeypatch.setattr(httpserver, "REQUEST_SECONDS", 1.0)
    with LocalServer(ServerConfig()) as server:
        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.settimeout(0.05)
        started, dropped = time.monotonic(), False
        for byte in b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            time.sleep(0.1)
            try:
                slow.sendall(bytes([byte]))
                dropped = slow.recv(1) == b""
            except TimeoutError:
                continue  # nothing from the server yet: it is still waiting
            except OSError:
                dropped = True
            if dropped:
                break
        slow.close()
        assert dropped
        assert time.monotonic() - started < 4  # dropped at about 1 s, not after the 20 s
        models = raw_request(
            server.port,
            b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n"
            b"Connection: close\r\n\r\n",
        )
        assert models.startswith(b"HTTP/1.1 200 ")


# --- stream framing -------------------------------------------------------------------------------

MESSAGE_START = (
    b'event: message_start\ndata: {"type": "message_start", "message": {"id": "msg_1", '
    b'"usage": {"input_tokens": 3}}}\n\n'
)


def text_delta(text: bytes) -> bytes:
    return (
        b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, '
        b'"delta": {"type": "text_delta", "text": "' + text + b'"}}\n\n'
    )


def kept_in_history() -> tuple[str, str]:
    """The newest history row's answer and status: what a limit cut is kept, marked."""
    history = History()
    (row,) = history.recent(1)
    history.close()
    return row.answer, row.status


def test_an_event_over_the_limit_stops_the_reply_in_one_line_keeping_what_came(
    api_env: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from step_magic.wire import sse

    monkeypatch.setattr(sse, "MAX_EVENT_CHARS", 100_000)
    pieces = [MESSAGE_START, text_delta(b"Hello "), text_delta(b"x" * 200_000)]
    with SSEPeer(pieces) as peer, pytest.raises(step_magic.StepAPIError) as caught:
        step_magic.ask("Hi", api="messages", base_url=peer.base_url, display=False)
    assert "an event from the server is over 100,000 characters" in str(caught.value)
    assert (caught.value.result.answer, caught.value.result.status) == ("Hello ", "failed")
    assert kept_in_history() == ("Hello ", "failed")


def test_invalid_utf8_inside_a_long_line_is_replaced_not_fatal(api_env: LocalServer) -> None:
    body = text_delta(b"a" * 2_000_000 + b"\xff\xfe" + b"b")
    stop = b'event: message_stop\ndata: {"type": "message_stop"}\n\n'
    pieces = [MESSAGE_START] + [body[i : i + 4096] for i in range(0, len(body), 4096)] + [stop]
    with SSEPeer(pieces) as peer:
        result = step_magic.ask("Hi", api="messages", base_url=peer.base_url, display=False)
    assert result.answer == "a" * 2_000_000 + "\ufffd\ufffdb"


# --- cassettes ------------------------------------------------------------------------------------


def test_a_cassette_line_that_is_not_utf8_is_one_line_naming_it(
    api_env: LocalServer, tmp_path: Any
) -> None:
    cassette = tmp_path / "lesson.jsonl"
    cassette.write_bytes(b'{"key": "k", "reply": {"answer": "\xff\xfe"}}\n')
    with pytest.raises(step_magic.ReplayError, match=r"lesson.jsonl:1 is not UTF-8 text$"):
        step_magic.ask("Hi", cassette=cassette, replay=True, display=False)


def test_a_cassette_that_is_a_fifo_is_refused_not_waited_on(
    api_env: LocalServer, tmp_path: Any
) -> None:
    import os

    fifo = tmp_path / "lesson.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(step_magic.ReplayError, match=r"is not a regular file$"):
        step_magic.ask("Hi", cassette=fifo, replay=True, display=False)


def test_a_long_recording_replays_within_the_cap(
    api_env: LocalServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from step_magic.memory import replay

    monkeypatch.setattr(replay, "MAX_REPLAY_SECONDS", 0.5)  # 60 s in use
    cassette = tmp_path / "lesson.jsonl"
    live = step_magic.ask("Hi", cassette=cassette, display=False)
    record = json.loads(cassette.read_text())
    record["reply"]["answer"] = "word " * 200_000  # 1,000 s at 200 tokens/s
    cassette.write_text(json.dumps(record) + "\n")
    import time

    started = time.monotonic()
    replayed = step_magic.ask("Hi", cassette=cassette, replay=True, display=False)
    assert time.monotonic() - started < 10
    assert replayed.answer == "word " * 200_000
    assert live.status == replayed.status == "complete"


def test_serving_a_bad_cassette_is_one_line_at_start(tmp_path: Any) -> None:
    import subprocess
    import sys

    cassette = tmp_path / "lesson.jsonl"
    cassette.write_text("not json\n{}\n")
    command = [sys.executable, "-m", "step_magic.cli", "serve", "--port", "0"]
    done = subprocess.run(
        [*command, "--cassette", str(cassette)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.strip() == f"--cassette: {cassette}:1 is not a cassette line"


def test_invalid_utf8_in_a_chat_stream_is_replaced_not_fatal(api_env: LocalServer) -> None:
    delta = {"index": 0, "delta": {"content": "A" * 2_000_000 + "@@ b"}, "finish_reason": None}
    line = f"data: {json.dumps({'choices': [delta]})}\n\n".encode().replace(b"@@", b"\xff\xfe")
    end = b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n'
    pieces = [line[i : i + 4096] for i in range(0, len(line), 4096)] + [end, b"data: [DONE]\n\n"]
    with SSEPeer(pieces) as peer:
        result = step_magic.ask("Hi", base_url=peer.base_url, display=False)
    assert (result.status, result.answer) == ("complete", "A" * 2_000_000 + "\ufffd\ufffd b")


# --- the history --------------------------------------------------------------------------------


def test_a_long_conversation_stores_each_turn_once(api_env: LocalServer) -> None:
    """The history grows with the number of calls, not its square, and a named chat still
    resumes from it in a new session."""
    with step_magic.Chat("long", system="Be brief.") as chat:
        for number in range(60):
            chat.ask(f"Question {number}?", display=False)
    history = History()
    rows = history.recent(60)[::-1]
    history.close()
    sizes = [len(json.dumps(row.messages)) for row in rows]
    assert max(sizes) < 2 * min(sizes)  # each row holds its own turn, not the thread so far
    assert [row.earlier_messages for row in rows[:3]] == [0, 2, 4]
    assert rows[-1].messages[0] == {"role": "system", "content": "Be brief."}
    assert rows[-1].messages[1] == {"role": "user", "content": "Question 59?"}
    with step_magic.Chat("long", system="Be brief.") as resumed:
        resumed.ask("And now?", display=False)
    sent = api_env.requests[-1].body["messages"]
    assert len(sent) == 1 + 2 * 60 + 1  # every earlier turn came back from the history


# --- the documented limits are the code's -------------------------------------------------------


def test_the_readme_s_limits_are_the_ones_in_the_code() -> None:
    from pathlib import Path

    from step_magic import cli_ask
    from step_magic.context import attachments, images
    from step_magic.core import outputschema, text
    from step_magic.engine import background, turns
    from step_magic.memory import replay
    from step_magic.server import httpserver
    from step_magic.wire import retry, sse

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("## Limits", 1)[1].split("\n## ", 1)[0]
    for value in (
        text.MAX_MESSAGE_CHARS,
        sse.MAX_EVENT_CHARS,
        turns.MAX_TOKENS,
        cli_ask.MAX_STDIN_BYTES,
        attachments.MAX_IMAGES,
        images.MAX_IMAGE_FILE_BYTES,
        attachments.MAX_VIDEO_BYTES,
        outputschema.MAX_SCHEMA_CHARS,
        int(replay.MAX_REPLAY_SECONDS),
        int(retry.MAX_RETRY_DELAY),
        background.DEFAULT_LIMIT,
        httpserver.MAX_CONNECTIONS,
        int(httpserver.IDLE_SECONDS),
        httpserver.MAX_BODY_BYTES,
    ):
        assert f"{value:,}" in table, value


# --- found in review: framing edges and compressed streams ---------------------------------------


def test_the_sse_decoder_delivers_what_came_before_an_event_over_the_limit() -> None:
    from step_magic.wire.sse import EventTooLarge, SSEDecoder

    decoder = SSEDecoder(max_event_chars=100)
    events = decoder.feed(b"data: hello\n\ndata: " + b"x" * 200)
    assert [event.data for event in events] == ["hello"]
    with pytest.raises(EventTooLarge):
        decoder.feed(b"more")
    empty_lines = SSEDecoder(max_event_chars=100)
    empty_lines.feed(b"data:\n" * 1000)  # empty data lines count: each adds a newline
    with pytest.raises(EventTooLarge):
        empty_lines.finish()


def test_an_empty_read_between_cr_and_lf_keeps_them_one_line_end() -> None:
    from step_magic.wire.sse import SSEDecoder

    decoder = SSEDecoder()
    events = [*decoder.feed(b"data: a\r"), *decoder.feed(b""), *decoder.feed(b"\ndata: b\r\n\r\n")]
    assert [event.data for event in events] == ["a\nb"]


def test_a_gzip_compressed_chat_stream_still_works(refusing: ThreadingHTTPServer) -> None:
    import gzip

    chunk = {"choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": "stop"}]}
    body = gzip.compress(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())

    class Gzipped(Refusing):
        def do_POST(self) -> None:
            self.body()
            self.reply(200, body, "text/event-stream", Content_Encoding="gzip")

    refusing.RequestHandlerClass = Gzipped
    result = step_magic.ask(
        "Hi", base_url=url_of(refusing), api_key=TEST_KEY, display=False, history=False
    )
    assert (result.status, result.answer) == ("complete", "Hello")


def test_a_chat_line_over_the_limit_ends_the_reply_in_one_line(
    api_env: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from step_magic.wire import sse

    monkeypatch.setattr(sse, "MAX_EVENT_CHARS", 100_000)
    first = {"choices": [{"index": 0, "delta": {"content": "Hello "}, "finish_reason": None}]}
    huge = {"choices": [{"index": 0, "delta": {"content": "x" * 300_000}, "finish_reason": None}]}
    pieces = [f"data: {json.dumps(first)}\n\n".encode(), f"data: {json.dumps(huge)}\n\n".encode()]
    with SSEPeer(pieces, pause=0.2) as peer, pytest.raises(step_magic.StepAPIError) as caught:
        step_magic.ask("Hi", base_url=peer.base_url, display=False)
    assert "an event from the server is over 100,000 characters" in str(caught.value)
    assert caught.value.result.answer == "Hello "
    assert kept_in_history() == ("Hello ", "failed")


@pytest.mark.parametrize("driver", ["thread", "event loop"])
def test_a_reply_that_never_ends_is_stopped_at_the_limit_keeping_what_came(
    api_env: LocalServer, monkeypatch: pytest.MonkeyPatch, driver: str
) -> None:
    """Every event is small, but they never stop: the call's text has a limit of its own,
    for ``ask`` and ``ask_async`` alike."""
    import asyncio

    from step_magic.engine import runner

    monkeypatch.setattr(runner, "MAX_REPLY_CHARS", 50_000)
    chunk = {"choices": [{"index": 0, "delta": {"content": "y" * 5_000}, "finish_reason": None}]}
    pieces = [f"data: {json.dumps(chunk)}\n\n".encode()] * 40

    def ask(url: str) -> object:
        if driver == "thread":
            return step_magic.ask("Hi", base_url=url, display=False)
        return asyncio.run(step_magic.ask_async("Hi", base_url=url, display=False))

    with SSEPeer(pieces) as peer, pytest.raises(step_magic.StepAPIError) as caught:
        ask(peer.base_url)

    assert "the reply is over 50,000 characters; it was stopped there" in str(caught.value)
    assert caught.value.result.answer == "y" * 55_000  # everything up to the event over it
    assert kept_in_history() == ("y" * 55_000, "failed")


def test_tool_call_arguments_that_never_end_are_stopped_at_the_limit(
    api_env: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from step_magic.wire import toolcalls

    monkeypatch.setattr(toolcalls, "MAX_ARGUMENT_CHARS", 50_000)

    def chunk(delta: dict[str, Any]) -> bytes:
        return f"data: {json.dumps({'choices': [{'index': 0, 'delta': delta}]})}\n\n".encode()

    call = {"index": 0, "id": "call_1", "function": {"name": "lookup", "arguments": ""}}
    more = {"index": 0, "function": {"arguments": "y" * 5_000}}
    pieces = [chunk({"content": "Let me look. "}), chunk({"tool_calls": [call]})]
    pieces += [chunk({"tool_calls": [more]})] * 40
    with SSEPeer(pieces) as peer, pytest.raises(step_magic.StepAPIError) as caught:
        step_magic.ask("Hi", base_url=peer.base_url, display=False)

    assert "the tool calls' arguments are over 50,000 characters" in str(caught.value)
    assert kept_in_history() == ("Let me look. ", "failed")


def test_a_body_that_fills_the_cap_exactly_is_read_one_piece_further() -> None:
    """What is read stops past the cap, so the reader can tell a cut body from one that
    happens to be exactly as long as the cap; a body under it is read whole."""
    from step_magic.wire.httpstream import read_capped

    class Pieces:
        def __init__(self, *pieces: bytes) -> None:
            self.pieces, self.read = pieces, 0

        def iter_bytes(self) -> Iterator[bytes]:
            for piece in self.pieces:
                self.read += 1
                yield piece

    cut = Pieces(b"a" * 5, b"b" * 5, b"c" * 5, b"d" * 5)
    assert read_capped(cut, 10) == b"a" * 5 + b"b" * 5 + b"c" * 5
    assert cut.read == 3  # the fourth piece is never asked for
    assert read_capped(Pieces(b"a" * 5, b"b" * 4), 10) == b"a" * 5 + b"b" * 4


def test_an_error_body_cut_at_its_cap_keeps_the_start_of_its_message_decoded() -> None:
    """The words a JSON error body held before the cut, escapes decoded; an escape cut in
    the middle, or a lone backslash at the cut, costs only those characters."""
    from step_magic.wire.httpstream import MAX_ERROR_BYTES, error_body

    head = b'{"error": {"message": "caf\\u00e9 ' + b"x" * MAX_ERROR_BYTES
    cut = " … (cut: the error body is over 1,000,000 bytes)"
    cases = [  # what follows " end" where the body was cut -> how the message ends
        (b"\\", ""),
        (b"\\u00", ""),
        (b"\\\\", "\\"),
        (b"\\n", "\n"),
        (b"\t raw", "\t raw"),
    ]
    for tail, ending in cases:
        message = error_body(head + b" end" + tail)["error"]["message"]  # type: ignore[index]
        assert message.startswith("café xxx")
        assert message.endswith(" end" + ending + cut)
    odd = error_body(head + b" \\x")["error"]["message"]  # type: ignore[index]
    assert odd.startswith("caf\\u00e9 xxx")  # not JSON after all: the characters as sent
    assert odd.endswith(" \\x" + cut)


def test_an_error_body_that_is_not_json_is_shown_as_text_not_as_cut() -> None:
    from step_magic.wire.httpstream import error_body

    assert error_body(b'{"error": {"message": "broken') == '{"error": {"message": "broken'
    assert error_body(b"Bad \xff gateway") == "Bad \ufffd gateway"  # invalid UTF-8 replaced
    assert error_body(b"  ") is None
