"""Anything image-like in a notebook → a base64 data-URL image part for the API.

StepFun takes PNG, JPEG, WebP and static GIF, as data URLs with an explicit ``detail``. Users
hold images in many shapes (PIL images, matplotlib figures, NumPy arrays, IPython ``Image``
objects, raw bytes, files), so everything is decoded with PIL, downscaled to the size the
model can use, and sent as whichever of PNG or JPEG is smaller. Unchanged PNG/JPEG/WebP/GIF
input is also a candidate, so nothing is re-encoded (and loses quality) for no gain.

PIL, NumPy and matplotlib are imported only when an image is actually encoded.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from step_magic.context.imagekinds import is_array, is_figure, is_ipython_image, is_pil_image, sniff
from step_magic.core.errors import InputError
from step_magic.frames.summary import TIMES

# Larger image files are refused before reading: they would fill memory, then be downscaled.
MAX_IMAGE_FILE_BYTES = 50_000_000

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer
    from PIL import Image

DETAILS = ("low", "high")
JPEG_QUALITY = 90


@dataclass(frozen=True)
class EncodedImage:
    """One image ready to send: its data URL, sent size, original size and panel label."""

    url: str
    width: int
    height: int
    original_size: tuple[int, int]
    format: str
    nbytes: int
    label: str
    detail: str

    def part(self) -> dict[str, Any]:
        """The Chat Completions content part; detail is always explicit (docs disagree)."""
        return {"type": "image_url", "image_url": {"url": self.url, "detail": self.detail}}


def encode_image(
    obj: object, *, max_side: int = 2048, detail: str = "low", name: str | None = None
) -> EncodedImage:
    """Decode ``obj``, downscale it so its long side is at most ``max_side``, and encode it.

    Raises a one-line ValueError naming the object (``name``, or a description of it) for
    data PIL cannot read, animated images, and arrays of unsupported shape or dtype.
    """
    what = name or _describe(obj)
    if detail not in DETAILS:
        raise InputError(f"detail must be one of {', '.join(DETAILS)}, not {detail!r}")
    image, original = _load(obj, what, max_side)
    source_size = original[2] if original else image.size
    image, transposed = _normalise(image)
    size = _fit(image.size, max_side)
    candidates: list[tuple[str, bytes]] = []
    if original is not None and not transposed and size == source_size:
        candidates.append((original[0], original[1]))
    if size != image.size:
        from PIL import Image

        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    candidates += _encodings(image, min((len(data) for _, data in candidates), default=None))
    fmt, data = min(candidates, key=lambda candidate: len(candidate[1]))
    width, height = image.size
    shown = f"{width}{TIMES}{height}"
    if (width, height) != source_size:
        shown += f", from {source_size[0]}{TIMES}{source_size[1]}"
    return EncodedImage(
        url=f"data:image/{fmt};base64,{base64.b64encode(data).decode('ascii')}",
        width=width,
        height=height,
        original_size=source_size,
        format=fmt,
        nbytes=len(data),
        label=f"{what} (1 image, {shown})",
        detail=detail,
    )


def _describe(obj: object) -> str:
    if isinstance(obj, (str, Path)):
        return str(obj)
    return f"{type(obj).__module__.partition('.')[0]} {type(obj).__name__}".replace("builtins ", "")


# (format, encoded bytes, size) of input that could be sent unchanged.
_Original = tuple[str, bytes, tuple[int, int]]


def _load(obj: object, what: str, max_side: int) -> tuple[Image.Image, _Original | None]:
    """A decoded PIL image, plus the input's own encoding when it could be sent as is."""
    if is_pil_image(obj):
        image: Image.Image = obj  # type: ignore[assignment]
        _refuse_animation(image, what)
        return image, None
    if is_figure(obj):
        buffer = io.BytesIO()
        obj.savefig(buffer, format="png", dpi=obj.dpi)  # type: ignore[attr-defined]
        return _from_bytes(buffer.getvalue(), what, max_side)
    if is_array(obj):
        return _from_array(obj, what), None
    if is_ipython_image(obj):
        data = obj.data  # type: ignore[attr-defined]
        if not isinstance(data, bytes):
            raise InputError(f"{what}: this IPython Image holds no embedded data (a URL?)")
        return _from_bytes(data, what, max_side)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _from_bytes(bytes(obj), what, max_side)
    if isinstance(obj, (str, Path)):
        return _from_bytes(_read_file(Path(obj), what), what, max_side)
    raise InputError(f"{what}: {type(obj).__name__} is not an image")


def _read_file(path: Path, what: str) -> bytes:
    """The file's bytes, its size checked first: a 1.5 GB file is refused, not read."""
    try:
        size = path.expanduser().stat().st_size
        if size > MAX_IMAGE_FILE_BYTES:
            raise InputError(
                f"{what}: the file is {size / 1e6:,.0f} MB; images over "
                f"{MAX_IMAGE_FILE_BYTES // 1_000_000} MB are not read (downscale it first)"
            )
        return path.expanduser().read_bytes()
    except OSError as err:
        raise InputError(f"{what}: cannot read the file ({err.strerror or err})") from err


