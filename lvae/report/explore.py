"""An alpha slider for the static book: precomputed frames, one per alpha, swapped by JS.

The paper's qualitative claim is about how pictures change *with alpha*: at large alpha,
generations conditioned on one reference share shape, scale and orientation and differ
in colour (Figure 3), and no latent dimension carries colour (Figure 4). Seeing that needs
the same references and the same prior codes under every alpha, flipped through quickly.

The book is static (Jupyter Book renders executed notebooks, no kernel), so nothing can be
computed when the reader moves a slider. This module therefore renders every frame ahead
of time to PNG and writes one self-contained HTML snippet: the frames as base64 data URIs,
an ``<input type="range">`` over alpha, and a few lines of inline vanilla JS that shows
the chosen frame. No CDN, no ipywidgets, no network: it works in the built book, in
nbconvert's HTML and offline. Without JS the default frame still shows.

:func:`collect_frames` finds the runs (seed 0 of a profile, like the Table 1 page), draws
a generation frame (Figure 3 plus the meta-decoder row) and a traversal frame (Figure 4)
per alpha, and a placeholder frame where a run diverged or was not run, so every slider
position exists and moving the slider changes only alpha. :func:`alpha_slider_html` turns
any ordered ``label -> frame`` mapping into the snippet.
"""

from __future__ import annotations

import base64
import html
import io
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from lvae import runfolder
from lvae.config import TrainConfig
from lvae.data.base import to_tensor
from lvae.generation import localized_samples, meta_samples, traversal
from lvae.report.figures import image_grid, to_hwc
from lvae.report.grid import TABLE1_ALPHAS
from lvae.report.results import find_run, select
from lvae.training import build_dataset, load_run

#: A frame: PNG bytes, a PIL image, or a matplotlib figure (rendered at its own dpi).
FrameLike = bytes | Image.Image | Figure

#: Pixels per inch of the rendered frames; with :data:`CELL_IN` a 32x32 image is drawn at
#: 64x64 screen pixels (an exact 2x nearest-neighbour upsampling), 64x64 images at 1x.
DPI = 128
CELL_IN = 0.5
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: What a placeholder frame says under its headline, per run state.
_STATE_DETAIL = {
    "diverged": "training stopped on a non-finite loss: there is no model to draw from",
    "not run": "this configuration has not been trained for this profile",
    "no checkpoint": "the run finished but kept no checkpoint (imported results only)",
}

# --------------------------------------------------------------------------------------
# Labels and PNGs
# --------------------------------------------------------------------------------------


def alpha_label(alpha: float) -> str:
    """The slider label of an alpha, as the paper's Table 1 rows write it.

    ``0 (vanilla)``, ``1e-3``, ``1``, ``1e1``: powers of ten as exponents (what a reader
    compares with the paper), anything else by its shortest form.
    """
    a = float(alpha)
    if a == 0:
        return "0 (vanilla)"
    k = round(math.log10(abs(a))) if math.isfinite(a) and a > 0 else None
    if k is not None and math.isclose(a, 10.0**k, rel_tol=1e-12):
        return "1" if k == 0 else f"1e{k}"
    return f"{a:g}"


def png_bytes(frame: FrameLike) -> bytes:
    """A frame as PNG bytes: PNG bytes pass through, images and figures are encoded.

    Figures are saved at their own size and dpi (never ``bbox_inches="tight"``), so frames
    drawn with the same layout have the same pixel size and the slider does not jump.
    """
    if isinstance(frame, bytes | bytearray):
        if not bytes(frame[:8]) == PNG_SIGNATURE:
            raise ValueError("frame bytes are not a PNG (no PNG signature)")
        return bytes(frame)
    buf = io.BytesIO()
    if isinstance(frame, Image.Image):
        frame.save(buf, format="PNG", optimize=True)
    elif isinstance(frame, Figure):
        frame.savefig(buf, format="png", dpi=frame.dpi, facecolor="white",
                      metadata={"Software": None})
    else:
        raise TypeError(f"a frame must be PNG bytes, a PIL image or a matplotlib Figure, "
                        f"got {type(frame).__name__}")
    return buf.getvalue()


