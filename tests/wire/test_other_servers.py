"""Servers that are not StepFun: the stream shapes and strictness of other compatible servers.

The bundled server imitates them with faults (``fault-usage-on-request`` answers with OpenAI's
usage semantics, ``fault-strict-params`` refuses any field it does not know), and the client
is driven exactly as a user would drive it, through ``step_magic.ask``.
"""

from __future__ import annotations

import json

import pytest

import step_magic
from step_magic.server import LocalServer
from step_magic.wire import chat

from ..conftest import TEST_KEY
from ..http_handler import Handler, served, serving, url_of


def test_usage_comes_from_servers_that_send_it_only_when_asked(api_env: LocalServer) -> None:
    result = step_magic.ask("Count my tokens", model="fault-usage-on-request")
    assert result.usage is not None
    assert result.usage.completion > 0
    assert api_env.requests[-1].body["stream_options"] == {"include_usage": True}


def test_a_server_refusing_stream_options_is_asked_again_without_and_remembered(
    local: LocalServer,
) -> None:
    chat.REFUSED_USAGE_OPTION.discard(local.base_url)
    local.config.api_key = TEST_KEY
    ask = {"model": "fault-strict-params", "base_url": local.base_url, "api_key": TEST_KEY}
    first = step_magic.ask("Hi", history=False, **ask)
    assert first.status == "complete"
    assert ["stream_options" in r.body for r in local.requests] == [True, False]

    step_magic.ask("Again", history=False, **ask)
    assert "stream_options" not in local.requests[-1].body  # remembered: one request
    assert len(local.requests) == 3
    chat.REFUSED_USAGE_OPTION.discard(local.base_url)


def test_stepfun_itself_is_never_sent_stream_options() -> None:
    from step_magic.core.request import ChatRequest
    from step_magic.core.settings import Settings

    request = ChatRequest("step-3.7-flash", ({"role": "user", "content": "Hi"},))
    own = (
        "https://api.stepfun.ai/v1",
        "https://api.stepfun.com/v1",
        "https://eu.api.stepfun.ai/v1",
    )
    for url in own:
        assert "stream_options" not in chat.chat_body(Settings("m", url, "k"), request)
    for url in ("http://127.0.0.1:9/v1", "https://evilstepfun.ai/v1"):  # not StepFun's
        body = chat.chat_body(Settings("m", url, "k"), request)
        assert body["stream_options"] == {"include_usage": True}


def test_a_server_that_ignores_stream_true_is_read_as_one_reply(api_env: LocalServer) -> None:
    result = step_magic.ask("Why is the sky blue?", model="fault-non-streamed", effort="low")
    assert result.status == "complete"
    assert result.reasoning
    assert "Why is the sky blue?" in result.answer
    assert result.usage is not None
    assert result.completion_id.startswith("chatcmpl-")
    assert result.trace_id


def test_an_html_page_is_named_by_its_content_type(api_env: LocalServer) -> None:
    with pytest.raises(step_magic.StepAPIError) as caught:
        step_magic.ask("Hi", model="fault-html-page")
    message = str(caught.value)
    assert "answered with text/html" in message
    assert "empty reply" not in message
    assert caught.value.trace_id


def test_reasoning_closed_by_a_think_tag_it_never_opened_is_reasoning(
    api_env: LocalServer,
) -> None:
    """R1-style templates open ``<think>`` in the prompt: the reply only closes it."""
    api_env.config.reasoning_field = "think-close"
    api_env.config.tokens_per_second = 400  # several flushes, so the move happens live
    result = step_magic.ask("Why is the sky blue?", effort="high")
    assert "effort high" in result.reasoning
    assert "</think>" not in result.answer
    assert "</think>" not in result.reasoning
    assert result.answer.lstrip().startswith("## Simulated answer")

    kinds = [event.kind for event in step_magic.stream("Again?", effort="high")]
    assert "rethought" in kinds  # a reader of the events is told to move what it got
    assert kinds.index("rethought") > kinds.index("answer")


def test_an_answer_that_talks_about_think_tags_is_left_alone() -> None:
    from step_magic.wire.thinktags import ThinkTagSplitter

    splitter = ThinkTagSplitter()
    pieces = ["Write <thi", "nk> before and </think> after."]
    out = [splitter.feed(piece) for piece in pieces] + [splitter.finish()]
    assert "".join(answer for _, answer in out) == "".join(pieces)
    assert not splitter.rethought


class Pydantic422(Handler):
    """A FastAPI-style server: a field it does not know is a 422 naming it; else one reply."""

    def do_POST(self) -> None:
        body = json.loads(self.body())
        self.server.bodies.append(body)  # type: ignore[attr-defined]
        if "stream_options" in body:
            detail = [{"loc": ["body", "stream_options"], "msg": "extra fields not permitted"}]
            self.reply(422, json.dumps({"detail": detail}).encode())
        else:
            self.answer()


