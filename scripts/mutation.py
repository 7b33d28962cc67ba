"""Mutation-test the core modules with mutmut (fast tests only) and write docs/mutation.md.

Line coverage says a line ran, not that a test would notice it changing. mutmut changes one
operator or constant at a time and reruns the tests that call that function; a mutant that no
test notices ("survived") marks a missing assertion, or a change that makes no difference.
The target is at least 90 % of each module's mutants killed by the fast tier alone.

    python scripts/mutation.py                       # every module in TESTS, ~5-15 min each
    python scripts/mutation.py --modules step_magic/core/text.py --max-children 2 --keep
    python scripts/mutation.py --modules step_magic/batch/scheduler.py --only '*_report__*'

mutmut is not a project dependency (``.venv/bin/pip install mutmut``; written for 3.8). Each
module runs in a throwaway copy of the working tree, because mutmut rewrites the code under
``mutants/`` and keeps its state there: the checkout is never touched, no run reuses a stale
result, and only the one module is mutated. Exit status: 0 when every module run meets the
target, 1 when one does not, 2 when mutmut is missing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAST = "not kernel and not browser and not slow"
TARGET = 90.0
# The test files that reach each module, from mutmut's own record of which tests call which
# function (one stats run of the whole fast tier), leaving out files that only brush it
# through a slow integration path. Per mutant, mutmut runs only the tests that call the
# mutated function, so a file listed here that never does costs a collection, nothing more.
TESTS = {  # module -> tests/test_<name>.py ("api/python_api" is tests/api/test_python_api.py)
    "step_magic/core/settings.py":
        "config settings_edges keystore edge_cases errors messages_api magic magic_context",
    "step_magic/core/redact.py":
        "settings_edges history edge_cases errors memory schema messages_api images context",
    "step_magic/core/cassette.py": "cassette_edges memory mapping magic_map api/python_api",
    "step_magic/display/markdown.py": "markdown markdown_edges hostile_render edge_cases",
    "step_magic/display/maths.py": "markdown hostile_render edge_cases",
    "step_magic/context/interpolate.py":
        "interpolate interpolate_edges context magic_context edge_cases magic",
    "step_magic/wire/retry.py": "errors messages_api edge_cases magic reliability",
    "step_magic/wire/sse.py": "sse bounded messages_api edge_cases",
    "step_magic/engine/buffer.py": "edge_cases magic errors reliability magic_context",
    "step_magic/core/text.py": "reliability errors messages_api toolcalls magic schema edge_cases",
    "step_magic/batch/scheduler.py":
        "mapping_counts mapping_clock mapping magic_map row_is_a_call api/python_api",
    "step_magic/engine/runner.py":
        "run_call run_call_tools turn_reader call_endings bounded errors edge_cases reliability"
        " thinktags toolloop tools_magic"
        " debug_switch messages_tools structured_output wire/other_servers wire/server_shapes"
        " api/async_api session",  # the loop's driver shares TurnReader; the session annotates
    "step_magic/wire/chat.py":
        "wire/chat_reading wire/server_shapes wire/other_servers structured_output toolcalls"
        " doctor",
    "step_magic/wire/messages.py":
        "wire/messages_reading messages_api messages_tools wire/server_shapes structured_output",
    "step_magic/engine/session.py": "session memory api/async_api background",
    "step_magic/api/calls.py": "api/call_ends api/python_api api/async_api background",
    "step_magic/wire/httpstream.py":
        "wire/messages_reading messages_api responses_api bounded interrupts wire/other_servers"
        " structured_output api/async_api doctor",
    "step_magic/wire/chatwire.py":
        "wire/chat_reading structured_output errors run_call messages_api",
    "step_magic/wire/asyncstream.py": "api/async_api api/call_ends",  # each failure both ways
    "step_magic/memory/history.py":
        "history_store history memory bounded background hostile_answers",
}  # fmt: skip
# Not copied: big, or state that would leak between runs (mutmut's, hypothesis' database).
SKIP = (".venv", ".git", ".mypy_cache", ".hypothesis", ".pytest_cache", "mutants", "__pycache__")
DETECTED = ("killed", "timeout")  # what mutmut's own badge counts as caught
UNCOUNTED = ("not checked", "skipped")  # a run stopped early, or ``# pragma: no mutate``
# pytest, writing the ids of the tests that fail to argv[1]; mutmut will not start while one does.
BASELINE = """
import json, sys, pytest
class Failures:
    ids = set()
    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.ids.add(report.nodeid)
