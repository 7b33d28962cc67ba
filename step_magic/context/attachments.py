"""``--with a,b,c`` names → labelled, bounded prompt parts.

Each name is a reference path in the kernel namespace (``df``, ``model.coef_``, ``Out[12]``,
``results["train"]``; the same resolver as ``{name}`` in prompt text) or else a file relative
to the working directory. Values become OpenAI Chat Completions content parts by type: frames
a Markdown summary, images and figures an image part, videos a video part, everything else
bounded text. Text parts share one character budget, so ``--with`` can never blow up the
context window, and each is headed with its name and type so the model knows what it reads.

Nothing here displays anything or knows about magics: errors are one-line ValueErrors
(UnknownReference for names) that the magic turns into UsageErrors.
"""

from __future__ import annotations

import base64
import re
import reprlib
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from step_magic.context import failure
from step_magic.context.failure import last_error
from step_magic.context.imagekinds import IMAGE_SUFFIXES, is_array, is_figure, is_image, sniff
from step_magic.context.images import encode_image
from step_magic.context.interpolate import resolve
from step_magic.core.errors import InputError, UnknownReference
from step_magic.frames.summary import TIMES, is_frame, summarize_frame

T = TypeVar("T")

Kind = Literal["text", "image", "video"]

MAX_IMAGES = 60
# StepFun says "under 128 MB"; decimal megabytes is the stricter reading, so a file we accept
# is never refused by the server for size after a long upload.
MAX_VIDEO_BYTES = 128 * 1000 * 1000
VIDEO_TYPES = {".mp4": "video/mp4", ".mov": "video/quicktime", ".mkv": "video/x-matroska"}
ARRAY_STATS_KINDS = "iuf"

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = 20
_REPR.maxstring = 200
_REPR.maxother = 2000


@dataclass(frozen=True)
class Attachment:
    """One ``--with`` entry: the content parts to send and a short label for the panel."""

    name: str
    label: str
    parts: tuple[dict[str, Any], ...]
    kind: Kind


@dataclass(frozen=True)
class _Source:
    name: str
    value: object
    kind: Kind


def collect(
    names: Sequence[str],
    namespace: Mapping[str, object],
    *,
    budget_chars: int = 24_000,
    image_max_side: int = 2048,
    detail: str = "low",
    cwd: Path | None = None,
    secrets: Sequence[str] = (),
) -> list[Attachment]:
    """Resolve ``names`` and turn each into an Attachment, in the order given.

    Every name is resolved (and the image count checked) before anything is encoded, so a
    typo in the last name fails fast. Text attachments split ``budget_chars``: each gets an
    equal share of what is left, so small values leave room for the ones after them.
    """
    unique = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    sources = [_guarded(name, _locate, name, namespace, cwd or Path.cwd()) for name in unique]
    images = sum(source.kind == "image" for source in sources)
    if images > MAX_IMAGES:
        raise InputError(f"{images} images in one call; StepFun takes at most {MAX_IMAGES}")
    texts_left = sum(source.kind == "text" for source in sources)
    remaining = budget_chars
    attachments = []
    for source in sources:
        if source.kind == "image":
            attachments.append(
                _guarded(source.name, _image_attachment, source, image_max_side, detail)
            )
        elif source.kind == "video":
            attachments.append(_guarded(source.name, _video_attachment, source))
        else:
            share = remaining // texts_left
            attachment = _guarded(source.name, _text_attachment, source, share, secrets)
            remaining -= len(attachment.parts[0]["text"])
            texts_left -= 1
            attachments.append(attachment)
    return attachments


def _guarded(name: str, step: Callable[..., T], *args: Any) -> T:
    """``step(*args)``, a file that cannot be read or an object that breaks while it is
    summarised (its ``__len__`` or ``shape`` raising) being one line naming it."""
    try:
        return step(*args)
    except InputError:
        raise
    except OSError as err:
        raise InputError(f"{name}: cannot read it ({err.strerror or err})") from None
    except Exception as err:  # the user's object: its own methods may raise anything
        raise InputError(f"{name}: cannot be summarised ({type(err).__name__}: {err})") from None


def _locate(name: str, namespace: Mapping[str, object], cwd: Path) -> _Source:
    """A namespace value, or else an existing file; UnknownReference if neither.

    Names starting with ``@`` (earlier outputs such as ``@last``) are exact keys.
    """
    if name == "@error":
        error = namespace.get(name) or last_error()  # the magic's own, else the shell's last
        if not isinstance(error, BaseException):
            raise InputError("@error: no cell has failed yet in this session")
        return _Source(name, error, "text")
    if name.startswith("@"):
        if name not in namespace:
            earlier = tuple(key for key in namespace if key.startswith("@"))
            if not earlier:
                raise InputError(f"{name}: no earlier cell in this kernel displayed an image")
            raise UnknownReference(name, earlier)
        return _Source(name, namespace[name], "image")
    cell, cells = _cell_code_number(name), namespace.get("In")
    if cell is not None and isinstance(cells, list):  # IPython's record of what cells ran
        return _Source(name, _cell_code(name, cell, cells), "text")
    try:
        value = _unwrap(name, resolve(name, namespace))
    except UnknownReference:
        path = cwd / Path(name).expanduser()
        if not path.is_file():
            raise
        return _Source(name, path, _file_kind(path))
    if isinstance(value, Path):
        path = cwd / value.expanduser()
        if not path.is_file():
            raise InputError(f"{name}: no such file {path}")
        return _Source(name, path, _file_kind(path))
    return _Source(name, value, "image" if is_image(value) else "text")


