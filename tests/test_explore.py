"""The alpha slider: a self-contained HTML snippet, and the frames behind it per alpha."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from lvae.config import TrainConfig
from lvae.generation import meta_samples
from lvae.report.explore import (
    alpha_label,
    alpha_slider_html,
    collect_frames,
    overview_figure,
    png_bytes,
    png_size,
)
from lvae.report.grid import TABLE1_ALPHAS
from lvae.training import load_run, train

IMG_RE = re.compile(r"<img\b([^>]*)>")


def attrs(tag: str) -> dict[str, str]:
    return dict(re.findall(r'([\w-]+)="([^"]*)"', tag))


def frames_of(html: str) -> list[dict[str, str]]:
    return [attrs(m.group(1)) for m in IMG_RE.finditer(html)]


def decode(src: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(src[len(prefix):], validate=True)))


def colours(n: int) -> dict[str, Image.Image]:
    """Distinct small images, one per Table 1 alpha, keyed by their labels."""
    rng = np.random.RandomState(0)
    return {alpha_label(a): Image.fromarray(rng.randint(0, 256, (6 + i, 5, 3), np.uint8))
            for i, a in enumerate(TABLE1_ALPHAS[:n])}


def test_alpha_labels_read_like_the_paper() -> None:
    assert [alpha_label(a) for a in TABLE1_ALPHAS] == [
        "0 (vanilla)", "1e-3", "1e-2", "1e-1", "1", "1e1", "1e2"]
    assert alpha_label(2.5) == "2.5"


def test_one_frame_per_alpha_in_order_decoding_to_the_images() -> None:
    frames = colours(len(TABLE1_ALPHAS))
    html = alpha_slider_html(frames, "generations", default="1")
    imgs = frames_of(html)
    assert [f["data-label"] for f in imgs] == list(frames)
    assert [f["data-index"] for f in imgs] == [str(i) for i in range(len(frames))]
    for f, want in zip(imgs, frames.values(), strict=True):
        got = decode(f["src"])
        assert got.format == "PNG"
        assert np.array_equal(np.asarray(got.convert("RGB")), np.asarray(want))
    # exactly the default frame is visible without JS
    shown = [f["data-label"] for f in imgs if "display:none" not in f["style"]]
    assert shown == ["1"]
    # no network: every image is inline, no external script or stylesheet
    assert "http" not in html and "<link" not in html and "src=\"data:image/png" in html
    assert html.count("<script>") == 1 and "<script src" not in html


def test_slider_range_matches_the_frames() -> None:
    html = alpha_slider_html(colours(5), "t", default="1e-2")
    (tag,) = re.findall(r'<input type="range"[^>]*>', html)
    a = attrs(tag)
    assert (a["min"], a["max"], a["step"], a["value"]) == ("0", "4", "1", "2")
    assert a["aria-valuetext"] == "1e-2"
    assert len(re.findall(r"<button[^>]*data-index=", html)) == 5


def test_ids_differ_between_calls_and_js_uses_its_own() -> None:
    frames = colours(2)
    ids = []
    for _ in range(2):
        html = alpha_slider_html(frames, "t")
        uid = re.match(r'<div id="([^"]+)"', html).group(1)
        assert f'document.getElementById("{uid}")' in html
        assert f'id="{uid}-range"' in html and f'for="{uid}-range"' in html
        ids.append(uid)
    assert ids[0] != ids[1]


def test_labels_title_and_caption_are_escaped() -> None:
    evil = '<b onmouseover="x()">&1</b>'
    frames = {evil: png_bytes(Image.new("RGB", (2, 2))), "ok": Image.new("RGB", (2, 2))}
    html = alpha_slider_html(frames, title="<script>alert(1)</script>", caption="a<b")
    assert "<b onmouseover" not in html and "<script>alert" not in html and "a<b" not in html
    assert "&lt;b onmouseover=&quot;x()&quot;&gt;&amp;1&lt;/b&gt;" in html
    assert frames_of(html)[0]["data-label"].startswith("&lt;b")


def test_bad_frames_and_defaults_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        alpha_slider_html({}, "t")
    with pytest.raises(ValueError, match="not a PNG"):
        alpha_slider_html({"a": b"GIF89a..."}, "t")
    with pytest.raises(ValueError, match="default"):
        alpha_slider_html(colours(2), "t", default="7")
    with pytest.raises(TypeError, match="frame"):
        png_bytes(np.zeros((2, 2)))  # type: ignore[arg-type]


def runs_frame(rows: list[dict]) -> pd.DataFrame:
    """A :func:`lvae.report.results.collect`-like frame with only the columns find_run reads."""
    base = dict(dataset="shapes3d", beta=1.0, neighborhood="synthetic", seed=0,
                reduction="pixel_mean", steps=2, source="build", run_dir="")
    return pd.DataFrame([{**base, **r} for r in rows])


def test_frames_per_alpha_with_placeholders(tmp_path: Path, blobs, one_torch_thread) -> None:
    cfg = TrainConfig(dataset="shapes3d", resolution=32, steps=2, batch_size=4, k=3,
                      pool_size=100, heldout_size=20, alpha=1.0, seed=0)
    trained, vanilla = tmp_path / "a1", tmp_path / "a0"
    train(cfg, trained, dataset=blobs, progress=False)
    train(cfg.replace(alpha=0.0), vanilla, dataset=blobs, progress=False)
    loaded = []

    def loader(run_dir: str):
        loaded.append(run_dir)
        return load_run(run_dir, dataset=blobs)

    df = runs_frame([
        {"alpha": 0.0, "status": "completed", "run_dir": str(vanilla)},
        {"alpha": 1.0, "status": "completed", "run_dir": str(trained)},
        {"alpha": 100.0, "status": "diverged", "run_dir": "/nowhere"},
        {"alpha": 1e-3, "status": "completed", "run_dir": "/nowhere"},  # no checkpoint
        {"alpha": 1e-2, "status": "completed", "run_dir": str(trained), "seed": 1},
    ])
    fr = collect_frames(df, n_refs=3, n_codes=4, loader=loader)
    assert fr.labels == tuple(alpha_label(a) for a in TABLE1_ALPHAS)
    assert list(fr.generations) == list(fr.traversals) == list(fr.labels)
    assert fr.states == {"0 (vanilla)": "completed", "1e-3": "no checkpoint",
                         "1e-2": "not run", "1e-1": "not run", "1": "completed",
                         "1e1": "not run", "1e2": "diverged"}
    assert loaded == [str(vanilla), str(trained)]
    # the same references for every alpha (pool positions of the first run found)
    assert fr.references is not None and fr.references.shape == (3, 32, 32, 3)
    s0, s1 = fr.samples["0 (vanilla)"], fr.samples["1"]
    assert s0.shape == s1.shape == (3, 4, 3, 32, 32)
    assert np.allclose(s0[0], s0[1])  # alpha = 0: the reference does not matter
    z = torch.randn(4, 10, generator=torch.Generator().manual_seed(3))  # code_seed = 3
    assert np.allclose(s0[0], meta_samples(load_run(vanilla, dataset=blobs), z), atol=1e-6)
    assert not np.allclose(s1[0], s1[1])  # alpha = 1: adapted per reference
    for kind in (fr.generations, fr.traversals):
        sizes = {png_size(p) for p in kind.values()}
        assert len(sizes) == 1, "every frame of a slider has the same pixel size"
        assert kind["1e2"] != kind["1e-1"] != kind["1"]  # placeholders say different things
    html = alpha_slider_html(fr.generations, "g", notes=fr.notes())
    imgs = frames_of(html)
    assert [f["data-label"] for f in imgs] == list(fr.labels)
    assert imgs[-1]["data-text"] == "1e2 (diverged)" and imgs[2]["data-text"] == "1e-2 (not run)"
    assert imgs[-1]["alt"] == "g: α = 1e2 (diverged)" and imgs[0]["data-text"] == "0 (vanilla)"
    fig = overview_figure(fr)
    assert len(fig.axes) == len(TABLE1_ALPHAS) * 5


def test_no_runs_at_all_still_gives_one_placeholder_per_alpha() -> None:
    fr = collect_frames(pd.DataFrame(), loader=lambda d: pytest.fail("no run"))
    assert set(fr.states.values()) == {"not run"}
    assert len(fr.generations) == len(fr.traversals) == len(TABLE1_ALPHAS)
    with pytest.raises(ValueError, match="nothing to draw"):
        overview_figure(fr)
