"""The report layer: what turns runs into the book, apart from the science it reads.

The science (``lvae.data`` ... ``lvae.evaluation``) never imports this package
(``tests/test_layers.py`` keeps the line). Here, top down:

    lvae.report.grid, params     the paper's experiment grid; the experiment notebook's
                                 parameters, checked and turned into a run's config
    lvae.report.reproduce        the grid as executed notebooks on Dask, then the book
    lvae.report.results, paper   the results store (every run folder as one row) and the
                                 paper's own numbers
    lvae.report.claims           the paper's claims judged by intervals over seeds
    lvae.report.study            the reference study: long runs, milestones, shipped evidence
                                 (plans, measures, shipping, workers, frames)
    lvae.report.diagnosis        the open choices screened by a rule fixed before the results
    lvae.report.shipped, cards   a shipped model in one call, and its model card
    lvae.report.figures, explore the book's plots; the alpha slider
    lvae.report.book, execstats  staging and building the book; its execution statistics
"""

from pathlib import Path

#: The repository's root: the notebooks, the book's sources and the shipped ``results/``.
REPO = Path(__file__).resolve().parents[2]


def quiet_progress() -> None:
    """Turn off tqdm progress bars in this process (pages should not show them).

    Library code shows progress for long CPU jobs (graph building, re-encoding); on a book
    page the bars are noise in stderr. Patching the base class silences ``tqdm.auto`` too.
    """
    from functools import partialmethod

    from tqdm.std import tqdm

    tqdm.__init__ = partialmethod(tqdm.__init__, disable=True)  # type: ignore[method-assign]
