"""Kernel objects in the prompt: ``{name}`` and ``--with``, as the server receives them."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest

from step_magic.server import LocalServer


def run(ip: Any, cell: str) -> Any:
    return ip.run_cell(cell, store_history=False)


def last_user_content(server: LocalServer) -> Any:
    bodies = [r.body for r in server.requests if r.path.endswith("/chat/completions")]
    assert bodies, "nothing was sent"
    return bodies[-1]["messages"][-1]["content"]


def decode_image(part: dict[str, Any]) -> Any:
    from PIL import Image

    header, _, data = part["image_url"]["url"].partition(",")
    assert header in ("data:image/png;base64", "data:image/jpeg;base64")
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_references_in_braces_are_filled_in_and_other_braces_left_alone(
    ip: Any, server: LocalServer
) -> None:
    ip.user_ns.update(city="Paris", cfg={"year": 2024})
    cell = '%%step\nWeather in {city} in {cfg["year"]}? Reply as {"t": 1} or {{city}}; {unknown}.'
    run(ip, cell).raise_error()
    assert last_user_content(server) == (
        'Weather in Paris in 2024? Reply as {"t": 1} or {city}; {unknown}.'
    )


def test_no_interpolate_sends_the_body_verbatim(ip: Any, server: LocalServer) -> None:
    ip.user_ns["city"] = "Paris"
    run(ip, "%%step --no-interpolate\nKeep {city} as typed").raise_error()
    assert last_user_content(server) == "Keep {city} as typed"


def test_strict_names_an_unknown_reference_and_suggests(ip: Any, server: LocalServer) -> None:
    ip.user_ns["df_sales"] = 1
    error = run(ip, "%%step --strict\nUse {df_sale}").error_in_exec
    assert type(error).__name__ == "UsageError"
    assert "df_sale is not defined; did you mean df_sales?" in str(error)
    assert server.requests == []


def test_a_dataframe_is_attached_as_a_bounded_summary_before_the_prompt(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    ip.user_ns["df"] = pd.DataFrame({"month": ["Jan", "Feb", "Mar"] * 1000, "revenue": range(3000)})
    run(ip, "%%step --with df --budget 500\nWhy does revenue dip in March?").raise_error()
    content = last_user_content(server)  # one string: no media, strict servers want that
    summary, prompt = content.rsplit("\n\n", 1)
    assert prompt == "Why does revenue dip in March?"
    assert summary.startswith("### `df` (pandas DataFrame)")
    assert "3,000 rows × 2 columns" in summary
    assert len(summary) <= 500 * 4
    assert "with df (3,000×2, summarised)" in capsys.readouterr().out


def test_a_polars_frame_works_the_same(ip: Any, server: LocalServer) -> None:
    import polars as pl

    ip.user_ns["lf"] = pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    run(ip, "%step --with lf Describe it").raise_error()
    assert "polars DataFrame" in last_user_content(server)


def test_a_matplotlib_figure_is_sent_as_a_downscaled_image(ip: Any, server: LocalServer) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    ax.plot([1, 3, 2])
    ip.user_ns["fig"] = fig
    ip.run_line_magic("config", "StepMagics.image_max_side = 400")
    run(ip, "%%step --with fig --detail high\nExplain the chart").raise_error()
    caption, image, prompt = last_user_content(server)
    assert "`fig`" in caption["text"]
    assert image["image_url"]["detail"] == "high"
    assert decode_image(image).size == (400, 200)
    assert prompt["text"] == "Explain the chart"
    plt.close(fig)


def test_arrays_pil_images_and_files_are_images_too(
    ip: Any, server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np
    from PIL import Image

    Image.new("RGB", (64, 32), "red").save(tmp_path / "photo.png")
    monkeypatch.chdir(tmp_path)
    ip.user_ns.update(
        arr=np.zeros((20, 30, 3), dtype=np.uint8),
        pic=Image.new("RGB", (50, 10), "blue"),
        path=tmp_path / "photo.png",
    )
    run(ip, "%step --with arr,pic,path,photo.png Describe these images").raise_error()
    images = [p for p in last_user_content(server) if p["type"] == "image_url"]
    assert [decode_image(p).size for p in images] == [(30, 20), (50, 10), (64, 32), (64, 32)]
    assert all(p["image_url"]["detail"] == "low" for p in images)


def test_an_unknown_name_is_a_usage_error_with_close_matches(ip: Any, server: LocalServer) -> None:
    ip.user_ns["revenue"] = 1
    error = run(ip, "%step --with revenu Hi").error_in_exec
    assert type(error).__name__ == "UsageError"
    assert "did you mean revenue" in str(error)
    assert server.requests == []


def test_the_code_of_a_cell_is_sent_and_a_cell_without_code_is_one_line_naming_the_range(
    ip: Any, server: LocalServer
) -> None:
    ip.run_cell("import math", store_history=True)
    ip.run_cell("x = 41 + 1", store_history=True)
    number = len(ip.user_ns["In"]) - 1  # 2 or more: the cells are In[1] to In[number]
    run(ip, f"%step --with In[{number}] Explain it")
    assert last_user_content(server).startswith(
        f"### `In[{number}]` (the code of cell {number})\n```python\nx = 41 + 1\n```"
    )
    server.reset()
    for empty in ("In[0]", f"In[{number + 1}]", "_i0", "In[99999]"):  # In[0] is always ""
        error = run(ip, f"%step --with {empty} Explain it").error_in_exec
        assert type(error).__name__ == "UsageError"
        assert str(error) == (
            f"{empty}: no code to send; the cells run so far are In[1] to In[{number}]"
        )
    assert server.requests == []


def test_images_to_a_text_only_model_are_refused_before_sending(
    ip: Any, server: LocalServer
) -> None:
    from PIL import Image

    ip.user_ns["pic"] = Image.new("RGB", (8, 8))
    error = run(ip, "%step -m step-3.5-flash --with pic Hi").error_in_exec
    assert type(error).__name__ == "UsageError"
    assert "use -m step-3.7-flash" in str(error)
    assert server.requests == []


def test_video_goes_first_and_too_big_a_video_is_refused(
    ip: Any, server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100)
    ip.user_ns["notes"] = "some notes"
    run(ip, "%step --with notes,clip.mp4 Describe the clip").raise_error()
    kinds = [part["type"] for part in last_user_content(server)]
    assert kinds == ["video_url", "text", "text"]
    with (tmp_path / "big.mp4").open("wb") as big:
        big.truncate(129 * 2**20)
    error = run(ip, "%step --with big.mp4 Describe the clip").error_in_exec
    assert type(error).__name__ == "UsageError"
    assert "under 128 MB" in str(error)


def test_dry_run_shows_the_request_and_sends_nothing_even_without_a_key(
    ip: Any,
    server: LocalServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from PIL import Image

    monkeypatch.delenv("STEPFUN_API_KEY")
    monkeypatch.delenv("STEPFUN_BASE_URL")
    ip.user_ns.update(pic=Image.new("RGB", (8, 8)), n=7)
    run(ip, "%%step --dry-run --with pic -e low\nCount {n} things").raise_error()
    out = capsys.readouterr().out
    assert "Dry run — nothing sent." in out
    assert '"reasoning_effort": "low"' in out
    assert "Count 7 things" in out
    assert "[image," in out
    assert "detail low" in out
    assert "tokens" in out
    assert server.requests == []


def test_dry_run_on_the_messages_api_shows_the_body_that_api_is_sent(
    ip: Any, server: LocalServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: the dry run used to show the Chat Completions body whatever --api said."""
    cell = (
        "%%step --api messages --effort high --system 'Be brief.' --dry-run\nWhy is the sky blue?"
    )
    run(ip, cell).raise_error()
    out = capsys.readouterr().out
    assert "/v1/messages" in out
    assert '"output_config": {"effort": "high"}' in out
    assert '"max_tokens"' in out
    assert "reasoning_effort" not in out
    assert "--- system\nBe brief." in out  # the top-level system, shown first
    assert "Why is the sky blue?" in out
    assert server.requests == []


def test_a_reference_whose_str_raises_is_one_line_naming_it(ip: Any, server: LocalServer) -> None:
    class Sulky:
        def __str__(self) -> str:
            raise RuntimeError("no")

    ip.user_ns["moody"] = Sulky()
    error = run(ip, "%step Tell me about {moody}").error_in_exec
    assert type(error).__name__ == "UsageError"
    assert "{moody} cannot be shown as text" in str(error)
    assert server.requests == []


def test_an_image_file_too_big_is_refused_before_it_is_read(
    ip: Any, server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.png"
    with big.open("wb") as file:  # sparse: 1.5 GB on paper, nothing on disk
        file.truncate(1_500_000_000)
    monkeypatch.chdir(tmp_path)
    error = run(ip, "%step --with big.png Describe the picture").error_in_exec
    assert type(error).__name__ == "UsageError"
    assert "1,500 MB" in str(error)
    assert "not read" in str(error)
    assert server.requests == []