def png_size(png: bytes) -> tuple[int, int]:
    """``(width, height)`` of PNG bytes, from the header (no decoding)."""
    with Image.open(io.BytesIO(png)) as im:
        return im.size


# --------------------------------------------------------------------------------------
# The HTML snippet
# --------------------------------------------------------------------------------------

_JS = """(function () {
  var root = document.getElementById("%(uid)s");
  if (!root) { return; }
  var range = root.querySelector("input[type=range]");
  var out = root.querySelector("output");
  var imgs = root.querySelectorAll("img[data-index]");
  var ticks = root.querySelectorAll("button[data-index]");
  function show(i) {
    for (var k = 0; k < imgs.length; k++) {
      imgs[k].style.display = (k === i) ? "" : "none";
      ticks[k].style.fontWeight = (k === i) ? "700" : "400";
      ticks[k].setAttribute("aria-pressed", k === i ? "true" : "false");
    }
    var label = imgs[i].getAttribute("data-text");
    out.textContent = label;
    range.value = String(i);
    range.setAttribute("aria-valuetext", label);
  }
  range.addEventListener("input", function () { show(parseInt(range.value, 10)); });
  for (var k = 0; k < ticks.length; k++) {
    ticks[k].addEventListener("click", function (ev) {
      show(parseInt(ev.currentTarget.getAttribute("data-index"), 10));
    });
  }
  show(parseInt(range.value, 10));
})();"""


def alpha_slider_html(frames: Mapping[str, FrameLike], title: str, *,
                      default: str | None = None, caption: str | None = None,
                      notes: Mapping[str, str] | None = None, name: str = "α",
                      uid: str | None = None) -> str:
    """One self-contained HTML snippet: a slider over ``frames`` (label -> image), in order.

    Every frame is an ``<img>`` with a base64 PNG data URI, in the mapping's order; the
    slider (``min=0``, ``max=len-1``, ``step=1``) and a row of clickable labels under it
    show one at a time. Element ids start with a fresh ``uid`` per call, so several
    sliders on one page never drive each other's images. Labels, title and caption are
    HTML-escaped (they are text, never markup). ``default`` is the label shown first
    (default: the first frame); it is also what a reader sees with JS off. ``notes``
    (label -> text, e.g. ``"diverged"``) are shown beside the current value and in the
    image's alt text, so a placeholder frame is named in words too.
    """
    if not frames:
        raise ValueError("alpha_slider_html needs at least one frame")
    labels = [str(k) for k in frames]
    if default is None:
        start = 0
    elif default in labels:
        start = labels.index(default)
    else:
        raise ValueError(f"default {default!r} is not one of the labels {labels}")
    uid = uid or f"lvae-slider-{uuid.uuid4().hex[:12]}"
    esc = html.escape
    n = len(labels)
    pngs = [png_bytes(f) for f in frames.values()]
    shown = [lab + (f" ({notes[lab]})" if notes and notes.get(lab) else "") for lab in labels]
    imgs = "\n".join(
        f'<img data-index="{i}" data-label="{esc(labels[i])}" data-text="{esc(shown[i])}" '
        f'alt="{esc(title)}: {esc(name)} = {esc(shown[i])}" '
        f'src="data:image/png;base64,{base64.b64encode(p).decode("ascii")}" '
        f'style="max-width:100%;height:auto;{"" if i == start else "display:none;"}">'
        for i, p in enumerate(pngs))
    ticks = "".join(
        f'<button type="button" data-index="{i}" aria-pressed="{str(i == start).lower()}" '
        f'style="flex:1 1 0;min-width:0;padding:2px 0;border:none;background:none;'
        f'cursor:pointer;font:inherit;font-size:0.85em;color:inherit;'
        f'font-weight:{700 if i == start else 400};">{esc(lab)}</button>'
        for i, lab in enumerate(labels))
    cap = (f'<div style="font-size:0.85em;opacity:0.8;margin-top:4px;">{esc(caption)}</div>'
           if caption else "")
    # Thumb centres run from half a thumb in from each end of the track; the label row
    # is inset by the same amount so each label sits under its slider position.
    inset = f"calc(50% / {n})"
    js = _JS % {"uid": uid}
    return f"""<div id="{uid}" class="lvae-alpha-slider" style="margin:0.5em 0 1em 0;">
<div style="font-weight:600;margin-bottom:4px;">{esc(title)}</div>
<div style="display:flex;align-items:center;gap:0.6em;max-width:760px;">
<label for="{uid}-range" style="white-space:nowrap;">{esc(name)} =</label>
<output id="{uid}-value" for="{uid}-range" style="min-width:6.5em;font-weight:600;">\
{esc(shown[start])}</output>
</div>
<div style="max-width:760px;">
<input type="range" id="{uid}-range" min="0" max="{n - 1}" step="1" value="{start}" \
aria-valuetext="{esc(shown[start])}" style="width:calc(100% - 2 * {inset} + 16px);\
margin:4px calc({inset} - 8px) 0 calc({inset} - 8px);display:block;">
<div style="display:flex;">{ticks}</div>
</div>
<div style="margin-top:6px;">
{imgs}
</div>
{cap}
<script>
{js}
</script>
</div>"""


