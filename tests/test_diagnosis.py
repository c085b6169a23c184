"""The diagnosis's rule, tables and statuses, on hand-made milestone frames."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lvae import runfolder
from lvae.records import Eval
from lvae.report import diagnosis, figures, study


def milestones(steps, kl, share, state="finished", diverged_at=None, run="r"):
    return pd.DataFrame({"run_id": run, "profile": "diagnosis", "state": state,
                         "step": steps, "kl": kl, "local_share": share,
                         "z_share": [0.1] * len(steps), "copy_distance": [0.01] * len(steps),
                         "dci_nocolor.disentanglement": [0.05] * len(steps),
                         "diverged_at": diverged_at})


@pytest.mark.parametrize("kl,share,want", [
    (20.0, 3.0, "escapes"),  # the vanilla VAE's readout
    (3.6, 0.26, "escapes"),  # just above both lines
    (3.4, 3.0, "memorises"),  # z moves the image but carries under 3.5 nats
    (10.3, 0.065, "memorises"),  # informative codes the adapted decoder ignores
    (0.01, 0.0, "memorises"),  # the study's reading
])
def test_the_rule_by_hand(kl, share, want):
    fr = milestones([250, 5000], [50.0, kl], [9.0, share])  # judged at 5k, not at 250
    assert diagnosis.outcome(fr)["outcome"] == want


def test_judged_at_the_last_milestone_up_to_the_screen_step():
    fr = milestones([2000, 5000, 10_000], [0.1, 0.1, 9.0], [0.0, 0.0, 2.0])
    o = diagnosis.outcome(fr)
    assert (o["step"], o["outcome"]) == (5000, "memorises")  # 10k is not the screen
    assert diagnosis.outcome(fr, step=20_000)["outcome"] == "escapes"


def test_divergence_and_runs_still_training():
    died = milestones([250, 500], [9.0, 9.0], [2.0, 2.0], diverged_at=731)
    assert diagnosis.outcome(died)["outcome"] == "diverges at step 731"
    late = milestones([5000], [0.1], [0.0], diverged_at=10_493)  # after the screen
    assert diagnosis.outcome(late)["outcome"] == "memorises"
    going = milestones([250, 500], [9.0, 9.0], [2.0, 2.0], state="training")
    assert diagnosis.outcome(going)["outcome"] == "in progress"
    old = milestones([5000], [np.nan], [np.nan])  # milestones from before the readout
    assert diagnosis.outcome(old)["outcome"] == "no readout"


def test_reproduction_status_follows_verdict_and_screen():
    arms = pd.DataFrame({"arm": ["control: vanilla VAE", "a", "b", "c"],
                         "outcome": ["escapes", "memorises", "diverges at step 13",
                                     "in progress"]})
    def row(value, tested=True):
        return {"value": value, "tested": tested}

    assert diagnosis.reproduction_status(row("supports"), arms) \
        == "reproduced under the study's reading"
    assert diagnosis.reproduction_status(row("cannot decide", False), arms) == "not tested"
    status = diagnosis.reproduction_status(row("cannot decide"), arms)
    assert status.startswith("not reproduced under any reading tried")
    assert "2 others (1 memorise, 1 diverge); 1 still training" in status  # no control
    arms.loc[1, "outcome"] = "escapes"
    status = diagnosis.reproduction_status(row("contradicts"), arms)
    assert status == ("not reproduced under the study's reading; candidate: a (escaped the "
                      "screen; its 20k-step seeds next); 1 other screened reading memorises "
                      "or diverges; 1 still training")
    assert diagnosis.screen_summary(diagnosis.screened(arms)) == (
        "3 other readings shipped so far: 1 escapes memorisation, 0 memorise, 1 diverges, "
        "1 still training")


def test_every_arm_names_a_known_choice_and_every_run_id_is_unique():
    keys = {c.key for c in diagnosis.CHOICES} | {"control"}
    assert {sr.choice for sr in study.DIAGNOSIS} <= keys
    names = [sr.name for sr in study.DIAGNOSIS]
    assert len(names) == len(set(names))  # one folder per arm
    assert all(sr.arm for sr in study.DIAGNOSIS)


def test_a_combination_changes_two_choices_and_every_other_screen_one():
    """What the plan's rows claim: a combination changes two of the study's choices at
    once (read from the runs' training configurations against the study-reading
    control's), a screening arm of one choice changes only what that choice governs."""
    def changed(sr: study.StudyRun) -> set[str]:
        base, c = (study.setup("runs", x).config for x in (control, sr))
        return {f.name for f in dataclasses.fields(c)
                if getattr(c, f.name) != getattr(base, f.name)}
    control = next(sr for sr in study.DIAGNOSIS if sr.arm == study.STUDY_CONTROL)
    governs = {"lr": {"lr", "alpha"}, "scale": {"reduction", "alpha"},
               "order": {"first_order", "lr"}, "algorithm1": {"algorithm1_literal"},
               "noise": {"gaussian_sigma", "likelihood"}, "prior": {"adapted_prior_sigma"},
               "neighbourhood": {"neighborhood"},
               # the 64x64 vanilla control (alpha 0) and the 64x64 arm's second seed
               "resolution": {"resolution", "alpha", "seed"}}
    combined = [sr for sr in study.DIAGNOSIS if sr.choice == "combined"
                and sr.profile == "diagnosis"]  # the screens, not a reading's seeds
    assert len(combined) == 5
    for sr in combined:
        assert len(changed(sr) - {"alpha"}) == 2, sr.arm
    for sr in study.DIAGNOSIS:
        if sr.profile == "diagnosis" and sr.choice in governs:
            assert changed(sr) <= governs[sr.choice], sr.arm


def test_the_controls_are_the_screens_yardsticks_and_no_reading_is_one():
    # The plan's controls: the three named yardsticks, the vanilla VAE at the paper's lr
    # (whose choice is "lr", beside the reading it calibrates) and at the paper's
    # resolution (choice "resolution"), and the baselines a reading trains for itself at
    # its own settings (the 64x64 reading's vanilla VAE and beta = 16); nothing else is.
    controls = {sr.arm for sr in study.DIAGNOSIS if study.is_control(sr.arm)}
    own = {sr.arm for r in study.READINGS for sr in r.baseline_runs()}
    assert len(own) == 6 and all("64x64, 20k steps, seed" in a for a in own)
    assert controls == {study.VANILLA_CONTROL, study.BETA_CONTROL, study.STUDY_CONTROL,
                        "control: vanilla VAE, lr 1e-4", study.VANILLA_64_CONTROL, *own}
    assert {sr.arm for sr in study.DIAGNOSIS if sr.choice == "control"} < controls
    assert not any(study.is_control(r.name) or study.is_control(r.label)
                   for r in study.READINGS)


def test_a_run_that_diverged_before_its_first_milestone_is_in_the_frame(tmp_path: Path):
    sr = next(s for s in study.DIAGNOSIS if s.arm == "first order, lr 1e-3")
    d = tmp_path / sr.profile / sr.run_id
    d.mkdir(parents=True)
    (d / "provenance.json").write_text(json.dumps({"status": "diverged", "steps_done": 13,
                                                   "lr": 1e-3}))
    fr = diagnosis.frame(tmp_path)
    assert fr["arm"].tolist() == [sr.arm]
    table = diagnosis.arm_table(fr)
    assert table["outcome"].tolist() == ["diverges at step 13"]
    row = diagnosis.choice_table(fr).set_index("choice").loc["First or second order"]
    assert "first order, lr 1e-3: diverges at step 13" in row["tried (outcome)"]
    assert "first order, lr 1e-4" in row["planned"]


def test_the_arms_table_lists_the_controls_then_each_choices_arms_together(tmp_path: Path):
    # four diverged runs written in the plan's order (noise, scale, a control, prior)
    picks = [next(s for s in study.DIAGNOSIS if s.arm == a) for a in (
        "Gaussian observation model, sigma = 0.1", "loss summed over pixels, alpha = 0.1",
        study.STUDY_CONTROL, "eq. 5's prior kept, sigma = 0.03")]
    for i, sr in enumerate(picks):
        d = tmp_path / sr.profile / sr.run_id
        d.mkdir(parents=True)
        (d / "provenance.json").write_text(json.dumps({"status": "diverged",
                                                       "steps_done": 10 + i}))
    table = diagnosis.arm_table(diagnosis.frame(tmp_path))
    # the page's choice order: loss scale, noise, prior (CHOICES), the control first
    assert table["arm"].tolist() == [picks[2].arm, picks[1].arm, picks[0].arm, picks[3].arm]
    assert table["choice"].tolist() == ["control", "Loss scale (what alpha means)",
                                        "The synthetic neighbourhood's noise",
                                        "Eq. 5's prior on the local parameters"]


def test_findings_say_each_outcome_with_the_numbers_read_readings_first():
    arms = pd.DataFrame({"arm": ["control: vanilla VAE", "prior"], "step": [5000, 5000],
                         "KL": [23.27, 6.0], "local share": [4.074, 0.4],
                         "outcome": ["escapes", "escapes"]})
    assert diagnosis.findings(arms) == [
        "**prior**: escapes (KL 6.00 nats, local share 0.400, at step 5,000)",
        "**control: vanilla VAE**: escapes (KL 23.27 nats, local share 4.074, at step 5,000)"]


def test_findings_say_when_an_arm_neither_copies_nor_varies():
    """The paper's settings as printed (summed loss, alpha = 1, lr 1e-4) leave rows 0.26
    from their references, further than the vanilla VAE's 0.15 that ignore them: the rule
    says memorises (local share 0), and the line must not let that read as a copy."""
    arms = pd.DataFrame({"arm": ["printed", "copier", study.VANILLA_CONTROL],
                         "step": [5000] * 3, "KL": [1.7, 0.1, 23.0],
                         "local share": [0.0, 0.0, 4.1], "copy": [0.262, 0.004, 0.150],
                         "outcome": ["memorises", "memorises", "escapes"]})
    lines = diagnosis.findings(arms)
    assert lines[0] == ("**printed**: memorises (KL 1.70 nats, local share 0.000, at step "
                        "5,000; copy distance 0.262, above the vanilla VAE's 0.150: its rows "
                        "are neither its references nor varied images)")
    assert "copy distance" not in lines[1] and "copy distance" not in lines[2]


def test_findings_say_when_an_escaping_arms_rows_ignore_their_reference():
    """Latent kNN with eq. 5's prior escapes by the rule (KL 23.7, local share 4.27) with a
    z-share of 0.997: every row the meta-decoder's, as the vanilla VAE draws them. The line
    says so; the vanilla control itself (z-share 1) and an arm at 0.5 are not flagged."""
    arms = pd.DataFrame({"arm": ["knn + prior", "half", study.VANILLA_CONTROL],
                         "step": [5000] * 3, "KL": [23.67, 15.9, 23.27],
                         "local share": [4.269, 0.5, 4.074], "z-share": [0.997, 0.5, 1.0],
                         "copy": [0.148, 0.08, 0.160], "outcome": ["escapes"] * 3})
    lines = diagnosis.findings(arms)
    assert lines[0] == ("**knn + prior**: escapes (KL 23.67 nats, local share 4.269, at step "
                        "5,000; z-share 0.997: its rows are the same whatever the reference, "
                        "as the vanilla VAE's are)")
    assert "z-share" not in lines[1] and "z-share" not in lines[2]


def _runs(rows: list[tuple]) -> pd.DataFrame:
    """A results frame: (alpha, beta, reduction, seed, D w/o colour) per completed run."""
    return pd.DataFrame([{"dataset": "shapes3d", "alpha": a, "beta": b,
                          "neighborhood": "synthetic", "reduction": red, "seed": s,
                          "variant": None, "profile": "study", "source": "imported",
                          "status": "completed",
                          "steps_done": 20_000, "config_id": f"a{a}-b{b}-{red}",
                          "dci_nocolor.disentanglement": d}
                         for a, b, red, s, d in rows])


def test_a_reading_is_judged_on_its_own_runs_against_the_studys_baselines():
    reading = study.READINGS[0]
    assert reading.local == {"alpha": 0.1, "beta": 1.0, "neighborhood": "synthetic",
                             "reduction": "sum", "profile": "study"}
    vanilla = [(0.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.10, 0.12, 0.14))]
    # the study's own alpha = 0.1 (pixel_mean) is high: a reading must not pick it up
    study_a01 = [(0.1, 1.0, "pixel_mean", s, 0.9) for s in range(3)]
    summed = [(0.1, 1.0, "sum", s, d) for s, d in enumerate((0.50, 0.55, 0.60))]
    rj = diagnosis.judge_reading(_runs(vanilla + study_a01 + summed[:1]), reading)
    assert rj.seeds_done == 1
    row = rj.row("nocolor")
    assert row["value"] == "cannot decide"  # one seed: no interval
    assert "alpha = 1e-1 (summed loss)" in row["claim"]
    assert row["paper"] == "0.945 vs 0.150"  # the paper's alpha = 0.1 row, not alpha = 1's
    assert rj.row("best_alpha") is None  # one alpha cannot test where DCI peaks
    # by hand: Welch's interval of (0.50, 0.55, 0.60) vs (0.10, 0.12, 0.14): d = 0.43 > 0
    rj = diagnosis.judge_reading(_runs(vanilla + study_a01 + summed), reading)
    row = rj.row("nocolor")
    assert rj.seeds_done == 3 and row["value"] == "supports"
    assert row["ours"] == "0.550 vs 0.120"


