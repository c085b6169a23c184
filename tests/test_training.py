"""Training: determinism, resume, divergence, config checks; generation on a trained run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lvae.config import TrainConfig
from lvae.data.base import to_tensor
from lvae.generation import (
    localized_samples,
    meta_samples,
    prepared_neighborhood,
    reconstructions,
    represent,
    traversal,
)
from lvae.training import load_run, train


def tiny(**kw) -> TrainConfig:
    base = dict(dataset="shapes3d", resolution=32, steps=12, batch_size=4, k=3, pool_size=100,
                heldout_size=20, log_every=2, checkpoint_every=4, alpha=1.0, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def losses(run_dir):
    return [json.loads(ln)["loss"] for ln in (run_dir / "log.jsonl").read_text().splitlines()]


def test_same_config_and_seed_give_same_losses(tmp_path, blobs):
    a = train(tiny(), tmp_path / "a", dataset=blobs, progress=False)
    b = train(tiny(), tmp_path / "b", dataset=blobs, progress=False)
    assert a["status"] == b["status"] == "completed"
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    c = train(tiny(seed=4), tmp_path / "c", dataset=blobs, progress=False)
    assert c["status"] == "completed" and losses(tmp_path / "c") != losses(tmp_path / "a")


@pytest.mark.parametrize("kind", [
    {},
    # the latent bank is refreshed at step 5 and takes each batch's codes: re-encoding the
    # pool at the resume (step 8) would hand the resumed run other neighbours
    {"neighborhood": "latent_knn", "latent_refresh": 5},
    {"neighborhood": "input_l2"},
])
def test_resume_continues_draw_for_draw(tmp_path, blobs, kind):
    full = tmp_path / "full"
    train(tiny(**kind), full, dataset=blobs, progress=False)
    part = tmp_path / "part"
    train(tiny(steps=8, **kind), part, dataset=blobs, progress=False)  # ckpt at 4, 8
    # Pretend the run was interrupted after its step-8 checkpoint: drop the result and
    # continue with the full budget.
    (part / "result.json").unlink()
    cfg = json.loads((part / "config.json").read_text())
    cfg["steps"] = 12
    (part / "config.json").write_text(json.dumps(cfg))
    train(tiny(**kind), part, dataset=blobs, progress=False)
    assert losses(part) == losses(full)


def test_killed_before_its_first_checkpoint_starts_over_without_double_log(tmp_path, blobs):
    """A run killed before any checkpoint left log lines; training again from step 0 must
    not append a second copy of those steps."""
    full = tmp_path / "full"
    train(tiny(), full, dataset=blobs, progress=False)
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "config.json").write_text(tiny().to_json())
    stale = (full / "log.jsonl").read_text().splitlines()[:3]  # steps 2, 4, 6 written
    (killed / "log.jsonl").write_text("\n".join(stale) + "\n")  # then killed, no checkpoint
    train(tiny(), killed, dataset=blobs, progress=False)
    steps = [json.loads(ln)["step"] for ln in (killed / "log.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8, 10, 12] and losses(killed) == losses(full)


def test_finished_run_is_skipped_and_other_config_refused(tmp_path, blobs):
    r1 = train(tiny(), tmp_path / "r", dataset=blobs, progress=False)
    mtime = (tmp_path / "r" / "checkpoint.pt").stat().st_mtime_ns
    r2 = train(tiny(), tmp_path / "r", dataset=blobs, progress=False)
    assert r1 == r2 and (tmp_path / "r" / "checkpoint.pt").stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="different config"):
        train(tiny(alpha=0.5), tmp_path / "r", dataset=blobs, progress=False)


def test_divergence_is_recorded_not_raised(tmp_path, blobs):
    res = train(tiny(alpha=1e6, reduction="sum", steps=30), tmp_path / "d", dataset=blobs,
                progress=False)
    assert res["status"] == "diverged"
    assert "non-finite" in res["message"]
    assert json.loads((tmp_path / "d" / "result.json").read_text())["status"] == "diverged"


@pytest.mark.parametrize("kind", ["synthetic", "input_l2", "latent_knn"])
def test_every_neighbourhood_trains(tmp_path, blobs, kind):
    res = train(tiny(neighborhood=kind, steps=4, latent_refresh=2), tmp_path / kind,
                dataset=blobs, progress=False)
    assert res["status"] == "completed"
    assert np.isfinite(losses(tmp_path / kind)).all()
    run = load_run(tmp_path / kind, dataset=blobs)
    pos = np.arange(3)
    rec = reconstructions(run, run.pool.tensor(pos), neighbor_positions=pos)
    assert rec.shape == (3, 3, 32, 32)
    # held-out references (not in the pool: Figure 3's grid, the milestone readout) are
    # adapted on their own K nearest pool images instead of failing
    held = run.dataset.images(np.asarray(run.heldout)[:2])
    assert reconstructions(run, to_tensor(held)).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("kind", ["input_l2", "latent_knn"])
def test_held_out_images_get_their_nearest_pool_images(tmp_path, blobs, kind):
    """neighbors_of against a brute-force search over the pool (pixels, or meta means)."""
    train(tiny(neighborhood=kind, steps=2), tmp_path / kind, dataset=blobs, progress=False)
    run = load_run(tmp_path / kind, dataset=blobs)
    nbhd = prepared_neighborhood(run)
    held = to_tensor(run.dataset.images(np.asarray(run.heldout)[:3]))
    got = nbhd.neighbors_of(held, torch.Generator())
    pool = run.pool.tensor(np.arange(len(run.pool)))
    with torch.no_grad():
        a, b = (held, pool) if kind == "input_l2" else (run.model.encode(held)[0],
                                                         run.model.encode(pool)[0])
    d = torch.cdist(a.flatten(1).double(), b.flatten(1).double())  # (3, pool)
    want = d.sort(1).values[:, : run.config.k]  # the K smallest distances (ties allowed)
    with torch.no_grad():
        g = got.transpose(0, 1)  # (3, K, C, H, W)
        g = g if kind == "input_l2" else run.model.encode(g.flatten(0, 1))[0].view(3, -1, 10)
        have = (g.flatten(2).double() - a.flatten(1).double()[:, None]).norm(dim=2)
    assert got.shape[:2] == (run.config.k, 3)
    assert torch.allclose(have.sort(1).values, want, rtol=1e-4, atol=1e-4)


def test_vanilla_training_reduces_loss(tmp_path, blobs):
    cfg = tiny(alpha=0.0, steps=150, lr=2e-3, log_every=10, batch_size=16)
    train(cfg, tmp_path / "v", dataset=blobs, progress=False)
    ls = losses(tmp_path / "v")
    assert np.mean(ls[-3:]) < 0.7 * np.mean(ls[:2])


def test_config_round_trip_and_validation():
    c = tiny(data_options={"n_objects": 5})
    assert TrainConfig.from_dict(json.loads(c.to_json())) == c
    for field, bad in [("alpha", -1.0), ("alpha", "0.1"), ("k", 0), ("dataset", "mnist"),
                       ("neighborhood", "random"), ("resolution", 48), ("steps", 1.5)]:
        with pytest.raises(ValueError, match=field):
            tiny(**{field: bad})
    with pytest.raises(ValueError, match="unknown config fields"):
        TrainConfig.from_dict({"alhpa": 1.0})


def test_generation_on_a_trained_run(tmp_path, blobs):
    train(tiny(), tmp_path / "g", dataset=blobs, progress=False)
    run = load_run(tmp_path / "g", dataset=blobs)
    refs = run.pool.tensor(np.arange(3))
    z = torch.randn(5, 10)
    out = localized_samples(run, refs, z)
    assert out.shape == (3, 5, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    # alpha = 0 at generation: every reference gives the meta-decoder's images.
    plain = localized_samples(run, refs, z, alpha=0.0)
    assert torch.allclose(plain[0], meta_samples(run, z), atol=1e-6)
    assert torch.allclose(plain[1], plain[2])
    assert not torch.allclose(out[0], out[1])  # adapted decoders differ per reference
    rec = reconstructions(run, refs)
    assert rec.shape == refs.shape and not torch.allclose(rec, reconstructions(run, refs, False))
    tr = traversal(run, refs[0])
    assert tr.shape == (10, 9, 3, 32, 32)
    codes = represent(run, "meta")(blobs.images(np.arange(7)))
    assert codes.shape == (7, 10)
    adapted = represent(run, "adapted")(blobs.images(np.arange(7)))
    assert adapted.shape == (7, 10) and not np.allclose(codes, adapted)


def test_generation_rejects_bad_arguments(tmp_path, blobs):
    train(tiny(steps=2), tmp_path / "b", dataset=blobs, progress=False)
    run = load_run(tmp_path / "b", dataset=blobs)
    refs = run.pool.tensor(np.arange(2))
    with pytest.raises(ValueError, match="alpha"):
        localized_samples(run, refs, torch.randn(2, 10), alpha=-0.1)
    with pytest.raises(ValueError, match="references"):
        localized_samples(run, refs[:, :1], torch.randn(2, 10))
    with pytest.raises(ValueError, match="dtype"):
        localized_samples(run, (refs * 255).to(torch.uint8), torch.randn(2, 10))
    with pytest.raises(ValueError, match="k must be"):
        localized_samples(run, refs, torch.randn(2, 10), k=0)


def test_a_latent_bank_from_another_pool_is_refused_with_the_fix(blobs):
    """A checkpoint's bank must fit the pool it is restored into; a mismatch names the file
    to delete rather than searching a wrong bank."""
    from lvae.neighborhoods import make_neighborhood
    from lvae.pool import ImagePool

    nb = make_neighborhood("latent_knn", 3, refresh=5)
    pool = ImagePool(blobs, np.arange(40))
    nb.setup(pool, encode_means=lambda x: x.flatten(1)[:, :4])
    saved = nb.state()["bank"]
    assert saved.shape == (40, 4)
    with pytest.raises(ValueError, match=r"\(30, 4\).*\(40, 4\).*delete checkpoint.pt"):
        nb.load_state({"bank": saved[:30]})
    moved = saved + 1.0  # a bank from later in training: the index must search it
    nb.load_state({"bank": moved})
    assert np.array_equal(nb.state()["bank"], moved)
    _, idx = nb.index.search(np.ascontiguousarray(moved[:1]), 1)
    assert idx[0, 0] == 0
