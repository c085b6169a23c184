"""The repository's reader-facing files agree with each other: the license pyproject.toml
declares is the one LICENSE holds, and CITATION.cff cites this package (at its version,
under its license) and the paper it reproduces."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PAPER_TITLE = ("Localized generations using deep neural networks for datasets with "
               "structural similarity")


def _project_field(name: str) -> str:
    """A string field of pyproject.toml's [project] table (tomllib is Python 3.11+, and
    requires-python is 3.10, so the two fields are read with a pattern)."""
    text = (ROOT / "pyproject.toml").read_text()
    table = text.split("[project]", 1)[1].split("\n[", 1)[0]
    m = re.search(rf'^{name}\s*=\s*"([^"]*)"', table, re.MULTILINE)
    assert m, f"pyproject.toml's [project] has no {name}"
    return m.group(1)


def test_license_is_apache_2_as_pyproject_declares():
    assert _project_field("license") == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    head = [ln.strip() for ln in text.strip().splitlines()[:3]]
    assert head == ["Apache License", "Version 2.0, January 2004",
                    "http://www.apache.org/licenses/"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert "Copyright 2026 the lvae authors" in text
    assert "[yyyy]" not in text  # the appendix's placeholder is filled in


def test_citation_cff_cites_this_package_and_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["title"] == "lvae: the Local VAE, reproduced and taught"
    assert cff["license"] == _project_field("license")
    assert str(cff["version"]) == _project_field("version")
    assert cff["message"] and cff["authors"] == [{"name": "the lvae authors"}]
    cited = [*cff.get("references", []),
             *([cff["preferred-citation"]] if "preferred-citation" in cff else [])]
    papers = [r for r in cited if r["title"].lower() == PAPER_TITLE.lower()]
    assert len(papers) == 1, [r.get("title") for r in cited]
    paper = papers[0]
    assert paper["type"] == "article"
    assert paper["authors"] and all(a.get("name") or a.get("family-names")
                                    for a in paper["authors"])