pytest.main(sys.argv[2:], plugins=[Failures()])
open(sys.argv[1], "w").write(json.dumps(sorted(Failures.ids)))
"""


@dataclass
class ModuleRun:
    """What one module's run found; ``error`` says why it did not finish, if it did not."""

    module: str
    tests: list[str]
    seconds: float = 0.0
    status: dict[str, str] = field(default_factory=dict)  # mutant -> mutmut's verdict
    diffs: dict[str, str] = field(default_factory=dict)  # undetected mutant -> one-line diff
    deselected: list[str] = field(default_factory=list)
    error: str = ""

    def count(self, *statuses: str) -> int:
        return sum(1 for s in self.status.values() if s in statuses)

    @property
    def score(self) -> float | None:
        """Caught share of the mutants that were tried; None when none was."""
        tried = len(self.status) - self.count(*UNCOUNTED)
        return 100.0 * self.count(*DETECTED) / tried if tried else None


def mutmut_command() -> list[str] | None:
    """mutmut next to this interpreter (the project venv), else on PATH."""
    local = Path(sys.executable).with_name("mutmut")
    found = str(local) if local.exists() else shutil.which("mutmut")
    return [found] if found else None


def test_files(module: str) -> list[str]:
    """The module's test files that exist (some are new); all of tests/ for an unlisted one."""
    files = []
    for name in TESTS.get(module, "").split():
        folder, _, stem = name.rpartition("/")
        files.append(Path("tests", folder, f"test_{stem}.py").as_posix())
    return [f for f in files if (ROOT / f).exists()] or ["tests"]


def failing_tests(copy: Path, tests: list[str]) -> list[str]:
    """Tests that fail before any mutation, to deselect: mutmut refuses to start otherwise."""
    out = copy.parent / "baseline-failures.json"
    cmd = [sys.executable, "-c", BASELINE, str(out), "-q", "-p", "no:cacheprovider", "-m", FAST]
    subprocess.run([*cmd, *tests], cwd=copy, capture_output=True, check=False)
    return list(json.loads(out.read_text())) if out.exists() else []


def configure(copy: Path, run: ModuleRun, timeout_multiplier: float) -> None:
    """Point mutmut at one module and its tests, in the copy's pyproject.toml."""
    pyproject = copy / "pyproject.toml"
    text = pyproject.read_text()
    if "[tool.mutmut]" in text:
        raise SystemExit("pyproject.toml has a [tool.mutmut] table; this script writes its own")
    # mutmut copies only the package and tests/ into mutants/; some tests read notebooks/ too.
    others = [p.name for p in copy.iterdir() if p.name not in ("step_magic", "tests")]
    table = {
        "source_paths": ["step_magic"],  # all of it, so the tests import the copy, not the venv's
        "only_mutate": [run.module],
        "also_copy": sorted(others),
        "pytest_add_cli_args_test_selection": run.tests,
        # test_code_quality lints mutants/, which mutmut's rewriting never passes.
        "pytest_add_cli_args": ["-m", FAST, "--ignore=tests/test_code_quality.py"]
        + [f"--deselect={test}" for test in run.deselected],
        # A mutant's wall-clock limit is (its tests' time in the stats run + constant) x
        # multiplier. mutmut's 1 s x 15 makes each quadratic maths mutant (a timeout, which
        # counts as killed) cost 4-5 minutes; 5 s keeps a loaded machine's pytest start in.
        "timeout_constant": 5.0,
        "timeout_multiplier": timeout_multiplier,
        # Each pytest session (stats, clean run, every mutant) in a fresh fork of a process that
        # never ran a test. With the default "fork" they share one process, where IPython's
        # start_ipython() returns None after its first call: every test on the ``ip`` fixture
        # errors, the clean run fails, and in the mutant runs a mutant would look killed.
        "process_isolation": "forkserver",
    }
    lines = [f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in table.items()]
    pyproject.write_text(text + "\n[tool.mutmut]\n" + "\n".join(lines) + "\n")


