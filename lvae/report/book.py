"""Where the book's executed pages live, and the build of the HTML book.

Jupyter Book 1.x renders notebooks *as they are* under ``execute_notebooks: "off"``, so
every page must already be executed. The committed notebooks stay clean (no outputs,
``tests/test_notebooks_clean.py``); executed copies are build products written into a
*staged book source* inside the run folder of a profile (``root`` = ``<out>/<profile>``
for ``python -m lvae reproduce``)::

    <root>/book/                    staged source: _config.yml, _toc.yml, book/ (copied)
    <root>/book/notebooks/*.ipynb   executed copies (papermill), same names as the repo's
    <root>/book/tables/*.csv        the result pages' tables (copied from <root>/tables)
    <root>/book/_build/html/        the built book

so the toc's ``notebooks/teach_vae`` resolves to the executed copy, and two builds into
different folders never touch each other or the working tree. :mod:`lvae.report.reproduce`
executes every page into :func:`executed_path` and then calls :func:`build_book`, which
stages the configuration and markdown pages and runs ``jupyter-book build``.
``jupyter-book build .`` at the repository root works too, but shows the committed
notebooks without outputs: a preview of the prose only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from lvae.report import REPO

REPO_ROOT = REPO
BOOK_DIRNAME = "book"  # staged book source under a run folder: <out_dir>/book
#: The teaching pages, run without parameters (the result pages are
#: :data:`lvae.report.reproduce.RESULT_NOTEBOOKS`).
TEACHING_NOTEBOOKS = (
    "notebooks/teach_vae.ipynb",
    "notebooks/teach_maml.ipynb",
    "notebooks/teach_local_vae.ipynb",
    "notebooks/teach_neighborhoods.ipynb",
    "notebooks/teach_lle.ipynb",
)
BOOK_FILES = ("_config.yml", "_toc.yml")  # copied next to book/ into the staged source
#: Folders copied into the staged source: the markdown pages, and the CSS Jupyter Book
#: adds to every page (``_static/*.css``).
BOOK_DIRS = ("book", "_static")
#: Where the result pages write their tables as CSV (``<root>/tables``, ``Page.csv`` of
#: :mod:`lvae.report.results`) and where the staged source gets a copy (``<root>/book/tables``):
#: a page offers them as downloads with MyST's ``{download}`` role
#: (``{download}`table1.csv </tables/table1_paper_vs_ours.csv>```), which Sphinx resolves
#: inside the source folder only and copies into ``_build/html/_downloads/``.
TABLES_DIRNAME = "tables"


def book_source(out_dir: str | Path) -> Path:
    """The staged book source of a run folder (``<out_dir>/book``)."""
    return Path(out_dir).resolve() / BOOK_DIRNAME


def executed_path(out_dir: str | Path, notebook: str | Path) -> Path:
    """Where the executed copy of a repository notebook goes (``<out_dir>/book/notebooks``).

    ``notebook`` is the repository path (``notebooks/results_table1.ipynb``); the copy keeps
    its relative path, which is what ``_toc.yml`` names.
    """
    rel = Path(notebook)
    if rel.is_absolute():
        rel = rel.relative_to(REPO_ROOT)
    return book_source(out_dir) / rel


def stage_book(out_dir: str | Path) -> Path:
    """Copy the book's configuration, markdown pages and CSS into ``<out_dir>/book``.

    Executed notebooks already there are kept; the markdown pages are refreshed from the
    working tree every time, so prose edits show up without re-running anything. The
    tables the result pages wrote (``<out_dir>/tables/*.csv``) replace the staged copies
    (:data:`TABLES_DIRNAME`), so the pages' download links serve this build's numbers.
    MathJax 3 and its fonts come with the build (the ``sphinx-mathjax-offline`` extension
    of ``_config.yml`` copies them to ``_build/html/_static/mathjax``): no CDN, no network.
    """
    src = book_source(out_dir)
    src.mkdir(parents=True, exist_ok=True)
    for name in BOOK_FILES:
        shutil.copy2(REPO_ROOT / name, src / name)
    for name in BOOK_DIRS:
        shutil.copytree(REPO_ROOT / name, src / name, dirs_exist_ok=True)
    tables, staged = Path(out_dir).resolve() / TABLES_DIRNAME, src / TABLES_DIRNAME
    shutil.rmtree(staged, ignore_errors=True)  # a table no page writes any more is gone
    if tables.is_dir():
        staged.mkdir()
        for csv in sorted(tables.glob("*.csv")):
            shutil.copy2(csv, staged / csv.name)
    return src


def toc_notebooks() -> list[str]:
    """The notebooks ``_toc.yml`` names, in its order, as repository paths
    (``notebooks/teach_vae.ipynb``): the book's pages that are executed notebooks."""
    toc = (REPO_ROOT / "_toc.yml").read_text()
    return [f + ("" if f.endswith(".ipynb") else ".ipynb")
            for f in re.findall(r"file:\s*(\S+)", toc) if f.startswith("notebooks/")]


def missing_pages(out_dir: str | Path) -> list[str]:
    """Notebooks named in ``_toc.yml`` that have no executed copy yet."""
    missing = []
    for f in toc_notebooks():
        p = executed_path(out_dir, f)
        if not p.exists():
            missing.append(str(p.relative_to(book_source(out_dir))))
    return missing


def build_book(out_dir: str | Path) -> Path:
    """Stage the book in ``<out_dir>/book`` and build its HTML; returns ``_build/html``.

    Call this after every page has been executed to :func:`executed_path`
    (``lvae.report.reproduce`` does). Raises if a page of the toc is still missing: a build would
    silently show a blank page. The build's output is kept in ``<out_dir>/book/build.log``
    (the book's tests check it has no warnings).
    """
    src = stage_book(out_dir)
    missing = missing_pages(out_dir)
    if missing:
        raise FileNotFoundError(f"no executed copy of {missing} under {src}: run them first "
                                "(python -m lvae reproduce)")
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(src), "--path-output",
           str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    (src / "build.log").write_text((proc.stdout or "") + (proc.stderr or ""))
    if proc.returncode != 0:
        tail = (proc.stdout or "")[-4000:] + (proc.stderr or "")[-4000:]
        raise RuntimeError(f"jupyter-book build failed ({proc.returncode}):\n{tail}")
    return src / "_build" / "html"
