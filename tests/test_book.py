"""The whole book, end to end on the ``smoke`` profile, through ``lvae.report.reproduce``.

One training run (3D Shapes, alpha = 1: the model behind Figures 2-4) keeps this within a
few minutes on 2 cores; the other configurations are absent, which the result pages must
show as such ("—") rather than fail on. Every teaching and result page is executed by
papermill into the staged book and rendered by ``jupyter-book build``. The build is the
session fixture ``built`` of ``conftest.py``, shared with ``test_browser.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

from lvae.report.book import TEACHING_NOTEBOOKS, book_source, executed_path
from lvae.report.reproduce import RESULT_NOTEBOOKS

pytestmark = [pytest.mark.book, pytest.mark.timeout(1500)]  # the first test builds the book

REPO = Path(__file__).resolve().parent.parent
PROFILE = "smoke"


def _toc_pages() -> list[str]:
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    return [toc["root"]] + [ch["file"] for part in toc["parts"] for ch in part["chapters"]]


def test_reproduce_succeeds(built: dict) -> None:
    s = built["summary"]
    assert s.ok, s.report()
    assert s.book_html is not None and (s.book_html / "index.html").is_file(), s.report()
    print(f"book built in {built['wall']:.0f} s")


def test_every_page_rendered(built: dict) -> None:
    html = built["summary"].book_html
    for page in _toc_pages():
        assert (html / f"{page}.html").is_file(), f"{page}.html missing from the book"


@pytest.mark.parametrize("nb", [*TEACHING_NOTEBOOKS, *RESULT_NOTEBOOKS])
def test_pages_executed_without_error(built: dict, nb: str) -> None:
    path = executed_path(Path(built["out"]) / PROFILE, nb)
    assert path.is_file(), f"no executed copy of {nb}"
    book = nbformat.read(path, as_version=4)
    errors = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors, f"{nb}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    images = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, f"{nb} produced no figure"


@pytest.mark.parametrize("page", [Path(n).stem for n in RESULT_NOTEBOOKS])
def test_result_pages_show_tables_and_figures(built: dict, page: str) -> None:
    text = (built["summary"].book_html / "notebooks" / f"{page}.html").read_text()
    assert "<img" in text, f"{page}: no figure in the HTML"
    if page == "results_study":  # the shipped study: its own layout, no paper-vs-ours table
        assert "Where the study stands" in text and "z-share" in text
        assert "<table" in text and "Traceback" not in text
        return
    if page == "results_diagnosis":  # the shipped diagnosis: the rule, the choices, the arms
        assert "fixed before the results" in text and "local share" in text
        assert "<table" in text and "Traceback" not in text
        return
    if page == "results_model_cards":  # four cards of shipped models, each with its fields
        from lvae.report.cards import card_fields

        assert text.count('class="rubric"') >= 4 * len(card_fields), "cards without sections"
        assert "<table" in text and "Traceback" not in text
        return
    if page == "build_stats":  # every notebook, the machine, the versions
        assert "Execution statistics" in text and "jupyter-book" in text and "papermill" in text
        assert "<table" in text and "Traceback" not in text
        return
    if page not in ("results_traversal", "results_explore_alpha"):  # figures only
        assert "<table" in text, f"{page}: no table in the HTML"
        assert "paper" in text and "ours" in text and "Δ" in text
    assert "Where these numbers come from" in text or "Which model" in text
    assert "Traceback" not in text


def test_result_tables_written_as_csv(built: dict) -> None:
    tables = Path(built["out"]) / PROFILE / "tables"
    html = built["summary"].book_html / "notebooks"
    for name in ("table1", "table2", "table5"):
        assert (tables / f"{name}_paper_vs_ours.csv").is_file()
        # the page names it from the output folder down, not by this machine's path
        text = (html / f"results_{name}.html").read_text()
        assert f"{PROFILE}/tables/{name}_paper_vs_ours.csv" in text, name
        assert str(tables) not in text, name


@pytest.mark.parametrize("page, csv", [("results_table1", "table1_paper_vs_ours.csv"),
                                       ("results_table2", "table2_paper_vs_ours.csv"),
                                       ("results_table5", "table5_paper_vs_ours.csv"),
                                       ("build_stats", "build_stats.csv")])
def test_tables_are_downloads_of_this_builds_csv(built: dict, page: str, csv: str) -> None:
    """The page links its table's CSV as a download served from the build itself
    (``_downloads/``), the very file the page wrote, and it parses."""
    html = built["summary"].book_html
    text = (html / "notebooks" / f"{page}.html").read_text()
    links = re.findall(r'<a class="reference download internal" download="" '
                       r'href="([^"]+)"', text)
    mine = [h for h in links if h.endswith("/" + csv)]
    assert len(mine) == 1, f"{page}: download links {links}"
    served = (html / "notebooks" / mine[0]).resolve()
    assert served.is_relative_to(html / "_downloads")
    written = Path(built["out"]) / PROFILE / "tables" / csv
    assert served.read_bytes() == written.read_bytes()
    assert len(pd.read_csv(served)) > 0


def test_download_button_serves_the_executed_notebook(built: dict) -> None:
    """The theme's .ipynb button serves ``_sources/<page>.ipynb``: the executed copy (with
    its outputs and papermill's record), not the committed notebook without outputs."""
    html = built["summary"].book_html
    root = Path(built["out"]) / PROFILE
    for nb in (*TEACHING_NOTEBOOKS, *RESULT_NOTEBOOKS):
        page = Path(nb).stem
        text = (html / "notebooks" / f"{page}.html").read_text()
        assert f'href="../_sources/notebooks/{page}.ipynb"' in text, page
        served = html / "_sources" / "notebooks" / f"{page}.ipynb"
        assert served.read_bytes() == executed_path(root, nb).read_bytes(), page
        book = json.loads(served.read_text())
        assert book["metadata"]["papermill"]["duration"] > 0
        assert any(c.get("outputs") for c in book["cells"] if c["cell_type"] == "code")


