"""lvae.report.shipped: a model the repository ships loads in one call, from the name a reader has
(run id, profile/run_id, or the book's short name), and only if it is the file shipped."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lvae
from lvae.data import to_tensor
from lvae.generation import localized_samples
from lvae.report.results import IMPORTED_DIR
from lvae.report.shipped import (
    find_shipped,
    load_shipped,
    parse_short_name,
    sha256_file,
    shipped_folders,
    short_name,
)
from lvae.report.study import z_share

VANILLA = "study/shapes3d-a0e+00-b1-synthetic-s0"
LOCAL = "study/shapes3d-a1e+00-b1-synthetic-s0"

pytestmark = pytest.mark.skipif(not (IMPORTED_DIR / VANILLA / "model.pt").is_file(),
                                reason="the repository's results/ has no shipped model")


def _references_and_codes(run, n_refs: int, n_codes: int, seed: int = 0):
    """Held-out references and prior codes, drawn as lvae.report.study.measures' Figure 3 grid
    draws them."""
    rs = np.random.RandomState(seed)
    idx = np.sort(run.heldout[rs.choice(len(run.heldout), n_refs, replace=False)])
    z = rs.standard_normal((n_codes, run.arch.latent_dim)).astype(np.float32)
    return to_tensor(run.dataset.images(idx)), torch.from_numpy(z)


def _copy_run(src: Path, dest: Path) -> Path:
    """The files load_run reads, copied (the pictures and log are not needed)."""
    dest.mkdir(parents=True)
    for n in ("config.json", "model.pt", "result.json", "provenance.json"):
        shutil.copy2(src / n, dest / n)
    return dest


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize(("name", "expected_zshare"), [(VANILLA, 1.0), (LOCAL, 0.0)])
def test_a_shipped_model_loads_and_draws_a_localized_generation(name, expected_zshare):
    run = load_shipped(name)
    folder = IMPORTED_DIR / name
    assert run.run_dir == folder and run.status == "completed"
    assert run.step == json.loads((folder / "config.json").read_text())["steps"]
    shipped = torch.load(folder / "model.pt", map_location="cpu", weights_only=False)["model"]
    for k, v in run.model.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, shipped[k].float()), k

    refs, z = _references_and_codes(run, 3, 4)
    images = localized_samples(run, refs, z)
    assert images.shape == (3, 4, *run.arch.image_shape)
    assert torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    # the trained model, not an initialisation: the vanilla VAE ignores the reference
    # (z-share 1), the shipped alpha = 1 model copies it (its milestones' z-share ~1e-4)
    assert z_share(images.numpy())["z_share"] == pytest.approx(expected_zshare, abs=0.05)


def test_names_a_reader_has_find_the_same_folder():
    folder = IMPORTED_DIR / LOCAL
    for name in ("shapes3d-a1e+00-b1-synthetic-s0", LOCAL, "alpha=1", "α=1", "alpha = 1.0",
                 "a=1 (synthetic)"):
        assert find_shipped(name) == folder, name
    assert find_shipped("alpha=1", seed=2) == IMPORTED_DIR / "study/shapes3d-a1e+00-b1-synthetic-s2"
    assert find_shipped("beta=16") == IMPORTED_DIR / "study/shapes3d-a0e+00-b16-synthetic-s0"
    # the vanilla VAE is shipped by the study and by the pilot's cpu profile: the study's
    # is the one the book means, profile= picks the other
    assert find_shipped("vanilla") == IMPORTED_DIR / VANILLA
    assert find_shipped("shapes3d-a0e+00-b1-synthetic-s0") == IMPORTED_DIR / VANILLA
    if (IMPORTED_DIR / "cpu/shapes3d-a0e+00-b1-synthetic-s0").is_dir():
        assert (find_shipped("vanilla", profile="cpu")
                == IMPORTED_DIR / "cpu/shapes3d-a0e+00-b1-synthetic-s0")
    # every shipped model answers to its own short name, or (several runs of a profile
    # sharing it: the diagnosis's arms) the error names it among the candidates
    keys = {}
    for f in shipped_folders(with_model=False):
        cfg = json.loads((f / "config.json").read_text())
        keys.setdefault((f.parent.name, short_name(cfg), cfg["seed"]), []).append(f)
    for f in shipped_folders():
        cfg = json.loads((f / "config.json").read_text())
        key = (f.parent.name, short_name(cfg), cfg["seed"])
        if len(keys[key]) == 1:
            assert find_shipped(key[1], seed=key[2], profile=key[0]) == f
        else:
            with pytest.raises(ValueError, match="matches several") as err:
                find_shipped(key[1], seed=key[2], profile=key[0])
            assert f"{f.parent.name}/{f.name}" in str(err.value)


@pytest.mark.parametrize(("name", "want"), [
    ("vanilla", {"alpha": 0.0, "beta": 1.0, "neighborhood": None}),
    ("alpha=1", {"alpha": 1.0, "beta": 1.0, "neighborhood": None}),
    ("Alpha=1e-1", {"alpha": 0.1, "beta": 1.0, "neighborhood": None}),
    ("β=16", {"alpha": 0.0, "beta": 16.0, "neighborhood": None}),
    ("alpha=1,beta=4", {"alpha": 1.0, "beta": 4.0, "neighborhood": None}),
    ("alpha=1 (input_l2)", {"alpha": 1.0, "beta": 1.0, "neighborhood": "input_l2"}),
    ("alpha", None), ("alpha=1x", None), ("hello", None), ("", None),
])
def test_short_names_parse(name, want):
    assert parse_short_name(name) == want


def test_an_unknown_name_lists_what_is_available():
    for name in ("alpha=42", "no-such-run", "study/no-such-run", "a/b/c"):
        with pytest.raises(ValueError, match="no shipped run") as err:
            load_shipped(name)
        msg = str(err.value)
        assert repr(name) in msg and VANILLA in msg and LOCAL in msg
        assert "'vanilla'" in msg and "'alpha=1'" in msg  # the short names too
    with pytest.raises(ValueError, match="with seed 7"):
        find_shipped("alpha=1", seed=7)
    with pytest.raises(ValueError, match="already names one"):
        find_shipped(LOCAL, seed=1)


def test_a_run_shipped_without_a_model_says_why():
    diverged = [f for f in shipped_folders(with_model=False) if not (f / "model.pt").exists()]
    if not diverged:
        pytest.skip("no shipped run without a model")
    with pytest.raises(ValueError, match=r"has no model\.pt: the run is diverged"):
        find_shipped(f"{diverged[0].parent.name}/{diverged[0].name}")


def test_hidden_folders_are_refused(tmp_path: Path):
    """Hidden folders are replace_folder's staging and replaced copies: never a run."""
    _copy_run(IMPORTED_DIR / VANILLA, tmp_path / ".x")
    _copy_run(IMPORTED_DIR / VANILLA, tmp_path / "study" / ".x")
    for name in (".x", "study/.x", "study/.x/"):
        with pytest.raises(ValueError, match="hidden folder"):
            load_shipped(name, root=tmp_path)
    assert shipped_folders(tmp_path, with_model=False) == []
    with pytest.raises(ValueError, match=r"no shipped run .*\(none"):
        load_shipped("vanilla", root=tmp_path)  # the hidden copy is not found either


