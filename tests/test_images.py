"""Image encoding on real figures, PIL images, arrays, bytes and files, decoded back with PIL."""

# the labels and headers under test use a real multiplication sign

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from IPython.display import Image as IPythonImage
from matplotlib.figure import Figure
from PIL import Image

from step_magic.context.imagekinds import is_image
from step_magic.context.images import EncodedImage, encode_image


def decode(encoded: EncodedImage) -> Image.Image:
    header, payload = encoded.url.split(",", 1)
    assert header == f"data:image/{encoded.format};base64"
    data = base64.b64decode(payload)
    assert len(data) == encoded.nbytes
    return Image.open(io.BytesIO(data))


def photo(width: int, height: int) -> np.ndarray:
    """A noisy gradient: compresses like a photograph (JPEG wins)."""
    rng = np.random.default_rng(3)
    red = np.linspace(0, 200, width, dtype=np.uint8)[None, :, None]
    green = np.linspace(0, 200, height, dtype=np.uint8)[:, None, None]
    noise = rng.integers(0, 50, (height, width, 3), dtype=np.uint8)
    return noise + (red // 2 + green // 2)


def encoded_bytes(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_matplotlib_figure_renders_at_its_dpi_without_pyplot_show() -> None:
    fig = Figure(figsize=(4, 3), dpi=100)
    fig.add_subplot().plot([1, 3, 2])
    encoded = encode_image(fig, name="fig")
    assert (encoded.width, encoded.height) == (400, 300)
    assert encoded.label == "fig (1 image, 400×300)"
    # Line plots are flat colour: PNG is smaller than JPEG and stays sharp.
    assert encoded.format == "png"
    assert decode(encoded).size == (400, 300)


def test_pyplot_figure_is_downscaled_to_max_side() -> None:
    fig, ax = plt.subplots(figsize=(8, 6), dpi=200)
    ax.imshow(photo(64, 48))
    try:
        encoded = encode_image(fig, max_side=800, name="fig")
    finally:
        plt.close(fig)
    assert encoded.original_size == (1600, 1200)
    assert (encoded.width, encoded.height) == (800, 600)
    assert encoded.label == "fig (1 image, 800×600, from 1600×1200)"
    assert decode(encoded).size == (800, 600)


def test_photo_array_is_downscaled_and_sent_as_jpeg() -> None:
    encoded = encode_image(photo(4000, 3000), name="photo")
    image = decode(encoded)
    assert image.format == "JPEG"
    assert image.size == (2048, 1536)
    assert encoded.original_size == (4000, 3000)


def test_transparent_image_stays_png_with_alpha() -> None:
    array = np.zeros((30, 40, 4), dtype=np.uint8)
    array[5:25, 5:35] = (255, 0, 0, 128)
    image = decode(encode_image(array))
    assert image.format == "PNG"
    assert image.mode == "RGBA"
    assert image.size == (40, 30)


@pytest.mark.parametrize(
    ("array", "mode"),
    [
        (np.full((10, 20), 200, dtype=np.uint8), "L"),
        (np.eye(10, 20, dtype=bool), "L"),
        (np.linspace(0, 1, 10 * 20 * 3).reshape(10, 20, 3), "RGB"),
        (np.zeros((10, 20, 1), dtype=np.uint8), "L"),
    ],
)
def test_supported_arrays(array: np.ndarray, mode: str) -> None:
    image = decode(encode_image(array))
    assert image.size == (20, 10)
    assert image.mode == mode


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 4, 5), dtype=np.uint8), "arr: an array of shape 4×4×5 is not an image"),
        (np.zeros((4, 4), dtype=np.int64), "arr: dtype int64 is not supported"),
        (np.full((4, 4, 3), 3.0), r"arr: float image values must be in \[0, 1\]"),
        (np.full((4, 4, 3), np.nan), r"arr: float image values must be in \[0, 1\]"),
        (np.zeros((0, 4, 3), dtype=np.uint8), "arr: an array of shape 0×4×3"),
    ],
)
def test_unsupported_arrays_are_refused_in_one_line(array: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        encode_image(array, name="arr")
    assert "\n" not in str(caught.value)


def test_pil_image_with_palette_and_one_bit_modes() -> None:
    palette = Image.new("P", (50, 40))
    assert decode(encode_image(palette)).size == (50, 40)
    assert decode(encode_image(Image.new("1", (8, 8)))).mode == "L"


def test_small_jpeg_bytes_are_sent_unchanged_when_smallest() -> None:
    original = encoded_bytes(Image.fromarray(photo(300, 200)), "JPEG", quality=60)
    encoded = encode_image(original, name="small.jpg")
    assert encoded.format == "jpeg"
    assert base64.b64decode(encoded.url.split(",", 1)[1]) == original


def test_big_jpeg_bytes_are_downscaled() -> None:
    # 4096x3072 is exactly twice the target: JPEG draft decoding lands on the final size.
    original = encoded_bytes(Image.fromarray(photo(4096, 3072)), "JPEG", quality=10)
    encoded = encode_image(original, name="big.jpg")
    assert decode(encoded).size == (2048, 1536)
    assert encoded.original_size == (4096, 3072)


def test_webp_and_static_gif_bytes_are_accepted() -> None:
    image = Image.fromarray(photo(64, 48))
    for fmt in ("WEBP", "GIF"):
        encoded = encode_image(encoded_bytes(image, fmt))
        assert decode(encoded).size == (64, 48)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.fromarray(photo(60, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    encoded = encode_image(path)
    assert (encoded.width, encoded.height) == (40, 60)


def test_animated_gif_is_refused(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (20, 20), colour) for colour in ("red", "blue", "green")]
    path = tmp_path / "spinner.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(ValueError, match=r"animated GIF \(3 frames\).*only static GIF"):
        encode_image(path, name="spinner.gif")


def test_paths_strings_and_ipython_images(tmp_path: Path) -> None:
    path = tmp_path / "plot.png"
    Image.fromarray(photo(120, 80)).save(path)
    assert decode(encode_image(path)).size == (120, 80)
    assert decode(encode_image(str(path))).size == (120, 80)
    assert decode(encode_image(IPythonImage(filename=str(path)))).size == (120, 80)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"plain text, not pixels", "blob: not a PNG, JPEG, WebP or GIF image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, r"blob: unreadable PNG image \(corrupt data\)"),
        (b"\xff\xd8\xff\xe0" + b"\0" * 10, "blob: unreadable JPEG image"),
    ],
)
def test_unreadable_bytes_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_image(data, name="blob")


