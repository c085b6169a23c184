"""lvae: the Local VAE (a VAE trained by MAML over data neighbourhoods), reproduced and taught.

Data flows through the package in this order::

    lvae.data           ground-truth datasets (procedural twins, real-file loaders)
    lvae.neighborhoods  the K neighbours of each anchor (section 3.1, Appendix D)
    lvae.model          the Table 3 encoder/decoder as a parameter dict + functional forward
    lvae.objective      the paper's reading: eq. 1, the inner step (eqs. 7-8), eq. 6, a reference
    lvae.batched        the fast, batched form of the same objective (tested against it)
    lvae.training       Algorithm 1 with Adam, checkpoints, resume, divergence handling
    lvae.runfolder      what a run folder is: its files, "finished", its log (one reader)
    lvae.records        its records typed: result, evaluation, milestone, provenance
    lvae.generation     localized generation (figs. 2-3) and latent traversals (fig. 4)
    lvae.metrics        DCI, MIG, Frechet distances
    lvae.evaluation     one JSON of metrics per trained run
    lvae.report         the report layer, never imported by the modules above
                        (tests/test_layers.py keeps it): the grid and its runner, the
                        results store, the claims, the study and its diagnosis, shipped
                        models and their cards, the figures and the book
                        (``lvae.load_shipped("alpha=1")``: a shipped model in one call)
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``lvae.load_shipped`` without importing torch and the results layer at ``import lvae``
    (PEP 562): the package's own import stays instant, and the name is resolved on first use."""
    if name == "load_shipped":
        from lvae.report.shipped import load_shipped

        return load_shipped
    raise AttributeError(f"module 'lvae' has no attribute {name!r}")