# --------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------


def _show(ax: Any, img: np.ndarray) -> None:
    ax.set_axis_off()
    ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")


def generation_frame(references: Any, samples: Any, meta: Any, title: str,
                     cell: float = CELL_IN) -> Figure:
    """Figure 3 for one alpha: a reference column, its adapted generations, the meta row.

    ``samples`` is ``(rows, M, ...)`` (row = reference, column = prior code z^j, as
    :func:`lvae.generation.localized_samples` returns), ``meta`` ``(M, ...)`` the same
    codes through the meta-decoder alone: the last row, so the two decoders can be
    compared column by column. Not a pyplot figure: it never shows up on its own.
    """
    refs, gen, met = to_hwc(references), to_hwc(samples), to_hwc(meta)
    if gen.ndim != 5 or len(refs) != gen.shape[0] or len(met) != gen.shape[1]:
        raise ValueError(f"samples must be (rows, M, ...) with one row per reference and "
                         f"meta (M, ...); got {gen.shape}, {len(refs)} references, "
                         f"meta {met.shape}")
    rows, m = gen.shape[:2]
    head, gap = 0.62, 0.3  # inches: title and column labels; gap above the meta row
    width = (m + 1.35) * cell + 0.1
    height = (rows + 1) * cell + gap + head + 0.05
    fig = Figure(figsize=(width, height), dpi=DPI, facecolor="white")
    gs = fig.add_gridspec(rows + 2, m + 2, width_ratios=[1, 0.35] + [1] * m,
                          height_ratios=[1] * rows + [gap / cell, 1], wspace=0.04, hspace=0.04,
                          left=0.05 / width, right=1 - 0.05 / width, bottom=0.05 / height,
                          top=1 - head / height)
    for r in range(rows + 1):
        gr = r if r < rows else rows + 1
        for c in [0, *range(2, m + 2)]:
            ax = fig.add_subplot(gs[gr, c])
            if r == rows and c == 0:
                ax.set_axis_off()
                ax.text(0.95, 0.5, "meta\ndecoder", ha="right", va="center", fontsize=8,
                        transform=ax.transAxes)
                continue
            _show(ax, (refs[r] if c == 0 else gen[r, c - 2]) if r < rows else met[c - 2])
            if r == 0:
                ax.set_title("reference" if c == 0 else f"$z^{{{c - 1}}}$", fontsize=8)
    fig.suptitle(title, fontsize=10, y=1 - 0.06 / height, va="top")
    return fig