def _unwrap(name: str, value: object) -> object:
    """``plt`` means its current figure, and an Axes (or a seaborn grid) its figure."""
    if isinstance(value, types.ModuleType) and value.__name__ == "matplotlib.pyplot":
        if not value.get_fignums():
            raise InputError(f"{name}: pyplot has no open figure to send")
        return value.gcf()
    if type(value).__module__.partition(".")[0] in ("matplotlib", "seaborn"):
        figure = getattr(value, "figure", None)
        if is_figure(figure):
            return figure
    return value


def _file_kind(path: Path) -> Kind:
    suffix = path.suffix.lower()
    if suffix in VIDEO_TYPES:
        return "video"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    with path.open("rb") as file:
        return "image" if sniff(file.read(16)) else "text"


def _image_attachment(source: _Source, max_side: int, detail: str) -> Attachment:
    image = encode_image(source.value, max_side=max_side, detail=detail, name=source.name)
    what = "image file" if isinstance(source.value, Path) else _type_name(source.value)
    caption = f"### `{source.name}` ({what}, image below)"
    parts = ({"type": "text", "text": caption}, image.part())
    return Attachment(source.name, image.label, parts, "image")


def _video_attachment(source: _Source) -> Attachment:
    """A base64 video part; the size limit is checked before the file is read."""
    assert isinstance(source.value, Path)
    size = source.value.stat().st_size
    megabytes = f"{size / 1_000_000:.1f} MB"
    if size > MAX_VIDEO_BYTES:
        raise InputError(
            f"{source.name}: video is {megabytes}; StepFun takes videos under 128 MB "
            "(trim or re-encode it)"
        )
    mime = VIDEO_TYPES[source.value.suffix.lower()]
    encoded = base64.b64encode(source.value.read_bytes()).decode("ascii")
    part = {"type": "video_url", "video_url": {"url": f"data:{mime};base64,{encoded}"}}
    return Attachment(source.name, f"{source.name} (video, {megabytes})", (part,), "video")


def _text_attachment(source: _Source, budget: int, secrets: Sequence[str] = ()) -> Attachment:
    """Header line plus a body that fits the rest of ``budget``; ``secrets`` (the call's key,
    a base URL's password) are removed from an error's description, which quotes the user's
    code and values."""
    name, value = source.name, source.value
    header = f"### `{name}` ({'text file' if isinstance(value, Path) else _type_name(value)})\n"
    room = max(budget - len(header), 0)
    if isinstance(value, Path):
        body, label = _text_file(name, value, room)
    elif isinstance(value, BaseException):
        limit = min(room, failure.MAX_CHARS)
        described = failure.describe(value, render_value, secrets=secrets, limit=limit)
        header = f"### `{name}`: {described.headline}\n"
        body, label = described.text, f"{name} ({described.label})"
    elif isinstance(value, str) and (cell := _cell_code_number(name)) is not None:
        header = f"### `{name}` (the code of cell {cell})\n"
        room = max(budget - len(header), 0)
        body = _fenced(value, room, f"{len(value):,} chars in all", lang="python")
        label = f"{name} (the code of cell {cell})"
    elif is_frame(value):
        summary = summarize_frame(value, name=name, budget_chars=room)
        body, label = summary.text, summary.label
    elif is_array(value):
        body, label = _describe_array(value, room), _array_label(name, value)
    elif isinstance(value, str):
        body = _fenced(value, room, f"{len(value):,} chars in all")
        label = f"{name} (str, {len(value):,} chars)"
    else:
        body = _fenced(_REPR.repr(value), room, "repr shortened")
        label = f"{name} ({_type_name(value)}{_item_count(value)})"
    text = _bounded(header + body, budget, "")
    return Attachment(name, label, ({"type": "text", "text": text},), "text")


def _cell_code_number(name: str) -> int | None:
    """``In[12]`` or ``_i12``: IPython's record of what cell 12 ran."""
    match = re.fullmatch(r"In\[\s*(\d+)\s*\]|_i(\d+)", name)
    return int(match[1] or match[2]) if match else None


def _cell_code(name: str, number: int, cells: list[object]) -> str:
    """The code cell ``number`` ran; when it ran none (``In[0]`` is always empty, a cell
    not run yet has no code), an InputError naming the cells that did."""
    code = cells[number] if 0 < number < len(cells) else None
    if isinstance(code, str) and code.strip():
        return code
    last = len(cells) - 1
    ran = f"In[1] to In[{last}]" if last > 1 else "In[1]" if last == 1 else "none yet"
    raise InputError(f"{name}: no code to send; the cells run so far are {ran}")