def test_reproduction_status_with_a_reading_at_the_studys_budget():
    reading = study.READINGS[0]
    arms = pd.DataFrame({"arm": ["a", "b", reading.name], "outcome": ["memorises",
                                                                     "memorises", "escapes"]})
    vanilla = [(0.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.10, 0.12, 0.14))]
    study_row = {"key": "nocolor", "value": "cannot decide", "tested": True}
    best_row = {"key": "best_alpha", "value": "contradicts", "tested": True}
    # no seed of the reading finished: it is still the screen's candidate
    rj = diagnosis.judge_reading(_runs(vanilla), reading)
    assert "; 1 reading pending;" in diagnosis.reproduction_status(study_row, arms, [rj])
    assert diagnosis.reproduction_status(study_row, arms, [rj], brief=True) == (
        "not reproduced yet (1 of 1 reading unfinished)")
    # three seeds that support: reproduced only under the reading
    up = [(0.1, 1.0, "sum", s, d) for s, d in enumerate((0.50, 0.55, 0.60))]
    rj = diagnosis.judge_reading(_runs(vanilla + up), reading)
    status = diagnosis.reproduction_status(study_row, arms, [rj])
    assert status.startswith(f"reproduced only under {reading.label} (3 seeds: supports")
    assert diagnosis.reproduction_status(study_row, arms, [rj], brief=True) == status
    # the claims the reading cannot test say so, not "candidate"
    status = diagnosis.reproduction_status(best_row, arms, [rj])
    assert "the readings cannot test it (one configuration each)" in status
    assert "candidate" not in status and "any reading tried" not in status
    # three seeds at chance: not reproduced, with the reading's verdict and interval
    flat = [(0.1, 1.0, "sum", s, d) for s, d in enumerate((0.10, 0.12, 0.14))]
    rj = diagnosis.judge_reading(_runs(vanilla + flat), reading)
    status = diagnosis.reproduction_status(study_row, arms, [rj])
    assert status == ("not reproduced under any reading tried: the study's; cannot decide "
                      f"under {reading.label}; 2 other screened readings memorise or diverge")
    assert diagnosis.reproduction_status(study_row, arms, [rj], brief=True) == (
        "not reproduced under any reading tried")


def test_a_readings_curves_are_its_runs_and_the_studys_yardsticks():
    reading = study.READINGS[0]
    rows = [("study", 0.1, 1.0, "sum"), ("study", 0.1, 1.0, "pixel_mean"),
            ("study", 0.0, 1.0, "pixel_mean"), ("study", 0.0, 16.0, "pixel_mean"),
            ("study", 1.0, 1.0, "pixel_mean"), ("diagnosis", 0.1, 1.0, "sum"),
            ("study", 10.0, 1.0, "pixel_mean")]
    ms = pd.DataFrame([{"profile": p, "dataset": "shapes3d", "alpha": a, "beta": b,
                        "reduction": r, "neighborhood": "synthetic", "step": 500}
                       for p, a, b, r in rows])
    got = diagnosis.reading_frame(ms, reading)
    assert list(zip(got["alpha"], got["beta"], got["reduction"], strict=True)) == [
        (0.1, 1.0, "sum"), (0.0, 1.0, "pixel_mean"), (0.0, 16.0, "pixel_mean"),
        (1.0, 1.0, "pixel_mean")]
    # the yardsticks alone are nothing to read a reading against
    assert diagnosis.reading_frame(ms.iloc[1:], reading).empty


def test_a_readings_summary_line():
    reading = study.READINGS[0]
    vanilla = [(0.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.10, 0.12, 0.14))]
    rj = diagnosis.judge_reading(_runs(vanilla), reading)
    assert diagnosis.reading_summary(rj) == (f"{reading.name}: none of its 3 seeds has "
                                             "finished at the study's budget yet")
    up = [(0.1, 1.0, "sum", s, d) for s, d in enumerate((0.50, 0.55, 0.60))]
    line = diagnosis.reading_summary(diagnosis.judge_reading(_runs(vanilla + up), reading))
    assert "3 of 3 seeds" in line and "supports" in line and "0.550 vs 0.120" in line


