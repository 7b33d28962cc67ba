"""What went wrong, as prompt text: ``--with @error`` and ``step_magic.explain(exc)``.

A traceback is mostly library frames: a ``KeyError`` from ``df["revnue"]`` passes through a
dozen pandas frames whose source says nothing about the typo. The model needs the user's own
code in full (each frame's line, and the source of the cells that raised), each library
frame as one line, the chain of causes, and what the names on the failing line held, as the
same bounded summaries ``--with`` makes. The whole is bounded: a deep library traceback or a
recursion of a thousand frames stays a few thousand characters.

Nothing from the traceback is evaluated: names are read from the frames' own variables
(``f_locals``, then ``f_globals``), and source comes from ``linecache``. The API key and URL
credentials are removed, as everywhere.
"""

from __future__ import annotations

import io
import keyword
import linecache
import re
import site
import sys
import sysconfig
import tokenize
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from step_magic.core.errors import StepMagicError
from step_magic.core.settings import key_to_hide, redact

MAX_CHARS = 6_800  # the whole description: "a few thousand characters"
FRAMES_CHARS = 2_600
SOURCE_CHARS = 2_000
NAMES_CHARS = 1_800
HEADLINE_CHARS = 300
MAX_CHAIN = 4  # causes and contexts shown, newest kept
MAX_FRAMES = 24  # frames listed per exception; the middle of a deeper one is folded
MAX_CELLS = 2  # cells (or files) whose source is shown
MAX_NAMES = 5
LIBRARY_RUN = 4  # consecutive library frames shown before the rest of the run is folded
FILE_WINDOW = 8  # lines either side of the failing line, for a file that is not a cell

# The magic sets this to the shell's "which cell compiled this file name" (``In[5]``): this
# package's lower layers do not know the shell (see ``step_magic.magics``).
cell_number: Callable[[str], int | None] = lambda filename: None  # noqa: E731
_CELL_FILE = re.compile(r"(?:^<ipython-input-(\d+)-[0-9a-f]+>$)|(?:ipykernel_\d+[/\\]\d+\.py$)")


@dataclass(frozen=True)
class Frame:
    """One frame of a traceback: where, which function, the line, and whose code it is."""

    filename: str
    line: int
    function: str
    text: str
    mine: bool
    frame: types.FrameType | None

    @property
    def where(self) -> str:
        number = cell_number(self.filename)
        if number is not None:
            return f"In[{number}], line {self.line}"
        if is_cell(self.filename):
            return f"a notebook cell, line {self.line}"
        return f"{_short_path(self.filename)}:{self.line}"


_remembered: list[BaseException] = []  # the last failure of the user's code (the magic's)


def remember(error: BaseException) -> None:
    """Keep ``error`` as the last failure of the user's code (the magic's cell hook calls
    this): a mistyped flag or a failed call after it must not take its place."""
    _remembered[:] = [error]


def handled_error() -> BaseException | None:
    """The exception being handled right now (``explain()`` inside ``except:``), if any."""
    value = sys.exc_info()[1]
    return value if isinstance(value, Exception) else None


def last_error() -> BaseException | None:
    """The last failure of the user's code: the one the magic remembered, else the one the
    interactive shell showed last (``sys.last_value``) unless it is a usage error, Ctrl-C or
    one of step-magic's own (which already say what to do)."""
    if _remembered:
        return _remembered[0]
    value = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
    if not isinstance(value, Exception) or isinstance(value, StepMagicError):
        return None
    return None if type(value).__name__ == "UsageError" else value


Render = Callable[[object, int], str]


@dataclass(frozen=True)
class Description:
    """An error as ``--with @error`` sends it: the prompt text, the one-line headline above
    it (``KeyError: 'revnue'``) and the footer's label (``KeyError, 1 of 14 frames yours``)."""

    text: str
    headline: str
    label: str


def describe(
    error: BaseException, render: Render, *, secrets: Sequence[str] = (), limit: int = MAX_CHARS
) -> Description:
    """The error, its chain, the user's frames, their source and names, within ``limit``;
    each traceback is walked once, for the text and the label alike.

    ``render`` summarises a value within a character budget (``--with``'s own summaries).
    """
    clean = _cleaner(secrets)
    chain = list(_chain(error))  # oldest first: ``error`` itself is the last
    traced = [list(_frames(exc)) for exc in chain]
    frames = [frame for walked in traced for frame in walked]
    names = _bounded(_names(frames, render, clean), NAMES_CHARS)
    sections = [_tracebacks(chain, traced, clean), _sources(frames, clean), names]
    text = _bounded("\n\n".join(section for section in sections if section), limit)
    mine = sum(frame.mine for frame in traced[-1])
    label = f"{type(error).__name__}, {mine} of {len(traced[-1])} frames yours"
    return Description(text, _headline(error, clean), label)