def render_value(obj: object, budget_chars: int) -> str:
    """How a ``{ref}`` in prompt text is rendered: frames summarised, the rest as text.

    Scalars and strings become ``str(x)`` (strings bounded); containers a shortened repr.
    Frames and arrays are blocks set off by blank lines, so a Markdown table never runs into
    the sentence around it. Images cannot sit inside text: they raise a ValueError.
    """
    if is_frame(obj):
        summary = summarize_frame(obj, name="value", budget_chars=max(budget_chars - 4, 0))
        return f"\n\n{summary.text}\n\n"
    if is_figure(obj) or (is_image(obj) and not isinstance(obj, Path)):
        raise InputError("an image cannot go inside the prompt text; attach it with --with NAME")
    if is_array(obj):
        return f"\n\n{_describe_array(obj, max(budget_chars - 4, 0))}\n\n"
    if isinstance(obj, (dict, list, tuple, set, frozenset)):
        return _bounded(_REPR.repr(obj), budget_chars, "repr shortened")
    text = str(obj)
    return _bounded(text, budget_chars, f"{len(text):,} chars in all")


def looks_binary(data: bytes | str) -> bool:
    """Binary data, not text in some encoding: a NUL in its first 8 KB, of bytes or of text
    already decoded (as git and ``grep`` tell). Text in another encoding is decoded
    leniently instead."""
    head = data[:8192]
    return b"\0" in head if isinstance(head, bytes) else "\0" in head


def _text_file(name: str, path: Path, room: int) -> tuple[str, str]:
    """The start of a text file (never read whole); binary files are refused."""
    size = path.stat().st_size
    with path.open("rb") as file:
        # At most 4 UTF-8 bytes a character: this is enough to fill the room.
        data = file.read(4 * room + 4)
    if looks_binary(data):
        raise InputError(
            f"{name}: looks like a binary file; load it into a variable (e.g. a DataFrame) "
            "and pass that"
        )
    text = data.decode("utf-8", errors="replace")
    return _fenced(text, room, f"{size:,} bytes in all"), f"{name} (text file, {_size(size)})"


def _describe_array(array: Any, budget: int) -> str:
    """Shape, dtype, min/max/mean (NaN-aware) and a small printed slice of an array."""
    import numpy as np

    lines = [f"shape {array.shape}, dtype {array.dtype}"]
    if array.size and array.dtype.kind in ARRAY_STATS_KINDS:
        # The nan* reductions leave integer arrays alone: no float copy of a big array.
        nans = int(np.isnan(array).sum()) if array.dtype.kind == "f" else 0
        if nans < array.size:
            stats = (np.nanmin(array), np.nanmax(array), np.nanmean(array))
            lines.append("min {:.6g} · max {:.6g} · mean {:.6g}".format(*stats))
        if nans:
            lines.append(f"NaN: {nans:,}")
    where = "" if array.ndim <= 2 else f" [{', '.join(['0'] * (array.ndim - 2))}, :, :]"
    shown = array if array.ndim <= 2 else array[(0,) * (array.ndim - 2)]
    printed = np.array2string(shown, threshold=60, edgeitems=3, max_line_width=100)
    lines.append(f"values{where}:")
    head = "\n".join(lines) + "\n"
    return head + _fenced(printed, max(budget - len(head), 0), "shortened")


def _fenced(text: str, budget: int, total: str, lang: str = "text") -> str:
    """``text`` in a code fence longer than any backtick run inside it, within ``budget``."""
    runs = re.findall(r"`+", text[:budget])  # only the part that can be kept matters
    fence = "`" * max([3, *(len(run) + 1 for run in runs)])
    room = budget - 2 * len(fence) - len(f"{lang}\n\n")
    return f"{fence}{lang}\n{_bounded(text, room, total)}\n{fence}" if room > 0 else ""


def _bounded(text: str, limit: int, total: str) -> str:
    """``text`` cut to at most ``limit`` characters, with a marker saying it was cut."""
    if len(text) <= limit:
        return text
    marker = f"\n… [truncated; {total}]" if total else "…"
    if limit <= len(marker):
        return text[: max(limit, 0)]
    return text[: limit - len(marker)] + marker


def _type_name(value: object) -> str:
    """``str``, ``dict`` for builtins; ``pandas DataFrame``, ``sklearn Pipeline`` otherwise."""
    cls = type(value)
    root = cls.__module__.partition(".")[0]
    return cls.__qualname__ if root == "builtins" else f"{root} {cls.__qualname__}"


def _array_label(name: str, array: Any) -> str:
    return f"{name} (array {TIMES.join(map(str, array.shape))}, {array.dtype})"


def _item_count(value: object) -> str:
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        return f", {len(value):,} item{'' if len(value) == 1 else 's'}"
    return ""


def _size(nbytes: int) -> str:
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{nbytes} bytes"