def test_findings_add_what_a_long_arm_read_after_the_screen():
    arms = pd.DataFrame({"arm": ["lr"], "step": [5000], "KL": [3.10], "local share": [0.428],
                         "outcome": ["memorises"]})
    fr = pd.DataFrame({"arm": ["lr"] * 4, "step": [5000, 10_000, 15_000, 20_000],
                       "kl": [3.10, 2.37, 1.47, None], "local_share": [0.428, 0.278, 0.086,
                                                                      None]})
    assert diagnosis.findings(arms, fr) == [
        "**lr**: memorises (KL 3.10 nats, local share 0.428, at step 5,000); then KL "
        "2.37 / 1.47 nats and local share 0.278 / 0.086 at steps 10,000 / 15,000"]
    assert diagnosis.later(fr, "other") == ""


def test_a_readings_seeds_are_in_the_plan_and_are_not_screening_arms():
    r = study.READINGS[0]
    seeds = [sr for sr in study.DIAGNOSIS if r.owns(sr)]
    assert [sr.experiment.seed for sr in seeds] == [0, 1, 2]
    assert all(sr.profile == "study" and sr.run_id.endswith("-rsum") for sr in seeds)
    screen = next(sr for sr in study.DIAGNOSIS if sr.arm == r.name)  # the arm that escaped
    assert screen.profile == "diagnosis" and not r.owns(screen)
    arms = pd.DataFrame({"arm": [seeds[0].arm, screen.arm], "outcome": ["escapes"] * 2})
    assert diagnosis.screened(arms)["escapes"] == [screen.arm]


def test_retrace_compares_a_readings_seed_0_with_its_screening_arm():
    r = study.READINGS[0]
    seed0 = next(sr.arm for sr in study.DIAGNOSIS if r.owns(sr) and sr.experiment.seed == 0)
    fr = pd.DataFrame({"arm": [r.name, r.name, seed0, seed0, seed0],
                       "step": [250, 5000, 5000, 10_000, 500],
                       "kl": [1.0, 12.49, 12.49, 9.0, 3.0],
                       "local_share": [0.1, 0.659, 0.659, 0.5, 0.2]})
    assert diagnosis.retrace(fr, r) == (
        "Seed 0 at the study's budget retraces the screen's arm (the same settings and "
        "seed): their readouts at step 5,000 are equal.")
    fr.loc[2, "kl"] = 12.0
    assert diagnosis.retrace(fr, r) == (
        "Seed 0 at the study's budget does not retrace the screen's arm (the same settings "
        "and seed): at step 5,000 their readouts are up to 0.49 apart.")
    assert diagnosis.retrace(fr[fr["arm"] == r.name], r) == ""
    # latent kNN's seed 0: equal to 2k, then a resume rebuilt its bank (KL 24.76 vs 21.59)
    steps = [500, 1000, 2000, 5000]
    fr = pd.DataFrame({"arm": [r.name] * 4 + [seed0] * 4, "step": steps * 2,
                       "kl": [0.57, 1.41, 10.23, 24.76, 0.57, 1.41, 10.23, 21.59],
                       "local_share": [0.01, 0.01, 0.085, 1.353, 0.01, 0.01, 0.085, 1.068]})
    assert diagnosis.retrace(fr, r) == (
        "Seed 0 at the study's budget retraces the screen's arm (the same settings and seed) "
        "to step 2,000 (equal readouts at steps 500-2,000); from step 5,000 they part, up to "
        "3.2 apart: from there the two runs did not draw the same numbers.")


def test_readout_groups_are_screening_arms_by_choice():
    r = study.READINGS[0]
    seed0 = r.run(0).arm
    fr = pd.DataFrame({"arm": [r.name, seed0, "first order, lr 1e-3",
                               "control: vanilla VAE"]})
    assert diagnosis.readout_groups(fr) == [("loss scale", [r.name]),
                                            ("1st/2nd order", ["first order, lr 1e-3"])]
    assert diagnosis.readout_groups(fr.iloc[0:0]) == [
        ("controls", ["control: beta-VAE (beta = 16)"])]


def test_a_reading_whose_seed_diverged_says_so_and_is_no_longer_a_plain_candidate():
    reading = study.READINGS[0]
    vanilla = [(0.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.10, 0.12, 0.14))]
    frame = _runs([*vanilla, (0.1, 1.0, "sum", 0, float("nan"))])
    frame.loc[frame.index[-1], ["status", "steps_done"]] = ["diverged", 9472]
    rj = diagnosis.judge_reading(frame, reading)
    assert (rj.seeds_done, rj.diverged) == (0, (9472,))
    assert rj.died == "1 of 3 seeds diverged (at step 9,472)"
    assert diagnosis.reading_summary(rj) == (
        f"{reading.name}: at the study's budget 1 of 3 seeds diverged (at step 9,472), none "
        "has finished yet")
    arms = pd.DataFrame({"arm": [reading.name, "b"], "outcome": ["escapes", "memorises"]})
    status = diagnosis.reproduction_status({"key": "nocolor", "value": "cannot decide",
                                            "tested": True}, arms, [rj])
    assert status == ("not reproduced under the study's reading; "
                      f"diverged under {reading.label} [step 9,472]; 1 other screened reading "
                      "memorises or diverges")


def test_later_says_an_arm_diverged_after_the_screen():
    fr = pd.DataFrame({"arm": ["r"] * 2, "step": [5000, 5000], "kl": [12.49, None],
                       "local_share": [0.659, None], "diverged_at": [9472, 9472]})
    assert diagnosis.later(fr, "r") == "then diverges at step 9,472"
    early = fr.assign(diverged_at=[12, 12])  # before the screen's step: outcome() says so
    assert diagnosis.later(early, "r") == ""


def test_the_choice_table_says_an_arm_that_escaped_the_screen_diverged_later():
    """The rule judges a reading's seed at 5k (escapes); the choice table must not leave the
    reader there when it died at step 9,472 of its 20k."""
    reading = study.READINGS[0]
    sr = reading.run(0)
    fr = milestones([2000, 5000], [10.0, 12.49], [0.5, 0.659], diverged_at=9472,
                    run=sr.run_id).assign(profile=sr.profile, arm=sr.arm, choice=sr.choice)
    assert diagnosis.arm_table(fr)["outcome"].tolist() == ["escapes"]  # the rule, at 5k
    row = diagnosis.choice_table(fr).set_index("choice").loc[
        diagnosis.CHOICE_NAMES[sr.choice]]
    assert f"{sr.arm}: escapes at 5k, then diverges at step 9,472" == row["tried (outcome)"]


def test_a_reading_with_another_neighbourhood_is_judged_against_the_papers_row():
    """Latent kNN is not a 3D Shapes row of the paper: its runs are judged against the
    paper's alpha = 1 row (synthetic neighbourhoods), and the study's alpha = 1 runs stay
    out of its interval."""
    knn = next(r for r in study.READINGS if r.key == "knn")
    rows = [(0.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.10, 0.12, 0.14))]
    runs = _runs(rows + [(1.0, 1.0, "pixel_mean", s, 0.9) for s in range(3)]
                 + [(1.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.3, 0.35, 0.4))])
    runs.loc[runs.index[-3:], "neighborhood"] = "latent_knn"
    rj = diagnosis.judge_reading(runs, knn)
    row = rj.row("nocolor")
    assert rj.seeds_done == 3
    assert row["claim"].startswith("Without colour, alpha = 1 (latent_knn neighbours)")
    assert row["paper"] == "0.977 vs 0.150" and row["ours"] == "0.350 vs 0.120"
    assert row["value"] == "supports"
    assert [sr.run_id for sr in study.DIAGNOSIS if knn.owns(sr)] == [
        f"shapes3d-a1e+00-b1-latent_knn-s{s}" for s in range(3)]


def test_a_reading_whose_seeds_all_ended_is_finished_though_one_diverged():
    """Two seeds finished and one diverged: nothing more will come, so a claim it does not
    support is not reproduced under any reading tried, not 'yet'."""
    reading = study.READINGS[0]
    vanilla = [(0.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.10, 0.12, 0.14))]
    frame = _runs([*vanilla, (0.1, 1.0, "sum", 0, float("nan")),
                   *[(0.1, 1.0, "sum", s, d) for s, d in ((1, 0.11), (2, 0.13))]])
    frame.loc[frame.index[3], ["status", "steps_done"]] = ["diverged", 9472]
    rj = diagnosis.judge_reading(frame, reading)
    assert (rj.seeds_done, rj.diverged, rj.finished) == (2, (9472,), True)
    assert not diagnosis.judge_reading(frame.iloc[:-1], reading).finished
    row = {"key": "nocolor", "value": "cannot decide", "tested": True}
    arms = pd.DataFrame({"arm": [reading.name, "b"], "outcome": ["escapes", "memorises"]})
    assert diagnosis.reproduction_status(row, arms, [rj], brief=True) == (
        "not reproduced under any reading tried")
    assert diagnosis.reproduction_status(row, arms, [rj]).startswith(
        "not reproduced under any reading tried: the study's; ")


