"""lvae.report.cards: every shipped model has a card, generated from its files: each section is
there, the numbers are the files' numbers, and an alpha > 0 model says what its z-share
means for its localized generations."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from lvae.model import VAE, Architecture
from lvae.report.cards import CARD_NAME, card_fields, model_card, write_cards
from lvae.report.results import IMPORTED_DIR
from lvae.report.shipped import shipped_folders

VANILLA = IMPORTED_DIR / "study/shapes3d-a0e+00-b1-synthetic-s0"
LOCAL = IMPORTED_DIR / "study/shapes3d-a1e+00-b1-synthetic-s0"

pytestmark = pytest.mark.skipif(not (LOCAL / "model.pt").is_file(),
                                reason="the repository's results/ has no shipped model")


def _read(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text())


def _g(x: float) -> str:
    return f"{x:.3g}"


def _last_zshare(folder: Path) -> tuple[int, float]:
    steps = {int(re.search(r"step_(\d+)", p.name).group(1)): p
             for p in (folder / "milestones").glob("step_*.json")}
    last = max(steps)
    return last, json.loads(steps[last].read_text())["zshare"]["z_share"]


@pytest.mark.parametrize("folder", [LOCAL, VANILLA], ids=["alpha=1", "vanilla"])
def test_a_card_lists_every_field_with_the_files_numbers(folder: Path):
    card = model_card(folder)
    heads = re.findall(r"^## (.+)$", card, re.MULTILINE)
    assert heads == card_fields
    cfg, ev = _read(folder, "config.json"), _read(folder, "eval.json")
    prov = _read(folder, "provenance.json")

    # the model: Table 3 at the run's resolution, its parameter count, float16 storage
    arch = Architecture(cfg["resolution"], 3, cfg["latent_dim"])
    n_params = sum(p.numel() for p in VAE(arch).parameters())
    shipped = torch.load(folder / "model.pt", map_location="cpu", weights_only=False)["model"]
    assert n_params == sum(t.numel() for t in shipped.values())
    assert f"**{n_params:,} parameters**" in card and "float16" in card
    assert all(f"`{name.rsplit('.', 1)[0]}`" in card for name in shipped)
    # the data and the budget
    assert "procedural twin" in card and "not the real dataset" in card
    assert f"{cfg['resolution']}x{cfg['resolution']}" in card
    assert f"{cfg['pool_size']:,} images" in card
    for row in (f"| steps | {prov['steps_done']} of {cfg['steps']} (completed) |",
                f"Adam, lr {cfg['lr']:g}", f"| batch | {cfg['batch_size']} anchors",
                f"| K (neighbours per anchor) | {cfg['k']} |",
                f"| alpha (inner step) | {cfg['alpha']:g}",
                f"| beta (KL weight) | {cfg['beta']:g} |",
                f"| neighbourhood | `{cfg['neighborhood']}` |",
                f"| reduction | `{cfg['reduction']}`", f"| profile | `{cfg['profile']}`"):
        assert row in card, row
    # the metrics, read from eval.json and the last milestone
    for key in ("dci_color", "dci_nocolor"):
        cells = [_g(ev[key][m]) for m in ("disentanglement", "completeness", "informativeness")]
        assert re.search(r"\| meta encoder \| " + r" \| ".join(
            re.escape(c) + r"( ± [^|]+)?" for c in cells) + r" \|", card), key
    fr = ev["frechet"]
    assert f"Fréchet distance, **{fr['name']}**: {_g(fr[fr['name']])}" in card
    assert f"MIG: {_g(ev['mig'])}" in card
    step, zs = _last_zshare(folder)
    assert f"z-share at the last milestone (step {step}): **{_g(zs)}**" in card
    # how to load it
    assert f'load_shipped("study/{folder.name}")' in card


def test_an_alpha_1_card_warns_what_its_z_share_means():
    card = model_card(LOCAL)
    step, zs = _last_zshare(LOCAL)
    assert zs < 0.05  # the shipped alpha = 1 run copies its references
    limits = card.split("## Known limits", 1)[1].split("\n## ", 1)[0]
    assert f"z-share {_g(zs)} at step {step}" in limits
    assert "copies its reference whatever z is" in limits
    assert "This model is in that regime" in limits
    assert "| adapted encoder |" in card  # DCI on the adapted codes too
    vanilla = model_card(VANILLA).split("## Known limits", 1)[1]
    assert "in that regime" not in vanilla and "z-share 1 by construction" in vanilla


@pytest.mark.usefixtures("one_torch_thread")
def test_the_cards_loading_code_runs():
    code = model_card(LOCAL).split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(code, scope)
    assert scope["images"].shape == (4, 8, 3, 32, 32)
    assert scope["run"].run_dir == LOCAL


def test_write_cards_writes_one_beside_each_finished_model(tmp_path: Path):
    shutil.copytree(LOCAL, tmp_path / "study" / LOCAL.name)
    shutil.copytree(VANILLA, tmp_path / "study" / VANILLA.name)
    shutil.copytree(VANILLA, tmp_path / "study" / f".{VANILLA.name}.old")  # a stale copy
    shutil.copytree(VANILLA, tmp_path / "progress" / "study" / VANILLA.name)  # still training
    diverged = [f for f in shipped_folders(with_model=False) if not (f / "model.pt").exists()]
    for f in diverged[:1]:
        shutil.copytree(f, tmp_path / "study" / f.name)
    paths = write_cards(tmp_path)
    assert sorted(paths) == sorted(tmp_path / "study" / f.name / CARD_NAME
                                   for f in (LOCAL, VANILLA))
    assert all(p.read_text() == model_card(p.parent) for p in paths)
    before = [p.stat().st_mtime_ns for p in paths]
    assert write_cards(tmp_path) == paths
    assert [p.stat().st_mtime_ns for p in paths] == before  # unchanged: not rewritten
    for f in diverged[:1]:
        with pytest.raises(FileNotFoundError, match=r"no model\.pt"):
            model_card(tmp_path / "study" / f.name)


def test_the_committed_cards_are_current():
    """A card is generated, never edited: the one in results/ is what model_card writes
    now. After shipping a run again (which replaces its folder), regenerate them all with
    ``python -m lvae.report.cards``."""
    finished = [f for f in shipped_folders()
                if _read(f, "result.json").get("status") == "completed"]
    assert finished
    for f in finished:
        card = f / CARD_NAME
        assert card.is_file(), f"{card} is missing: run `python -m lvae.report.cards`"
        assert card.read_text() == model_card(f), \
            f"{card} is stale: run `python -m lvae.report.cards`"


def test_a_nested_card_is_the_card_one_level_below_a_page_section():
    """On the book's Model cards page the card sits under a ``##`` section: its title is
    ``###``, its fields ``####`` in card_fields' order, every other line unchanged."""
    from lvae.report.cards import nested_card

    card, nested = model_card(LOCAL), nested_card(LOCAL)
    assert re.findall(r"^#### (.+)$", nested, re.MULTILINE) == card_fields
    assert re.findall(r"^### (.+)$", nested, re.MULTILINE) == \
        re.findall(r"^# (.+)$", card, re.MULTILINE)
    assert not re.search(r"^##? ", nested, re.MULTILINE)
    changed = [(a, b) for a, b in zip(card.splitlines(), nested.splitlines(), strict=True)
               if a != b]
    assert all(b == "##" + a and a.startswith("#") for a, b in changed)
    assert len(changed) == 1 + len(card_fields)
    with pytest.raises(ValueError, match="1 to 5"):
        nested_card(LOCAL, top=6)