Clean = Callable[[str], str]


def _cleaner(secrets: Sequence[str]) -> Clean:
    """Removes every key step-magic knows of (the call's, and the one in the environment or
    stored: a call to the simulator or another server must not carry the StepFun key out)
    and URL credentials."""
    keys = [key for key in dict.fromkeys((*secrets, key_to_hide())) if key]

    def clean(text: str) -> str:
        return redact(text, *keys)

    return clean


def _clean_cut(text: str, limit: int, clean: Clean) -> str:
    """``text`` cleaned, then cut to ``limit``: cleaned first, or a key cut in half would no
    longer be recognised. Only a head of twice the limit is cleaned (a cell can be huge); a
    key split at that edge leaves its start past ``limit``, which the cut drops."""
    return _bounded(clean(text[: 2 * limit + 256]), limit)


def _headline(error: BaseException, clean: Clean) -> str:
    """``KeyError: 'revnue'``, one line, bounded, the key and URL credentials removed."""
    try:
        message = " ".join(str(error)[:2_000].split())
    except Exception:  # the user's exception: its own __str__ may raise
        message = "(its message cannot be shown)"
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return _one_line(_clean_cut(text, HEADLINE_CHARS, clean))


def is_cell(filename: str) -> bool:
    """A file IPython compiled from a cell (terminal IPython's or ipykernel's naming)."""
    return cell_number(filename) is not None or bool(_CELL_FILE.search(filename))


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The causes and contexts, oldest first as Python prints them, at most ``MAX_CHAIN``."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < MAX_CHAIN:
        seen.append(current)
        cause = current.__cause__
        context = None if current.__suppress_context__ else current.__context__
        current = cause or context
    yield from reversed(seen)


def _frames(error: BaseException) -> Iterator[Frame]:
    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        line = tb.tb_lineno
        text = linecache.getline(code.co_filename, line).strip()
        mine = not _is_library(code.co_filename)
        yield Frame(code.co_filename, line, code.co_name, text, mine, tb.tb_frame)
        tb = tb.tb_next


def _tracebacks(chain: list[BaseException], traced: list[list[Frame]], clean: Clean) -> str:
    blocks = []
    for index, (exc, frames) in enumerate(zip(chain, traced, strict=True)):
        if index:
            linked = exc.__cause__ is chain[index - 1]
            blocks.append(
                "The above exception was the direct cause of the following:"
                if linked
                else "During handling of the above exception, another exception occurred:"
            )
        lines = list(_frame_lines(frames))
        body = "\n".join(lines)
        blocks.append(f"Traceback (your code in full, library calls one line each):\n{body}")
        blocks.append(_headline(exc, clean))
    body = _clean_cut("\n".join(blocks), FRAMES_CHARS, clean)
    return f"### The error\n```text\n{body}\n```"


def _frame_lines(frames: list[Frame]) -> Iterator[str]:
    """The user's frames with their line; library frames one line each, long runs folded."""
    entries = list(_folded(_without_repeats(frames)))
    if len(entries) > MAX_FRAMES:
        half = MAX_FRAMES // 2
        hidden = len(entries) - 2 * half
        entries = [*entries[:half], f"  … {hidden} more frames …", *entries[-half:]]
    yield from entries


def _without_repeats(frames: list[Frame]) -> Iterator[Frame | str]:
    """A recursion's identical frames once, then how many times it repeated (as Python does)."""
    previous, repeats = None, 0
    for frame in frames:
        key = (frame.filename, frame.line, frame.function)
        if key == previous:
            repeats += 1
            continue
        if repeats:
            yield f"  [the frame above repeated {repeats} more times]"
        previous, repeats = key, 0
        yield frame
    if repeats:
        yield f"  [the frame above repeated {repeats} more times]"


def _folded(items: Iterator[Frame | str]) -> Iterator[str]:
    run: list[Frame] = []
    for item in items:
        if isinstance(item, Frame) and not item.mine:
            run.append(item)
            continue
        yield from _library_run(run)
        run = []
        if isinstance(item, str):
            yield item
        else:
            yield f"  {item.where}, in {item.function}"
            if item.text:
                yield f"    {item.text}"
    yield from _library_run(run)