def test_readings_waiting_are_named_together_in_the_brief():
    summed, knn, kept = study.READINGS[:3]
    vanilla = [(0.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.10, 0.12, 0.14))]
    frame = _runs([*vanilla, (0.1, 1.0, "sum", 0, float("nan"))])
    frame.loc[frame.index[-1], ["status", "steps_done"]] = ["diverged", 9472]
    rjs = [diagnosis.judge_reading(frame, r) for r in (summed, knn, kept)]
    assert diagnosis.readings_said(rjs[1:2]) == [diagnosis.reading_summary(rjs[1])]
    assert diagnosis.readings_said(rjs) == [
        diagnosis.reading_summary(rjs[0]),
        f"no seed finished at the study's budget yet: {knn.name}; {kept.name}"]
    assert diagnosis.readings_said([]) == []


def test_readings_are_grouped_by_state_and_an_arm_not_yet_a_reading_is_a_candidate():
    summed, knn = study.READINGS[:2]
    vanilla = [(0.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.10, 0.12, 0.14))]
    frame = _runs([*vanilla, (0.1, 1.0, "sum", 0, float("nan"))])
    frame.loc[frame.index[-1], ["status", "steps_done"]] = ["diverged", 9472]
    rjs = [diagnosis.judge_reading(frame, r) for r in (summed, knn)]
    arms = pd.DataFrame({"arm": [summed.name, knn.name, "new", "b"],
                         "outcome": ["escapes", "escapes", "escapes", "memorises"]})
    status = diagnosis.reproduction_status({"key": "nocolor", "value": "cannot decide",
                                            "tested": True}, arms, rjs)
    assert status == (
        f"not reproduced under the study's reading; diverged under {summed.label} [step "
        f"9,472]; 1 reading pending; candidate: new (escaped the screen; its 20k-step "
        "seeds next); 1 other screened reading memorises or diverges")
    assert diagnosis.reproduction_status({"key": "nocolor", "value": "cannot decide",
                                          "tested": True}, arms, rjs, brief=True) == (
        "not reproduced yet (3 of 3 readings unfinished)")
    # two seeds of one reading that cannot decide: grouped, each with its seeds
    two = [(1.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.13, 0.12))]
    frame = _runs([*vanilla, *two])
    frame.loc[frame.index[3:], "neighborhood"] = "latent_knn"
    rj = diagnosis.judge_reading(frame, knn)
    status = diagnosis.reproduction_status({"key": "nocolor", "value": "cannot decide",
                                            "tested": True}, arms.iloc[1:], [rj])
    assert status.startswith(f"not reproduced under the study's reading; cannot decide under "
                             f"{knn.label} [2 of 3 seeds]; candidate: new")


def test_planned_arms_fold_values_that_differ_alone():
    fold = diagnosis._compact
    assert fold(["a, sigma = 0.2", "a, sigma = 0.05"]) == "a, sigma = 0.2; 0.05"
    assert fold(["knn, 20k steps, seed 1", "knn, 20k steps, seed 2",
                 "l2, seed 0 (Table 5)", "l2, seed 1 (Table 5)"]) == (
        "knn, 20k steps, seed 1; 2; l2, seed 0; 1 (Table 5)")
    assert fold(["beta-VAE (beta = 16), 300k", "vanilla VAE, 300k"]) == (
        "beta-VAE (beta = 16), 300k; vanilla VAE, 300k")  # nothing shared: kept whole
    assert fold([]) == "—"
    # names apart in the plan fold too (the 64x64 reading's seeds between its baselines')
    assert fold(["v, seed 0", "b, seed 0", "r, seed 0", "v, seed 1", "v, seed 2",
                 "b, seed 1"]) == "v, seed 0; 1; 2; b, seed 0; 1; r, seed 0"


def test_a_reading_that_changes_a_setting_trains_at_the_studys_budget_apart_from_it():
    """Eq. 5's prior (sigma = 0.01) escaped the screen: its seeds change a training setting,
    so they run at the ``reading`` profile (the study's budget and evaluation), in folders
    of their own that carry the settings' hash, and they are neither the screen's arm nor
    the study's alpha = 1."""
    from lvae.config import PROFILES
    from lvae.report.params import experiment_of

    kept = next(r for r in study.READINGS if r.key == "prior")
    seeds = [sr for sr in study.DIAGNOSIS if kept.owns(sr)]
    assert [sr.experiment.seed for sr in seeds] == [0, 1, 2]
    for sr in seeds:
        st = study.setup("out", sr)
        assert st.config.adapted_prior_sigma == 0.01 and st.config.profile == "reading"
        assert (st.config.steps, st.config.lr) == (PROFILES["study"].steps,
                                                  PROFILES["study"].lr)
        assert st.evaluation == PROFILES["study"].evaluation()
        assert st.run_dir.parent.name == "reading"
        assert experiment_of(st.config).variant == kept.variant
        assert sr.run_id == f"shapes3d-a1e+00-b1-synthetic-s{sr.experiment.seed}-c{kept.variant}"
    screen = next(sr for sr in study.DIAGNOSIS if sr.arm == kept.name)
    assert screen.profile == "diagnosis" and not kept.owns(screen)
    assert not kept.owns(study.STUDY[1])  # the study's alpha = 1, seed 0
    assert not any(r.owns(sr) for r in study.READINGS[:2] for sr in seeds)
    with pytest.raises(ValueError, match="note"):
        study.Reading("x", "x", "prior", 1.0, settings=(("adapted_prior_sigma", 0.1),))


def test_a_reading_with_settings_is_judged_on_its_variant_alone():
    """The study's alpha = 1 runs (profile study) and another variant's runs at the reading
    profile share alpha, beta and neighbourhood with eq. 5's prior's: only the prior's
    three seeds enter its interval; the baselines stay the study's."""
    kept = next(r for r in study.READINGS if r.key == "prior")
    vanilla = [(0.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.10, 0.12, 0.14))]
    runs = _runs(vanilla + [(1.0, 1.0, "pixel_mean", s, 0.9) for s in range(3)]
                 + [(1.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.3, 0.35, 0.4))]
                 + [(1.0, 1.0, "pixel_mean", s, 0.99) for s in range(2)])
    runs.loc[runs.index[6:], "profile"] = "reading"
    runs.loc[runs.index[6:9], "variant"] = kept.variant
    runs.loc[runs.index[9:], "variant"] = "0ther000"
    rj = diagnosis.judge_reading(runs, kept)
    row = rj.row("nocolor")
    assert rj.seeds_done == 3
    assert row["claim"].startswith("Without colour, alpha = 1 (eq. 5's prior, σ = 0.01)")
    assert row["paper"] == "0.977 vs 0.150" and row["ours"] == "0.350 vs 0.120"
    # its curves: its own runs under its label, then the study's yardsticks (alpha = 1 once)
    ms = runs.assign(step=500, label="α=1")
    got = diagnosis.reading_frame(ms, kept)
    assert got["label"].tolist()[:3] == [kept.label] * 3 == ["α=1 (eq. 5's prior, σ = 0.01)"] * 3
    assert (got["profile"] == "study").sum() == 6 and (got["alpha"] == 1.0).sum() == 6