def test_a_card_offers_its_short_name_only_where_it_loads_that_run(tmp_path: Path):
    """Two readings at the reading profile share the short name alpha=1 (latent_knn) (one
    keeps eq. 5's prior, one trains at lr 1e-4): load_shipped refuses that name, so their
    cards must not offer it; alone in a root, the same run's card does, and the name loads
    it."""
    from lvae.report.shipped import load_shipped

    pair = [IMPORTED_DIR / "reading" / f"shapes3d-a1e+00-b1-latent_knn-s0-{h}"
            for h in ("c8c864811", "cfb653d15")]
    if not all((f / "model.pt").is_file() for f in pair):
        pytest.skip("the two latent-kNN readings' seed 0 are not shipped")
    both, alone = tmp_path / "both", tmp_path / "alone"
    for f in pair:
        shutil.copytree(f, both / "reading" / f.name)
    shutil.copytree(pair[0], alone / "reading" / pair[0].name)
    for f in pair:
        card = model_card(both / "reading" / f.name)
        assert "matches more than one shipped run of the `reading` profile" in card
        assert "loads the same run" not in card
    card = model_card(alone / "reading" / pair[0].name)
    assert ('`load_shipped("alpha=1 (latent_knn)", seed=0, profile="reading")` loads the same '
            "run") in card
    run = load_shipped("alpha=1 (latent_knn)", alone, seed=0, profile="reading")
    assert run.run_dir == alone / "reading" / pair[0].name