def traversal_frame(image: Any, images: Any, values: Sequence[float], title: str,
                    cell: float = CELL_IN) -> Figure:
    """Figure 4 for one alpha: the input image, then row i sweeps z_i over ``values``.

    ``images`` is ``(latent, len(values), ...)`` as :func:`lvae.generation.traversal`
    returns. Not a pyplot figure: it never shows up on its own.
    """
    img, a = to_hwc(image), to_hwc(images)
    img = img[0] if img.ndim == 4 else img
    if a.ndim != 5 or a.shape[1] != len(values):
        raise ValueError(f"images must be (latent, {len(values)}, ...), got {a.shape}")
    d, n = a.shape[:2]
    head = 0.62
    width = (n + 1.6) * cell + 0.1
    height = d * cell + head + 0.05
    fig = Figure(figsize=(width, height), dpi=DPI, facecolor="white")
    gs = fig.add_gridspec(d, n + 2, width_ratios=[1, 0.6] + [1] * n, wspace=0.04,
                          hspace=0.04, left=0.05 / width, right=1 - 0.05 / width,
                          bottom=0.05 / height, top=1 - head / height)
    ax = fig.add_subplot(gs[0, 0])
    _show(ax, img)
    ax.set_title("input", fontsize=8)
    for i in range(d):
        for j in range(n):
            ax = fig.add_subplot(gs[i, j + 2])
            _show(ax, a[i, j])
            if j == 0:
                ax.text(-0.12, 0.5, f"$z_{{{i + 1}}}$", ha="right", va="center", fontsize=8,
                        transform=ax.transAxes)
            if i == 0:
                ax.set_title(f"{values[j]:+.1f}", fontsize=8)
    fig.suptitle(title, fontsize=10, y=1 - 0.06 / height, va="top")
    return fig


def placeholder_frame(size: tuple[int, int], headline: str, title: str = "",
                      detail: str = "") -> Figure:
    """A frame of ``size`` pixels saying why there is no picture (``"diverged"``, ...).

    The same pixel size as the real frames, so the slider's images do not jump, and a
    missing configuration keeps its place in the sweep instead of silently vanishing.
    """
    w, h = size
    fig = Figure(figsize=(w / DPI, h / DPI), dpi=DPI, facecolor="white")
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.96 - 0.55 * DPI / h))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_facecolor("#f3f3f3")
    for s in ax.spines.values():
        s.set_color("#cccccc")
    ax.text(0.5, 0.55, headline, ha="center", va="center", fontsize=28, color="firebrick",
            transform=ax.transAxes)
    if detail:
        ax.text(0.5, 0.42, detail, ha="center", va="center", fontsize=9, color="#555555",
                transform=ax.transAxes, wrap=True)
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.06 * DPI / h, va="top")
    return fig


# --------------------------------------------------------------------------------------
# Frames for a profile's runs
# --------------------------------------------------------------------------------------


@dataclass
class AlphaFrames:
    """Everything a slider page shows, per alpha label (in grid order).

    ``generations`` and ``traversals`` are PNG bytes (placeholders included); ``states``
    says ``completed``, ``diverged``, ``not run`` or ``no checkpoint``; ``samples`` keeps
    each drawn alpha's adapted generations ``(rows, M, C, H, W)`` for static figures;
    ``references`` are the reference images shared by every alpha (None without runs).
    """

    alphas: tuple[float, ...]
    labels: tuple[str, ...]
    states: dict[str, str]
    run_dirs: dict[str, str | None]
    generations: dict[str, bytes] = field(default_factory=dict)
    traversals: dict[str, bytes] = field(default_factory=dict)
    samples: dict[str, np.ndarray] = field(default_factory=dict)
    references: np.ndarray | None = None
    traversal_index: int = 0
    values: tuple[float, ...] = ()

    def notes(self) -> dict[str, str]:
        """Label -> state for the alphas shown as placeholders (for the slider's text)."""
        return {lab: st for lab, st in self.states.items() if lab not in self.samples}

    def summary(self) -> str:
        """One line: which alphas have a model, which diverged, which were not run."""
        return "; ".join(f"α = {lab}: {self.states[lab]}" for lab in self.labels)

    def found(self) -> str:
        """``"3 of 7"``: how many alphas have a model drawn (the page's "Which models" box)."""
        return f"{len(self.samples)} of {len(self.labels)}"