def test_the_claims_table_has_a_row_per_reading_and_a_column_per_claim_it_can_test():
    """Issue 21: the claims table gains each reading's verdict at the study's budget, or why
    there is none; readings are rows, so six (or more) keep the table in the text column."""
    summed, knn = study.READINGS[:2]
    vanilla = [(0.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.10, 0.12, 0.14))]
    frame = _runs([*vanilla, (0.1, 1.0, "sum", 0, float("nan"))]
                  + [(1.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.3, 0.35))])
    frame.loc[frame.index[3], ["status", "steps_done"]] = ["diverged", 9472]
    frame.loc[frame.index[4:], "neighborhood"] = "latent_knn"
    rjs = [diagnosis.judge_reading(frame, r) for r in (summed, knn)]
    judged = pd.DataFrame({"key": ["nocolor", "best_alpha"], "claim": ["A", "B"],
                           "verdict": ["cannot decide", "contradicts"],
                           "status": ["s1", "s2"]})
    table = diagnosis.claims_table(judged, rjs)
    assert list(table.columns) == ["", diagnosis.CLAIM_HEADS["nocolor"]]  # B: no reading
    assert table[""].tolist() == ["the study's reading (α=1)", summed.label, knn.label,
                                  "reproduction status"]
    # the study's verdict; diverged; two seeds of three: Welch's interval of (0.3, 0.35)
    # vs (0.10, 0.12, 0.14) is above 0; the claim's status
    assert table.iloc[:, 1].tolist() == ["cannot decide", "diverged (step 9,472)",
                                         "supports at 20,000 steps (2 of 3 seeds)", "s1"]
    # one alpha cannot say where DCI peaks: that claim goes to the table beside
    beyond = diagnosis.claims_beyond_readings(judged, rjs)
    assert beyond.to_dict("records") == [{"claim": "B", "study": "contradicts",
                                          "reproduction status": "s2"}]
    assert diagnosis.claims_beyond_readings(judged, []).shape == (2, 3)
    # two seeds diverged, none finished: both steps, in order, and the reading's sentence
    frame.loc[frame.index[2], ["alpha", "reduction", "seed", "status", "steps_done"]] = [
        0.1, "sum", 1, "diverged", 8100]
    rj = diagnosis.judge_reading(frame, summed)
    assert diagnosis.reading_verdict(rj, "nocolor") == "diverged (steps 8,100, 9,472)"
    assert rj.died == "2 of 3 seeds diverged (at steps 8,100, 9,472)"
    pending = diagnosis.judge_reading(_runs(vanilla), knn)
    assert diagnosis.reading_verdict(pending, "nocolor") == "pending"


def test_the_rule_map_draws_screening_arms_not_a_readings_seeds():
    r = study.READINGS[0]
    arms = pd.DataFrame({"arm": [r.name, r.run(0).arm, study.VANILLA_CONTROL],
                         "outcome": ["escapes"] * 3})
    assert diagnosis.screen_points(arms)["arm"].tolist() == [r.name, study.VANILLA_CONTROL]


def test_the_resolution_choice_has_its_64x64_arm_and_says_what_it_found():
    """The last open choice gets a screening arm at the paper's 64x64 (on the twin); the
    choice table says it is planned until it ships, then gives its outcome (its vanilla
    control and second seed, added later, are planned beside it)."""
    [arm] = [sr for sr in study.DIAGNOSIS if sr.choice == "resolution"
             and sr.profile == "diagnosis" and not study.is_control(sr.arm)
             and sr.experiment.seed == 0]
    st = study.setup("out", arm)
    assert (st.config.resolution, st.config.steps, arm.profile) == (64, 5000, "diagnosis")
    row = lambda fr: diagnosis.choice_table(fr).set_index("choice").loc[  # noqa: E731
        diagnosis.CHOICE_NAMES["resolution"]]
    empty = milestones([5000], [1.0], [0.1]).iloc[0:0].assign(arm=[], choice=[])
    assert row(empty)["tried (outcome)"].startswith("not yet: the 64x64 twin is planned")
    assert row(empty)["planned"].startswith(arm.arm)
    shipped = milestones([5000], [20.0], [3.0], run=arm.run_id).assign(arm=arm.arm,
                                                                      choice="resolution")
    assert row(shipped)["tried (outcome)"] == f"{arm.arm}: escapes"


def test_the_step_table_reads_the_controls_then_one_choices_arms(monkeypatch):
    """Which shipped models the step table measures: the control and the prior's screening
    arms (not the reading's seeds, not other choices, nothing still in progress), the
    control first."""
    prior = [sr for sr in study.DIAGNOSIS if sr.choice == "prior"]
    control = next(sr for sr in study.DIAGNOSIS if sr.arm == "control: the study's reading")
    other = next(sr for sr in study.DIAGNOSIS if sr.choice == "noise")
    shipped = [(Path("r") / sr.profile / sr.run_id, "finished")
               for sr in [*prior, other, control]]
    shipped[0] = (shipped[0][0], "training")  # the first prior arm: still in progress
    monkeypatch.setattr(study, "shipped_runs", lambda root: shipped)
    monkeypatch.setattr(study, "inner_step_shipped", lambda folder: {
        "encoder": 1.0, "decoder": float(len(folder.name)), "step": 5000})
    arms = pd.DataFrame({"arm": [control.arm], "KL": [0.24], "local share": [0.005],
                         "outcome": ["memorises"]})
    table = diagnosis.step_table("r", arms=arms)
    measured = [sr for sr in prior[1:] if not study.READINGS[2].owns(sr)]
    assert table["arm"].tolist()[0] == control.arm
    assert sorted(table["arm"].tolist()[1:]) == sorted(sr.arm for sr in measured)
    assert table["decoder"].tolist()[0] == float(len(control.run_id))
    assert table["decoder"].tolist()[1:] == sorted(table["decoder"].tolist()[1:],
                                                   reverse=True)  # longest step first
    assert table["outcome"].tolist()[0] == "memorises" and table["KL"].isna().sum() == 2


def _long_rows(beta: float, steps_values: list[tuple[int, float]], state: str) -> pd.DataFrame:
    sr = next(s for s in study.DIAGNOSIS if s.choice == "budget" and s.experiment.beta == beta)
    return pd.DataFrame([{"profile": sr.profile, "run_id": sr.run_id, "step": st,
                          "state": state, "dci_nocolor.disentanglement": v, "arm": sr.arm,
                          "choice": "budget", "alpha": 0.0, "beta": beta, "label": "x"}
                         for st, v in steps_values])


def test_the_long_baselines_are_read_by_their_own_rule_not_the_screens(tmp_path: Path):
    """Issue 21, section 3: beta = 16 at the paper's budget approaches the paper when its
    D w/o colour at 300k (its final evaluation) is at least half the paper's 0.690
    (0.345); the long runs are not screening arms (no inner step), so the rule's table
    and counts leave them out."""
    def verdict(frame: pd.DataFrame) -> str:
        return diagnosis.budget_verdict(frame, tmp_path)

    def evaluated(value: float) -> None:
        sr = next(s for s in study.DIAGNOSIS if s.choice == "budget"
                  and s.experiment.beta == 16.0)
        runfolder.write_eval(tmp_path / sr.profile / sr.run_id, Eval(
            status="completed", metrics={"dci_nocolor": {"disentanglement": value}}))

    assert verdict(pd.DataFrame(columns=["profile", "run_id", "step", "state",
                                         "dci_nocolor.disentanglement"])
                   ) == "pending: not started"
    training = _long_rows(16.0, [(1000, 0.01), (20_000, 0.122), (100_000, 0.30)], "training")
    assert verdict(training) == ("pending: D w/o colour 0.300 at step 100,000 (a milestone; "
                                 "the rule's bar: 0.345, half the paper's 0.690)")
    ended = _long_rows(16.0, [(20_000, 0.122), (300_000, 0.40)], "finished")
    assert verdict(ended).startswith("pending: D w/o colour 0.400 at step 300,000")
    (tmp_path / "long").mkdir()
    evaluated(0.344)  # the final evaluation decides, not the 300k milestone's 0.40
    assert verdict(ended).startswith("does not approach the paper: D w/o colour 0.344 at "
                                     "step 300,000 (its final evaluation")
    assert "the twin or its resolution is the suspect" in verdict(ended)
    evaluated(0.345)
    assert verdict(ended).startswith("approaches the paper")
    sr16 = next(s for s in study.DIAGNOSIS if not s.screened and s.experiment.beta == 16.0)
    assert diagnosis.budget_outcome(ended, sr16, tmp_path) == (
        "D w/o colour 0.345 at step 300,000 (final evaluation) (the paper: 0.690)")
    # the choice table's budget row says where each shipped long run stands
    fr = pd.concat([training, _long_rows(1.0, [(5000, 0.05)], "training")],
                   ignore_index=True)
    assert diagnosis.arm_table(fr).empty  # not screened
    row = diagnosis.choice_table(fr, root=tmp_path).set_index("choice").loc[
        "Budget (the baselines)"]
    assert row["tried (outcome)"] == (
        "beta-VAE (beta = 16), 300k steps, lr 1e-4: D w/o colour 0.300 at step 100,000 of "
        "300,000 (training) (the paper: 0.690); vanilla VAE, 300k steps, lr 1e-4: D w/o "
        "colour 0.050 at step 5,000 of 300,000 (training) (the paper: 0.150)")
    assert row["planned"] == "—"


