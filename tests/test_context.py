"""``--with`` collection on real objects and files: resolution, dispatch, labels and limits."""

# the labels and headers under test use a real multiplication sign

from __future__ import annotations

import base64
import io
import types
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import polars as pl
import pytest
from PIL import Image

from step_magic.context.attachments import MAX_IMAGES, Attachment, collect, render_value
from step_magic.context.interpolate import interpolate
from step_magic.core.errors import UnknownReference


@pytest.fixture
def namespace() -> dict[str, object]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"region": rng.choice(["north", "south"], 40), "revenue": rng.random(40)})
    return {
        "df_sales": frame,
        "results": {"train": pl.DataFrame({"loss": [0.9, 0.5, 0.3]}), "note": "ok"},
        "notes": "Quarterly numbers look odd.\n```python\nprint('hi')\n```\n",
        "weights": rng.standard_normal((200, 50)),
        "cube": np.arange(24).reshape(2, 3, 4),
        "picture": np.zeros((300, 400, 3), dtype=np.uint8),
        "config": {"lr": 0.01, "layers": list(range(500))},
        "threshold": 0.75,
        "Out": {3: "earlier output"},
        "_": "last value",
    }


def text_of(attachment: Attachment) -> str:
    assert attachment.kind == "text"
    (part,) = attachment.parts
    assert part["type"] == "text"
    return str(part["text"])


def test_frame_becomes_a_labelled_summary(namespace: dict[str, object]) -> None:
    (attachment,) = collect(["df_sales"], namespace)
    assert attachment.name == "df_sales"
    assert attachment.label == "df_sales (40×2, summarised)"
    text = text_of(attachment)
    assert text.startswith(
        "### `df_sales` (pandas DataFrame)\npandas DataFrame, 40 rows × 2 columns."
    )
    assert "| region | str | 0 | 2 distinct:" in text


def test_reference_paths_work_as_names(namespace: dict[str, object]) -> None:
    train, note, earlier, last = collect(
        ['results["train"]', "results['note']", "Out[3]", "_"], namespace
    )
    assert text_of(train).startswith('### `results["train"]` (polars DataFrame)')
    assert "earlier output" in text_of(earlier)
    assert note.label == "results['note'] (str, 2 chars)"
    assert "last value" in text_of(last)


def test_strings_are_fenced_safely(namespace: dict[str, object]) -> None:
    (attachment,) = collect(["notes"], namespace)
    text = text_of(attachment)
    assert attachment.label == "notes (str, 54 chars)"
    # The string holds a ``` fence, so ours must be longer to contain it.
    assert text.startswith("### `notes` (str)\n````text\nQuarterly")
    assert text.endswith("\n````")


def test_arrays_get_shape_stats_and_a_slice(namespace: dict[str, object]) -> None:
    weights, cube = collect(["weights", "cube"], namespace)
    text = text_of(weights)
    assert weights.label == "weights (array 200×50, float64)"
    assert "shape (200, 50), dtype float64\nmin " in text
    assert "..." in text  # numpy's own elision keeps the slice small
    assert len(text) < 2_500
    assert "values [0, :, :]:" in text_of(cube)


def test_containers_and_scalars_are_bounded_reprs(namespace: dict[str, object]) -> None:
    config, threshold = collect(["config", "threshold"], namespace)
    assert config.label == "config (dict, 2 items)"
    assert "..." in text_of(config)
    assert len(text_of(config)) < 400
    assert threshold.label == "threshold (float)"
    assert "0.75" in text_of(threshold)


def test_figures_pyplot_and_axes_become_images() -> None:
    plt.close("all")
    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    ax.plot([0, 1], [1, 0])
    try:
        for name in ("fig", "plt", "ax"):
            (attachment,) = collect([name], {"fig": fig, "plt": plt, "ax": ax}, detail="high")
            caption, image = attachment.parts
            assert attachment.kind == "image"
            assert attachment.label == f"{name} (1 image, 400×300)"
            assert caption == {
                "type": "text",
                "text": f"### `{name}` (matplotlib Figure, image below)",
            }
            assert image["image_url"]["detail"] == "high"
    finally:
        plt.close(fig)


def test_pyplot_without_a_figure_is_an_error() -> None:
    plt.close("all")
    with pytest.raises(ValueError, match="plt: pyplot has no open figure"):
        collect(["plt"], {"plt": plt})


def test_image_arrays_are_downscaled(namespace: dict[str, object]) -> None:
    (attachment,) = collect(["picture"], namespace, image_max_side=200)
    url = attachment.parts[1]["image_url"]["url"]
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.size == (200, 150)
    assert attachment.label == "picture (1 image, 200×150, from 400×300)"