def test_a_422_naming_a_field_is_a_refusal_of_that_field(api_env: LocalServer) -> None:
    with served(Pydantic422, bodies=[]) as server:
        url = url_of(server) + "/"  # a trailing slash, as pasted
        result = step_magic.ask("Hi", base_url=url, display=False, history=False)
    chat.REFUSED_USAGE_OPTION.discard(url)
    assert (result.status, result.answer) == ("complete", "Hi.")
    assert ["stream_options" in body for body in server.bodies] == [True, False]  # type: ignore[attr-defined]


def test_a_base_url_with_a_trailing_slash_reaches_the_same_path(api_env: LocalServer) -> None:
    for api in ("chat", "messages", "responses"):
        step_magic.ask("Hi", base_url=api_env.base_url + "/", api=api, display=False)
    assert [r.path for r in api_env.requests] == [
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/responses",
    ]


def test_an_error_event_without_words_says_what_it_was(api_env: LocalServer) -> None:
    from ..sse_peer import SSEPeer

    content = b'data: {"id":"c","choices":[{"delta":{"content":"Fo"}}]}\n\n'
    with (
        SSEPeer([content, b'data: {"error": {"code": 500}}\n\n']) as peer,
        pytest.raises(step_magic.StepAPIError) as caught,
    ):
        step_magic.ask("Hi", base_url=peer.base_url, display=False, history=False)
    assert str(caught.value).split(": ", 1)[1].startswith("the server sent an error event")


class Redirecting(Handler):
    """A proxy that redirects every path without a trailing slash (307, the method and body
    kept) to where it serves; ``elsewhere`` sends the redirect to another origin instead."""

    def do_POST(self) -> None:
        body = self.body()
        self.server.seen.append((self.path, dict(self.headers)))  # type: ignore[attr-defined]
        if not self.path.endswith("/"):
            target = self.server.elsewhere  # type: ignore[attr-defined]
            self.reply(307, Location=f"{target}{self.path}/")
            return
        assert json.loads(body)["stream"] is True
        self.answer()


def test_a_redirect_is_followed_on_a_thread_and_on_the_loop_with_the_key(
    api_env: LocalServer,
) -> None:
    import asyncio

    server = serving(Redirecting, seen=[], elsewhere="")
    url = url_of(server)
    try:
        on_thread = step_magic.ask("Hi", base_url=url, display=False, history=False)
        on_loop = asyncio.run(step_magic.ask_async("Hi", base_url=url, history=False))
    finally:
        server.shutdown()
        server.server_close()
    assert on_thread.answer == on_loop.answer == "Hi."
    paths = [path for path, _ in server.seen]  # type: ignore[attr-defined]
    assert paths == ["/v1/chat/completions", "/v1/chat/completions/"] * 2
    headers = [{k.lower(): v for k, v in h.items()} for _, h in server.seen]  # type: ignore[attr-defined]
    assert all(h["authorization"] == f"Bearer {TEST_KEY}" for h in headers)  # same origin
    assert all(h["user-agent"].startswith("step-magic") for h in headers)


def test_a_redirect_to_another_host_does_not_carry_the_key(api_env: LocalServer) -> None:
    other = serving(Redirecting, seen=[], elsewhere="")
    elsewhere = f"http://localhost:{other.server_address[1]}"  # another origin: no key
    origin = serving(Redirecting, seen=[], elsewhere=elsewhere)
    url = url_of(origin)
    try:
        step_magic.ask("Hi", base_url=url, display=False, history=False)
    except step_magic.StepAPIError:
        pass  # without the key the other host may well refuse; what matters is what it got
    finally:
        for server in (origin, other):
            server.shutdown()
            server.server_close()
    received = [{k.lower() for k in h} for _, h in other.seen]  # type: ignore[attr-defined]
    assert received
    assert all("authorization" not in names for names in received)


class BusyThenFine(Handler):
    """A 503 whose words happen to name a field, then an answer."""

    def do_POST(self) -> None:
        self.server.bodies.append(json.loads(self.body()))  # type: ignore[attr-defined]
        if len(self.server.bodies) == 1:  # type: ignore[attr-defined]
            said = {"error": {"message": "stream_options workers are busy, retry"}}
            self.reply(503, json.dumps(said).encode(), Retry_After="0")
        else:
            self.answer()


def test_only_a_400_or_422_is_a_refusal_of_a_field_a_503_is_retried_as_it_was(
    api_env: LocalServer,
) -> None:
    with served(BusyThenFine, bodies=[]) as server:
        url = url_of(server)
        result = step_magic.ask("Hi", base_url=url, display=False, history=False)
    chat.REFUSED_USAGE_OPTION.discard(url)
    assert result.answer == "Hi."
    assert ["stream_options" in body for body in server.bodies] == [True, True]  # type: ignore[attr-defined]