def test_the_budget_figure_sets_the_long_runs_beside_the_studys_baselines():
    long16 = _long_rows(16.0, [(300_000, 0.4)], "finished")
    study_rows = pd.DataFrame([
        {"profile": "study", "run_id": f"r{a}{b}", "step": 20_000, "alpha": a, "beta": b,
         "dci_nocolor.disentanglement": 0.1} for a, b in ((0.0, 16.0), (0.0, 1.0),
                                                          (1.0, 1.0), (0.0, 4.0))])
    other = study_rows.assign(profile="diagnosis")  # the screen's controls: not drawn
    got = diagnosis.budget_frame(pd.concat([long16, study_rows, other], ignore_index=True))
    assert sorted(zip(got["profile"], got["beta"], got["alpha"], strict=True)) == [
        ("long", 16.0, 0.0), ("study", 1.0, 0.0), ("study", 16.0, 0.0)]
    assert got["profile"].tolist()[-1] == "long"  # drawn last, over the paper's stars


def test_the_budget_figure_marks_each_long_runs_final_evaluation(tmp_path: Path):
    """The vanilla VAE's 300k milestone read 0.089 where its final evaluation read 0.154:
    the figure draws the final evaluation the rule reads, once it is shipped, and only for a
    run that has finished."""
    sr = next(s for s in study.DIAGNOSIS if s.choice == "budget" and s.experiment.beta == 1.0)
    cols = ["dci_nocolor.disentanglement", "dci_color.disentanglement"]
    ended = _long_rows(1.0, [(200_000, 0.056), (300_000, 0.089)], "finished")
    assert study.final_points(ended, cols, tmp_path) == {c: {} for c in cols}
    runfolder.write_eval(tmp_path / sr.profile / sr.run_id, Eval(
        status="completed", metrics={"dci_nocolor": {"disentanglement": 0.154}}))
    assert study.final_points(ended, cols, tmp_path) == {
        cols[0]: {"x": (300_000, 0.154)}, cols[1]: {}}
    going = _long_rows(1.0, [(200_000, 0.056)], "training")
    assert study.final_points(going, cols, tmp_path) == {c: {} for c in cols}
    fig = figures.milestone_curves(ended.assign(seed=0), {cols[0]: "D"},
                                   final=study.final_points(ended, cols, tmp_path))
    marks = [ln for ln in fig.axes[0].lines if ln.get_marker() == "D"]
    assert [tuple(m.get_xydata()[0]) for m in marks] == [(300_000.0, 0.154)]
    assert "final evaluation" in [t.get_text() for t in fig.legends[0].get_texts()]


def test_a_groups_final_evaluation_is_the_mean_over_its_finished_runs(tmp_path: Path):
    """A reading's diamond at 20k: the mean of the final evaluations of its seeds that
    finished; a seed still training, and one finished without a shipped evaluation, add
    nothing (hand-computed: (0.10 + 0.20) / 2)."""
    col = "dci_nocolor.disentanglement"
    rows = pd.DataFrame([
        {"profile": "reading", "run_id": f"r-s{seed}", "label": "R", "state": state,
         "step": step, col: 0.01} for seed, state, steps in (
            (0, "finished", (10_000, 20_000)), (1, "finished", (10_000, 20_000)),
            (2, "training", (10_000,)), (3, "finished", (10_000, 20_000)))
        for step in steps])
    for seed, v in ((0, 0.10), (1, 0.20), (2, 0.90)):  # seed 2 trains: its file is not read
        runfolder.write_eval(tmp_path / "reading" / f"r-s{seed}", Eval(
            status="completed", metrics={"dci_nocolor": {"disentanglement": v}}))
    got = study.final_points(rows, [col], tmp_path)
    assert got[col].keys() == {"R"}
    assert got[col]["R"][0] == 20_000 and abs(got[col]["R"][1] - 0.15) < 1e-12
    assert study.final_points(rows.iloc[0:0], [col], tmp_path) == {col: {}}


def test_a_configuration_run_at_three_seeds_is_one_reading_in_the_screen():
    # Table 5's input-space neighbours run three seeds: the screen counts seed 0 once
    names = [sr.arm for sr in study.DIAGNOSIS if sr.experiment.neighborhood == "input_l2"]
    assert len(names) == 3
    arms = pd.DataFrame({"arm": names, "outcome": ["memorises"] * 3})
    got = diagnosis.screened(arms)
    assert got["memorises"] == [names[0]] and names[0].endswith("seed 0 (Table 5)")
    assert diagnosis.screen_points(arms)["arm"].tolist() == [names[0]]


def test_the_dci_claims_are_judged_on_both_encoders_codes():
    """The paper does not say which codes it scored: the same claims, the same rule, on
    the meta-encoder's codes and on the adapted encoder's; a baseline's adapted encoder is
    its meta-encoder (alpha = 0: the inner step moves nothing)."""
    vanilla = [(0.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.10, 0.12, 0.14))]
    local = [(1.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.30, 0.32, 0.34))]
    runs = _runs(vanilla + local)
    runs["adapted.dci_nocolor.disentanglement"] = [np.nan] * 3 + [0.05, 0.06, 0.07]
    view = diagnosis.adapted_codes(runs)
    assert view["dci_nocolor.disentanglement"].tolist() == [0.10, 0.12, 0.14, 0.05, 0.06, 0.07]
    assert runs["dci_nocolor.disentanglement"].tolist()[3:] == [0.30, 0.32, 0.34]  # a copy
    table = diagnosis.codes_table(runs)
    row = table[table["claim"].str.startswith("Without colour, alpha = 1 disentangles")]
    assert row[["meta codes", "verdict (meta)", "adapted codes", "verdict (adapted)"]
               ].values.tolist() == [["0.320 vs 0.120", "supports at 20,000 steps",
                                      "0.060 vs 0.120", "contradicts at 20,000 steps"]]
    assert not table["claim"].str.startswith("With colour").any()  # no runs: not tested
    assert diagnosis.codes_summary(table) == (
        "Of 1 judged claims, on the meta-encoder's codes 1 supported, 0 contradicted, 0 "
        "undecided; on the adapted encoder's 0 supported, 1 contradicted, 0 undecided "
        "(Without colour, alpha = 1 disentangles better than the vanilla VAE: supports at "
        "20,000 steps -> contradicts at 20,000 steps).")
    # Table 5's claim is a DCI claim too: synthetic against input-space l2 neighbours on
    # both codes (by hand: 0.32 vs 0.20 above 0 on the meta codes, 0.06 vs 0.60 below on
    # the adapted codes)
    l2 = _runs([(1.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.19, 0.20, 0.21))])
    l2["neighborhood"] = "input_l2"
    l2["adapted.dci_nocolor.disentanglement"] = [0.58, 0.60, 0.62]
    both = pd.concat([runs, l2], ignore_index=True)
    t5 = diagnosis.codes_table(both).loc[("study", "t5")]
    assert t5["claim"].startswith("Synthetic neighbourhoods beat input-space l2 ones")
    assert [t5["meta codes"], t5["verdict (meta)"], t5["adapted codes"],
            t5["verdict (adapted)"]] == ["0.320 vs 0.200", "supports at 20,000 steps",
                                         "0.060 vs 0.600", "contradicts at 20,000 steps"]


def test_a_final_evaluations_metric_is_read_by_its_milestone_column():
    metrics = {"mig": 0.21, "dci_nocolor": {"disentanglement": 0.154}}
    assert study.metric_of(metrics, "dci_nocolor.disentanglement") == 0.154
    assert study.metric_of(metrics, "mig") == 0.21  # a number at the top level
    assert study.metric_of(metrics, "mig.x") is None
    assert study.metric_of(metrics, "dci_nocolor") is None  # a dictionary is no value
    assert study.metric_of(metrics, "kl") is None and study.metric_of(None, "mig") is None


def test_many_readings_in_one_state_are_counted_not_named():
    """Six readings that cannot decide on one seed each make one short clause, not six
    labels; two are still named, and readings with different seed counts are counted
    without a shared note."""
    one = [("a", "1 of 3 seeds")] * 2
    assert diagnosis._members(one) == "a [1 of 3 seeds], a [1 of 3 seeds]"
    assert diagnosis._members([("a", "1 of 3 seeds")] * 6) == "6 readings [1 of 3 seeds each]"
    assert diagnosis._members([("a", "1 of 3 seeds"), ("b", "2 of 3 seeds"),
                               ("c", "")]) == "3 readings"
    assert diagnosis._members([("a", "")] * 3) == "3 readings"
    readings = study.READINGS[:3]
    vanilla = [(0.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.10, 0.12, 0.14))]
    frame = _runs([*vanilla, (1.0, 1.0, "pixel_mean", 0, 0.13)])
    frame.loc[frame.index[3:], "neighborhood"] = "latent_knn"
    rj = diagnosis.judge_reading(frame, readings[1])
    arms = pd.DataFrame({"arm": ["b"], "outcome": ["memorises"]})
    status = diagnosis.reproduction_status({"key": "nocolor", "value": "cannot decide",
                                            "tested": True}, arms, [rj] * 3)
    assert status == ("not reproduced under the study's reading; cannot decide under 3 "
                      "readings [1 of 3 seeds each]; 1 other screened reading memorises or "
                      "diverges")


