"""The repository's reader-facing files agree with each other: the license pyproject.toml
declares is the one LICENSE holds, and CITATION.cff cites this package (at its version,
under its license) and the paper it reproduces."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PAPER_TITLE = ("Localized generations using deep neural networks for datasets with "
               "structural similarity")


def _project_field(name: str) -> str:
    """A string field of pyproject.toml's [project] table."""
    import tomllib  # Python >= 3.11, the project's floor

    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"][name])


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


def test_the_python_floor_is_the_pinned_numpys_and_checked_in_one_line(tmp_path: Path):
    """numpy 2.4.6 (requirements.lock) has no 3.10 build: the floor is 3.11, the README says
    so, and ``make venv`` under an older Python fails in one line naming it, making no venv."""
    import subprocess

    assert _project_field("requires-python") == ">=3.11"
    assert "numpy==2.4.6" in (ROOT / "requirements.lock").read_text()
    assert "Python >= 3.11" in (ROOT / "README.md").read_text()
    fake = tmp_path / "python3.10"
    fake.write_text('#!/bin/sh\n[ "$1" = "-V" ] && echo "Python 3.10.14" && exit 0\nexit 1\n')
    fake.chmod(0o755)
    out = subprocess.run(["make", "-C", str(ROOT), "venv", f"PYTHON={fake}",
                          f"VENV={tmp_path / 'v'}"], capture_output=True, text=True)
    assert out.returncode == 2
    err = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "3.11" in err[0] and "Python 3.10.14" in err[0]
    assert not (tmp_path / "v").exists()
