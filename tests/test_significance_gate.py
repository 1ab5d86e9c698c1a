"""The gate's significance rule: a paired drop against the baseline's per-item scores fails, and says so."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from evalkit.check import baseline, junit, scores
from evalkit.check.__main__ import main
from evalkit.check.gate import baseline_path, check
from evalkit.check.rows import table
from evalkit.check.suite import ScoreChecks, Suite, SuiteTask, load_suite
from evalkit.stats import Scores
from evalkit.units import Units

DATA = {"source": "local", "fingerprint": "abc"}


def suite(tolerance: float = 0.1) -> Suite:
    return Suite(name="t", scores=ScoreChecks(model="minilm", tolerance=tolerance, metrics=["ndcg_at_10"],
                                              tasks=[SuiteTask(task="SciFact")]))


def entry(values, ids=None, with_items: bool = True) -> dict:
    values = np.asarray(values, dtype=float)
    ids = tuple(ids or (f"q{i}" for i in range(values.size)))
    items = {"ndcg_at_10": Units("query", ids, Scores.mean_of(values), DATA).to_json()} if with_items else {}
    return {"SciFact": {"model": "m", "metrics": {"ndcg_at_10": float(values.mean())}, "items": items}}


BASE = np.random.default_rng(0).random(300)


@pytest.mark.unit
def test_a_significant_drop_inside_the_tolerance_fails_by_the_significance_rule():
    now = BASE - 0.0008 - 0.0002 * np.random.default_rng(1).random(300)  # every query a little worse: −0.09 points
    [row] = scores.compare(suite(), entry(BASE), entry(now))
    assert not row.ok and row.rules == ["significance"]
    assert row.note.startswith("significance: paired Δ -0.090 points, 95% CI [-0.09")
    assert "Holm-adjusted over 1 rows" in row.note and "< 0.05; 300 items" in row.note
    assert row.ci.startswith("[-0.09") and row.p == "0.000999 (0.000999)"  # 1 / (1 + 1000 sign flips)
    text = table([row])
    assert "paired 95% CI" in text and "significance: paired Δ" in text


@pytest.mark.unit
def test_a_drop_beyond_the_tolerance_that_is_also_significant_names_both_rules(tmp_path):
    now = BASE - 0.01
    [row] = scores.compare(suite(), entry(BASE), entry(now))
    assert row.rules == ["tolerance", "significance"]
    assert row.note.startswith("tolerance: dropped 1.000 points, more than 0.1; significance: paired Δ -1.000")
    junit.write(tmp_path / "j.xml", "t", [row], 1.0)
    failure = ET.parse(tmp_path / "j.xml").getroot().find("testsuite/testcase/failure")
    assert failure.get("type") == "tolerance+significance"
    assert "significance: paired Δ -1.000 points, 95% CI [-1.000, -1.000]" in failure.get("message")
    assert "paired 95% CI [-1.000, -1.000], p (adjusted)" in failure.text


@pytest.mark.unit
def test_identical_scores_give_delta_zero_and_p_one():
    [row] = scores.compare(suite(), entry(BASE), entry(BASE.copy()))
    assert row.ok and (row.delta, row.ci, row.p) == ("+0.000", "[+0.000, +0.000]", "1 (1)")


@pytest.mark.unit
def test_a_significant_rise_fails_only_by_the_tolerance():
    [row] = scores.compare(suite(tolerance=5), entry(BASE), entry(BASE + 0.01))
    assert row.ok and row.p == "0.000999 (0.000999)"


@pytest.mark.unit
def test_without_per_item_scores_in_the_baseline_the_rule_says_it_is_unavailable_and_why():
    [row] = scores.compare(suite(), entry(BASE, with_items=False), entry(BASE - 0.0005))
    assert row.ok and row.ci == "" and "the baseline has no per-item scores" in row.unavailable
    assert "record them with --update-baseline" in table([row]).split("significance rule unavailable:")[1]
    [off] = scores.compare(suite(), entry(BASE), entry(BASE - 0.0009), alpha=0)
    assert off.ok and off.p == "" and off.unavailable == ""


@pytest.mark.unit
def test_other_queries_are_never_paired_with_the_baseline():
    [row] = scores.compare(suite(), entry(BASE), entry(BASE - 0.0009, ids=[f"x{i}" for i in range(300)]))
    assert row.ok and row.unavailable == ("not the same items as the baseline's: different queries "
                                          "(300 only in A, 300 only in B)")


@pytest.mark.unit
def test_the_committed_ci_baseline_still_works_and_says_why_the_rule_is_unavailable():
    ci = load_suite("ci")
    recorded = baseline.load(baseline_path(ci))["scores"]
    now = {task: {**e, "items": {}} for task, e in recorded.items()}
    rows = scores.compare(ci, recorded, now)
    assert all(r.ok for r in rows) and len(rows) == 8
    assert {r.unavailable.split(";")[0] for r in rows} == {
        "the baseline has no per-item scores (recorded before the rule existed, or for a metric without them)"}


@pytest.mark.unit
def test_update_baseline_writes_the_per_item_scores_and_the_next_run_tests_them(tmp_path):
    from tests.test_check import score_suite, write_beir

    gate, path = score_suite(write_beir(tmp_path / "beir")), tmp_path / "b.json"
    first = check(gate, path, results_dir=tmp_path / "r", update=True)
    stored = json.loads(path.read_text())["scores"]["SciFact"]["items"]
    assert set(stored) == {"ndcg_at_10", "recall_at_100"} and stored["ndcg_at_10"]["ids"] == ["q0", "q1", "q2", "q3"]
    assert '"ids": ["q0","q1","q2","q3"]' in path.read_text()
    assert first.changes == ["scores SciFact: added"]
    again = check(gate, path, results_dir=tmp_path / "r")
    assert again.ok and [(r.ci, r.p) for r in again.rows] == [("[+0.000, +0.000]", "1 (1)")] * 2


@pytest.mark.unit
def test_bad_alpha_exits_2(capsys):
    assert main(["suite=ci", "--alpha", "1.5"]) == 2
    assert "--alpha must be in [0, 1)" in capsys.readouterr().err


@pytest.mark.unit
def test_an_update_says_when_per_item_scores_are_first_recorded():
    old = {"golden": {}, "scores": {"SciFact": {"metrics": {"ndcg_at_10": 0.5}}}}
    new = {"golden": {}, "scores": {"SciFact": {"metrics": {"ndcg_at_10": 0.5}, "items": {"ndcg_at_10": {}}}}}
    assert baseline.changes(old, new) == ["scores SciFact: per-item scores of ndcg_at_10 (were: none)"]


@pytest.mark.unit
def test_a_damaged_baseline_item_list_makes_the_rule_unavailable_not_a_crash():
    broken = entry(BASE)
    broken["SciFact"]["items"]["ndcg_at_10"]["values"] = broken["SciFact"]["items"]["ndcg_at_10"]["values"][:-1]
    [row] = scores.compare(suite(), broken, entry(BASE))
    assert row.ok and row.unavailable == "unusable per-item scores in the baseline (ValueError: 300 ids but 299 values)"
