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
import time
from collections.abc import Iterator
from types import FrameType


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
    pressed: list[int] = []  # real Ctrl-Cs, not a stop another thread asked for

    def noted(signum: int, frame: FrameType | None) -> None:
        pressed.append(signum)
        received.append(signum)

    previous = signal.signal(signal.SIGINT, noted)
    try:
        yield received
    finally:
        after = _Grace(previous, time.monotonic() + GRACE_SECONDS) if pressed else previous
        signal.signal(signal.SIGINT, after)


GRACE_SECONDS = 1.0


class _Grace:
    """A SIGINT handler that ignores Ctrl-C for a moment after a call was interrupted.

    A double Ctrl-C (two presses 50 ms apart) would otherwise land while the interrupted
    call's error is raised and shown, and IPython, interrupted while it formats a traceback,
    prints "KeyboardInterrupt" to stderr instead of the error: the cell ended without its
    error. The first press already stopped the call; a second within ``GRACE_SECONDS`` is
    the same wish. Later presses reach the handler that was there before (ipykernel puts its
    own back after each cell anyway).
    """

    def __init__(self, previous: object, until: float) -> None:
        self.previous: object = previous.previous if isinstance(previous, _Grace) else previous
        self.until = until

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if time.monotonic() < self.until:
            return
        if callable(self.previous):
            self.previous(signum, frame)
        elif self.previous != signal.SIG_IGN:
            raise KeyboardInterrupt


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