def test_the_arms_table_carries_the_heldout_elbo_at_the_judged_milestone():
    """The held-out negative ELBO of the meta-model and of the adapted model come from the
    judged milestone (5k, not 10k); a milestone without them (a vanilla VAE has no adapted
    model) reads as missing, not zero."""
    fr = milestones([5000, 10_000], [9.0, 9.0], [2.0, 2.0]).assign(
        heldout_meta=[3241.0, 3000.0], heldout_adapted=[860.0, np.nan],
        arm=study.STUDY_CONTROL, choice="control")
    o = diagnosis.outcome(fr)
    assert (o["heldout_meta"], o["heldout_adapted"]) == (3241.0, 860.0)
    assert diagnosis.outcome(fr, step=10_000)["heldout_adapted"] is None
    sr = next(s for s in study.DIAGNOSIS if s.arm == study.STUDY_CONTROL)
    row = diagnosis.arm_table(fr.assign(run_id=sr.run_id, profile=sr.profile)).iloc[0]
    assert (row["−ELBO meta"], row["−ELBO adapted"]) == (3241.0, 860.0)


def test_the_plans_state_in_one_line():
    status = pd.DataFrame({
        "state": ["finished", "finished", "diverged", "in progress", "planned", "planned"],
        "trained on": ["CPU", "CPU", "NVIDIA H200", "CPU", None, None],
        "hours": [2.0, 1.25, 0.5, 0.3, None, None]})
    assert diagnosis.plan_summary(status, 9.4) == (
        "3 of 6 runs ended (1 diverged), 1 shipped part-way, 2 planned; 3.5 CPU-hours spent "
        "(one thread of a 2-core machine per run), and 0.5 hours of runs trained on one "
        "NVIDIA H200 (their evaluations on the CPU); about 9 CPU-hours left (some 5 hours on "
        "two one-thread workers)")


def test_the_plans_status_names_each_run_by_its_arm_in_the_plans_order(tmp_path: Path):
    status = diagnosis.plan_status(tmp_path)  # nothing shipped: every run planned
    assert status["arm"].tolist() == [sr.arm for sr in study.DIAGNOSIS]
    assert set(status["state"]) == {"planned"}


def test_plan_hours_left_counts_a_run_shipped_part_way_from_its_step(tmp_path: Path):
    """A run shipped part-way resumes at its progress copy's step: the hours left shrink by
    that share of what the whole run is priced at (the page used to count it from step 0,
    2 CPU-hours above the workers' own estimate)."""
    from lvae.report.results import IMPORTED_DIR, PROGRESS_DIR

    rows = study.progress(IMPORTED_DIR, study.DIAGNOSIS)
    sr, row = next((sr, r) for sr, r in zip(study.DIAGNOSIS, rows, strict=True)
                   if r["state"] == "done" and r["kind"][1] == "local"
                   and sum(o["kind"] == r["kind"] and o["state"] == "done" for o in rows) > 1)
    # the repository's runs, without that one and without any progress copy
    for d in IMPORTED_DIR.iterdir():
        if d.is_dir() and d.name not in (PROGRESS_DIR, sr.profile):
            (tmp_path / d.name).symlink_to(d)
    (tmp_path / sr.profile).mkdir()
    for d in (IMPORTED_DIR / sr.profile).iterdir():
        if d.name != sr.run_id:
            (tmp_path / sr.profile / d.name).symlink_to(d)
    before = diagnosis.plan_hours_left(tmp_path)
    done = [r for r in study.progress(tmp_path, study.DIAGNOSIS, shipped_root=tmp_path)
            if r["state"] == "done"]
    whole, _ = study.hours_left([*done, dict(row, state="planned", step=0)])
    assert whole > 0

    part = tmp_path / PROGRESS_DIR / sr.profile / sr.run_id
    part.mkdir(parents=True)
    prov = json.loads((IMPORTED_DIR / sr.profile / sr.run_id / "provenance.json").read_text())
    prov.update(status="training", finished=None, steps_done=row["steps"] // 4)
    (part / "provenance.json").write_text(json.dumps(prov))
    after = diagnosis.plan_hours_left(tmp_path)
    assert before - after == pytest.approx(whole / 4, rel=1e-6)


def test_a_won_beats_every_beta_vae_names_the_budget_it_rests_on(tmp_path: Path):
    """A Local VAE that "beats every beta-VAE" at 20k steps beats beta-VAEs that have
    barely begun: the note gives the study's best beta-VAE and the vanilla VAE, and where
    beta = 16 stands at the paper's budget; no note when no such claim is supported."""
    base = [(0.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.10, 0.12, 0.14))]
    betas = [(0.0, b, "pixel_mean", s, d) for b in (2.0, 4.0, 8.0, 16.0)
             for s, d in enumerate((0.02, 0.03, 0.04) if b == 4.0 else (0.01, 0.01, 0.01))]
    weak = [(1.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.05, 0.06, 0.07))]
    long = _long_rows(16.0, [(300_000, 0.30)], "training")
    table = diagnosis.codes_table(_runs(base + betas + weak))
    assert table.loc[("study", "beta"), "verdict (meta)"].startswith("supports")
    note = diagnosis.beta_budget_note(table, _runs(base + betas + weak), long, tmp_path)
    assert note.startswith("One \"supports\" for beating every β-VAE rests on the study's")
    assert "the best of which reaches 0.030 on average, below the vanilla VAE's 0.120" in note
    assert ("β = 16 reaches 0.300 at step 300,000 (a milestone), above every Local VAE run "
            "shipped (the best: 0.070, α=1 seed 2 at 20,000 steps)") in note
    assert "the paper's 0.977 against 0.690" in note
    # a Local VAE above the long beta-VAE: the note does not say "above every"
    strong = [(1.0, 1.0, "pixel_mean", s, d) for s, d in enumerate((0.30, 0.32, 0.34))]
    note = diagnosis.beta_budget_note(table, _runs(base + betas + strong), long, tmp_path)
    assert "above every" not in note and "reaches 0.300 at step 300,000 (a milestone)." in note
    # beaten by a beta-VAE: nothing to qualify
    none = [(0.0, 2.0, "pixel_mean", s, 0.5) for s in range(3)]
    lost = diagnosis.codes_table(_runs(base + none + weak))
    assert diagnosis.beta_budget_note(lost, _runs(base + none + weak), long, tmp_path) == ""


def test_the_resolution_rule_needs_both_seeds_over_the_64x64_vanilla_by_its_margin():
    """The 64x64 arm's adapted codes are a lead only when both seeds' adapted D w/o colour
    clear the 64x64 vanilla VAE's by RESOLUTION_MARGIN; pending until all three finished;
    a vanilla VAE's adapted codes are its meta-encoder's."""
    res = [sr for sr in study.DIAGNOSIS if sr.choice == "resolution"
           and sr.profile == "diagnosis"]  # the screen's (the reading's seeds: the claims)
    vanilla = next(sr for sr in res if study.is_control(sr.arm))
    locs = [sr for sr in res if not study.is_control(sr.arm)]
    assert vanilla.arm == study.VANILLA_64_CONTROL and len(locs) == 2
    assert [dict(sr.settings)["resolution"] for sr in res] == [64, 64, 64]

    def frame(d_vanilla: float, adapted: list[float]) -> pd.DataFrame:
        rows = [{"profile": vanilla.profile, "run_id": vanilla.run_id, "status": "completed",
                 "steps_done": 5000, "dci_nocolor.disentanglement": d_vanilla,
                 "dci_nocolor.informativeness": 0.4}]
        rows += [{"profile": sr.profile, "run_id": sr.run_id, "status": "completed",
                  "steps_done": 5000, "dci_nocolor.disentanglement": 0.01,
                  "adapted.dci_nocolor.disentanglement": a,
                  "adapted.dci_nocolor.informativeness": 0.6}
                 for sr, a in zip(locs, adapted, strict=False)]
        return pd.DataFrame(rows)

    assert diagnosis.resolution_verdict(frame(0.12, [0.47])) == (
        "pending: 1 of 2 Local VAE seeds and the vanilla control finished (adapted codes' D "
        f"w/o colour 0.470 on {locs[0].arm}; the 64x64 vanilla VAE's 0.120; the rule's "
        "margin: 0.2)")
    m = diagnosis.RESOLUTION_MARGIN
    lead = diagnosis.resolution_verdict(frame(0.12, [0.47, 0.12 + m]))
    assert lead.startswith("disentangle more than a vanilla VAE: adapted codes' D w/o colour "
                           f"0.470, {0.12 + m:.3f} against the 64x64 vanilla VAE's 0.120")
    assert diagnosis.resolution_verdict(frame(0.12, [0.47, 0.3])).startswith("no lead")
    assert diagnosis.resolution_verdict(frame(0.4, [0.47, 0.55])).startswith("no lead")
    table = diagnosis.resolution_table(frame(0.12, [0.47, 0.3]))
    # in the plan's order; the vanilla's adapted codes are its meta-encoder's
    assert table["D adapted"].tolist() == [0.47, 0.12, 0.3]
    # a run that diverged ends the rule instead of leaving it pending for ever
    died = frame(0.12, [0.47, 0.5])
    died.loc[died["run_id"] == locs[1].run_id, ["status", "steps_done"]] = ["diverged", 3210]
    assert diagnosis.resolution_verdict(died) == (
        f"no lead: {locs[1].arm} diverged at step 3,210, so it has no adapted codes to clear "
        "the margin with")
    died = frame(0.12, [0.47, 0.5])
    died.loc[died["run_id"] == vanilla.run_id, ["status", "steps_done"]] = ["diverged", 40]
    assert diagnosis.resolution_verdict(died).startswith(
        f"no verdict: {vanilla.arm} diverged at step 40")