@pytest.mark.usefixtures("one_torch_thread")
def test_weights_that_differ_from_the_recorded_hash_are_refused(tmp_path: Path):
    run_id = Path(VANILLA).name
    folder = _copy_run(IMPORTED_DIR / VANILLA, tmp_path / "study" / run_id)
    prov = json.loads((folder / "provenance.json").read_text())
    (folder / "provenance.json").write_text(json.dumps({**prov, "sha256": {"model.pt": "0" * 64}}))
    with pytest.raises(ValueError, match=r"model\.pt does not match the sha256") as err:
        load_shipped("vanilla", root=tmp_path)
    assert f"git checkout -- {folder / 'model.pt'}" in str(err.value)

    right = {"model.pt": sha256_file(folder / "model.pt"),
             "config.json": sha256_file(folder / "config.json")}
    (folder / "provenance.json").write_text(json.dumps({**prov, "sha256": right}))
    assert load_shipped(run_id, root=tmp_path).run_dir == folder
    (folder / "config.json").write_text((folder / "config.json").read_text() + "\n")
    with pytest.raises(ValueError, match=r"config\.json does not match"):
        load_shipped(run_id, root=tmp_path)


def test_lvae_exports_load_shipped_lazily():
    assert lvae.load_shipped is load_shipped
    code = ("import sys, lvae; assert 'torch' not in sys.modules, 'import lvae loads torch'; "
            "assert 'lvae.report.results' not in sys.modules, 'import lvae loads the report'")
    subprocess.run([sys.executable, "-c", code], check=True)
