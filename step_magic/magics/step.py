"""IPython glue: the ``%%step`` / ``%step`` magic and its configurable defaults.

This module keeps the flow of a call: it turns bad input into one-line ``UsageError``s and
delegates. The flags are declared in ``stepflags``, read in ``parsing``; the frontend is asked
in ``frontend``; ``--tools`` and ``--map`` have their glue in ``toolglue`` and ``mapglue``; the
work happens in the engine below, which knows nothing of IPython.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections import ChainMap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from traitlets import Bool, CFloat, CInt, Unicode, observe

from step_magic.context.outputs import OutputRecorder
from step_magic.core import settings as config
from step_magic.core.errors import InputError
from step_magic.display import frontend
from step_magic.magics import frontend as magic_frontend
from step_magic.magics.parsing import check_needs, read_flags
from step_magic.magics.stepflags import step_arguments
from step_magic.magics.traits import setting_trait

if TYPE_CHECKING:  # the call path loads on the first call: %load_ext stays fast
    from step_magic.api.prepare import Call
    from step_magic.core.outputschema import OutputSchema
    from step_magic.display.slots import ReservedSlots
    from step_magic.engine.session import CallOptions, Session
    from step_magic.engine.toolloop import ToolLoop
    from step_magic.memory.history import History

JOIN_SECONDS = 2.0  # how long %unload_ext waits for stopped background calls to record


@magics_class
class StepMagics(Magics):
    """Ask StepFun reasoning models from a notebook; defaults are configurable traits.

    Example: ``%config StepMagics.model = "step-3.5-flash"``.
    """

    model = setting_trait("model")
    effort = setting_trait("effort")
    system = setting_trait("system")
    max_tokens = setting_trait("max_tokens")
    temperature = setting_trait("temperature")
    top_p = setting_trait("top_p")
    base_url = Unicode(
        None, allow_none=True, help="API base URL; default $STEPFUN_BASE_URL or StepFun's."
    ).tag(config=True)
    timeout = setting_trait("timeout")
    deadline = setting_trait("deadline")
    max_retries = setting_trait("max_retries")
    show_reasoning = setting_trait("show_reasoning")
    reasoning = setting_trait("reasoning")
    remote_images = setting_trait("remote_images")
    budget = setting_trait("budget")
    detail = setting_trait("detail")
    image_max_side = setting_trait("image_max_side")
    api = setting_trait("api")
    max_steps = setting_trait("max_steps")
    warm_up = Bool(
        True,
        help="In a kernel, prepare the call path (SDK, TLS, widgets) in the background after "
        "%load_ext, so the first call starts fast.",
    ).tag(config=True)
    explain_errors = Bool(
        False,
        help="After a cell fails, show an 'Explain with step-magic' button under the traceback; "
        "it sends nothing until clicked, and is never shown to headless runs (nbclient).",
    ).tag(config=True)
    memory = Bool(True, help="Send earlier turns of the thread as context.").tag(config=True)
    replay = Bool(False, help="Answer from recorded replies only.").tag(config=True)
    replay_speed = CFloat(200.0, help="Replay pace in tokens/s (0: at once).").tag(config=True)
    cassette = Unicode(
        None,
        allow_none=True,
        help="The cassette every call records to and replays from, as --cassette does (a "
        "lesson on the projector: with replay = True, no cell needs the flag).",
    ).tag(config=True)
    history = Bool(True, help="Log every call to the SQLite history.").tag(config=True)
    background_limit = CInt(
        4, help="Background calls (--background) that stream at once; more wait for a slot."
    ).tag(config=True)
    history_path = Unicode(
        None, allow_none=True, help="History database; default in the user data directory."
    ).tag(config=True)

    debug = Bool(
        False,
        help="Keep the cause of an unexpected failure: its traceback (the key removed) under "
        "the error and in logging.getLogger('step_magic'). Also STEP_MAGIC_DEBUG=1.",
    ).tag(config=True)

    @observe("debug")
    def _debug_changed(self, change: dict[str, Any]) -> None:
        from step_magic.core.diagnostics import set_debug

        set_debug(bool(change["new"]))

    @observe("explain_errors")
    def _explain_errors_changed(self, change: dict[str, Any]) -> None:
        explainer = getattr(self, "_explainer", None)  # None while config sets it in __init__
        if explainer is not None:
            explainer.offer(bool(change["new"]))

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        from step_magic.magics.explainglue import ErrorExplainer

        self._explainer = ErrorExplainer(self)
        self._explainer.switch(True)  # it remembers the last error of the user's code
        self._explainer.offer(self.explain_errors)
        self._session: Session | None = None
        self.local: Any = None  # the in-process simulator (%step_config --local)
        self._outputs = OutputRecorder(lambda: int(getattr(shell, "execution_count", 0)))
        publisher: Any = getattr(shell, "display_pub", None)
        if hasattr(publisher, "register_hook"):  # ipykernel: remember displayed images
            publisher.register_hook(self._outputs.hook)

    @step_arguments
    @no_var_expand  # the prompt is ours to read: IPython must not expand {x} or $x first
    @line_cell_magic
    def step(self, line: str, cell: str | None = None) -> Any:
        """Ask a StepFun model; the reasoning streams into a panel, the answer below it.

        Cell form: ``%%step [flags]`` with the prompt as the cell body.
        Line form: ``%step [flags] prompt``. The result is bound to ``_step`` and returned
        (``r = %step ...``; ``Out[n]``), as ``%timeit -o`` returns its result; the cell does
        not show it twice.
        """
        args, prompt = read_flags(self.step.parser, line, cell)
        check_needs(args, self.step.parser)
        from step_magic.magics.compareglue import is_comparison, run_comparison
        from step_magic.magics.toolglue import check_tool_flags, tool_loop

        if args.fix:
            prompt = fix_request(args, prompt)
        if is_comparison(args):
            return run_comparison(self, args, prompt)

        check_tool_flags(args, replay=(self.replay or args.replay) and not args.refresh)
        if args.background:
            from step_magic.magics.background import check_background_flags

            check_background_flags(args)
        schema = self._schema(args)
        if args.map:
            from step_magic.magics.mapglue import run_map

            settings = self._settings(args, need_key=not args.dry_run)
            run_map(self, args, prompt, settings, schema)
            return None
        options = self._call_options(args)
        settings = self._settings(args, need_key=not (args.dry_run or options.replay))
        budget = args.budget or self.budget
        tools = tool_loop(args, self._namespace, budget_tokens=budget, max_steps=self.max_steps)
        cell_id = magic_frontend.cell_id(self.shell)
        self.session.history = self.history_store()  # a named thread resumes from it
        call = self.prepare(
            prompt, args, settings, options, tools=tools, cell=cell_id, schema=schema
        )
        if args.dry_run:
            magic_frontend.show_dry_run(settings, call.prepared.request)
            return None
        if args.background:  # starting it stops any call this cell started before
            from step_magic.magics.background import start_in_background

            options = dataclasses.replace(options, background=True)
            start_in_background(self, args, dataclasses.replace(call, options=options), cell_id)
            return None
        background = sys.modules.get("step_magic.api.background")
        if background is not None:  # re-running a cell replaces the call it started before
            background.POOL.cancel_from(cell_id)
        view = frontend.choose_view(self.shell, settings, tools=tools is not None)
        result, error = self.session.ask(settings, call.prepared, options, view, cell_id, tools)
        self._namespace["_step"] = result
        if args.output:
            self._namespace[args.output] = result
        if error is None and args.code:
            magic_frontend.code_to_next_cell(self.shell, result.answer, every=args.code == "all")
        if error is None and options.display_format == "json":
            error = magic_frontend.json_error(result.answer)
        if error is not None:
            raise error
        return result

    @property
    def session(self) -> Session:
        """Threads, history and recorder of this kernel, created on first use."""
        if self._session is None:
            from step_magic.engine.session import Session

            self._session = Session(None)
        return self._session

    def _call_options(self, args: argparse.Namespace) -> CallOptions:
        from step_magic.engine.session import CallOptions

        return CallOptions(
            chat=args.chat,
            new=args.new,
            memory=self.memory and not args.no_memory,
            replay=(self.replay or args.replay) and not args.refresh,
            refresh=args.refresh,
            cassette=self.cassette_path(args),
            replay_speed=self.replay_speed,
            display_format=args.format,
            notebook=magic_frontend.notebook_path(self.shell),
        )

    def cassette_path(self, args: argparse.Namespace) -> Path | None:
        """The cassette of a call or a map: ``--cassette``, else ``StepMagics.cassette``."""
        given = args.cassette or self.cassette
        return Path(given).expanduser() if given else None

    def history_store(self) -> History | None:
        """The history database the traits ask for (reopened only when they change)."""
        current = self.session.history
        if not self.history:
            return None
        from step_magic.memory.history import History, default_path

        path = Path(self.history_path).expanduser() if self.history_path else default_path()
        if current is not None and current.path == path:
            return current
        if current is not None:
            current.close()
        return History(path)

    @property
    def _namespace(self) -> dict[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    def prepare(
        self,
        prompt: str,
        args: argparse.Namespace,
        settings: config.Settings,
        options: CallOptions,
        *,
        tools: ToolLoop | None = None,
        cell: str | None = None,
        schema: OutputSchema | None = None,
        names: dict[str, object] | None = None,
    ) -> Call:
        """The call the API's one prepare path makes from these flags and this notebook's
        names (``names`` first, then earlier outputs), or a UsageError; nothing is sent."""
        from step_magic.api.prepare import prepare_call
        from step_magic.context import failure
        from step_magic.context.compose import ComposeOptions

        failure.cell_number = self._cell_number  # tracebacks name cells as In[5]
        sources = ComposeOptions(
            names=args.attach,
            interpolate=not args.no_interpolate,
            strict=args.strict,
            budget_tokens=args.budget or self.budget,
            detail=args.detail or self.detail,
            image_max_side=self.image_max_side,
        )
        namespace = ChainMap(names or {}, self._outputs.references(), self._namespace)
        try:
            return prepare_call(
                self.session,
                settings,
                prompt,
                sources,
                namespace,
                options,
                tools=tools,
                cell=cell,
                schema=schema,
            )
        except InputError as err:
            raise UsageError(str(err)) from None

    def explain_into(self, error: BaseException, slots: ReservedSlots, parent: str) -> None:
        """The explain control's click: ``%step --with @error`` about ``error``, without
        memory, streaming into the failed cell's reserved outputs; ``_step`` is its result.

        A call that fails says so in its own footer there; input that cannot be sent (no
        key) is a ``UsageError`` before anything is shown."""
        from step_magic.api.explain import error_prompt

        args, prompt = read_flags(self.step.parser, "--no-memory --with @error", error_prompt())
        settings = self._settings(args, need_key=True)
        options = self._call_options(args)
        call = self.prepare(prompt, args, settings, options, names={"@error": error})
        view = frontend.reserved_view(parent, settings, slots)
        result, _ = self.session.ask(settings, call.prepared, options, view, None)
        self._namespace["_step"] = result

    def _cell_number(self, filename: str) -> int | None:
        """The execution count of the cell IPython compiled into ``filename``, if it did."""
        names = getattr(getattr(self.shell, "compile", None), "_filename_map", None)
        number = names.get(filename) if isinstance(names, dict) else None
        return number if isinstance(number, int) else None

    def _schema(self, args: argparse.Namespace) -> OutputSchema | None:
        """``--schema NAME``: the notebook's model, dataclass or dict, or a UsageError."""
        if not args.schema:
            return None
        from step_magic.api.prepare import output_schema

        if args.schema not in self._namespace:
            raise UsageError(f"--schema {args.schema}: no such name in the notebook")
        try:
            return output_schema(self._namespace[args.schema])
        except InputError as err:
            raise UsageError(f"--schema {args.schema}: {err}") from None

    def _settings(self, args: argparse.Namespace, *, need_key: bool) -> config.Settings:
        """This call's settings: flags over traits over the environment, validated."""
        defaults = {name: getattr(self, name) for name in self.trait_names(config=True)}
        local = self.local
        try:
            settings, warning = config.settings_for(
                vars(args),
                defaults,
                local_url=local.base_url if local is not None else None,
                need_key=need_key,
            )
        except InputError as err:
            raise UsageError(str(err)) from None
        if warning:
            print(f"Warning: {warning}", file=sys.stderr)
        return settings

    def start_local(self, tokens_per_second: float) -> str:
        """Start the bundled simulator in this process; return its base URL."""
        from step_magic.server import LocalServer, ServerConfig

        self.stop_local()
        self.local = LocalServer(ServerConfig(tokens_per_second=tokens_per_second)).start()
        return str(self.local.base_url)

    def stop_local(self) -> None:
        """Stop the in-process simulator if one runs."""
        if self.local is not None:
            self.local.stop()
            self.local = None

    def release(self) -> None:
        """Undo what loading did (``%unload_ext``): simulator, display hook, lingering panels."""
        background = sys.modules.get("step_magic.api.background")
        if background is not None:  # their panels would stream from a kernel without us
            background.stop_all(JOIN_SECONDS)
        self.stop_local()
        self._explainer.switch(False)
        if self._session is not None and self._session.history is not None:
            self._session.history.close()
        publisher: Any = getattr(self.shell, "display_pub", None)
        if hasattr(publisher, "unregister_hook"):
            publisher.unregister_hook(self._outputs.hook)
        render = sys.modules.get("step_magic.display.closing")
        if render is not None:
            render.close_lingering_panels()


def fix_request(args: argparse.Namespace, words: str) -> str:
    """``--fix``: the last error attached, the question asked, the corrected cell put below."""
    from step_magic.api.explain import error_prompt
    from step_magic.magics.parsing import refuse

    refuse(
        args,
        {"map": "--map", "background": "--background", "tools": "--tools", "schema": "--schema"},
        "--fix",
    )
    from step_magic.magics.compareglue import is_comparison

    if is_comparison(args):
        raise UsageError("--fix asks one model once: drop the comma lists")
    args.attach = ("@error", *(name for name in args.attach if name != "@error"))
    args.code = args.code or "first"
    return error_prompt(words, fix=True)


# Both forms read flags alike: no abbreviations (in the line form "--eff" would be prompt).
StepMagics.step.parser.allow_abbrev = False