def test_missing_file_and_non_images_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"gone\.png: cannot read the file"):
        encode_image(tmp_path / "gone.png", name="gone.png")
    with pytest.raises(ValueError, match="n: int is not an image"):
        encode_image(12, name="n")
    with pytest.raises(ValueError, match="detail must be one of low, high"):
        encode_image(np.zeros((2, 2), dtype=np.uint8), detail="auto")


def test_part_always_states_detail() -> None:
    encoded = encode_image(np.zeros((2, 2), dtype=np.uint8), detail="high")
    assert encoded.part() == {
        "type": "image_url",
        "image_url": {"url": encoded.url, "detail": "high"},
    }


def test_is_image() -> None:
    fig = Figure()
    assert is_image(fig)
    assert is_image(Image.new("RGB", (2, 2)))
    assert is_image(photo(4, 4))
    assert is_image(np.zeros((32, 32), dtype=np.uint8))
    assert not is_image(np.zeros((3, 3), dtype=np.uint8))
    assert is_image(encoded_bytes(Image.new("RGB", (2, 2)), "PNG"))
    assert is_image(Path("holiday.JPG"))
    # A float matrix is data, a string is text, an out-of-range array is not a picture.
    assert not is_image(np.random.default_rng(0).random((5, 5)))
    assert not is_image("holiday.jpg")
    assert not is_image(np.full((4, 4, 3), 7.0))
    assert not is_image(np.zeros((4, 4, 2), dtype=np.uint8))
    assert not is_image(b"GIF")