def test_a_reading_with_baselines_of_its_own_is_judged_against_them_alone():
    """The 64x64 reading's claims set it against the vanilla VAE and beta = 16 trained at
    64x64 (its profile, its settings' hash), never the study's 32x32 ones, whatever they
    read; its baselines are trained for it (``trains``) but are not its seeds (``owns``)."""
    res64 = next(r for r in study.READINGS if r.key == "res64")
    base = res64.baseline_runs()
    assert [(sr.experiment.alpha, sr.experiment.beta, sr.experiment.seed) for sr in base] == [
        (0.0, 1.0, 0), (0.0, 1.0, 1), (0.0, 1.0, 2), (0.0, 16.0, 0), (0.0, 16.0, 1),
        (0.0, 16.0, 2)]
    assert {sr.experiment_variant for sr in base} == {res64.variant}  # alpha: not hashed
    assert all(sr.profile == res64.profile == "reading" for sr in base)
    assert all(res64.trains(sr) and not res64.owns(sr) for sr in base)
    assert res64.trains(res64.run(1)) and not res64.trains(study.READINGS[0].run(1))
    assert study.setup("out", base[0]).config.resolution == 64
    assert set(base) <= set(study.DIAGNOSIS) and res64.run(2) in study.DIAGNOSIS
    assert all(not r.baseline_runs() for r in study.READINGS if r.key != "res64")

    def rows(profile: str, variant: str | None, alpha: float, beta: float,
             ds: tuple[float, ...]) -> list[dict]:
        return [{"dataset": "shapes3d", "alpha": alpha, "beta": beta,
                 "neighborhood": "synthetic", "reduction": "pixel_mean", "seed": s,
                 "variant": variant, "profile": profile, "source": "imported",
                 "status": "completed", "steps_done": 20_000, "config_id": "x",
                 "dci_nocolor.disentanglement": d} for s, d in enumerate(ds)]

    v = res64.variant
    runs = pd.DataFrame(
        rows("study", None, 0.0, 1.0, (0.50, 0.52, 0.54))  # the study's: must not count
        + rows("study", None, 0.0, 16.0, (0.90, 0.92, 0.94))
        + rows("reading", v, 0.0, 1.0, (0.04, 0.05, 0.06))
        + rows("reading", v, 0.0, 16.0, (0.10, 0.11, 0.12))
        + rows("reading", v, 1.0, 1.0, (0.30, 0.35, 0.40)))
    rj = diagnosis.judge_reading(runs, res64)
    head, beta = rj.row("nocolor"), rj.row("beta")
    assert rj.seeds_done == 3 and "(64x64)" in head["claim"]
    # by hand: 0.35 - 0.05 with both sides' sd 0.05 / 0.01: far above 0
    assert (head["value"], head["ours"]) == ("supports", "0.350 vs 0.050")
    assert (beta["value"], beta["ours"]) == ("supports", "0.350 vs ≤ 0.110")
    # a reading with the study's baselines reads the study's vanilla VAE on the same frame
    assert study.READINGS[2].vanilla == {"alpha": 0.0, "beta": 1.0, "neighborhood": "synthetic"}
    with pytest.raises(ValueError, match="baselines of its own need settings"):
        study.Reading("x", "x", "resolution", 1.0, own_baselines=True)


def test_a_reading_with_baselines_of_its_own_draws_them_as_its_yardsticks():
    res64 = next(r for r in study.READINGS if r.key == "res64")
    v = res64.variant
    rows = [("study", None, 0.0, 1.0), ("study", None, 0.0, 16.0), ("study", None, 1.0, 1.0),
            ("reading", v, 1.0, 1.0), ("reading", v, 0.0, 1.0), ("reading", v, 0.0, 16.0),
            ("reading", "other", 0.0, 1.0)]
    ms = pd.DataFrame([{"profile": p, "variant": var, "dataset": "shapes3d", "alpha": a,
                        "beta": b, "reduction": "pixel_mean", "neighborhood": "synthetic",
                        "step": 500, "label": "?"} for p, var, a, b in rows])
    got = diagnosis.reading_frame(ms, res64)
    assert list(zip(got["alpha"], got["beta"], got["label"], strict=True)) == [
        (1.0, 1.0, res64.label), (0.0, 1.0, "vanilla (64x64)"), (0.0, 16.0, "β=16 (64x64)")]
    assert res64.label == "α=1 (64x64)"


def test_every_screening_arms_adapted_codes_are_read_against_the_vanilla_at_its_resolution():
    """screen_codes_table: each finished screening arm's adapted D w/o colour minus the
    screen's vanilla VAE's at the same resolution (32x32 or 64x64), controls first, then
    from the highest adapted D down; the summary counts those above and those clearing
    the resolution rule's margin. By hand: 0.40 - 0.12 = 0.28 clears 0.2; 0.20 - 0.05 =
    0.15 is above but does not; 0.05 - 0.12 is below."""
    by_arm = {sr.arm: sr for sr in study.DIAGNOSIS if sr.profile == "diagnosis"}
    v32, v64 = by_arm[study.VANILLA_CONTROL], by_arm[study.VANILLA_64_CONTROL]
    a64 = by_arm["64x64 twin (the paper's resolution)"]
    gauss = by_arm["Gaussian observation model, sigma = 0.1"]
    alg1 = by_arm["Algorithm 1 literally (no 1/K on the decoder's step)"]
    diverged = by_arm["first order, lr 1e-3"]

    def row(sr: study.StudyRun, d: float, adapted: float | None = None,
            status: str = "completed") -> dict:
        out = {"profile": sr.profile, "run_id": sr.run_id, "status": status,
               "steps_done": 5000, "dci_nocolor.disentanglement": d,
               "dci_nocolor.informativeness": 0.3}
        if adapted is not None:
            out |= {"adapted.dci_nocolor.disentanglement": adapted,
                    "adapted.dci_nocolor.informativeness": 0.5}
        return out

    runs = pd.DataFrame([row(alg1, 0.01, 0.05), row(v32, 0.12), row(gauss, 0.01, 0.40),
                         row(a64, 0.01, 0.20), row(v64, 0.05),
                         row(diverged, float("nan"), status="diverged")])
    arms = pd.DataFrame({"arm": [gauss.arm], "outcome": ["memorises"]})
    t = diagnosis.screen_codes_table(runs, arms)
    assert t["arm"].tolist() == [v32.arm, v64.arm, gauss.arm, a64.arm, alg1.arm]
    assert t["resolution"].tolist() == [32, 64, 32, 64, 32]
    assert np.allclose(t["over vanilla"], [0.0, 0.0, 0.28, 0.15, -0.07])
    assert t["outcome"].tolist() == ["", "", "memorises", "", ""]
    assert diagnosis.screen_codes_summary(t) == (
        "At 5,000 steps, 2 of the 3 Local VAE screening arms' adapted codes read a higher "
        "DCI disentanglement without colour than the screen's vanilla VAE at their "
        "resolution; 1 clears it by the resolution rule's margin (0.2): Gaussian "
        "observation model, sigma = 0.1 (+0.280).")
    assert diagnosis.screen_codes_summary(t.iloc[:2]) == (
        "No Local VAE screening arm has finished on both codes yet.")
    assert diagnosis.screen_codes_table(runs.iloc[0:0]).empty
