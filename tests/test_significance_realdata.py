"""Real data, real weights: minilm with max_length=32 against its default on a SciFact slice is a real degradation,
and both the gate and the report say it is significant, with a paired CI that excludes 0. Minutes on CPU."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import shared_path

DOCUMENTS = 1000


def scifact_slice(folder: Path) -> Path:
    """The first DOCUMENTS documents of the local SciFact, and the test queries judged against them."""
    source = shared_path("data", "beir", "scifact")
    (folder / "qrels").mkdir(parents=True)
    with open(source / "corpus.jsonl", encoding="utf-8") as handle:
        corpus = [next(handle) for _ in range(DOCUMENTS)]
    kept = {json.loads(line)["_id"] for line in corpus}
    (folder / "corpus.jsonl").write_text("".join(corpus), encoding="utf-8")
    header, *rows = (source / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    judged = [row for row in rows if row.split("\t")[1] in kept]
    (folder / "qrels" / "test.tsv").write_text("\n".join([header, *judged]) + "\n", encoding="utf-8")
    wanted = {row.split("\t")[0] for row in judged}
    with open(source / "queries.jsonl", encoding="utf-8") as handle:
        queries = [line for line in handle if json.loads(line)["_id"] in wanted]
    (folder / "queries.jsonl").write_text("".join(queries), encoding="utf-8")
    return folder


@pytest.mark.realdata
def test_max_length_32_is_a_significant_drop_in_the_gate_and_the_report(tmp_path):
    from evalkit.check.gate import check
    from evalkit.check.suite import ScoreChecks, Suite, SuiteTask
    from evalkit.report.__main__ import main as report_main

    data = scifact_slice(tmp_path / "scifact1000")
    suite = Suite(name="slice", scores=ScoreChecks(model="minilm", metrics=["ndcg_at_10"],
                                                   tasks=[SuiteTask(task="SciFact", data_dir=str(data))]),
                  encode={"show_progress": False})
    path, results = tmp_path / "baseline.json", tmp_path / "gate"
    assert check(suite, path, results_dir=results, update=True).updated  # minilm as configured: the baseline
    outcome = check(suite, path, results_dir=results, model_overrides={"max_length": 32})
    [gated] = outcome.rows
    print(gated)  # the measured numbers, for docs/statistics.md (pytest -s)
    assert not outcome.ok and gated.rules == ["tolerance", "significance"]
    assert gated.note.startswith("tolerance: dropped") and "; significance: paired Δ -" in gated.note
    assert float(gated.ci.strip("[]").split(",")[1]) < 0  # the CI excludes 0

    # the report, on the two runs the gate just made (each in its own experiment folder)
    assert report_main([str(results), "--out", str(tmp_path / "report"), "--no-plots"]) == 0
    with open(tmp_path / "report" / "comparisons.csv", encoding="utf-8", newline="") as handle:
        row = {r["task"]: r for r in csv.DictReader(handle)}["SciFact"]
    print(json.dumps(row, indent=1))
    assert "max_length=32" in row["b"] and "max_length" not in row["a"]
    assert float(row["delta"]) < 0 and float(row["ci_low"]) < float(row["ci_high"]) < 0  # the CI excludes 0
    assert float(row["p_adjusted"]) < 0.05 and int(row["n_items"]) == 70
    assert "*" in (tmp_path / "report" / "per_task.md").read_text().split("\n- ")[0]  # the table marks it
