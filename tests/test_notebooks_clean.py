"""Committed notebooks are sources: no outputs, no execution counts, parameters tagged.

Executed copies are build products (``<out>/<profile>/book/notebooks``, see
``lvae.figures``); a notebook committed with outputs would show stale numbers in a build
that failed to re-run it, and makes every diff unreadable.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

from lvae.figures import TEACHING_NOTEBOOKS
from lvae.reproduce import RESULT_NOTEBOOKS

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
#: Notebooks run by papermill with injected parameters.
PARAMETERIZED = {"experiment.ipynb", *(Path(n).name for n in RESULT_NOTEBOOKS)}


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "no notebooks found under notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_outputs_no_counts(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert not cell.get("outputs"), f"{path.name} cell {i} has outputs: clear them"
        assert cell.get("execution_count") is None, (
            f"{path.name} cell {i} has execution_count {cell.get('execution_count')}"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if path.name in PARAMETERIZED:
        assert len(tagged) == 1, f"{path.name} needs exactly one 'parameters'-tagged cell"
        if path.name.startswith("results_"):
            src = tagged[0].source
            for name in ("out_dir", "profile"):
                assert re.search(rf"^{name}\s*=", src, re.M), f"{path.name}: no {name} parameter"
    else:
        assert not tagged, f"{path.name} is not run with parameters but has a parameters cell"


def test_toc_names_every_book_notebook() -> None:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [ch["file"] for part in toc["parts"] for ch in part["chapters"]] + [toc["root"]]
    for f in files:
        candidates = [REPO / f, REPO / f"{f}.md", REPO / f"{f}.ipynb"]
        assert any(c.is_file() for c in candidates), f"_toc.yml names {f}, which does not exist"
    for nb in (*TEACHING_NOTEBOOKS, *RESULT_NOTEBOOKS):
        assert nb.removesuffix(".ipynb") in files, f"{nb} is not in _toc.yml"


def test_config_renders_executed_notebooks_as_they_are() -> None:
    cfg = yaml.safe_load((REPO / "_config.yml").read_text())
    # a bare `off` would load as False; the string is what Jupyter Book expects
    assert cfg["execute"]["execute_notebooks"] == "off"
    assert cfg["only_build_toc_files"] is True
    assert cfg["bibtex_bibfiles"] == ["book/references.bib"]
