"""``step-magic ask``: the Python API from the shell, made for pipes.

The reasoning streams to stderr (dimmed on a terminal) and the answer to stdout, so
``cat sales.csv | step-magic ask -e high "what stands out?" > answer.md`` keeps only the
answer in the file while the person at the terminal watches the model think. The provenance
footer (tokens, cost, trace id) goes to stderr too. Exit status: 0, 1 for a failed call or bad
input (one line on stderr), 130 for Ctrl-C.

``--chat NAME`` and ``-c`` continue a thread through ``step_magic.Chat``, ``--tools`` and
``--schema`` import what they name and pass it as ``tools=`` / ``schema=``: the shell adds no
path of its own to the Python API's.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TextIO

from step_magic.cli_local import local_simulator
from step_magic.core import settings as config
from step_magic.core.catalog import SETTINGS
from step_magic.core.errors import InputError

MAX_STDIN_BYTES = 4_000_000  # ~1M tokens: more than any model's context
TABLE_SUFFIXES = {".csv": "read_csv", ".tsv": "read_csv", ".parquet": "read_parquet"}
SHELL_SETTINGS = tuple(item for item in SETTINGS if item.shell)
# The settings that go to ``step_magic.stream`` as they are (``--no-reasoning`` only stops
# this command printing the reasoning).
PASSED_ON = tuple(item.name for item in SHELL_SETTINGS if item.kind is not bool)


def add_call_arguments(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    """The call settings a shell command takes (the catalogue's, checked as the magic checks
    them), and where to send the call: ``--base-url``, ``--local``."""
    for setting in SHELL_SETTINGS:
        if setting.name not in skip:
            names, options = setting.argument()
            parser.add_argument(*names, **options)
    parser.add_argument("--base-url", help="another endpoint or any compatible server")
    parser.add_argument("--local", action="store_true", help="ask the bundled offline simulator")


def call_keywords(args: argparse.Namespace) -> dict[str, Any]:
    """The Python API's keywords for the settings ``add_call_arguments`` added; for
    ``--local``, the simulator's placeholder key, so a stored key is not even looked for."""
    keywords = {name: getattr(args, name) for name in PASSED_ON}
    return {**keywords, "api_key": config.LOCAL_KEY} if args.local else keywords


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``step-magic ask``'s options: the ``%%step`` flags that make sense in a shell."""
    parser.add_argument("prompt", nargs="*", help="the question (also read from stdin)")
    add_call_arguments(parser)
    parser.add_argument(
        "-w",
        "--with",
        dest="attach",
        action="append",
        default=[],
        metavar="FILE",
        help="attach a file: CSV/TSV/Parquet (summarised as a table), an image, a video, text",
    )
    thread = parser.add_mutually_exclusive_group()
    thread.add_argument(
        "--chat",
        metavar="NAME",
        help="ask within the named thread NAME, started here or anywhere else "
        "(step_magic.Chat(NAME), %%%%step --chat NAME): earlier turns are sent as context",
    )
    thread.add_argument(
        "-c",
        "--continue",
        dest="resume",
        action="store_true",
        help="continue the newest thread: the named thread of the most recent logged call "
        "that had one (the default thread always starts empty, so it is never this one)",
    )
    parser.add_argument(
        "--tools",
        action="append",
        default=[],
        metavar="MODULE:FUNCTION",
        help="offer a plain function as a tool the model may call (repeatable; MODULE is "
        "imported, from the current directory too)",
    )
    parser.add_argument(
        "--schema",
        metavar="MODULE:MODEL",
        help="structured output: a pydantic model, a dataclass or a JSON-schema dict; the "
        "validated answer is printed as one line of JSON (status 1 if it does not fit)",
    )


