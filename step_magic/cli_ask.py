"""``step-magic ask``: the Python API from the shell, made for pipes.

The reasoning streams to stderr (dimmed on a terminal) and the answer to stdout, so
``cat sales.csv | step-magic ask -e high "what stands out?" > answer.md`` keeps only the
answer in the file while the person at the terminal watches the model think. The provenance
footer (tokens, cost, trace id) goes to stderr too. Exit status: 0, 1 for a failed call or bad
input (one line on stderr), 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any, TextIO

from step_magic.core.catalog import SETTINGS

MAX_STDIN_BYTES = 4_000_000  # ~1M tokens: more than any model's context
TABLE_SUFFIXES = {".csv": "read_csv", ".tsv": "read_csv", ".parquet": "read_parquet"}
SHELL_SETTINGS = tuple(item for item in SETTINGS if item.shell)
# The settings that go to ``step_magic.stream`` as they are (``--no-reasoning`` only stops
# this command printing the reasoning).
PASSED_ON = tuple(item.name for item in SHELL_SETTINGS if item.kind is not bool)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``step-magic ask``'s options: the ``%%step`` flags that make sense in a shell."""
    parser.add_argument("prompt", nargs="*", help="the question (also read from stdin)")
    for setting in SHELL_SETTINGS:  # the catalogue's settings, checked as the magic checks
        names, options = setting.argument()
        parser.add_argument(*names, **options)
    parser.add_argument("--base-url", help="another endpoint or any compatible server")
    parser.add_argument(
        "-w",
        "--with",
        dest="attach",
        action="append",
        default=[],
        metavar="FILE",
        help="attach a file: CSV/TSV/Parquet (summarised as a table), an image, a video, text",
    )
    parser.add_argument("--local", action="store_true", help="ask the bundled offline simulator")