def test_execution_statistics_list_every_notebook_of_the_build(built: dict) -> None:
    """Every page of the toc (but the statistics page itself) and the build's one run, each
    executed by this build; the run's time is papermill's, which lies within the wall time
    lvae.report.reproduce measured around the whole execution (reproduce.json)."""
    root = Path(built["out"]) / PROFILE
    table = pd.read_csv(root / "tables" / "build_stats.csv")
    pages = [Path(n).stem for n in (*TEACHING_NOTEBOOKS, *RESULT_NOTEBOOKS)]
    assert set(table[table.kind == "page"].notebook) == set(pages) - {"build_stats"}
    run = "shapes3d-a1e+00-b1-synthetic-s0"
    assert table[table.kind == "run"].notebook.tolist() == [run]
    assert set(table.status) == {"ok"} and set(table.cache) == {"executed"}
    wall = json.loads((root / run / "reproduce.json").read_text())["wall_s"]
    seconds = table.set_index("notebook").loc[run, "run time (s)"]
    assert 0 < seconds <= wall
    text = (built["summary"].book_html / "notebooks" / "build_stats.html").read_text()
    assert '<a href="results_table1.html">results_table1</a>' in text


def test_landing_page_claims_are_glued(built: dict) -> None:
    text = (built["summary"].book_html / "book" / "intro.html").read_text()
    assert "0.977 vs 0.150" in text  # the paper's numbers arrive through glue
    # the profile and provenance are glued from the Table 1 page, not typed
    assert re.search(r"on profile\s*<strong><span[^>]*>smoke</span>", text)
    staged = book_source(Path(built["out"]) / PROFILE)
    assert (staged / "_config.yml").is_file() and (staged / "book" / "intro.md").is_file()


def test_build_has_no_warnings(built: dict) -> None:
    log = (book_source(Path(built["out"]) / PROFILE) / "build.log").read_text()
    warnings = [ln for ln in log.splitlines() if "WARNING" in ln]
    assert not warnings, "\n".join(warnings[:10])


def test_no_verdict_from_the_smoke_budget(built: dict) -> None:
    """Smoke runs are untrained: no page may judge a claim from them (lvae.report.claims gate).

    The Evidence page and the landing page's first table judge the shipped study's runs,
    a profile declared able to; every verdict about this build's own runs must read
    "not tested at this budget".
    """
    html = built["summary"].book_html
    verdict = re.compile(r"\b(supports|contradicts)( at [\d,]+ steps)?: |\bcannot decide: ")
    for page in ("results_table1", "results_table2", "results_table5"):
        text = re.sub(r"<[^>]+>", "", (html / "notebooks" / f"{page}.html").read_text())
        assert not verdict.findall(text), f"{page} gives verdicts from smoke runs"
        assert "not tested at this budget" in text and "smoke, 6 steps" in text, page
    raw = (html / "book" / "intro.html").read_text()
    start = raw.index('id="this-build-s-own-runs-a-pipeline-demonstration"')
    demo = re.sub(r"<[^>]+>", "", raw[start:raw.index('id="how-to-read-this-book"')])
    assert not verdict.findall(demo), "the landing page judges claims from smoke runs"
    assert demo.count("not tested at this budget: smoke, 6 steps") == 8