def run_ask(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    """Ask once, streaming as the module docstring says; return the exit status."""
    import step_magic

    source = sys.stdin if stdin is None else stdin
    try:
        piped = "" if source.isatty() else _read_piped(source)
    except InputError as err:
        print(f"step-magic ask: {err}", file=sys.stderr)
        return 1
    if piped is None:
        limit = f"{MAX_STDIN_BYTES // 1_000_000} MB"
        print(f"step-magic ask: the piped input is over {limit}, more than any model takes "
              "(~1M tokens): send a part of it, or a summary", file=sys.stderr)  # fmt: skip
        return 1
    prompt = " ".join(args.prompt).strip()
    if args.chat is not None and not args.chat.strip():
        print("step-magic ask: --chat needs a thread name", file=sys.stderr)
        return 1
    if not prompt and not piped.strip():
        print("step-magic ask: nothing to ask (give a prompt or pipe text in)", file=sys.stderr)
        return 1
    problem = key_problem(args)  # here, so the advice is the shell's
    if problem is not None:
        print(f"step-magic ask: {problem}", file=sys.stderr)
        return 1
    server: AbstractContextManager[str | None] = (
        local_simulator("ask", "answers", file=sys.stderr, tokens_per_second=400)
        if args.local
        else nullcontext(args.base_url)
    )
    printer = _Printer(not args.no_reasoning, sys.stderr.isatty(), structured=bool(args.schema))
    try:
        keywords = _keywords(args)
        with server as base_url, _asker(args) as ask:
            events = ask(
                f"{piped.rstrip()}\n\n{prompt}".strip() if piped else prompt,
                base_url=base_url,
                **keywords,
            )
            for event in events:
                printer.take(event)
    except step_magic.StepMagicError as err:
        printer.notice(f"step-magic ask: {err}")
        return 1
    except KeyboardInterrupt:
        printer.notice("step-magic ask: interrupted")
        return 130
    if printer.unfit:
        printer.notice(f"step-magic ask: the answer does not fit --schema {args.schema} "
                       "(printed as it came; the note above says why)")  # fmt: skip
        return 1
    return 0


def _keywords(args: argparse.Namespace) -> dict[str, Any]:
    """The Python API's keywords from the options: settings, attachments, tools, schema."""
    keywords = call_keywords(args)
    keywords["attach"] = _attachments(args.attach) or None
    keywords["tools"] = _tools(args.tools) or None
    if args.schema:
        keywords["schema"] = imported(args.schema, "--schema")
    return keywords


@contextmanager
def _asker(args: argparse.Namespace) -> Iterator[Callable[..., Iterator[Any]]]:
    """``step_magic.stream`` for a one-off question; the ``stream`` of ``Chat(NAME)`` for
    ``--chat NAME`` and ``-c``, so a thread continues exactly as it does from Python."""
    import step_magic

    name = args.chat or (_newest_thread() if args.resume else None)
    if name is None:
        yield step_magic.stream
        return
    chat = step_magic.Chat(name)
    try:
        if args.resume:
            turns = len(chat.turns)
            earlier = f"{turns} earlier turn{'' if turns == 1 else 's'}"
            print(f"step-magic ask: continuing the thread {name!r} ({earlier})", file=sys.stderr)
        yield chat.stream
    finally:
        chat.close()


def _newest_thread() -> str:
    """``-c``: the named thread of the most recent logged call that had one."""
    from step_magic.memory.history import History

    log = History()
    try:
        name = log.newest_thread()
    finally:
        log.close()
    if name is None:
        raise InputError(
            "--continue: no named thread in the history yet; start one with --chat NAME"
        )
    return name


def _tools(specs: list[str]) -> dict[str, object]:
    """``--tools module:function`` (repeatable, or comma-separated) as ``tools=`` takes them:
    a mapping of each function's name to the function."""
    tools: dict[str, object] = {}
    for spec in (item.strip() for value in specs for item in value.split(",") if item.strip()):
        name = spec.rpartition(":")[2].rpartition(".")[2]
        value = imported(spec, "--tools")
        if tools.get(name, value) is not value:
            raise InputError(f"--tools: two tools would be called {name}")
        tools[name] = value
    return tools


def imported(spec: str, option: str) -> object:
    """``module:name`` (``name`` may be dotted) imported, with the current directory on the
    path as ``python -m`` has it; a one-line ``InputError`` for anything that goes wrong,
    whatever the module raises while it is imported."""
    module_name, _, attribute = spec.partition(":")
    if not module_name.strip() or not attribute.strip():
        raise InputError(f"{option} {spec}: give it as module:name (mytools:lookup)")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        value: object = importlib.import_module(module_name)
    except Exception as err:  # a missing module, a syntax error, anything its code raises
        problem = " ".join(f"{type(err).__name__}: {err}".split())
        message = f"{option} {spec}: cannot import {module_name} ({problem})"
        raise InputError(message) from None
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise InputError(f"{option} {spec}: {module_name} has no {attribute!r}") from None
        except Exception as err:  # a property or module __getattr__ of the user's that raises
            problem = " ".join(f"{type(err).__name__}: {err}".split())
            raise InputError(f"{option} {spec}: reading {part} failed ({problem})") from None
    return value


def key_problem(args: argparse.Namespace) -> str | None:
    """Why a call cannot be made for lack of a usable key, in the shell's words
    (``settings.key_for``: no key for a server elsewhere, or an unsafe stored one); None: it
    can. ``ask`` and ``map`` both check it before anything starts."""
    from step_magic.core.errors import StepMagicError

    if args.local:
        return None
    try:
        config.key_for(args.base_url or config.find_base_url(), "shell")
    except StepMagicError as err:
        return str(err)
    return None


def _read_piped(source: TextIO) -> str | None:
    """Piped text, read as bytes up to the limit (None: over it) and decoded leniently:
    mis-encoded input becomes U+FFFD, not a traceback; binary data is an InputError, as a
    binary file given to ``--with`` is (sending it would only bill its replacement marks)."""
    from step_magic.context.attachments import looks_binary

    raw = getattr(source, "buffer", None)
    if raw is None:  # a text stream (tests, some IDEs)
        text = source.read(MAX_STDIN_BYTES + 1)
        if looks_binary(text):
            raise InputError(BINARY_STDIN)
        return None if len(text) > MAX_STDIN_BYTES else text
    data = raw.read(MAX_STDIN_BYTES + 1)
    if len(data) > MAX_STDIN_BYTES:
        return None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 with its mark (Windows' type, cmd)
        wide: str = data.decode("utf-16", errors="replace")
        return wide.replace("\r\n", "\n")
    if looks_binary(data):
        raise InputError(BINARY_STDIN)
    decoded: str = data.decode("utf-8-sig", errors="replace")  # a Windows BOM goes too
    return decoded.replace("\r\n", "\n")


BINARY_STDIN = (
    "the piped input looks like binary data (it holds NUL bytes): pipe text, or convert it first"
)


class _Printer:
    """Reasoning to stderr (dim on a terminal), answer to stdout, footer to stderr.

    stdout only ever holds the answer: until some reasoning has arrived, answer text is held
    back, since a server that closes a ``</think>`` it never opened (R1-style templates) makes
    the text before it reasoning after all (a ``rethought`` event, after which that text comes
    again as reasoning). What was held is printed once the reply ends, or as soon as
    reasoning has been seen. With ``structured`` (``--schema``) the whole answer is held and
    printed at the end as the validated value's JSON. A notice (a tool call, the footer, an
    error) always starts on a line of its own, apart from reasoning that stopped mid-line.
    """

    def __init__(self, reasoning: bool, dim: bool, *, structured: bool = False) -> None:
        self.reasoning, self.dim, self.structured = reasoning, dim, structured
        self.seen_reasoning = self.shown_reasoning = self.answered = False
        self.unfit = False  # --schema: the answer came, but does not fit
        self.mid_line = False  # reasoning was written to stderr and its line is still open
        self.held: list[str] = []

    def take(self, event: Any) -> None:
        if event.kind == "reasoning":
            self._think(event.text)
        elif event.kind == "rethought":  # what was held was reasoning: it comes again as such
            self.held = []
        elif event.kind == "answer":
            if self.seen_reasoning and not self.structured:
                self._answer(event.text)
            else:
                self.held.append(event.text)
        elif event.kind in ("tool_call", "waiting"):
            self.notice(event.text)
        elif event.kind == "tool_result":  # as the notebook's panel shows it: ↳ 0.02 s → 42
            self.notice(f"↳ {event.text}")
        elif event.kind == "done":
            self._done(event.result)

    def notice(self, text: str) -> None:
        """A line on stderr that never runs on from the reasoning (a blank line between)."""
        if self.mid_line or (self.shown_reasoning and not self.answered):
            sys.stderr.write("\n\n" if self.mid_line else "\n")
            self.shown_reasoning = self.mid_line = False
        print(text, file=sys.stderr)
        sys.stderr.flush()

    def _done(self, result: Any) -> None:
        from step_magic.display.static import footer_text

        if self.structured:
            self._structured(result)
        elif self.held:
            self._answer("".join(self.held))
        sys.stdout.write("\n" if self.answered else "")
        sys.stdout.flush()
        self.notice(footer_text(result))

    def _structured(self, result: Any) -> None:
        """The validated value as one line of JSON; an answer that does not fit, as it came."""
        answer = "".join(self.held)
        if result.parsed is not None:
            self._answer(json.dumps(_jsonable(result.parsed), ensure_ascii=False))
        elif answer.strip():
            self.unfit = result.status in ("complete", "truncated")
            self._answer(answer)

    def _think(self, text: str) -> None:
        self.seen_reasoning = True
        if self.held and not self.structured:  # answer text before any reasoning was answer
            self._answer("".join(self.held))
            self.held = []
        if self.reasoning and text:
            sys.stderr.write(f"\x1b[2m{text}\x1b[0m" if self.dim else text)
            sys.stderr.flush()
            self.shown_reasoning = True
            self.mid_line = not text.endswith("\n")

    def _answer(self, text: str) -> None:
        if self.shown_reasoning and not self.answered:
            sys.stderr.write("\n\n")
            sys.stderr.flush()
            self.mid_line = False
        sys.stdout.write(text)
        sys.stdout.flush()
        self.answered = True


def _jsonable(value: Any) -> Any:
    """A parsed answer as JSON data: a pydantic model or dataclass dumped, data as it is."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        import pydantic

        return pydantic.TypeAdapter(type(value)).dump_python(value, mode="json")
    return value


def _attachments(paths: list[str]) -> dict[str, object]:
    """``--with`` files: tables read into DataFrames (summarised like ``--with df``), the
    rest passed as paths (images, videos) or text."""
    attached: dict[str, object] = {}
    for given in (item for value in paths for item in value.split(",") if item.strip()):
        path = Path(given.strip()).expanduser()
        if not path.is_file():
            why = "a folder" if path.is_dir() else "not a regular file" if path.exists() else ""
            raise InputError(f"--with {given}: {why or 'no such file'}; give a file")
        reader = TABLE_SUFFIXES.get(path.suffix.lower())
        attached[path.stem if reader else str(path)] = _table(path, reader) if reader else path
    return attached


def _table(path: Path, reader: str) -> object:
    try:
        pd = importlib.import_module("pandas")
    except ImportError:
        raise InputError(f"--with {path}: reading tables needs pandas installed") from None
    separator = {"sep": "\t"} if path.suffix.lower() == ".tsv" else {}
    try:
        return getattr(pd, reader)(path, **separator)
    except (ValueError, ImportError, OSError) as err:
        raise InputError(f"--with {path}: cannot read it as a table ({err})") from None
