"""The ``step-magic`` command: ``ask`` asks from the shell, ``map`` asks once per row of a table
file, ``history`` lists the logged calls, ``key`` keeps the API key, ``demo`` runs a real
``%%step`` cell, ``serve`` runs the simulator.

``step-magic demo`` is the README's one-command tour: it drives the same magic a notebook
uses, in an IPython shell, against StepFun when a key is set and against the bundled local
simulator otherwise — and says which, in plain words.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys

from step_magic import __version__, cli_ask, cli_doctor, cli_history, cli_key, cli_map
from step_magic.core import settings as config
from step_magic.core.catalog import BY_NAME
from step_magic.core.redact import redact_url
from step_magic.server import cli as server_cli

DEMO_PROMPT = "How many letters r are in the word strawberry? Think it through."


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = argparse.ArgumentParser(
        prog="step-magic",
        description="Ask StepFun reasoning models from the shell, try the %%step magic, "
        "or run the bundled offline simulator.",
    )
    parser.add_argument("--version", action="version", version=f"step-magic {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="ask one question through %%%%step in IPython",
        description="Run one %%step cell in a real IPython shell: StepFun when "
        "STEPFUN_API_KEY is set, else the bundled simulator offline (and it says so).",
    )
    demo.add_argument("prompt", nargs="*", help=f"the question (default: {DEMO_PROMPT!r})")
    for name in ("model", "effort"):
        names, options = BY_NAME[name].argument()
        demo.add_argument(*names, **options)
    demo.add_argument("--local", action="store_true", help="use the simulator even with a key")
    ask = commands.add_parser(
        "ask",
        help="ask once: reasoning to stderr, answer to stdout",
        description="Ask a StepFun model once from the shell: the reasoning streams to stderr, "
        "the answer to stdout, the footer (tokens, cost, trace id) to stderr.",
    )
    cli_ask.add_arguments(ask)
    mapping = commands.add_parser(
        "map",
        help="ask a prompt once per row of a table file, into another file (resumable)",
        description=cli_map.DESCRIPTION,
    )
    cli_map.add_arguments(mapping)
    history = commands.add_parser(
        "history",
        help="list, search or export the logged calls",
        description="List the newest logged calls (from every notebook, script and shell), "
        "newest first; search them with SQLite's full-text search; one thread with --chat; "
        "--json or --markdown to keep them. The log never holds the API key.",
    )
    cli_history.add_arguments(history)
    doctor = commands.add_parser(
        "doctor",
        help="check what a server does against what step-magic expects (costs ~$0.01)",
        description="Make a few tiny calls to a server and report what it does (reasoning "
        "field, usage, finish reasons, trace id, each wire API, tools, images, errors) against "
        "what step-magic expects. About a cent on StepFun.",
    )
    cli_doctor.add_arguments(doctor)
    serve = commands.add_parser(
        "serve",
        help="run the local StepFun-compatible simulator",
        description="Run the bundled StepFun-compatible server on this machine: simulated "
        "answers over the real wire protocols (chat, messages, responses), faults on demand, "
        "recorded replies with --cassette. No network is used.",
    )
    server_cli.add_arguments(serve)
    cli_key.add_help_entry(commands)
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["key"]:  # its own parser, which never echoes an argument (a key?) back
        return cli_key.main(given[1:])
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:  # `step-magic ask ... | head -1`: the reader left, as for `cat`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail
        return 128 + signal.SIGPIPE


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        return server_cli.serve(args)
    if args.command == "ask":
        return cli_ask.run_ask(args)
    if args.command == "map":
        return cli_map.run_map(args)
    if args.command == "doctor":
        return cli_doctor.run_doctor(args)
    if args.command == "history":
        return cli_history.run_history(args)
    return run_demo(" ".join(args.prompt) or DEMO_PROMPT, args.model, args.effort, args.local)


def run_demo(prompt: str, model: str | None, effort: str | None, local: bool) -> int:
    """Run ``%%step`` once in a fresh IPython shell; exit status 1 if the cell failed."""
    from IPython.core.interactiveshell import InteractiveShell

    from step_magic.core.errors import InputError

    unsafe = None
    try:
        keyless = local or config.find_api_key() is None
    except InputError as err:  # a stored key that is not safe to use: offline, saying why
        keyless, unsafe = True, str(err)
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "step_magic")
    if keyless:
        reason = "--local was given" if local else unsafe or "no API key is set or stored"
        print(f"step-magic demo: {reason}, so the bundled local simulator answers.")
        print("The reply below is simulated offline; it does not come from StepFun.\n")
        shell.magics_manager.registry["StepMagics"].start_local(400)  # no notebook advice
    else:
        print(f"step-magic demo: asking StepFun at {redact_url(config.find_base_url())}.\n")
    flags = (f"--effort {effort}" if effort else "") + (
        f" --model {shlex.quote(model)}" if model else ""
    )
    print(f"%%step {flags}\n{prompt}\n")
    outcome = shell.run_cell(f"%%step {flags}\n{prompt}", silent=True)  # no "Out[0]:" line
    shell.run_line_magic("unload_ext", "step_magic")
    if keyless and not local:
        print("\nTo ask StepFun itself: step-magic key set (or export STEPFUN_API_KEY=...), "
              "then step-magic demo again.")  # fmt: skip
    return 0 if outcome.success else 1


if __name__ == "__main__":
    sys.exit(main())
