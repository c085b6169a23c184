"""The shipped evidence reads the same through every refactor of the code that reads it.

``tests/data/evidence_snapshot.json`` holds the Evidence page's tables (final DCI, final
generation, pilot) and every claim's paper side, numbers, verdict and detail, computed from
``results/``. It was made at fea9d6a (before the run store and the claims were rebuilt) and
checked identical under the rebuilt code. A change to the shipped runs (a new run, a new
seed) changes it on purpose: regenerate it then with
``python tests/test_evidence_snapshot.py`` and say why in the commit.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

SNAPSHOT = Path(__file__).resolve().parent / "data" / "evidence_snapshot.json"


def _table(df: pd.DataFrame) -> dict[str, dict[str, str]]:
    def name(x: object) -> str:
        return " | ".join(map(str, x)) if isinstance(x, tuple) else str(x)

    return {name(c): {name(i): str(v) for i, v in df[c].items()} for c in df.columns}


def evidence() -> dict[str, object]:
    """What the Evidence page shows of the shipped study, as plain JSON."""
    from lvae.report import claims, results, study

    root = results.IMPORTED_DIR
    # the study plan's runs, as the page selects them (the diagnosis ships runs of the
    # study's and the cpu profile too: its readings' seeds, alpha = 1 at lr 1e-4)
    runs = study.of_plan(results.collect(None, profile="study", imported=root))
    ms = study.of_plan(study.milestone_frame(root))
    judged = pd.concat([claims.judge_all(runs, "study", "imported", t)
                        for t in ("table1", "table2", "table5")])
    return {"final_dci": _table(study.final_dci_table(runs)),
            "final_generation": _table(study.final_generation_table(runs, ms)),
            "claims": judged[["key", "paper", "ours", "verdict", "detail", "line"]]
            .to_dict("records"),
            "pilot": _table(study.pilot_table(ms))}


def test_the_shipped_evidence_reads_as_it_did():
    now = json.loads(json.dumps(evidence(), sort_keys=True, default=str))
    assert now == json.loads(SNAPSHOT.read_text()), (
        "the Evidence page's numbers changed: if the shipped runs changed on purpose, "
        "regenerate with `python tests/test_evidence_snapshot.py`")


if __name__ == "__main__":  # regenerate the snapshot after a change to results/
    SNAPSHOT.write_text(json.dumps(evidence(), indent=1, sort_keys=True, default=str) + "\n")
    sys.exit(0)