def _from_bytes(data: bytes, what: str, max_side: int) -> tuple[Image.Image, _Original]:
    from PIL import Image, UnidentifiedImageError

    fmt = sniff(data[:16])
    if fmt is None:
        raise InputError(f"{what}: not a PNG, JPEG, WebP or GIF image")
    try:
        image = Image.open(io.BytesIO(data))
        original_size = image.size
        if fmt == "jpeg":
            # Decode big JPEGs at a reduced scale directly: far faster than full decode.
            image.draft("RGB", _fit(image.size, max_side))
        image.load()
    except Exception as err:  # PIL raises OSError, SyntaxError, DecompressionBombError…
        # UnidentifiedImageError's text names an in-memory buffer: useless to the user.
        reason = "corrupt data" if isinstance(err, UnidentifiedImageError) else str(err)
        raise InputError(f"{what}: unreadable {fmt.upper()} image ({reason})") from err
    _refuse_animation(image, what)
    return image, (fmt, data, original_size)


def _refuse_animation(image: Image.Image, what: str) -> None:
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        kind = (image.format or "image").upper()
        raise InputError(
            f"{what}: animated {kind} ({frames} frames) is not supported; "
            f"only static GIF (or one frame as PNG/JPEG) is accepted"
        )


def _from_array(array: Any, what: str) -> Image.Image:
    """HxW, HxWx1, HxWx3, HxWx4 arrays of uint8, bool or floats in [0, 1] → a PIL image."""
    import numpy as np
    from PIL import Image

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.size == 0 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        shape = TIMES.join(map(str, array.shape))
        raise InputError(
            f"{what}: an array of shape {shape} is not an image (use HxW, HxWx3 or HxWx4)"
        )
    kind = array.dtype.kind
    if kind == "b":
        array = array.astype(np.uint8) * 255
    elif kind == "f":
        low, high = float(np.min(array)), float(np.max(array))
        if not (low >= 0 and high <= 1):  # also catches NaN
            raise InputError(f"{what}: float image values must be in [0, 1], found {low}…{high}")
        array = (array * 255 + 0.5).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise InputError(f"{what}: dtype {array.dtype} is not supported (use uint8, bool or float)")
    return Image.fromarray(np.ascontiguousarray(array))


def _normalise(image: Image.Image) -> tuple[Image.Image, bool]:
    """Upright image in L, LA, RGB or RGBA, with an all-opaque alpha channel dropped.

    Dropping opaque alpha (matplotlib's PNGs have one) lets JPEG compete for photos and
    filled plots. Returns whether EXIF orientation turned the image.
    """
    from PIL import ImageOps

    turned = image.getexif().get(0x0112, 1) not in (0, 1)
    if turned:
        image = ImageOps.exif_transpose(image)
    if image.mode == "1":
        image = image.convert("L")
    elif image.mode not in ("L", "LA", "RGB", "RGBA"):
        alpha = "A" in image.mode or "transparency" in image.info
        image = image.convert("RGBA" if alpha else "RGB")
    if image.mode in ("LA", "RGBA") and image.getchannel("A").getextrema() == (255, 255):
        image = image.convert(image.mode[:-1])
    return image, turned


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """The size with the long side at most ``max_side``, aspect ratio kept."""
    width, height = size
    scale = max_side / max(width, height)
    if scale >= 1:
        return size
    return max(1, round(width * scale)), max(1, round(height * scale))


class _TooLarge(Exception):
    """Raised mid-encode once a candidate is already bigger than the best one so far."""


class _CappedBuffer(io.BytesIO):
    """A buffer that aborts the encoder as soon as its output passes ``cap`` bytes.

    Photos compress badly as PNG: stopping the PNG encoder once it loses to the JPEG saves
    most of its (slow) work, while keeping the choice exact.
    """

    def __init__(self, cap: int | None) -> None:
        super().__init__()
        self.cap = cap

    def write(self, data: ReadableBuffer, /) -> int:
        if self.cap is not None and self.tell() + memoryview(data).nbytes > self.cap:
            raise _TooLarge
        return super().write(data)


def _encodings(image: Image.Image, best: int | None) -> list[tuple[str, bytes]]:
    """JPEG (only without alpha, since JPEG has none) and PNG, each if smaller than ``best``."""
    results: list[tuple[str, bytes]] = []
    if image.mode in ("L", "RGB"):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
        results.append(("jpeg", buffer.getvalue()))
        best = buffer.tell() if best is None else min(best, buffer.tell())
    capped = _CappedBuffer(best)
    try:
        image.save(capped, format="PNG")
    except _TooLarge:
        return results
    return [*results, ("png", capped.getvalue())]
