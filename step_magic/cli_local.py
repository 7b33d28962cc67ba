"""``--local`` for ``step-magic ask`` and ``step-magic doctor``: the bundled simulator on a free
port of this machine for the one command, and one line saying that it, not StepFun, answers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


@contextmanager
def local_simulator(
    command: str, does: str, *, file: TextIO, tokens_per_second: float = 0
) -> Iterator[str]:
    """Say so (``step-magic ask: --local, so the bundled simulator answers (offline).``), run
    the simulator while the block runs, and give its base URL; it stops when the block ends,
    however it ends."""
    from step_magic.server import LocalServer, ServerConfig

    print(f"step-magic {command}: --local, so the bundled simulator {does} (offline).", file=file)
    with LocalServer(ServerConfig(tokens_per_second=tokens_per_second)) as server:
        yield str(server.base_url)