def test_files_relative_to_cwd(tmp_path: Path) -> None:
    Image.new("RGB", (64, 32), "teal").save(tmp_path / "chart.png")
    (tmp_path / "notes.md").write_text("# Notes\nrevenue is up\n", encoding="utf-8")
    chart, notes = collect(["chart.png", "notes.md"], {}, cwd=tmp_path)
    assert chart.kind == "image"
    assert chart.label == "chart.png (1 image, 64×32)"
    assert chart.parts[0]["text"] == "### `chart.png` (image file, image below)"
    assert notes.label == "notes.md (text file, 22 bytes)"
    assert text_of(notes) == "### `notes.md` (text file)\n```text\n# Notes\nrevenue is up\n\n```"


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (3, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_files_are_recognised_by_their_bytes(tmp_path: Path) -> None:
    (tmp_path / "snapshot").write_bytes(png_bytes())  # no suffix: the bytes say PNG
    (attachment,) = collect(["snapshot"], {}, cwd=tmp_path)
    assert attachment.kind == "image"


def test_path_values_are_files(tmp_path: Path) -> None:
    (tmp_path / "log.txt").write_text("x" * 5_000, encoding="utf-8")
    (attachment,) = collect(["log"], {"log": Path("log.txt")}, cwd=tmp_path, budget_chars=1_000)
    text = text_of(attachment)
    assert len(text) <= 1_000
    assert "… [truncated; 5,000 bytes in all]" in text
    with pytest.raises(ValueError, match="missing: no such file"):
        collect(["missing"], {"missing": Path("nope.txt")}, cwd=tmp_path)


def test_binary_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "data.parquet").write_bytes(b"PAR1\0\0\0binary")
    with pytest.raises(ValueError, match=r"data\.parquet: looks like a binary file"):
        collect(["data.parquet"], {}, cwd=tmp_path)


def test_video_files(tmp_path: Path) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"\0\0\0\x18ftypmp42" + b"\0" * 100)
    (attachment,) = collect(["clip.mp4"], {}, cwd=tmp_path)
    assert attachment.kind == "video"
    assert attachment.label == "clip.mp4 (video, 0.0 MB)"
    (part,) = attachment.parts
    assert part["type"] == "video_url"
    assert part["video_url"]["url"].startswith("data:video/mp4;base64,AAAAGGZ0eXBtcDQy")


def test_oversized_video_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "long.mov"
    with path.open("wb") as file:
        file.truncate(129 * 2**20)  # sparse: no disk space, but stat() says 135 MB
    with pytest.raises(
        ValueError, match=r"long.mov: video is 135.3 MB; StepFun takes videos under 128 MB"
    ):
        collect(["long.mov"], {}, cwd=tmp_path)


def test_unknown_names_suggest_close_matches(namespace: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(
        UnknownReference, match="df_sale is not defined; did you mean df_sales"
    ) as caught:
        collect(["df_sales", "df_sale"], namespace, cwd=tmp_path)
    assert caught.value.suggestions == ("df_sales",)
    with pytest.raises(UnknownReference, match=r"results\.trian is not defined"):
        collect(["results.trian"], namespace, cwd=tmp_path)


def test_too_many_images_fail_before_encoding() -> None:
    namespace = {f"img{i}": np.zeros((4, 4, 3), dtype=np.uint8) for i in range(MAX_IMAGES + 1)}
    with pytest.raises(ValueError, match="61 images in one call; StepFun takes at most 60"):
        collect(list(namespace), namespace)


def test_text_budget_is_shared_and_never_exceeded(namespace: dict[str, object]) -> None:
    namespace["essay"] = "word " * 20_000
    attachments = collect(["df_sales", "essay", "weights", "config"], namespace, budget_chars=6_000)
    total = sum(len(text_of(a)) for a in attachments)
    assert total <= 6_000
    essay = text_of(attachments[1])
    assert "… [truncated; 100,000 chars in all]" in essay


def test_names_are_stripped_and_deduplicated(namespace: dict[str, object]) -> None:
    attachments = collect([" threshold", "threshold ", ""], namespace)
    assert [a.name for a in attachments] == ["threshold"]


def test_render_value_for_interpolation(namespace: dict[str, object]) -> None:
    def render(value: object) -> str:
        return render_value(value, 3_000)

    result = interpolate(
        "Is {threshold} right for {df_sales}? {{df_sales}}", namespace, render=render
    )
    assert result.text.startswith("Is 0.75 right for \n\npandas DataFrame, 40 rows × 2 columns.")
    assert result.text.endswith("\n\n? {df_sales}")
    assert len(render_value("x" * 50, 20)) <= 20
    assert render_value(types.SimpleNamespace(a=1), 100) == "namespace(a=1)"
    with pytest.raises(ValueError, match="attach it with --with"):
        render_value(np.zeros((8, 8, 3), dtype=np.uint8), 100)