def run_ask(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    """Ask once, streaming as the module docstring says; return the exit status."""
    import step_magic

    source = sys.stdin if stdin is None else stdin
    piped = "" if source.isatty() else _read_piped(source)
    if piped is None:
        limit = f"{MAX_STDIN_BYTES // 1_000_000} MB"
        print(f"step-magic ask: the piped input is over {limit}, more than any model takes "
              "(~1M tokens): send a part of it, or a summary", file=sys.stderr)  # fmt: skip
        return 1
    prompt = " ".join(args.prompt).strip()
    if not prompt and not piped.strip():
        print("step-magic ask: nothing to ask (give a prompt or pipe text in)", file=sys.stderr)
        return 1
    if not args.local and _needs_key(args.base_url):
        from step_magic.core.settings import missing_key_message

        print(f"step-magic ask: {missing_key_message('shell')}", file=sys.stderr)
        return 1
    local = _local_server() if args.local else None
    try:
        attach = _attachments(args.attach)
        keywords = {name: getattr(args, name) for name in PASSED_ON}
        events = step_magic.stream(
            f"{piped.rstrip()}\n\n{prompt}".strip() if piped else prompt,
            base_url=local.base_url if local else args.base_url,
            attach=attach or None,
            **keywords,
        )
        _print_events(events, reasoning=not args.no_reasoning)
    except step_magic.StepMagicError as err:
        print(f"step-magic ask: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstep-magic ask: interrupted", file=sys.stderr)
        return 130
    finally:
        if local is not None:
            local.stop()
    return 0


def _needs_key(base_url: str | None) -> bool:
    """No key anywhere, for a server that is not on this machine."""
    from step_magic.core import settings as config

    url = base_url or config.find_base_url()
    return config.find_api_key() is None and not config.is_loopback_url(url)


def _read_piped(source: TextIO) -> str | None:
    """Piped text, read as bytes up to the limit (None: over it) and decoded leniently:
    binary or mis-encoded input becomes U+FFFD, not a traceback."""
    raw = getattr(source, "buffer", None)
    if raw is None:  # a text stream (tests, some IDEs)
        text = source.read(MAX_STDIN_BYTES + 1)
        return None if len(text) > MAX_STDIN_BYTES else text
    data = raw.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        return None
    decoded: str = data.decode("utf-8-sig", errors="replace")  # a Windows BOM goes too
    return decoded.replace("\r\n", "\n")


def _print_events(events: Any, *, reasoning: bool) -> None:
    """Reasoning to stderr (dim on a terminal), answer to stdout, footer to stderr.

    stdout only ever holds the answer: until some reasoning has arrived, answer text is held
    back, since a server that closes a ``</think>`` it never opened (R1-style templates) makes
    the text before it reasoning after all (a ``rethought`` event, after which that text comes
    again as reasoning). What was held is printed once the reply ends, or as soon as
    reasoning has been seen.
    """
    printer = _Printer(reasoning, sys.stderr.isatty())
    for event in events:
        printer.take(event)


class _Printer:
    """Where each event's text goes; see ``_print_events``."""

    def __init__(self, reasoning: bool, dim: bool) -> None:
        self.reasoning, self.dim = reasoning, dim
        self.seen_reasoning = self.shown_reasoning = self.answered = False
        self.held: list[str] = []

    def take(self, event: Any) -> None:
        from step_magic.display.static import footer_text

        if event.kind == "reasoning":
            self._think(event.text)
        elif event.kind == "rethought":  # what was held was reasoning: it comes again as such
            self.held = []
        elif event.kind == "answer":
            if self.seen_reasoning:
                self._answer(event.text)
            else:
                self.held.append(event.text)
        elif event.kind in ("tool_call", "waiting"):
            print(event.text, file=sys.stderr)
        elif event.kind == "done":
            if self.held:
                self._answer("".join(self.held))
            sys.stdout.write("\n" if self.answered else "")
            if self.shown_reasoning and not self.answered:
                sys.stderr.write("\n\n")  # the footer on a line of its own
            print(footer_text(event.result), file=sys.stderr)

    def _think(self, text: str) -> None:
        self.seen_reasoning = True
        if self.held:  # answer text that came before any reasoning was the answer
            self._answer("".join(self.held))
            self.held = []
        if self.reasoning and text:
            sys.stderr.write(f"\x1b[2m{text}\x1b[0m" if self.dim else text)
            sys.stderr.flush()
            self.shown_reasoning = True

    def _answer(self, text: str) -> None:
        if self.shown_reasoning and not self.answered:
            sys.stderr.write("\n\n")
        sys.stdout.write(text)
        sys.stdout.flush()
        self.answered = True


def _attachments(paths: list[str]) -> dict[str, object]:
    """``--with`` files: tables read into DataFrames (summarised like ``--with df``), the
    rest passed as paths (images, videos) or text."""
    attached: dict[str, object] = {}
    for given in (item for value in paths for item in value.split(",") if item.strip()):
        path = Path(given.strip()).expanduser()
        if not path.is_file():
            raise step_magic_error(f"--with {given}: no such file")
        reader = TABLE_SUFFIXES.get(path.suffix.lower())
        attached[path.stem if reader else str(path)] = _table(path, reader) if reader else path
    return attached


def _table(path: Path, reader: str) -> object:
    try:
        pd = importlib.import_module("pandas")
    except ImportError:
        raise step_magic_error(f"--with {path}: reading tables needs pandas installed") from None
    separator = {"sep": "\t"} if path.suffix.lower() == ".tsv" else {}
    try:
        return getattr(pd, reader)(path, **separator)
    except (ValueError, ImportError, OSError) as err:
        raise step_magic_error(f"--with {path}: cannot read it as a table ({err})") from None


def step_magic_error(message: str) -> Exception:
    from step_magic.core.errors import InputError

    return InputError(message)


def _local_server() -> Any:
    from step_magic.server import LocalServer, ServerConfig

    print("step-magic ask: --local, so the bundled simulator answers (offline).", file=sys.stderr)
    return LocalServer(ServerConfig(tokens_per_second=400)).start()
