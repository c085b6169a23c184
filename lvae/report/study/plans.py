"""The study's plans: which runs it trains, in which order, where each lives and its name.

:data:`STUDY` lists the reference study's runs in priority order (the pilot first, then 3
seeds of the three configurations the headline claims need, then the rest as compute
allows); :data:`DIAGNOSIS` the diagnosis's, each changing one choice the paper leaves open
(issue 21). :func:`setup` turns a :class:`StudyRun` into its validated config and folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lvae.report.figures import config_label
from lvae.report.grid import TABLE1_BETAS, Experiment
from lvae.report.params import experiment_config, experiment_of


@dataclass(frozen=True)
class StudyRun:
    """One run of the study: an experiment, the profile it runs at, and why it is there.

    ``settings`` are training settings the run changes from its profile (the diagnosis's
    arms: ``(("lr", 1e-4),)``), passed to :func:`lvae.report.params.experiment_config`; ``arm``
    names what it tests, as the Diagnosis page shows it.
    """

    experiment: Experiment
    profile: str
    purpose: str
    settings: tuple[tuple[str, Any], ...] = ()
    arm: str = ""
    #: the open choice a diagnosis run tests (a key of lvae.report.diagnosis.CHOICES; "control"
    #: for the readout's yardsticks)
    choice: str = ""

    @property
    def name(self) -> str:
        return f"{self.profile}/{self.run_id}"

    @property
    def run_id(self) -> str:
        """The folder name: the experiment's id, with the settings' hash where they vary."""
        return setup("runs", self).run_id

    @property
    def screened(self) -> bool:
        """Whether the Diagnosis's rule reads it at its screen step: every run of the plan
        but the baselines at the paper's budget (choice ``budget``: no inner step to
        memorise with; their own rule reads them at 300k)."""
        return self.choice != "budget"

    @property
    def experiment_variant(self) -> str | None:
        """The settings' hash its id carries (None where its profile's runs carry none)."""
        return experiment_of(setup("runs", self).config).variant


#: The beta of the beta-VAE a reading with baselines of its own trains (the study's: Table
#: 1's best beta-VAE without colour).
OWN_BETA = 16.0
#: The profile whose runs the readings are judged against (the study's vanilla VAE and
#: beta-VAE) and at whose budget they train.
BASELINE_PROFILE = "study"
#: The profile of a reading that changes training settings (lvae.config.PROFILES).
READING_PROFILE = "reading"


def _shapes(alpha: float, seed: int, beta: float = 1.0, neighborhood: str = "synthetic"
            ) -> Experiment:
    return Experiment("shapes3d", alpha, beta, neighborhood, seed)


def _plan() -> list[StudyRun]:
    pilot = "pilot: "
    runs = [
        StudyRun(_shapes(0.0, 0), "study", pilot + "vanilla VAE at lr 1e-3 (seed 0 of the study)"),
        StudyRun(_shapes(1.0, 0), "study", pilot + "alpha = 1 at lr 1e-3 (seed 0 of the study)"),
        StudyRun(_shapes(0.0, 0), "cpu", pilot + "vanilla VAE at the paper's lr 1e-4"),
        StudyRun(_shapes(0.0, 0, beta=16.0), "study", "beta-VAE baseline (Table 1)"),
    ]
    for s in (1, 2):
        runs += [StudyRun(_shapes(0.0, s), "study", "vanilla VAE (Table 1)"),
                 StudyRun(_shapes(0.0, s, beta=16.0), "study", "beta-VAE baseline (Table 1)")]
    runs += [StudyRun(_shapes(1.0, s), "study", "alpha = 1 (Table 1 headline)") for s in (1, 2)]
    runs += [StudyRun(_shapes(1e-1, s), "study", "alpha = 0.1 (Table 1)") for s in range(3)]
    runs += [StudyRun(_shapes(1.0, s, neighborhood="input_l2"), "study",
                      "alpha = 1, input-space l2 neighbours (Table 5)") for s in range(3)]
    runs += [StudyRun(_shapes(a, 0), "study", f"alpha = {a:g}: does it diverge? (Table 1)")
             for a in (10.0, 100.0)]
    return runs


#: The study's runs in the order workers take them (the book's reproduce page states it).
STUDY: tuple[StudyRun, ...] = tuple(_plan())


@dataclass(frozen=True)
class Reading:
    """A reading of the open choices that escaped the diagnosis's screen, trained as the
    study trains its runs (20k steps, the study's evaluation) for ``seeds`` seeds and
    judged on the claims like the study (:func:`lvae.report.diagnosis.judge_reading`): the
    Local VAE at ``alpha`` under the loss scale ``reduction`` with ``neighborhood``
    neighbours, against the study's vanilla and beta-VAE runs (a constant factor on a
    vanilla VAE's loss changes nothing Adam does, so they serve under either scale).

    A reading whose settings change what the baselines see too (the paper's 64x64
    resolution: other images, another network) is judged against baselines of its own
    (``own_baselines``): the vanilla VAE and beta = 16 trained at its settings, its profile
    and its seeds (:meth:`baseline_runs`), never the study's 32x32 ones.

    A reading that changes a training setting (``settings``, as a screening arm does:
    ``(("adapted_prior_sigma", 0.01),)``) runs at the ``reading`` profile, the study's
    budget under a label of its own whose run ids carry the settings' hash, so its runs
    are never pooled with the study's runs of the same alpha; ``note`` names the settings
    where its configuration is named (``"eq. 5's prior, sigma = 0.01"``).
    """

    key: str
    name: str
    choice: str  # the open choice it changes (lvae.report.diagnosis.CHOICES)
    alpha: float
    reduction: str | None = None  # None: the study's pixel_mean
    neighborhood: str = "synthetic"
    seeds: int = 3
    settings: tuple[tuple[str, Any], ...] = ()
    note: str = ""
    own_baselines: bool = False

    def __post_init__(self) -> None:
        if bool(self.settings) != bool(self.note):
            raise ValueError(f"reading {self.key!r}: a reading that changes settings names "
                             "them in a note, and only such a reading has one "
                             f"(settings {self.settings!r}, note {self.note!r})")
        if self.own_baselines and not self.settings:
            raise ValueError(f"reading {self.key!r}: baselines of its own need settings to "
                             "train them at; without, the study's baselines are its own")

    @property
    def profile(self) -> str:
        """Where its runs live: the study's profile, or ``reading`` where it changes
        settings (the study's budget, its runs apart from the study's)."""
        return READING_PROFILE if self.settings else BASELINE_PROFILE

    @property
    def variant(self) -> str | None:
        """Its settings' hash (:attr:`lvae.report.grid.Experiment.variant`), None without."""
        return self.run(0).experiment_variant if self.settings else None

    @property
    def runs(self) -> dict[str, Any]:
        """What selects its runs (:func:`lvae.report.results.select` keywords)."""
        out: dict[str, Any] = {"alpha": float(self.alpha), "beta": 1.0,
                               "neighborhood": self.neighborhood, "profile": self.profile}
        if self.reduction is not None:
            out["reduction"] = self.reduction
        if self.settings:
            out["variant"] = self.variant
        return out

    @property
    def local(self) -> dict[str, Any]:
        """Its configuration as the claims name one (:func:`lvae.report.claims.cfg`): its
        runs, judged against the paper's 3D Shapes row of its alpha (synthetic
        neighbourhoods: the paper's, whichever neighbourhood the reading uses), named with
        its note."""
        row = {"alpha": float(self.alpha), "beta": 1.0, "neighborhood": "synthetic"}
        out = self.runs if self.neighborhood == "synthetic" else {**self.runs, "row": row}
        return {**out, "note": self.note} if self.note else out

    def _baseline(self, beta: float) -> dict[str, Any]:
        """The configuration (a :func:`lvae.report.claims.cfg` with its runs' keys) of
        the baseline at ``beta`` it is judged against."""
        base: dict[str, Any] = {"alpha": 0.0, "beta": float(beta), "neighborhood": "synthetic"}
        if not self.own_baselines:
            return base
        return {**base, "profile": self.profile, "variant": self.variant, "note": self.note}

    @property
    def vanilla(self) -> dict[str, Any]:
        """The vanilla VAE it is judged against: the study's, or its own
        (``own_baselines``: its profile and settings' hash, named with its note)."""
        return self._baseline(1.0)

    @property
    def betas(self) -> tuple[dict[str, Any], ...]:
        """The beta-VAEs of Table 1's grid it is judged against (as :attr:`vanilla`; a
        claim leaves out those without runs: its own baselines train beta = 16 alone, as
        the study does)."""
        return tuple(self._baseline(b) for b in TABLE1_BETAS)

    @property
    def beta_vae(self) -> dict[str, Any]:
        """The beta-VAE its own baselines train (:data:`OWN_BETA`), as :attr:`vanilla`."""
        return self._baseline(OWN_BETA)

    def baseline_runs(self) -> list[StudyRun]:
        """The baselines the plan trains for it (``own_baselines``): the vanilla VAE and
        beta = 16, one per seed, at its settings and profile; none where the study's serve."""
        if not self.own_baselines:
            return []
        return [StudyRun(_shapes(0.0, s, beta=b), self.profile,
                         f"the {name} at the settings of a reading ({self.name}): the "
                         "baseline it is judged against", self.settings,
                         arm=f"control: {name}, {self.note}, 20k steps, seed {s}",
                         choice=self.choice)
                for b, name in ((1.0, "vanilla VAE"), (OWN_BETA, f"beta-VAE (beta = {OWN_BETA:g})"))
                for s in range(self.seeds)]

    def trains(self, sr: StudyRun) -> bool:
        """Whether ``sr`` is trained for it: one of its seeds or of its own baselines."""
        return self.owns(sr) or sr in self.baseline_runs()

    @property
    def label(self) -> str:
        """Its configuration as figures name it (:func:`label`, and its note)."""
        base = label(self.experiment(0))
        if not self.note:
            return base
        # one parenthesis: "α=1 (latent_knn, lr 1e-4)", not "α=1 (latent_knn) (lr 1e-4)"
        return f"{base[:-1]}, {self.note})" if base.endswith(")") else f"{base} ({self.note})"

    def experiment(self, seed: int) -> Experiment:
        return Experiment("shapes3d", self.alpha, 1.0, self.neighborhood, seed,
                          reduction=self.reduction)

    def run(self, seed: int) -> StudyRun:
        """Its run of seed ``seed`` in :data:`DIAGNOSIS`."""
        return StudyRun(self.experiment(seed), self.profile,
                        f"the reading that escaped the screen ({self.name}) at the study's "
                        "budget, judged on the claims", self.settings,
                        arm=f"{self.name}, 20k steps, seed {seed}", choice=self.choice)

    def owns(self, sr: StudyRun) -> bool:
        """Whether ``sr`` is one of its seeds (not a screening arm)."""
        return (sr.profile == self.profile and sr.settings == self.settings
                and sr.experiment == self.experiment(sr.experiment.seed))


#: The screen's vanilla VAE control: rows that ignore their reference (the diagnosis reads
#: other arms' copy distances against its).
VANILLA_CONTROL = "control: vanilla VAE"
#: The screen's beta-VAE control (the readout figure's row when no arm is shipped).
BETA_CONTROL = "control: beta-VAE (beta = 16)"
#: The screen's control that memorises: alpha = 1 as the study trains it, with the readout
#: and early milestones (the readout figure's black line; the step table's yardstick).
STUDY_CONTROL = "control: the study's reading"
#: The vanilla VAE at the paper's 64x64 on the twin: the yardstick of the resolution rule.
VANILLA_64_CONTROL = "control: vanilla VAE, 64x64 twin"


def is_control(arm: object) -> bool:
    """Whether a screen arm's name marks it a control (a yardstick for the readout, not a
    reading of the paper): every control's name starts with ``control``, as the three above
    and the lr 1e-4 vanilla VAE's do; the arm's choice cannot tell, since that control
    shares the ``lr`` choice with the reading it calibrates."""
    return str(arm).startswith("control")

#: The readings that escaped the screen by the Diagnosis page's rule, in the order they did.
READINGS: tuple[Reading, ...] = (
    Reading("sum", "loss summed over pixels, alpha = 0.1", "scale", 0.1, "sum"),
    Reading("knn", "latent-space kNN neighbours", "neighbourhood", 1.0,
            neighborhood="latent_knn"),
    Reading("prior", "eq. 5's prior kept, sigma = 0.01", "prior", 1.0,
            settings=(("adapted_prior_sigma", 0.01),), note="eq. 5's prior, σ = 0.01"),
    # escaped the screen in session 12 (KL 15.9 nats, local share 0.50 at 5k)
    Reading("prior_lr", "eq. 5's prior kept, sigma = 0.01, lr 1e-4", "combined", 1.0,
            settings=(("adapted_prior_sigma", 0.01), ("lr", 1e-4)),
            note="eq. 5's prior, σ = 0.01, lr 1e-4"),
    # both escaped the screen in session 12/13 (KL 16.3 nats, local share 0.251; KL 23.7,
    # local share 4.27, its rows the meta-decoder's whatever the reference: a vanilla VAE)
    Reading("knn_lr", "latent-space kNN neighbours, lr 1e-4", "combined", 1.0,
            neighborhood="latent_knn", settings=(("lr", 1e-4),), note="lr 1e-4"),
    Reading("knn_prior", "latent-space kNN neighbours with eq. 5's prior, sigma = 0.01",
            "combined", 1.0, neighborhood="latent_knn",
            settings=(("adapted_prior_sigma", 0.01),), note="eq. 5's prior, σ = 0.01"),
    # session 19: not an escape by the screen's rule (its meta codes memorise) but a lead
    # by the resolution rule (lvae.report.diagnosis.RESOLUTION_RULE): its adapted codes
    # read D w/o colour 0.472 and 0.346 at 5k against the 64x64 vanilla VAE's 0.053. The
    # 64x64 twin changes what the baselines see too, so it trains baselines of its own
    Reading("res64", "the paper's resolution, 64x64 twin", "resolution", 1.0,
            settings=(("resolution", 64),), note="64x64", own_baselines=True),
)


def _arm(choice: str, arm: str, purpose: str, alpha: float = 1.0, beta: float = 1.0,
         neighborhood: str = "synthetic", reduction: str | None = None, seed: int = 0,
         **settings: Any) -> StudyRun:
    e = Experiment("shapes3d", alpha, beta, neighborhood, seed, reduction=reduction)
    return StudyRun(e, "diagnosis", purpose, tuple(sorted(settings.items())), arm, choice)


def _input_l2(seed: int) -> StudyRun:
    """Table 5's run: alpha = 1 with input-space l2 neighbours, at the study's budget."""
    return StudyRun(_shapes(1.0, seed, neighborhood="input_l2"), "study",
                    "alpha = 1, input-space l2 neighbours (Table 5)",
                    arm=f"input-space l2 neighbours, seed {seed} (Table 5)",
                    choice="neighbourhood")


def _diagnosis() -> list[StudyRun]:
    """The diagnosis (issue 21): one choice the paper leaves open changed per run, from the
    study's reading (alpha = 1, pixel_mean, lr 1e-3, second order, eqs. 7-8, Bernoulli
    neighbours, eq. 6), in the order the workers take them: the long run at the paper's lr
    first, then the cheap controls the readout's thresholds are read against, then the arms
    most likely to move the readout."""
    lr4 = "lr 1e-4 (Table 4)"

    def prior(sigma: float) -> StudyRun:
        return _arm("prior", f"eq. 5's prior kept, sigma = {sigma:g}",
                    "the prior p(theta_N | theta) that eq. 6 drops, on the adapted decoder: "
                    "penalises a large inner step", adapted_prior_sigma=sigma)

    def gaussian(sigma: float) -> StudyRun:
        return _arm("noise", f"Gaussian observation model, sigma = {sigma:g}",
                    "Gaussian decoder and Gaussian synthetic neighbours (anchor + sigma * "
                    "noise) instead of Bernoulli draws", likelihood="gaussian",
                    gaussian_sigma=sigma)

    summed, knn, kept, kept_lr, knn_lr, knn_kept, res64 = READINGS
    base64 = res64.baseline_runs()  # the vanilla VAE's seeds, then beta = 16's
    vanilla64, beta64 = base64[:res64.seeds], base64[res64.seeds:]

    return [
        StudyRun(_shapes(1.0, 0), "cpu", "alpha = 1 at the paper's lr 1e-4 for 20k steps: the "
                 "obvious objection to the study's lr", arm=lr4, choice="lr"),
        # added after the screen's first arms (session 9): the one reading that escaped
        # goes to 20k x 3 seeds (issue 21), its first seed beside the cheap arms
        summed.run(0),
        _arm("control", VANILLA_CONTROL, "the readout of a model that does not "
             "memorise", 0.0),
        _arm("control", BETA_CONTROL, "the readout of the most compressed "
             "baseline", 0.0, beta=16.0),
        _arm("lr", "control: vanilla VAE, lr 1e-4", "the vanilla VAE at the paper's lr", 0.0,
             lr=1e-4),
        _arm("order", "first order, lr 1e-3", "MAML's first-order approximation at the "
             "study's lr (probes diverged within 13 steps: seconds to record)",
             first_order=True),
        # sigma from a measurement: the memorising study model's decoder step has
        # ||theta' - theta||^2 = 1.8 (the vanilla VAE's would be 0.05), so under pixel_mean
        # the prior costs it 1.8 / (2 sigma^2 3072) = 0.33 per pixel value at sigma 0.03,
        # about its whole loss (0.29); 2.9 at 0.01 (dominant); 0.03 at 0.1 (a tenth).
        # One arm of each choice first, so every choice is screened as early as it can be.
        prior(0.03),
        gaussian(0.1),
        _arm("scale", "loss summed over pixels, alpha = 0.1",
             "eq. 1 read literally, with the paper's alpha grid as printed", 0.1,
             reduction="sum"),
        _arm("algorithm1", "Algorithm 1 literally (no 1/K on the decoder's step)",
             "Algorithm 1's line 5 as printed: the decoder steps K times eq. 7's step",
             algorithm1_literal=True),
        _arm("order", "first order, lr 1e-4",
             "MAML's first-order approximation at the paper's lr", first_order=True, lr=1e-4),
        _arm("neighbourhood", "latent-space kNN neighbours",
             "the paper's other neighbourhood (CarsNORB's)", neighborhood="latent_knn"),
        _arm("scale", "pixel_mean, alpha = 3",
             "the summed loss's alpha = 1e-3 in pixel_mean units (x 3072 at 32x32)", 3.0),
        # latent kNN escaped the screen (session 9): its first seed at the study's budget
        knn.run(0),
        # reordered in session 9, when the summed loss's seed 0 diverged at step 9,472 at
        # the study's budget: the cheap screens first (the rest of the paper's alpha grid
        # read literally, the summed loss with the paper's lr too: the paper's settings
        # exactly as printed), then that reading's other seeds, then the long runs
        *[_arm("scale", f"loss summed over pixels, alpha = {a:g}",
               "eq. 1 read literally, with the paper's alpha grid as printed", a,
               reduction="sum") for a in (1e-2, 1e-3)],
        *[_arm("combined", f"loss summed over pixels, alpha = {a:g}, lr 1e-4",
               "the paper's loss, alpha and lr all as printed (a combination: the summed "
               "loss escaped the screen at lr 1e-3)", a, reduction="sum", lr=1e-4)
          for a in (1.0, 0.1)],
        prior(0.01),
        gaussian(0.2),
        prior(0.1),
        gaussian(0.05),
        _arm("control", STUDY_CONTROL,
             "alpha = 1 as the study trains it, with the readout and early milestones"),
        # reordered in session 10, when the screen's pictures showed that neither escaping
        # reading draws Figure 3 (the summed loss's "escape" is pixel noise; latent kNN
        # tints and blurs) and latent kNN's seed 0 read D w/o colour 0.073 at 10k: the
        # long baselines, which alone say whether the twin at 32x32 can reach the paper's
        # beta-VAE at all, go beside the readings' other seeds instead of after them
        # added in session 11: the last open choice without an arm, the paper's resolution
        # on the twin (64x64 steps cost 3.4 times 32x32's on one core: ~3 CPU-h for the
        # screen, so it runs beside eq. 5's prior's seed 0, not on a GPU that is not lent)
        _arm("resolution", "64x64 twin (the paper's resolution)",
             "the paper's 64x64 on the procedural twin, the study's settings otherwise",
             resolution=64),
        # eq. 5's prior at sigma = 0.01 escaped the screen (session 10): its seeds go
        # beside the long baselines and latent kNN's, seed 0 first (session 11)
        kept.run(0),
        StudyRun(_shapes(0.0, 0, beta=16.0), "long", "the beta-VAE at the paper's budget "
                 "(300k steps, lr 1e-4): does it approach the paper's 0.690?",
                 arm="beta-VAE (beta = 16), 300k steps, lr 1e-4", choice="budget"),
        # added in session 12, before the readings' other seeds (~0.55 CPU-h each against
        # ~2.5 for a seed at 20k): the combinations of what moved the readout (issue 21,
        # section 2's last line): each escaping reading with the paper's lr as printed
        # (Table 4; the summed loss had its own above), and the two escaping readings that
        # change different things (the neighbourhood, the objective) together; judged by
        # the same rule at 5k
        _arm("combined", "eq. 5's prior kept, sigma = 0.01, lr 1e-4",
             "a combination: eq. 5's prior (escaped the screen) with the paper's lr",
             adapted_prior_sigma=0.01, lr=1e-4),
        _arm("combined", "latent-space kNN neighbours, lr 1e-4",
             "a combination: latent kNN (escaped the screen) with the paper's lr",
             neighborhood="latent_knn", lr=1e-4),
        _arm("combined", "latent-space kNN neighbours with eq. 5's prior, sigma = 0.01",
             "a combination of the two escaping readings that change different things",
             neighborhood="latent_knn", adapted_prior_sigma=0.01),
        # eq. 5's prior with the paper's lr escaped the screen (session 12): its seed 0 at
        # the study's budget next, its other seeds after the other readings'
        kept_lr.run(0),
        # session 13: the vanilla VAE at the paper's budget moved before the readings' other
        # seeds (1.5 CPU-h against ~2.5 for a seed at 20k: it completes the budget's pair),
        # then the two combinations that escaped the screen (sessions 12-13) get their
        # seed 0, their other seeds at the end of the plan
        StudyRun(_shapes(0.0, 0), "long", "the vanilla VAE at the paper's budget (300k steps, "
                 "lr 1e-4)", arm="vanilla VAE, 300k steps, lr 1e-4", choice="budget"),
        knn_lr.run(0),
        knn_kept.run(0),
        kept.run(1),
        knn.run(1),
        kept.run(2),
        knn.run(2),
        # session 16: Table 5's three runs before the summed loss's other seeds: they turn a
        # claim the landing page calls "not tested" into a verdict, while the summed loss's
        # seed 0 diverged at step 9,472 (its other seeds say whether that is the reading's)
        _input_l2(0),
        # session 18: the 64x64 arm's adapted codes read D w/o colour 0.472 at 5k (its
        # meta-encoder's 0.012; the 32x32 study arm's adapted codes 0.007): the vanilla VAE
        # at 64x64 and a second seed, judged by the Diagnosis page's resolution rule
        # (written before they ran), before Table 5's other seeds (~0.1 + 1.6 CPU-h against
        # ~6 for those two: the cheaper decision first)
        _arm("resolution", VANILLA_64_CONTROL, "the vanilla VAE at the paper's resolution: "
             "the yardstick for the 64x64 arm's adapted codes", 0.0, resolution=64),
        _arm("resolution", "64x64 twin (the paper's resolution), seed 1",
             "a second seed of the 64x64 arm, for its adapted codes' DCI", seed=1,
             resolution=64),
        _input_l2(1),
        _input_l2(2),
        # session 19: the 64x64 reading at the study's budget, as the resolution rule asked
        # (its seeds cost ~2 CPU-s a step at 64x64 beside another worker, against ~0.45 at
        # 32x32; a lent GPU would do them in minutes): seed 0 with its two baselines'
        # seed 0 first (one seed already says whether the adapted codes' lead survives
        # 20k steps), then the one 1-seed reading above the vanilla VAE (latent kNN with
        # eq. 5's prior, 0.234) gets its seeds, then the 64x64 reading's other seeds, then
        # the readings whose seed 0 fell below the vanilla VAE
        vanilla64[0], beta64[0], res64.run(0),
        knn_kept.run(1),
        knn_kept.run(2),
        *vanilla64[1:], *beta64[1:], res64.run(1), res64.run(2),
        summed.run(1),
        summed.run(2),
        kept_lr.run(1),
        kept_lr.run(2),
        *[knn_lr.run(s) for s in (1, 2)],
    ]


#: The diagnosis's runs in the order workers take them (``study work --plan diagnosis``).
DIAGNOSIS: tuple[StudyRun, ...] = tuple(_diagnosis())


#: The plans a worker can work through, by name.
PLANS: dict[str, tuple[StudyRun, ...]] = {"study": STUDY, "diagnosis": DIAGNOSIS}


def plan(name: str) -> tuple[StudyRun, ...]:
    """The plan called ``name`` (an error naming the known ones if none is)."""
    if name not in PLANS:
        raise ValueError(f"no plan is called {name!r}; the plans are {', '.join(PLANS)}")
    return PLANS[name]


def study_run(name: str) -> StudyRun:
    """The run called ``name`` (``profile/run_id``, as ``status`` prints) in any plan."""
    every = [sr for p in PLANS.values() for sr in p]
    for sr in every:
        if sr.name == name:
            return sr
    raise ValueError(f"no study run is called {name!r}; the plans' runs are "
                     f"{', '.join(sr.name for sr in every)}")


def run_dir(out: str | Path, sr: StudyRun) -> Path:
    """Where a run of a plan lives: ``<out>/<label>/<run_id>``, its profile's label (or
    ``custom``, for a run of a profile that does not vary settings with some changed)."""
    return setup(out, sr).run_dir


def setup(out: str | Path, sr: StudyRun):
    """The run's validated :class:`lvae.report.params.ExperimentSetup` (config and folder)."""
    e = sr.experiment
    return experiment_config(dataset=e.dataset, alpha=e.alpha, beta=e.beta,
                             neighborhood=e.neighborhood, seed=e.seed, profile=sr.profile,
                             reduction=e.reduction, out_dir=str(out), **dict(sr.settings))


def label(e: Experiment, lr: float | None = None) -> str:
    """The configuration as the book names it (:func:`lvae.report.figures.config_label`:
    ``vanilla``,
    ``α=1``, ``β=16``, ``α=1 (input_l2)``, ``α=0.1 (summed loss)``), with ``, lr 1e-4``
    when given."""

    name = config_label({"alpha": e.alpha, "beta": e.beta, "neighborhood": e.neighborhood,
                         "reduction": e.reduction})
    return name + (f", lr {lr_text(lr)}" if lr else "")


def lr_text(lr: float) -> str:
    """A learning rate as the book writes it: ``1e-3``, ``1e-4`` (``{:g}`` gives
    ``0.0001``, which in a narrow column runs into the next)."""
    return f"{lr:.0e}".replace("e-0", "e-")
