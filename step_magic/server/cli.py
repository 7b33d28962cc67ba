"""``python -m step_magic.server``: run the local server in a terminal until Ctrl-C."""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from step_magic.core.cassette import Cassette
from step_magic.core.errors import ReplayError
from step_magic.server.app import LocalServer
from step_magic.server.config import ServerConfig

DEFAULT_PORT = 8765
SIGNAL_POLL_SECONDS = 0.2
# The options that are ServerConfig fields of the same name.
CONFIGURED = (
    "api_key",
    "tokens_per_second",
    "reasoning_tokens",
    "answer_tokens",
    "first_byte_delay",
    "cassette",
)


DESCRIPTION = "A local StepFun-compatible server with simulated answers (no network)."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m step_magic.server", description=DESCRIPTION)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's options, for its own command and for ``step-magic serve``."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"default {DEFAULT_PORT}; 0 picks a free one",
    )
    parser.add_argument("--tokens-per-second", type=float, default=0, help="0: no pacing")
    parser.add_argument("--reasoning-tokens", type=int, help="exact reasoning length")
    parser.add_argument("--answer-tokens", type=int, help="exact answer length")
    parser.add_argument("--api-key", help="accept only this key (default: any key)")
    parser.add_argument(
        "--first-byte-delay", type=float, default=0, help="seconds before each reply starts"
    )
    parser.add_argument("--cassette", help="answer recorded requests from this JSONL file")


def _port(text: str) -> int:
    """A TCP port, 0 to 65535 (else argparse's one-line usage error, not a bind traceback)."""
    port = int(text) if re.fullmatch(r"[0-9]{1,5}", text) else -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return port


def run(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C or SIGTERM; return the process exit code."""
    return serve(_parser().parse_args(argv))


def serve(args: argparse.Namespace) -> int:
    """Serve with the options ``add_arguments`` declared, until Ctrl-C or SIGTERM."""
    config = ServerConfig(**{name: getattr(args, name) for name in CONFIGURED})
    recorded = None
    if config.cassette:  # a bad file is one line now, not a traceback per request later
        try:
            recorded = len(Cassette(Path(config.cassette)).to_replay().replies())
        except ReplayError as error:
            print(f"--cassette: {error}", file=sys.stderr)
            return 1
    try:
        server = LocalServer(config, host=args.host, port=args.port).start()
    except OSError as error:
        print(f"cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 1
    print(
        f"step-magic local server on {server.base_url} — answers are simulated, no network used",
        flush=True,
    )
    if recorded is not None:
        print(f"answering {recorded:,} recorded requests from {config.cassette}", flush=True)
    finished = threading.Event()
    _stop_on_sigterm(finished)
    try:
        # Wake up regularly: a signal delivered to a server thread only runs its Python
        # handler when the main thread next executes bytecode.
        while not finished.wait(SIGNAL_POLL_SECONDS):
            pass
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a teacher stops the server: not an error.
    finally:
        server.stop()
    return 0


def _stop_on_sigterm(finished: threading.Event) -> None:
    """Treat SIGTERM (a process manager or a test stopping us) like Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        finished.set()

    signal.signal(signal.SIGTERM, handle)