def _library_run(run: list[Frame]) -> Iterator[str]:
    shown = run if len(run) <= LIBRARY_RUN + 1 else [*run[:2], None, *run[-2:]]
    for frame in shown:
        if frame is None:
            yield f"  … {len(run) - 4} library frames …"
        else:
            yield f"  {frame.where} in {frame.function}  (library)"


def _sources(frames: list[Frame], clean: Clean) -> str:
    """The source of the cells (or files) of the user's frames, the innermost first."""
    places: list[Frame] = []
    for frame in reversed(frames):
        if frame.mine and frame.filename not in {p.filename for p in places}:
            places.append(frame)
    shown = []
    for frame in places[:MAX_CELLS]:
        lines = linecache.getlines(frame.filename)
        if not lines:
            continue
        if is_cell(frame.filename):
            title, first, chosen = f"the code of {frame.where.split(',')[0]}", 1, lines
        else:
            first = max(frame.line - FILE_WINDOW, 1)
            chosen = lines[first - 1 : frame.line + FILE_WINDOW]
            title = f"{_short_path(frame.filename)}, lines {first} to {first + len(chosen) - 1}"
        numbered = "".join(
            f"{'→' if first + i == frame.line else ' '} {first + i:>3} {line}"
            for i, line in enumerate(chosen)
        )
        numbered = _clean_cut(numbered.rstrip(), SOURCE_CHARS // MAX_CELLS, clean)
        shown.append(f"### {title}\n```python\n{numbered}\n```")
    return "\n\n".join(shown)


def _names(frames: list[Frame], render: Render, clean: Clean) -> str:
    """What the names on the innermost user frame's failing line held, summarised."""
    mine = [frame for frame in frames if frame.mine and frame.frame is not None]
    if not mine:
        return ""
    frame = mine[-1]
    assert frame.frame is not None
    scopes = (frame.frame.f_locals, frame.frame.f_globals)
    found = []
    for name in _line_names(frame.text):
        value = next((scope[name] for scope in scopes if name in scope), _MISSING)
        if value is not _MISSING and not _is_code(value):
            found.append((name, value))
    entries = []
    share = NAMES_CHARS // max(len(found[:MAX_NAMES]), 1) - 40
    for name, value in found[:MAX_NAMES]:
        try:
            shown = _clean_cut(render(value, 2 * share + 256).strip(), share, clean)
        except Exception as err:  # the user's object: its own methods may raise anything
            shown = f"(cannot be summarised: {type(err).__name__})"
        entries.append(f"- `{name}` ({type(value).__name__}):\n{_indent(shown)}")
    if not entries:
        return ""
    return "### Names on the failing line\n" + "\n".join(entries)


_MISSING = object()


def _line_names(text: str) -> list[str]:
    """The plain names a line of code uses (not attributes after a dot, not keywords)."""
    names: list[str] = []
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return names
    previous = None
    for token in tokens:
        if token.type == tokenize.NAME and not keyword.iskeyword(token.string):
            after_dot = previous is not None and previous.string == "."
            if not after_dot and token.string not in names:
                names.append(token.string)
        previous = token
    return names


def _is_code(value: object) -> bool:
    return isinstance(value, types.ModuleType | type) or callable(value)


@cache
def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.update(getattr(site, "getsitepackages", list)())
    roots.add(str(Path(__file__).resolve().parent.parent))  # step-magic itself
    return tuple(str(Path(root).resolve()) for root in roots if root)


def _is_library(filename: str) -> bool:
    if filename.startswith("<frozen") or filename.startswith("<built-in"):
        return True
    if is_cell(filename) or filename.startswith("<"):
        return False
    path = Path(filename)
    try:
        if not path.is_absolute() and not path.is_file():
            return True  # a compiled extension's source name (pandas/_libs/index.pyx)
        resolved = str(path.resolve())
    except (OSError, ValueError):
        return False
    return any(resolved.startswith(root + "/") or resolved == root for root in _library_roots())


def _short_path(filename: str) -> str:
    """A library file relative to its site-packages or stdlib; other files as given."""
    try:
        resolved = str(Path(filename).resolve())
    except (OSError, ValueError):
        return filename
    for root in sorted(_library_roots(), key=len, reverse=True):
        if resolved.startswith(root + "/"):
            return resolved[len(root) + 1 :]
    return filename


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    marker = "\n… [cut to stay short]"
    return text[: limit - len(marker)] + marker
