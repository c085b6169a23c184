"""Committed notebooks are sources: no outputs, no execution counts, parameters tagged.

Executed copies are build products (``<out>/<profile>/book/notebooks``, see
``lvae.report.book``); a notebook committed with outputs would show stale numbers in a build
that failed to re-run it, and makes every diff unreadable.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from lvae.report.book import TEACHING_NOTEBOOKS
from lvae.report.reproduce import RESULT_NOTEBOOKS

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
#: Notebooks run by papermill with injected parameters.
PARAMETERIZED = {"experiment.ipynb", *(Path(n).name for n in RESULT_NOTEBOOKS)}


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "no notebooks found under notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_has_an_id(path: Path) -> None:
    """nbformat 4.5 requires cell ids (a missing one is a warning today, an error in later
    nbformat versions): a cell added by hand or by a script must carry one."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    missing = [i for i, cell in enumerate(cells) if not cell.get("id")]
    assert not missing, f"{path.name}: cells {missing} have no id; run nbformat's normalize()"


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


def test_missing_pages_are_the_toc_notebooks_without_an_executed_copy(tmp_path: Path) -> None:
    """What build_book refuses to build without: the toc's pages not yet executed."""
    from lvae.report.book import executed_path, missing_pages

    expected = {*TEACHING_NOTEBOOKS, *RESULT_NOTEBOOKS}
    assert set(missing_pages(tmp_path)) == expected
    done = executed_path(tmp_path, REPO / TEACHING_NOTEBOOKS[0])
    assert done == tmp_path.resolve() / "book" / TEACHING_NOTEBOOKS[0]
    done.parent.mkdir(parents=True)
    done.write_text("{}")
    assert set(missing_pages(tmp_path)) == expected - {TEACHING_NOTEBOOKS[0]}


@pytest.mark.parametrize("nb", RESULT_NOTEBOOKS)
def test_result_pages_are_narrative_parameters_and_calls(nb: str) -> None:
    """A result page's logic lives in the library, where it is tested: no function or
    class of its own, and every plot is one call into lvae.report.figures (no matplotlib)."""
    book = nbformat.read(REPO / nb, as_version=4)
    code = "\n".join(c.source for c in book.cells if c.cell_type == "code")
    assert not re.search(r"^\s*(async\s+)?(def|class)\s", code, re.M), f"{nb} defines code"
    assert not re.search(r"matplotlib|\bplt\.|\bax\.|\baxes\b", code), f"{nb} plots by hand"


@pytest.mark.parametrize("nb", RESULT_NOTEBOOKS)
def test_result_pages_show_results_not_code(nb: str) -> None:
    """Every code cell of a result page is folded (hide-input) or removed from the page:
    a reader sees tables, figures and text, and the code one click away at most."""
    book = nbformat.read(REPO / nb, as_version=4)
    folded = {"hide-input", "remove-input", "remove-cell"}
    shown = [i for i, c in enumerate(book.cells) if c.cell_type == "code"
             and not folded & set(c.metadata.get("tags", []))]
    assert not shown, f"{nb}: code cells {shown} print their source on the page"
    assert all("id" in c for c in book.cells), f"{nb}: a cell without an id (nbformat 4.5)"
