"""Which objects are images, decided without importing PIL, NumPy or matplotlib.

``context.py`` sorts every attached value and file into image or text with these tests, so they
must be cheap and must not load a heavy library just to say no: types are recognised by name
through the MRO, bytes by their first bytes, paths by their suffix. Turning an image into bytes
to send is ``images.py``'s job; it uses the same tests to pick a decoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp", ".gif": "gif"}
MIN_GRAYSCALE_SIDE = 16
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
)


def sniff(data: bytes) -> str | None:
    """The image format named by the first bytes of ``data``, if it is one the API takes."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((fmt for magic, fmt in _SIGNATURES if data.startswith(magic)), None)


def _has_class(obj: object, module: str, name: str) -> bool:
    """Detect a library's type through the MRO, without importing the library."""
    return any(c.__module__ == module and c.__name__ == name for c in type(obj).__mro__)


def is_pil_image(obj: object) -> bool:
    return _has_class(obj, "PIL.Image", "Image")


def is_figure(obj: object) -> bool:
    return _has_class(obj, "matplotlib.figure", "Figure")


def is_ipython_image(obj: object) -> bool:
    return _has_class(obj, "IPython.core.display", "Image")


def is_array(obj: object) -> bool:
    return _has_class(obj, "numpy", "ndarray")


def is_image(obj: object) -> bool:
    """True for objects ``encode_image`` would send as an image.

    Strings are never images (a string in the namespace is text); a ``Path`` is one if its
    suffix is an image suffix. Only arrays that look like pictures count: HxWx3 or HxWx4 of
    uint8, bool or floats in [0, 1], and HxW uint8 of at least 16x16; a float HxW matrix is
    data, not a picture. ``encode_image`` itself takes any of these shapes and dtypes.
    """
    if is_pil_image(obj) or is_figure(obj) or is_ipython_image(obj):
        return True
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return sniff(bytes(obj[:16])) is not None
    if isinstance(obj, Path):
        return obj.suffix.lower() in IMAGE_SUFFIXES
    return is_array(obj) and _array_looks_like_image(obj)


def _array_looks_like_image(array: Any) -> bool:
    if array.size == 0:
        return False
    if array.ndim == 2:
        # A small uint8 matrix is more likely data (counts, a board) than a picture.
        big_enough = min(array.shape) >= MIN_GRAYSCALE_SIDE
        return bool(big_enough and array.dtype.kind == "u" and array.dtype.itemsize == 1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        return False
    if array.dtype.kind == "f":
        return bool(array.min() >= 0 and array.max() <= 1)
    return bool(array.dtype.kind == "b" or (array.dtype.kind == "u" and array.dtype.itemsize == 1))
