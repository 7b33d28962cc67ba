"""Ctrl-C during a call: noted while we stream, raised while user code runs.

While a reply streams, a KeyboardInterrupt raised at an arbitrary point (inside a queue's
lock, inside the view, while closing the stream) could lose the partial reply or leave the
live widgets behind; so it is only noted, and acted on between events. A tool function or a
confirmation prompt is the user's code waiting on the user: there Ctrl-C must interrupt it,
so the default behaviour is restored around it and the interrupt noted when it lands.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def interrupts_noted(received: list[int] | None = None) -> Iterator[list[int]]:
    """For the whole call, Ctrl-C is noted in the yielded list instead of raised.

    ``received`` may be a list another thread appends to (``signal.SIGINT``) to stop the call
    as Ctrl-C would: a stream closed by its reader, or a call run off the main thread.
    """
    received = [] if received is None else received
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def interrupts_raised(received: list[int]) -> Iterator[None]:
    """Inside, Ctrl-C raises KeyboardInterrupt again; it ends the block and is noted."""
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler) if on_main else None
    try:
        yield
    except KeyboardInterrupt:
        received.append(signal.SIGINT)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