def seed_state(df: Any, alpha: float, dataset: str = "shapes3d", beta: float = 1.0,
               neighborhood: str | None = "synthetic", seed: int = 0) -> tuple[str, str | None]:
    """``(state, run_dir)`` of one configuration's ``seed`` run in a collect frame.

    ``state`` is ``completed`` (with the folder of a build run that kept its checkpoint,
    found by :func:`lvae.report.results.find_run`), ``diverged``, ``no checkpoint`` or
    ``not run`` (missing, failed or still incomplete). Only ``build`` runs count: an
    imported run belongs to another profile.
    """
    d = find_run(df, dataset=dataset, alpha=alpha, beta=beta, neighborhood=neighborhood,
                 seed=seed, sources=("build",))
    if d is not None:
        return "completed", d
    st = set(select(df, dataset, alpha, beta, neighborhood, seed=seed, source="build")["status"])
    if "diverged" in st:
        return "diverged", None
    return ("no checkpoint" if "completed" in st else "not run"), None


def _default_loader() -> Callable[[str], Any]:
    """``load_run`` that shares one dataset between runs of the same data (render cache)."""

    datasets: dict[str, Any] = {}

    def load(run_dir: str) -> Any:
        cfg = TrainConfig.load(Path(run_dir) / runfolder.CONFIG)
        key = repr((cfg.dataset, cfg.resolution, cfg.data_path, sorted(cfg.data_options.items())))
        if key not in datasets:
            datasets[key] = build_dataset(cfg)
        return load_run(run_dir, dataset=datasets[key])

    return load


