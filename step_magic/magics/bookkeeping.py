"""IPython glue for the bookkeeping magics: ``%step_chats``, ``%step_history``, ``%step_record``.

They share the kernel's ``Session`` with ``StepMagics`` (one object, passed in at load time).
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from step_magic.core import settings as config
from step_magic.core.redact import redact_url
from step_magic.display.calllog import call_line


@magics_class
class StepToolMagics(Magics):
    """Conversation threads, the call history and lesson recording."""

    def __init__(self, shell: Any, main: Any) -> None:
        super().__init__(shell=shell)
        self._main = main  # the StepMagics instance: its session and history settings

    @magic_arguments()
    @argument("--local", action="store_true", help="Start the bundled simulator and use it.")
    @argument("--remote", action="store_true", help="Stop the simulator; use the real API.")
    @argument("--tokens-per-second", type=float, default=150.0, help="Simulator speed.")
    @argument("--key", action="store_true", help="Ask for the API key without echoing it.")
    @line_magic
    def step_config(self, line: str) -> None:
        """Show the settings in force, set the key, or switch to/from the offline simulator."""
        args = parse_argstring(self.step_config, line)
        if args.local and args.remote:
            raise UsageError("--local and --remote contradict each other")
        if args.key:
            _ask_for_key()
        elif args.local:
            url = self._main.start_local(args.tokens_per_second)
            print(
                f"Local StepFun simulator running at {url}: answers are simulated, no network "
                "and no API key are used. %step_config --remote goes back to the real API."
            )
        elif args.remote:
            self._main.stop_local()
            print("Using the StepFun API again.")
        else:
            print(self._describe())

    def _describe(self) -> str:
        main, local = self._main, self._main.local
        key_source = config.key_origin()
        where = f"{local.base_url} (local simulator)" if local else main.base_url
        return "\n".join(
            [
                f"model:     {main.model}",
                f"effort:    {main.effort or 'server default'}",
                f"base url:  {redact_url(where or config.find_base_url())}",
                f"api key:   {key_source or 'not set'}",
                f"timeout:   {main.timeout:g} s, retries: {main.max_retries}",
            ]
        )

    @line_magic
    def step_chats(self, line: str) -> None:
        """List the conversation threads of this kernel with turn counts and token totals."""
        threads = self._main.session.conversations.threads
        if not threads:
            print("No conversation yet: the first %%step cell starts the default thread.")
            return
        print(f"{'thread':<20} {'turns':>5} {'tokens':>10}")
        for thread in threads.values():
            print(f"{thread.name:<20} {len(thread.turns):>5} {thread.tokens:>10,}")

    @magic_arguments()
    @argument("-n", type=int, help="How many recent calls to show (10) or export (all).")
    @argument(
        "--search",
        metavar="TEXT",
        help="Only calls with every word of TEXT in the prompt, reasoning or answer "
        "(full-text; 'scatter*' for a prefix), or TEXT in the model or trace id.",
    )
    @argument("--export", metavar="FILE", help="Write the calls to FILE as JSON lines.")
    @line_magic
    def step_history(self, line: str) -> None:
        """Show recent calls from the history database, or export them."""
        args = parse_argstring(self.step_history, line)
        history = self._main.history_store()
        if history is None:
            raise UsageError("History is off (StepMagics.history = False)")
        if args.export:
            target = Path(args.export).expanduser()
            try:
                count = history.export_jsonl(target, n=args.n, search=args.search)
            except OSError as err:
                raise UsageError(f"Cannot write {target}: {err.strerror or err}") from None
            print(f"Exported {count} call(s) to {target}")
            return
        records = history.recent(10 if args.n is None else args.n, args.search)
        if not records:
            print(f"No calls recorded in {history.path}" + (" match" if args.search else ""))
        for record in records:
            print(call_line(record))

    @magic_arguments()
    @argument("file", nargs="?", help="Cassette (JSON lines) to record this kernel's calls to.")
    @argument("--stop", action="store_true", help="Stop recording.")
    @line_magic
    def step_record(self, line: str) -> None:
        """Record every following call into a cassette, to replay it offline later."""
        args = parse_argstring(self.step_record, line)
        session = self._main.session
        if args.stop or not args.file:
            if session.recorder is None:
                print("Not recording. Start with: %step_record lesson.jsonl", file=sys.stderr)
            else:
                print(f"Stopped recording to {session.recorder.path}")
            session.recorder = None
            return
        from step_magic.core.cassette import Cassette

        path = Path(args.file).expanduser()
        _check_writable(path)
        session.recorder = Cassette(path)
        print(
            f"Recording calls to {session.recorder.path}. Replay them with "
            f"%%step --replay --cassette {args.file} (no key, no network needed)."
        )


def _check_writable(path: Path) -> None:
    """UsageError now for a cassette that could not be written: not a warning after the
    next call, when the lesson has already been given."""
    if path.exists() and not path.is_file():  # a folder; a FIFO would block the kernel
        raise UsageError(f"cannot record to {path}: it is not a regular file")
    folder = next((p for p in path.parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise UsageError(f"cannot record to {path}: {folder} is a file, not a folder")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab"):
            pass
        if not existed:  # created only to try: the first recorded call creates it
            path.unlink()
    except OSError as err:
        raise UsageError(f"cannot record to {path}: {err.strerror or err}") from None


def _ask_for_key() -> None:
    """Read the key without echo into this process's environment; it is never saved.

    ``%env STEPFUN_API_KEY=...`` would print the key into the notebook; this does not.
    """
    from IPython.core.error import StdinNotImplementedError

    try:
        key = getpass.getpass("StepFun API key (hidden, kept for this session only): ")
    except (StdinNotImplementedError, EOFError):
        raise UsageError(
            "This frontend cannot ask for input: set STEPFUN_API_KEY before starting Jupyter"
        ) from None
    if not key.strip():
        raise UsageError("No key entered; nothing changed")
    os.environ["STEPFUN_API_KEY"] = key.strip()
    print(
        "Key set for this kernel session (not saved, not shown); `step-magic key set` in a "
        "terminal keeps one between sessions."
    )
