"""The Diagnosis page's pictures and their Figure 3 scores, on hand-made shipped runs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from lvae.report import pictures, study

# three factors: a colour (global) and two object factors (local), each written into one
# pixel of the image as value * 40, which the stub classifier below reads back
DATA = SimpleNamespace(factor_names=("hue", "size", "shape"), factor_sizes=(5, 4, 3),
                       dci_subsets={"dci_nocolor": ("size", "shape")})


def image(factors) -> np.ndarray:
    im = np.zeros((8, 8, 3), np.uint8)
    im[0, 0] = np.asarray(factors) * 40
    return im


class PixelReader(nn.Module):
    """Factor j is pixel (0, 0, j) / 40: one-hot logits, one tensor per factor."""

    factor_sizes = DATA.factor_sizes

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        values = torch.round(x[:, :, 0, 0] * 255 / 40).long()
        return [nn.functional.one_hot(values[:, j], s).float()
                for j, s in enumerate(self.factor_sizes)]


def grid(refs, codes, paper: bool) -> dict[str, np.ndarray]:
    """Pictures of 2 references x 3 codes: a copy of each reference, or the paper's
    picture (the reference's hue, the code's size and shape)."""
    gen = [[image([r[0], *c[1:]]) if paper else image(r) for c in codes] for r in refs]
    return {"references": np.stack([image(r) for r in refs]), "localized": np.array(gen)}


REFS, CODES = [(0, 0, 0), (1, 1, 1)], [(4, 3, 2), (3, 2, 0), (2, 0, 1)]


def test_figure3_table_scores_a_copy_and_the_papers_picture():
    arms = [pictures.ArmPictures("copy", 5000, grid(REFS, CODES, paper=False)),
            pictures.ArmPictures("paper", 5000, grid(REFS, CODES, paper=True))]
    table = pictures.figure3_table(arms, PixelReader(), DATA).set_index("arm")
    assert table.loc["copy", ["colours_kept", "content_shared"]].tolist() == [1.0, 0.0]
    assert table.loc["paper", ["colours_kept", "content_shared"]].tolist() == [1.0, 1.0]
    chance = table.loc["chance (factors drawn at random)"]
    assert chance["colours_kept"] == pytest.approx(1 / 5)
    assert chance["content_shared"] == pytest.approx(1 / 12)


def test_arm_pictures_takes_each_arm_at_its_judged_milestone(tmp_path: Path):
    sr = study.DIAGNOSIS[0]
    folder = tmp_path / sr.profile / sr.run_id
    (folder / "milestones").mkdir(parents=True)
    pics = grid(REFS, CODES, paper=True)
    arrays = {f"{s}/{k}": v for s in (1000, 5000, 10_000) for k, v in pics.items()}
    (folder / "pictures.npz").write_bytes(study.npz_bytes(arrays))
    [got] = pictures.arm_pictures(tmp_path)
    assert (got.name, got.step) == (sr.arm, 5000)  # 10k is past the screen
    assert np.array_equal(got.pictures["localized"], pics["localized"])
    assert pictures.arm_pictures(tmp_path, yardsticks=True)[0].name == sr.arm  # none shipped


def test_figure3_summary_counts_the_arms_that_draw_the_papers_picture():
    arms = [pictures.ArmPictures("copy", 5000, grid(REFS, CODES, paper=False)),
            pictures.ArmPictures("paper", 5000, grid(REFS, CODES, paper=True)),
            pictures.ArmPictures("control: vanilla VAE", 5000, grid(REFS, CODES, paper=True))]
    table = pictures.figure3_table(arms, PixelReader(), DATA)
    assert pictures.figure3_summary(table, ["copy"]) == (
        "of the 1 Local VAE run shown (screening arms and readings' seeds), 1 keeps their "
        "reference's colours (colours kept >= 0.5) and content shared is at most 0.000: "
        "none draws the paper's picture; the nearest on both scores is copy (colours kept "
        "1.000, content shared 0.000).")
    assert pictures.figure3_summary(table, ["copy", "paper"]).endswith(
        "at most 1.000: paper draws it.")
    assert pictures.figure3_summary(table, []) == (
        "No Local VAE arm is shipped with pictures yet.")


def test_a_readings_seed_is_shown_at_its_last_milestone(tmp_path: Path):
    sr = study.READINGS[0].run(1)  # trained to 20k and judged there, not at the screen
    folder = tmp_path / sr.profile / sr.run_id
    (folder / "milestones").mkdir(parents=True)
    pics = grid(REFS, CODES, paper=False)
    arrays = {f"{s}/{k}": v for s in (5000, 20_000) for k, v in pics.items()}
    (folder / "pictures.npz").write_bytes(study.npz_bytes(arrays))
    [got] = pictures.arm_pictures(tmp_path)
    assert (got.name, got.step) == (sr.arm, 20_000)


def test_an_arm_at_another_resolution_is_not_scored():
    """The 64x64 arm's pictures against a classifier of the 32x32 twin: a row that says
    so, with no scores, instead of a classifier fed images it was not made for."""
    small = SimpleNamespace(**vars(DATA), resolution=8)
    big = {k: np.repeat(np.repeat(v, 2, axis=-3), 2, axis=-2)
           for k, v in grid(REFS, CODES, paper=True).items()}  # 16x16 images
    arms = [pictures.ArmPictures("paper", 5000, grid(REFS, CODES, paper=True)),
            pictures.ArmPictures("big", 5000, big)]
    table = pictures.figure3_table(arms, PixelReader(), small)
    assert table["content_shared"].tolist()[0] == 1.0
    row = table.iloc[1]
    assert row["arm"] == "big (not scored: drawn at 16x16, the classifier reads 8x8)"
    assert np.isnan(row["colours_kept"]) and np.isnan(row["content_shared"])
    # with a classifier of the twin at 16x16, the big arm is scored by it (the 8x8 one
    # still reads the small arm): a copy of each reference reads as one, at either size
    copy = {k: np.repeat(np.repeat(v, 2, axis=-3), 2, axis=-2)
            for k, v in grid(REFS, CODES, paper=False).items()}
    arms.append(pictures.ArmPictures("big copy", 5000, copy))
    seen = []

    class Reader16(PixelReader):
        def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            seen.append(x.shape[-1])
            return super().forward(x)

    table = pictures.figure3_table(arms, PixelReader(), small, others={16: Reader16()})
    assert table["arm"].tolist()[:3] == ["paper", "big", "big copy"]
    assert table["content_shared"].tolist()[:3] == [1.0, 1.0, 0.0]
    assert table["colours_kept"].tolist()[:3] == [1.0, 1.0, 1.0]
    assert set(seen) == {16} and len(seen) == 4  # references and generations, two arms
    table = pictures.figure3_table(arms[:2], PixelReader(), small, others={4: Reader16()})
    assert table.iloc[1]["arm"] == ("big (not scored: drawn at 16x16, the classifiers read "
                                    "4x4, 8x8)")


def test_the_long_baselines_pictures_are_not_an_arms(tmp_path: Path):
    """The baselines at the paper's budget are not screened (no inner step): their
    milestone pictures stay out of the arms' pictures and Figure 3's counts."""
    long = [sr for sr in study.DIAGNOSIS if not sr.screened]
    assert [sr.profile for sr in long] == ["long", "long"]
    assert all(sr.experiment.alpha == 0 for sr in long)
    pics = grid(REFS, CODES, paper=True)
    for sr in (long[0], study.DIAGNOSIS[0]):
        folder = tmp_path / sr.profile / sr.run_id
        (folder / "milestones").mkdir(parents=True)
        arrays = {f"5000/{k}": v for k, v in pics.items()}
        (folder / "pictures.npz").write_bytes(study.npz_bytes(arrays))
    assert [a.name for a in pictures.arm_pictures(tmp_path)] == [study.DIAGNOSIS[0].arm]