def collect_frames(df: Any, alphas: Sequence[float] = TABLE1_ALPHAS, dataset: str = "shapes3d",
                   beta: float = 1.0, neighborhood: str = "synthetic", seed: int = 0,
                   n_refs: int = 10, n_codes: int = 10, ref_seed: int = 3, code_seed: int = 3,
                   traversal_index: int = 0, values: Sequence[float] | None = None,
                   adapt_seed: int = 0, loader: Callable[[str], Any] | None = None
                   ) -> AlphaFrames:
    """Generation and traversal frames for each alpha's ``seed`` run in ``df`` (a
    :func:`lvae.report.results.collect` frame), with placeholders where there is no model.

    What changes between frames is only alpha (and the model trained with it): the
    ``n_refs`` reference images are drawn once (pool positions ``ref_seed`` of the first
    run found; every seed-0 run of a profile shares its pool) and reused as the same
    pixels; the ``n_codes`` prior codes come from one generator (``code_seed``); the
    inner step's neighbours and noise use ``adapt_seed`` for every run. The traversal
    starts from reference ``traversal_index`` with the adapted model (at alpha = 0 the
    meta-model, which is the same). ``loader`` maps a run folder to a
    :class:`lvae.training.Run` (default: ``load_run``, one dataset per kind of data).
    """

    if not 0 <= traversal_index < n_refs:
        raise ValueError(f"traversal_index must be in [0, {n_refs}), got {traversal_index}")
    load = loader or _default_loader()
    vals = torch.linspace(-2, 2, 9) if values is None else torch.as_tensor(values).float()
    labels = tuple(alpha_label(a) for a in alphas)
    if len(set(labels)) != len(labels):
        raise ValueError(f"alphas give duplicate labels: {labels}")
    out = AlphaFrames(tuple(float(a) for a in alphas), labels, {}, {},
                      traversal_index=traversal_index, values=tuple(vals.tolist()))
    refs_u8: np.ndarray | None = None
    ref_idx: np.ndarray | None = None
    z: torch.Tensor | None = None
    for a, lab in zip(alphas, labels, strict=True):
        state, d = seed_state(df, a, dataset, beta, neighborhood, seed)
        out.states[lab], out.run_dirs[lab] = state, d
        if d is None:
            continue
        run = load(d)
        if ref_idx is None:
            pos = np.random.RandomState(ref_seed).choice(len(run.pool), n_refs, replace=False)
            ref_idx = run.pool.indices[np.sort(pos)]
            refs_u8 = run.dataset.images(ref_idx)
            out.references = refs_u8
        assert refs_u8 is not None
        images = refs_u8
        if images.shape[1:] != run.dataset.observation_shape:  # another resolution
            images = run.dataset.images(ref_idx)
        refs = to_tensor(images)
        if z is None:
            z = torch.randn(n_codes, run.arch.latent_dim,
                            generator=torch.Generator().manual_seed(code_seed))
        zz = z[:, : run.arch.latent_dim]
        title = f"α = {lab}"
        gen = torch.nan_to_num(localized_samples(run, refs, zz, seed=adapt_seed))
        meta = torch.nan_to_num(meta_samples(run, zz))
        out.samples[lab] = gen.numpy()
        adapted = "decoder adapted to it" if a > 0 else "nothing to adapt at α = 0"
        out.generations[lab] = png_bytes(generation_frame(
            refs, gen, meta, f"{title}: row = reference ({adapted}), column = code $z^j$"))
        tr = torch.nan_to_num(traversal(run, refs[traversal_index], vals, adapted=True,
                                        seed=adapt_seed))
        out.traversals[lab] = png_bytes(traversal_frame(
            refs[traversal_index], tr, vals.tolist(),
            f"{title}: row $i$ sweeps $z_i$" + (" (adapted model)" if a > 0 else "")))
        del run
    for kind in (out.generations, out.traversals):
        size = png_size(next(iter(kind.values()))) if kind else (760, 560)
        filled = dict(kind)
        kind.clear()
        for lab in labels:
            state = out.states[lab]
            kind[lab] = filled.get(lab) or png_bytes(placeholder_frame(
                size, state, f"α = {lab}", _STATE_DETAIL.get(state, "")))
    return out


def overview_figure(frames: AlphaFrames, reference: int = 0, cell: float = 0.55) -> Figure:
    """A static strip per alpha: one reference's generations for the shared codes.

    Rows are the alphas in grid order, columns the prior codes; a row without a model is
    left blank and says why in its label. A pyplot figure, so a notebook cell shows it
    (the book keeps a PNG of the sweep even where the slider's JS cannot run).
    """
    if not frames.samples:
        raise ValueError("no alpha has a model: nothing to draw")
    first = next(iter(frames.samples.values()))
    m, shape = first.shape[1], first.shape[2:]
    blank = np.ones((m, *shape), np.float32)
    rows = [frames.samples[lab][reference] if lab in frames.samples else blank
            for lab in frames.labels]
    row_labels = [f"α = {lab}" + ("" if lab in frames.samples else f"\n({frames.states[lab]})")
                  for lab in frames.labels]
    assert frames.references is not None  # set with the first model drawn
    ref = to_hwc(frames.references[reference])
    grid = np.concatenate([np.broadcast_to(ref, (len(rows), 1, *ref.shape)),
                           to_hwc(np.stack(rows))], axis=1)
    return image_grid(grid, row_labels=row_labels,
                      col_labels=["reference", *(f"$z^{{{j + 1}}}$" for j in range(m))],
                      cell=cell)

