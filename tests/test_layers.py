"""The science never imports the report: the rule the package map states, checked.

The science core (data, pool, neighbourhoods, model, objective, batched, training,
generation, metrics, evaluation) must run without the book: a reader of the paper's code
never has to read the results store, the claims or the figures to follow it. The report
layer lives beside it in the same package (``lvae/__init__.py`` lists which is which);
this test keeps the line where the map draws it, imports inside functions included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LVAE = Path(__file__).resolve().parent.parent / "lvae"

#: The report layer: what turns runs into the book.
REPORT = {"report", "__main__"}


#: The package root resolves ``lvae.load_shipped`` lazily (PEP 562), on first use only:
#: ``import lvae`` itself imports nothing of the report (tests/test_shipped.py checks).
ALLOWED = {"__init__.py": {"lvae.report.shipped", "lvae.report.shipped.load_shipped"}}


def _science_modules() -> list[Path]:
    return [f for f in sorted(LVAE.rglob("*.py"))
            if (f.stem if f.parent == LVAE else f.relative_to(LVAE).parts[0]) not in REPORT]


def _lvae_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lvae"):
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("lvae"))
    return names


@pytest.mark.parametrize("path", _science_modules(), ids=lambda p: str(p.relative_to(LVAE)))
def test_science_module_imports_no_report_module(path: Path) -> None:
    used = {n for n in _lvae_imports(path) if len(n.split(".")) > 1
            and n.split(".")[1] in REPORT} - ALLOWED.get(str(path.relative_to(LVAE)), set())
    assert not used, f"{path.relative_to(LVAE)} imports the report layer: {sorted(used)}"