def mutmut(mm: list[str], copy: Path, *args: str) -> str:
    """stdout of a mutmut command run in the copy (it reads its state from ``mutants/``)."""
    done = subprocess.run([*mm, *args], cwd=copy, capture_output=True, text=True, check=False)
    return done.stdout


def one_line_diff(diff: str) -> str:
    """``old`` → ``new`` from ``mutmut show``: enough to find the mutant in the source."""
    body = [ln for ln in diff.splitlines() if ln[:3] not in ("---", "+++") and ln[:1] in "-+"]
    old = " ⏎ ".join(ln[1:].strip() for ln in body if ln.startswith("-"))
    new = " ⏎ ".join(ln[1:].strip() for ln in body if ln.startswith("+"))
    return f"{code(old[:110])} → {code(new[:110])}"


def code(text: str) -> str:
    """Inline Markdown code that survives backticks inside ``text``."""
    if not text:
        return "(nothing)"
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if len(fence) > 1 else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def run_module(module: str, mm: list[str], args: argparse.Namespace) -> ModuleRun:
    """Copy the tree, deselect tests that already fail, run mutmut, read back every verdict."""
    run = ModuleRun(module, test_files(module))
    work = Path(tempfile.mkdtemp(prefix="mutation-"))
    copy = work / "repo"
    start = time.monotonic()
    try:
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(*SKIP))
        run.deselected = failing_tests(copy, run.tests)
        configure(copy, run, args.timeout_multiplier)
        cmd = [*mm, "run", "--max-children", str(args.max_children), *args.only]
        with (work / "mutmut.log").open("w") as log:
            proc = subprocess.Popen(cmd, cwd=copy, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
            try:
                proc.wait(timeout=args.minutes * 60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGTERM)  # mutmut, its fork server and workers
                proc.wait()
                run.error = f"stopped after {args.minutes:g} min; the rest was not checked"
        if proc.returncode != 0 and not run.error:
            tail = (work / "mutmut.log").read_text(errors="replace").strip().splitlines()[-3:]
            run.error = f"mutmut exited {proc.returncode}: " + " / ".join(tail)
        for line in mutmut(mm, copy, "results", "--all", "true").splitlines():
            name, sep, status = line.strip().partition(": ")
            if sep and "__mutmut_" in name:
                run.status[name] = status
        for name, status in run.status.items():
            if status not in (*DETECTED, *UNCOUNTED):
                run.diffs[name] = one_line_diff(mutmut(mm, copy, "show", name))
    finally:
        run.seconds = time.monotonic() - start
        if args.keep:
            print(f"  kept {copy} (`mutmut browse` there)")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return run


def tree_state() -> str:
    """The commit, and whether the working tree (which is what was copied) differs from it."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    return head.stdout.strip() + (" + uncommitted changes" if dirty.stdout.strip() else "")


def report(runs: list[ModuleRun], version: str, tree: str, only: Sequence[str] = ()) -> str:
    """The Markdown page: a table of scores, then every mutant the tests let through."""
    lines = [
        "# Mutation testing",
        "",
        f"Generated by `python scripts/mutation.py` on {dt.date.today()} with mutmut {version}:"
        f' fast tier only (`-m "{FAST}"`), one module mutated at a time, in a copy of the working'
        f" tree ({tree}). Score = (killed + timeout) / (mutants - not checked - skipped);"
        " the target is at least 90 % for each module."
        + (
            f" Only the mutants matching {', '.join(map(code, only))} were checked." if only else ""
        ),
        "",
        "| module | mutants | killed | survived | other | not checked | score | ≥ 90 %? | time |",
        "|---|---:|---:|---:|---:|---:|---:|:-:|---:|",
    ]
    for r in runs:
        score = "—" if r.score is None else f"{r.score:.1f} %"
        met = "—" if r.score is None else ("yes" if r.score >= TARGET else "**no**")
        met += " (so far)" if r.count("not checked") and r.score is not None else ""
        other = len(r.status) - r.count(*DETECTED, "survived", "not checked")
        lines.append(
            f"| `{r.module}` | {len(r.status)} | {r.count(*DETECTED)} | {r.count('survived')} "
            f"| {other} | {r.count('not checked')} | {score} | {met} | {r.seconds / 60:.1f} min |"
        )
    not_run = [m for m in TESTS if m not in {r.module for r in runs}]
    lines += ["", "Modules run: " + ", ".join(f"`{r.module}`" for r in runs) + "."]
    if not_run:
        lines.append("Not run this time: " + ", ".join(f"`{m}`" for m in not_run) + ".")
    for r in runs:
        tally = ", ".join(f"{n} {s}" for s, n in Counter(r.status.values()).most_common())
        lines += ["", f"## `{r.module}`", "", "Tests: " + ", ".join(f"`{t}`" for t in r.tests)]
        lines.append(f"Verdicts: {tally or '—'}")
        if r.deselected:
            lines.append("Deselected, failing before mutation: " + ", ".join(r.deselected))
        if r.error:
            lines.append(f"**Run incomplete:** {r.error}")
        lines += ["", "Mutants the tests let through:" if r.diffs else "No surviving mutants."]
        prefix = r.module.removesuffix(".py").replace("/", ".") + "."
        for name, diff in r.diffs.items():  # in source order, as mutmut numbers them
            lines.append(f"- `{name.removeprefix(prefix)}` ({r.status[name]}): {diff}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run each module in turn (one at a time: the fork server is one more process each)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="+", default=list(TESTS), metavar="PATH")
    parser.add_argument("--max-children", type=int, default=1, help="mutants at once (1)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/mutation.md")
    parser.add_argument("--minutes", type=float, default=30, help="stop a module after (30)")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the runs (10)")
    parser.add_argument("--timeout-multiplier", type=float, default=5, help="mutmut's (5)")
    parser.add_argument("--keep", action="store_true", help="keep the copies, to browse them")
    parser.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="GLOB",
        help="check only the mutants these names match (fnmatch, as mutmut run takes them:"
        " '*ǁ_Runǁ_report__mutmut_*' for one method, '*__mutmut_*[05]' for a tenth)",
    )
    args = parser.parse_args(argv)
    mm = mutmut_command()
    if mm is None:
        print("mutmut is not installed: .venv/bin/pip install mutmut", file=sys.stderr)
        return 2
    missing = [m for m in args.modules if not (ROOT / m).is_file()]
    if missing:
        parser.error(f"no such module: {', '.join(missing)}")
    os.nice(args.nice)
    tree = tree_state()  # before the runs: they copy the tree as it is now
    runs = []
    for module in args.modules:
        print(f"{module} ...", flush=True)
        runs.append(run := run_module(module, mm, args))
        score = "—" if run.score is None else f"{run.score:.1f} %"
        print(f"  {len(run.status)} mutants, score {score}, {run.seconds:.0f} s {run.error}")
    args.out.write_text(report(runs, metadata.version("mutmut"), tree, args.only))
    print(f"wrote {args.out}")
    return 0 if all(r.score is not None and r.score >= TARGET for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
