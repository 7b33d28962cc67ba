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
import json
from collections.abc import AsyncIterator
from typing import Any

from step_magic.core.events import Event
from step_magic.wire.chat import check_whole, http, is_whole, tls_context
from step_magic.wire.httpstream import (
    MAX_ERROR_BYTES,
    Attempts,
    ReplyReader,
    WireCall,
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
        timeout = self._settings.timeout  # every phase, so reads time out when idle that long
        async with http().AsyncClient(timeout=timeout, verify=tls_context()) as client:
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
                await response.aclose()

    async def _send(self, client: Any, body: dict[str, Any]) -> Any:
        """One POST; the open response, its trace id kept."""
        request = client.build_request("POST", self.url(), json=body, headers=self.headers())
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
            async for chunk in response.aiter_bytes():
                for event in reader.feed(chunk):
                    yield event
                if reader.stopped:
                    break
            for event in reader.end():
                yield event
        except http().HTTPError as err:
            raise self.error(transport_error(err, response.request)) from None
        except (json.JSONDecodeError, EventTooLarge) as err:
            raise self.error(err) from None


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
