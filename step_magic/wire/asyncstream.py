"""A streamed reply on an event loop: the same call as ``httpstream.HttpEventStream``, no thread.

``ask_async``, ``stream_async`` and the async ``Chat`` methods run many calls at once on one
event loop; each is this driver combined with the API's ``WireCall`` (what is sent, what each
event means), so an API's reading is written once for both drivers. The policy is shared too:
``httpstream.Attempts`` decides refusals and retries, ``httpstream.ReplyReader`` turns bytes
into events, ``wire.retry`` words every failure. Only the I/O differs: ``AsyncClient``,
``asyncio.sleep`` for the retry wait, and cancellation (``Task.cancel``, Ctrl-C in a notebook)
in place of ``close()`` from another thread: the connection is closed as the task unwinds.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import http.cookiejar as http_cookiejar
import json
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

from step_magic.core.events import Event
from step_magic.wire.chat import check_whole, http, is_whole
from step_magic.wire.httpstream import (
    MAX_ERROR_BYTES,
    Attempts,
    ReplyReader,
    WireCall,
    client_options,
    status_error,
    transport_error,
)
from step_magic.wire.sse import EventTooLarge


class AsyncHttpEventStream(WireCall):
    """``async for event in stream`` reads one call; cancelling the task stops it."""

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def _events(self) -> AsyncIterator[Event]:
        body = self.body()
        shared = _shared.get()
        client = shared or http().AsyncClient(**client_options())
        self._reuse = client is shared  # then the connection is worth keeping after the reply
        try:
            attempts = Attempts(self, body)
            while True:
                response = await self._send(client, attempts.body)
                if response.is_success:
                    break
                waiting = attempts.after(response, await _status_error(response))
                if waiting is not None:
                    yield waiting
                    await asyncio.sleep(waiting.delay)
            try:
                async for event in self._read(response):
                    yield event
            finally:
                await response.aclose()  # a reply not read to its end closes its connection
        finally:
            if client is not shared:
                await client.aclose()

    async def _send(self, client: Any, body: dict[str, Any]) -> Any:
        """One POST; the open response, its trace id kept."""
        timeout = self._settings.timeout  # every phase, so reads time out when idle that long
        request = client.build_request(
            "POST", self.url(), json=body, headers=self.headers(), timeout=timeout
        )
        try:
            response = await client.send(request, stream=True)
        except http().HTTPError as err:
            raise self.error(transport_error(err, request)) from None
        self.trace_id = response.headers.get("x-trace-id")
        return response

    async def _read(self, response: Any) -> AsyncIterator[Event]:
        kind = response.headers.get("content-type", "")
        try:
            if is_whole(kind):
                reply = self.whole(await _read_whole(response), kind)
                for event in self.read_whole(reply, response):
                    yield event
                return
            reader = ReplyReader(self, response)
            chunks = response.aiter_bytes()
            async for chunk in chunks:
                for event in reader.feed(chunk):
                    yield event
                if reader.stopped:
                    if self._reuse:
                        await _drain(chunks)
                    break
            for event in reader.end():
                yield event
        except http().HTTPError as err:
            raise self.error(transport_error(err, response.request)) from None
        except (json.JSONDecodeError, EventTooLarge) as err:
            raise self.error(err) from None


_shared: contextvars.ContextVar[Any] = contextvars.ContextVar("shared_client", default=None)
_loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
    weakref.WeakKeyDictionary()
)


@contextlib.contextmanager
def shared_connections() -> Iterator[None]:
    """Inside, the calls of this task reuse the open connections of one HTTP client kept for
    the running loop, as an ``AsyncOpenAI`` client does: a ``--map`` of thousands of rows
    opens a connection (and a TLS handshake) per row in flight, not one per row. For a loop
    that lives as long as the process (the rows' loop, ``batch.rowcall.shared_loop``): the
    client is never closed. Elsewhere each call has a client of its own, closed with it."""
    loop = asyncio.get_running_loop()
    client = _loop_clients.get(loop)
    if client is None:
        limits = http().Limits(max_connections=None, max_keepalive_connections=64)
        refused = http_cookiejar.CookieJar(http_cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        options = {**client_options(), "limits": limits, "cookies": refused}  # none kept
        client = _loop_clients[loop] = http().AsyncClient(**options)
    token = _shared.set(client)
    try:
        yield
    finally:
        _shared.reset(token)


MAX_DRAIN_BYTES = 65_536  # after a reply's end; a server still sending past that is cut
MAX_DRAIN_SECONDS = 0.25  # and one that has not ended its body by then


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """What follows a reply's end (the body's last chunk marker, a blank line), read so its
    connection can serve the next call, as the openai SDK reads a stream to its end. The
    reply is whole already: a server that goes on sending, stalls, or cuts the connection
    after its end only loses the connection, never the reply."""

    async def read_rest() -> None:
        left = MAX_DRAIN_BYTES
        async for chunk in chunks:
            left -= len(chunk)
            if left < 0:
                return

    reading = asyncio.ensure_future(read_rest())
    try:  # (asyncio.wait, not wait_for, which can swallow a cancel before Python 3.12)
        await asyncio.wait({reading}, timeout=MAX_DRAIN_SECONDS)
    finally:
        reading.cancel()
        await asyncio.wait({reading})  # its end, never its error (nor a cancel of ours lost)
        if not reading.cancelled():
            reading.exception()  # a connection cut after the reply: seen, and nothing more


async def _read_whole(response: Any) -> bytes:
    """``chat.read_whole`` on an event loop: the same cap."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        check_whole(body)
    return bytes(body)


async def _status_error(response: Any) -> Exception:
    """``httpstream``'s status error, the body read on the loop up to the same cap."""
    raw = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            raw += chunk
            if len(raw) > MAX_ERROR_BYTES:
                break
    except http().HTTPError:
        pass
    finally:
        await response.aclose()
    return status_error(response, bytes(raw))
