"""The results store on hand-made run folders; the paper's numbers checked by hand."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from lvae.report import paper
from lvae.report.params import experiment_config
from lvae.report.results import (
    codes_comparison,
    collect,
    evidence_first,
    find_run,
    frechet_measure,
    frechet_sample,
    import_run,
    load_log,
    of_table,
    page_frames,
    paper_curve,
    paper_vs_ours,
    provenance,
    run_caption,
    run_state,
    select,
    summarize,
    sweep_frame,
    t_interval,
    training_logs,
    wide,
)


def make_run(out: Path, profile: str, alpha: float, seed: int, status: str = "completed",
             metrics: dict | None = None, beta: float = 1.0,
             neighborhood: str = "synthetic") -> Path:
    """A run folder as training and evaluation leave it (no model, no checkpoint)."""
    s = experiment_config(profile=profile, alpha=alpha, beta=beta, seed=seed,
                          neighborhood=neighborhood, out_dir=str(out))
    d = s.run_dir
    d.mkdir(parents=True)
    (d / "config.json").write_text(s.config.to_json())
    (d / "result.json").write_text(json.dumps({
        "status": status, "steps_done": 3, "wall_time_s": 1.5, "sec_per_step": 0.5,
        "provenance": {"commit": "abc123", "profile": profile, "seed": seed,
                       "machine": {"device": "cpu"}}}))
    (d / "log.jsonl").write_text('{"step": 1, "loss": 3.0}\n{"step": 2, "loss": 2.0}\n')
    if status == "completed":
        (d / "eval.json").write_text(json.dumps({"status": "completed", **(metrics or {})}))
    (d / "checkpoint.pt").write_bytes(b"not a checkpoint")
    return d


def ev(d_nocolor: float, fid: float = 50.0) -> dict:
    return {"dci_color": {"disentanglement": 0.4, "completeness": 0.3,
                          "informativeness": 0.5},
            "dci_nocolor": {"disentanglement": d_nocolor, "completeness": 0.2,
                            "informativeness": 0.6},
            "FD-factors": fid, "importance": [[0.1, 0.9]]}


def test_paper_numbers_by_hand():
    t1 = {r["label"]: r["values"] for r in paper.TABLE1}
    assert t1["alpha = 0 (Vanilla)"]["fid"] == 134.786
    assert t1["alpha = 1e-1"]["dci_nocolor.disentanglement"] == 0.945
    assert t1["alpha = 1"]["dci_nocolor.informativeness"] == 0.999
    assert t1["alpha = 1e-3"]["dci_color.completeness"] == 0.407
    assert t1["beta = 16"]["fid"] == 86.237
    assert t1["beta = 8"]["dci_nocolor.completeness"] == 0.547
    t2 = {r["label"]: r["values"] for r in paper.TABLE2}
    assert t2["alpha = 1e-2"]["dci_cars3d.disentanglement"] == 0.165
    assert t2["alpha = 1"]["dci_smallnorb.disentanglement"] == 0.255
    assert t2["alpha = 1"]["dci_cars3d.disentanglement"] == 0.080
    t5 = {r["label"]: r["values"] for r in paper.TABLE5}
    assert t5["l2 on input space"]["fid"] == 49.187
    assert t5["l2 on input space"]["dci_color.informativeness"] == 0.582
    assert t5["Sampling"] == t1["alpha = 1"] and t5["Vanilla VAE"] == t1["alpha = 0 (Vanilla)"]


def test_t_interval_by_hand():
    mean, half, n = t_interval([0.5, 0.6, 0.8])
    s = math.sqrt(((0.5 - 0.6333333) ** 2 + (0.6 - 0.6333333) ** 2 + (0.8 - 0.6333333) ** 2) / 2)
    assert n == 3 and mean == pytest.approx(0.6333333, abs=1e-6)
    assert half == pytest.approx(4.302653 * s / math.sqrt(3), rel=1e-5)  # t(0.975, df=2)
    assert half == pytest.approx(0.37946, abs=1e-4)
    assert math.isnan(t_interval([0.5])[1]) and t_interval([])[2] == 0
    assert t_interval([1.0, float("nan"), 3.0])[2] == 2


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, Path]:
    out, imported = tmp_path / "runs", tmp_path / "results"
    for seed, d in enumerate((0.5, 0.6, 0.8)):
        make_run(out, "smoke", 1.0, seed, metrics=ev(d, fid=40.0 + seed))
    make_run(out, "smoke", 0.0, 0, metrics=ev(0.1))
    make_run(out, "smoke", 100.0, 0, status="diverged")
    make_run(out, "smoke", 0.0, 0, beta=4.0, metrics=ev(0.3))
    make_run(imported, "cpu", 1.0, 0, metrics=ev(0.9))
    return out, imported


def test_collect_one_row_per_run(store):
    out, imported = store
    df = collect(out, imported=imported)
    assert len(df) == 7
    r = df[(df.run_id == "shapes3d-a1e+00-b1-synthetic-s1") & (df.source == "build")].iloc[0]
    assert (r.profile, r.status, r.seed, r.alpha, r.commit, r.device) == \
        ("smoke", "completed", 1, 1.0, "abc123", "cpu")
    assert r["dci_nocolor.disentanglement"] == 0.6 and r["FD-factors"] == 41.0
    assert "importance" not in df.columns  # lists stay in eval.json
    assert r.tables == "table1,table5,fig2,fig3,fig4"
    assert df[df.alpha == 100.0].status.tolist() == ["diverged"]
    assert len(collect(out, profile="smoke", imported=None)) == 6
    assert len(collect(tmp_missing := out / "nothing", imported=None)) == 0, tmp_missing


def test_imported_runs_keep_their_profile(store):
    out, imported = store
    df = collect(out, imported=imported)
    imp = df[df.source == "imported"]
    assert imp.profile.tolist() == ["cpu"] and imp["dci_nocolor.disentanglement"].item() == 0.9
    s = summarize(df, ["dci_nocolor.disentanglement"])
    a1 = s[s.config_id == "shapes3d-a1e+00-b1-synthetic"]
    assert set(zip(a1.profile, a1.source, a1.n, strict=True)) == {("smoke", "build", 3),
                                                                 ("cpu", "imported", 1)}


def test_import_run_copies_results_not_checkpoints(store, tmp_path: Path):
    out, _ = store
    dest = import_run(out / "smoke" / "shapes3d-a1e+00-b1-synthetic-s0", tmp_path / "kept")
    assert dest == tmp_path / "kept" / "smoke" / "shapes3d-a1e+00-b1-synthetic-s0"
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "eval.json", "log.jsonl",
                                                     "result.json"]
    assert collect(None, imported=tmp_path / "kept").source.tolist() == ["imported"]


def test_import_run_refuses_what_is_not_a_complete_result(store, tmp_path: Path):
    out, _ = store
    run = out / "smoke" / "shapes3d-a1e+00-b1-synthetic-s1"
    (run / "eval.json").write_text('{"status": "compl')  # a truncated file
    with pytest.raises(ValueError, match=r"no readable eval\.json.*evaluate it first"):
        import_run(run, tmp_path / "kept")
    (run / "eval.json").unlink()
    with pytest.raises(ValueError, match="evaluate it first"):
        import_run(run, tmp_path / "kept")
    (run / "result.json").write_text("{")
    with pytest.raises(FileNotFoundError, match=r"no readable result\.json"):
        import_run(run, tmp_path / "kept")
    assert not (tmp_path / "kept" / "smoke" / run.name).exists()


def test_reimport_replaces_the_folder_whole(store, tmp_path: Path):
    out, _ = store
    run = out / "smoke" / "shapes3d-a1e+00-b1-synthetic-s0"
    first = import_run(run, tmp_path / "kept", extra={"milestones/step_000010.json": b"{}"})
    assert (first / "milestones" / "step_000010.json").is_file()
    (first / "stale.txt").write_text("from an older import")
    again = import_run(run, tmp_path / "kept")
    assert again == first and not (again / "stale.txt").exists()
    assert not (again / "milestones").exists()  # nothing of the older import is left
    assert [p.name for p in again.parent.iterdir()] == [run.name]  # no staging left over


def test_summarize_interval(store):
    out, _ = store
    s = summarize(collect(out, imported=None))
    row = s[(s.config_id == "shapes3d-a1e+00-b1-synthetic")
            & (s.metric == "dci_nocolor.disentanglement")].iloc[0]
    assert (row.n, row.n_runs) == (3, 3)
    assert row["mean"] == pytest.approx(0.633333, abs=1e-6)
    assert row.ci95 == pytest.approx(0.37946, abs=1e-4)
    div = s[s.config_id == "shapes3d-a1e+02-b1-synthetic"].iloc[0]
    assert (div.n, div.n_diverged) == (0, 1) and math.isnan(div["mean"])


def test_paper_vs_ours_reads_each_profiles_own_frechet_measure(store):
    out, _ = store
    df = collect(out, imported=None)
    quick = df.assign(profile="quick", FID=df["FD-factors"] + 100.0,
                      **{"FD-factors": math.nan})
    t = paper_vs_ours(pd.concat([df, quick], ignore_index=True), "table1")
    fid = t[(t.row == "alpha = 1") & (t.metric == "fid")].set_index("profile")
    # the quick build's FID column must not blank the smoke (or study) runs' FD-factors
    assert fid.loc["smoke", "measure"] == "FD-factors"
    assert fid.loc["smoke", "ours_mean"] == pytest.approx(41.0)
    assert fid.loc["quick", "measure"] == "FID"
    assert fid.loc["quick", "ours_mean"] == pytest.approx(141.0)
    assert fid.loc["quick", "difference"] == pytest.approx(141.0 - fid.loc["quick", "paper"])
    assert math.isnan(fid.loc["smoke", "difference"])


def test_paper_vs_ours(store, tmp_path: Path):
    out, imported = store
    csv = tmp_path / "t1.csv"
    t = paper_vs_ours(collect(out, imported=imported), "table1", csv=csv)
    cell = t[(t.row == "alpha = 1") & (t.metric == "dci_nocolor.disentanglement")
             & (t.profile == "smoke")].iloc[0]
    assert cell.paper == 0.977 and cell.n == 3
    assert cell.ours == "0.633 ± 0.379 (n=3)"
    assert cell.difference == pytest.approx(0.633333 - 0.977, abs=1e-6)
    fid = t[(t.row == "alpha = 1") & (t.metric == "fid") & (t.profile == "smoke")].iloc[0]
    assert fid.measure == "FD-factors" and fid.ours_mean == pytest.approx(41.0)
    assert math.isnan(fid.difference)  # FD-factors minus the paper's FID would mean nothing
    div = t[(t.row == "alpha = 1e2") & (t.profile == "smoke")]
    assert set(div.ours) == {"diverged"} and set(div.paper_text) == {"diverged"}
    cpu = t[(t.row == "alpha = 1") & (t.metric == "dci_nocolor.disentanglement")
            & (t.profile == "cpu")].iloc[0]
    assert (cpu.source, cpu.ours) == ("imported", "0.900 (n=1)")
    missing = t[(t.row == "beta = 16") & (t.profile == "smoke")]
    assert set(missing.ours) == {"—"}
    beta4 = t[(t.row == "beta = 4") & (t.metric == "dci_nocolor.disentanglement")
              & (t.profile == "smoke")].iloc[0]
    assert beta4.ours_mean == 0.3
    w = wide(t, profile="smoke")
    assert list(w.index)[5:8] == ["alpha = 1e1", "alpha = 1e2", "beta = 2"] and len(w) == 11
    assert w.loc["alpha = 1", ("DCI w/o Color Disent.", "paper")] == "0.977"
    assert w.loc["alpha = 1", ("DCI w/o Color Disent.", "ours")] == "0.633 ± 0.379 (n=3)"
    assert w.loc["alpha = 1e2", ("FID", "ours")] == "diverged"
    assert wide(t, profile="cpu").loc["alpha = 1", ("FID", "ours")] == "50.000 (n=1)"
    back = pd.read_csv(csv)
    assert len(back) == len(t) and "ours" in back.columns
    # the evidence on top: a judging profile's runs, then the build's, then other imports
    pairs = list(dict.fromkeys(zip(t.profile, t.source, strict=True)))
    assert pairs == [("smoke", "build"), ("cpu", "imported")]
    groups = [("cpu", "imported"), ("quick", "build"), ("study", "imported")]
    assert sorted(groups, key=evidence_first) == [("study", "imported"), ("quick", "build"),
                                                  ("cpu", "imported")]
    empty = paper_vs_ours(collect(tmp_path / "none", imported=None), "table2")
    assert len(empty) == 4 * 2 and set(empty.ours) == {"—"}


def test_load_log(store):
    out, _ = store
    log = load_log(out / "smoke" / "shapes3d-a1e+00-b1-synthetic-s0")
    assert log.step.tolist() == [1, 2] and log.loss.tolist() == [3.0, 2.0]
    assert load_log(out / "missing").empty


def test_codes_comparison_pairs_meta_and_adapted_codes_of_the_same_run(tmp_path: Path):
    out = tmp_path / "runs"
    # adapted - meta per seed: +0.1, +0.2, +0.3 (a paired interval sees only that spread)
    for seed, (meta, adapted) in enumerate(((0.5, 0.6), (0.6, 0.8), (0.8, 1.1))):
        make_run(out, "smoke", 1.0, seed,
                 metrics={**ev(meta), "adapted": {"dci_nocolor": {"disentanglement": adapted}}})
    make_run(out, "smoke", 0.0, 0, metrics={**ev(0.1), "adapted": None})  # vanilla: no row
    c = codes_comparison(collect(out, imported=None), ["dci_nocolor.disentanglement",
                                                       "dci_color.disentanglement"])
    assert len(c) == 1  # alpha > 0 only; dci_color has no adapted value here
    r = c.iloc[0]
    assert (r.config_id, r.n) == ("shapes3d-a1e+00-b1-synthetic", 3)
    assert r.meta == pytest.approx(0.633333, abs=1e-6)
    assert r.meta_ci95 == pytest.approx(0.37946, abs=1e-4)  # as test_t_interval_by_hand
    assert r.adapted == pytest.approx(0.833333, abs=1e-6)
    # adapted 0.6, 0.8, 1.1: s = 0.2517, half = 0.625
    # differences 0.1, 0.2, 0.3: mean 0.2, s = 0.1, half = 4.302653 * 0.1 / sqrt(3)
    half = 4.302653 * 0.1 / math.sqrt(3)
    assert (r["diff"], r.diff_lo, r.diff_hi) == pytest.approx((0.2, 0.2 - half, 0.2 + half),
                                                            abs=1e-5)
    from lvae.report.figures import codes_table

    t = codes_table(c, {"dci_nocolor.disentanglement": "D w/o colour"}).data
    assert t.iloc[0].tolist() == ["α=1", "D w/o colour", "0.633\u00a0±\u00a00.379",
                                  "0.833\u00a0±\u00a00.625", "+0.200 [-0.048,\u00a0+0.448]", 3]


def test_provenance_names_budget_runs_wall_and_versions(store):
    out, imported = store
    build, both = page_frames(out, "smoke", imported=imported)
    assert len(build) == 6 and len(both) == 7  # + the committed cpu run
    rows = build[build.alpha == 1.0]
    d = Path(rows.run_dir.iloc[0])
    res = json.loads((d / "result.json").read_text())
    res["provenance"]["machine"].update(torch="2.13.0+cpu", numpy="2.4.6")
    (d / "result.json").write_text(json.dumps(res))
    p = provenance(build, "smoke")
    # 3 completed alpha = 1 runs + vanilla + beta 4 + 1 diverged, 1.5 s each (make_run)
    assert (p["runs"], p["wall"], p["commit"]) == ("6", "0.1 min", "abc123")
    assert (p["steps"], p["budget"], p["resolution"]) == ("6", "0.002%", "32x32")
    assert p["versions"] == "torch 2.13.0+cpu, numpy 2.4.6"
    assert provenance(build.iloc[:0], "smoke")["runs"] == "0"
    assert provenance(build.iloc[:0], "smoke")["commit"] == "none"


def test_real_data_runs_are_not_pooled_with_twin_runs(store):
    out, _ = store
    twin = out / "smoke" / "shapes3d-a1e+00-b1-synthetic-s0"
    real = twin.with_name(twin.name + "-real")
    real.mkdir()
    for name in ("result.json", "eval.json"):
        (real / name).write_bytes((twin / name).read_bytes())
    cfg = json.loads((twin / "config.json").read_text())
    (real / "config.json").write_text(json.dumps({**cfg, "data_path": "/data/3dshapes.h5"}))
    df = collect(out, imported=None)
    ids = df.set_index("run_id").config_id
    assert ids[real.name] != ids[twin.name] and ids[real.name].startswith(
        "shapes3d-a1e+00-b1-synthetic")
    s = summarize(df, ["dci_nocolor.disentanglement"])
    assert s[s.config_id == ids[twin.name]].n.item() == 3  # the twin's 3 seeds only


def test_a_run_with_changed_settings_is_selected_by_its_variant(store):
    """A reading of the diagnosis that keeps eq. 5's prior runs at a profile whose runs vary
    settings: its row carries the settings' hash (``variant``, the one in its run id), and
    ``select(variant=...)`` picks its runs alone."""
    from lvae.report.params import settings_hash

    out, _ = store
    twin = out / "smoke" / "shapes3d-a1e+00-b1-synthetic-s0"
    cfg = {**json.loads((twin / "config.json").read_text()), "profile": "reading",
           "adapted_prior_sigma": 0.01}
    variant = settings_hash(cfg)
    kept = out / "reading" / f"{twin.name}-c{variant}"
    kept.mkdir(parents=True)
    for name in ("result.json", "eval.json"):
        (kept / name).write_bytes((twin / name).read_bytes())
    (kept / "config.json").write_text(json.dumps(cfg))
    df = collect(out, imported=None)
    row = df.set_index("run_id").loc[kept.name]
    assert (row.variant, row.profile) == (variant, "reading")
    assert pd.isna(df.set_index("run_id").loc[twin.name].variant)
    assert select(df, alpha=1.0, variant=variant).run_id.tolist() == [kept.name]
    assert select(df, alpha=1.0, variant="00000000").empty
    assert kept.name not in select(df, alpha=1.0, profile="smoke").run_id.tolist()


# --------------------------------------------------------------------------- one selector


def test_one_selector_for_tables_claims_and_figures(store):
    """select is the one definition of a configuration's runs: a vanilla row matches
    whatever the neighbourhood field says, another loss scale is another configuration,
    and find_run / run_state / the tables all see the same runs."""
    out, imported = store
    df = collect(out, imported=imported)
    a1 = select(df, alpha=1.0)
    assert sorted(zip(a1.source, a1.seed, strict=True)) == [
        ("build", 0), ("build", 1), ("build", 2), ("imported", 0)]
    assert len(select(df, alpha=1.0, source="build", seed=2)) == 1
    assert len(select(df, alpha=1.0, profile="cpu")) == 1
    assert select(df, alpha=1.0, neighborhood="input_l2").empty
    assert len(select(df, alpha=1.0, neighborhood=None)) == 4
    vanilla = df[(df.alpha == 0.0) & (df.beta == 1.0)].index
    odd = df.assign(neighborhood=df.neighborhood.where(~df.index.isin(vanilla), "input_l2"))
    assert len(select(odd, alpha=0.0)) == 1  # alpha = 0: the neighbourhood is unused
    summed = df.assign(reduction="sum")
    assert select(summed, alpha=1.0).empty and len(select(summed, alpha=1.0, reduction="sum"))
    assert select(None).empty and list(select(df.iloc[:0], alpha=1.0).columns) == list(df.columns)
    # the table's cell is the selector's runs
    cell = paper_vs_ours(df, "table1")
    cell = cell[(cell.row == "alpha = 1") & (cell.metric == "fid") & (cell.source == "build")]
    assert cell.n.item() == len(select(df, alpha=1.0, source="build"))


def test_find_run_prefers_shipped_models_then_the_longest_build_run(store):
    out, imported = store
    df = collect(out, imported=imported)
    # no model.pt in the imported run: the build's lowest seed with a checkpoint
    assert Path(find_run(df, alpha=1.0)).name == "shapes3d-a1e+00-b1-synthetic-s0"
    shipped = Path(select(df, alpha=1.0, source="imported").run_dir.item())
    (shipped / "model.pt").write_bytes(b"weights")
    assert find_run(df, alpha=1.0) == str(shipped)
    assert Path(find_run(df, alpha=1.0, sources=("build",))).parent.name == "smoke"
    assert find_run(df, alpha=1.0, seed=2, sources=("build",)).endswith("-s2")
    longer = df.assign(steps=df.steps.where(df.seed != 1, 10**6))
    assert find_run(longer, alpha=1.0, sources=("build",)).endswith("-s1")
    assert find_run(df, alpha=100.0) is None and find_run(None) is None
    assert (run_state(df, alpha=100.0), run_state(df, alpha=1.0),
            run_state(df, alpha=1e-3)) == ("diverged", "completed", "no run")
    assert run_caption(shipped) == "cpu, 20,000 steps, seed 0"
    # a study run of the same length beats the pilot's lr 1e-4 arm (profile cpu)
    study_dir = shipped.parent.parent / "study" / shipped.name
    shutil.copytree(shipped, study_dir)
    row = select(df, alpha=1.0, source="imported").assign(profile="study",
                                                          run_dir=str(study_dir))
    both = pd.concat([df, row], ignore_index=True)
    assert find_run(both, alpha=1.0) == str(study_dir)


def test_page_lookups(store):
    out, _ = store
    build = collect(out, imported=None)
    assert len(of_table(build, "table5")) == 4 and len(of_table(build, "table1")) == 6
    assert of_table(build.iloc[:0], "table1").empty
    logs = training_logs(build, "table1")
    assert list(logs) == ["α=0", "β=4", "α=1", "α=100 (diverged)"]
    assert logs["α=1"].loss.tolist() == [3.0, 2.0]
    cmp = paper_vs_ours(build, "table1")
    assert frechet_measure(cmp) == "FD-factors"
    assert frechet_measure(paper_vs_ours(collect(out / "none", imported=None), "table1")) == "none"
    sweep = sweep_frame(cmp, "dci_nocolor.disentanglement")
    assert sweep.set_index("alpha")["mean"].to_dict() == pytest.approx(
        {0.0: 0.1, 1.0: 0.633333, 100.0: math.nan}, nan_ok=True, abs=1e-6)
    assert paper_curve("dci_nocolor.disentanglement")[1.0] == 0.977


def test_frechet_sample_states_the_distance_its_sample_and_cost():
    df = pd.DataFrame({"source": ["build", "build", "build", "imported"],
                       "frechet.name": ["FID", "FID", None, "FD-factors"],
                       "sample_counts.frechet_per_side": [100, 100, 0, 5000],
                       "frechet.seconds": [11.0, 13.0, None, 2.0]})
    assert frechet_sample(df) == "FID on 100 images per side, about 12 s per run"
    assert frechet_sample(df, "imported") == (
        "FD-factors on 5,000 images per side, about 2 s per run")
    assert frechet_sample(df.iloc[2:3]) == "no runs"
    assert frechet_sample(pd.DataFrame({"source": ["build"]})) == "no runs"


def test_paper_vs_ours_keeps_each_seeds_value_for_the_figures(store, tmp_path: Path):
    """The per-seed points the figures draw beside a mean: the completed runs' values in
    seed order (the diverged run has none), written to the CSV joined by ';'."""
    out, _ = store
    csv = tmp_path / "t1.csv"
    t = paper_vs_ours(collect(out, imported=None), "table1", csv=csv)
    key = (t.metric == "dci_nocolor.disentanglement") & (t.profile == "smoke")
    cell = t[key & (t.row == "alpha = 1")].iloc[0]
    assert cell.ours_values == (0.5, 0.6, 0.8)  # make_run's seeds 0, 1, 2 in `store`
    assert cell.ours_mean == pytest.approx(sum(cell.ours_values) / 3)
    assert t[key & (t.row == "alpha = 1e2")].iloc[0].ours_values == ()
    back = pd.read_csv(csv, keep_default_na=False)
    row = back[(back.row == "alpha = 1") & (back.metric == "dci_nocolor.disentanglement")]
    assert [float(v) for v in row.ours_values.item().split(";")] == [0.5, 0.6, 0.8]
    sweep = sweep_frame(t, "dci_nocolor.disentanglement").set_index("alpha")
    assert sweep.loc[1.0, "values"] == (0.5, 0.6, 0.8) and sweep.loc[0.0, "values"] == (0.1,)
