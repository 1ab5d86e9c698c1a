"""`evalkit report` on two runs: comparisons.csv, marked tables, forest plot, rank intervals; mismatched items refused."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from evalkit.report.__main__ import main as report_main
from evalkit.report.significance import COLUMNS

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
HUB = {"source": "hub", "datasets": ["mteb/scifact@fixture"]}


def write_run(results: Path, folder: str, task: str, metric: str, score: float, *, per_query=None, per_item=None,
              differs=None, data=HUB, extra_scores=None) -> None:
    """A TaskResult and its run record under results/<minilm>/<folder>/, as the runner writes them."""
    import mteb
    from mteb.results import TaskResult

    where = results / MINILM.replace("/", "__") / folder
    (where / "evalkit").mkdir(parents=True, exist_ok=True)
    mteb_task = mteb.get_task(task)
    scores = {metric: score, "main_score": score, **(extra_scores or {})}
    TaskResult.from_task_results(mteb_task, {"test": {"default": scores}}, evaluation_time=1.0).to_disk(
        where / f"{task}.json")
    record = {"mteb_task": task, "type": mteb_task.metadata.type, "split": "test", "hf_subset": "default",
              "metric": metric, "score": score, "model": {"name": MINILM, "revision": "rev"},
              "per_query": {metric: per_query} if per_query else {}, "per_item": per_item,
              "identity": {"data": data, "task": {"mteb_task": task, "split": "test", "hf_subset": "default"}},
              "experiment": {"folder": folder, "differs": differs or {}}}
    (where / "evalkit" / f"{task}.run.json").write_text(json.dumps(record))


def queries(values) -> dict[str, float]:
    return {f"q{i}": float(v) for i, v in enumerate(values)}


def report(tmp_path: Path, *args: str) -> dict[str, dict[str, str]]:
    assert report_main([str(tmp_path / "results"), "--out", str(tmp_path / "out"), *args]) == 0
    with open(tmp_path / "out" / "comparisons.csv", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == COLUMNS
        return {row["task"]: row for row in reader}


def two_experiments(tmp_path: Path, default, degraded, **kwargs) -> None:
    results = tmp_path / "results"
    write_run(results, "rev", "SciFact", "ndcg_at_10", float(np.mean(list(default.values()))), per_query=default,
              **kwargs)
    write_run(results, "rev__max_length-32__abcd1234", "SciFact", "ndcg_at_10",
              float(np.mean(list(degraded.values()))), per_query=degraded, differs={"max_length": "32"})


@pytest.mark.unit
def test_a_real_drop_is_significant_marked_and_plotted(tmp_path):
    rng = np.random.default_rng(0)
    default = rng.random(200)
    degraded = np.clip(default - 0.1 + 0.05 * rng.normal(size=200), 0, 1)
    two_experiments(tmp_path, queries(default), queries(degraded))
    row = report(tmp_path)["SciFact"]
    assert (row["a"], row["b"]) == ("all-MiniLM-L6-v2", "all-MiniLM-L6-v2 [max_length=32]")
    assert float(row["delta"]) < 0 and float(row["ci_low"]) < float(row["ci_high"]) < 0
    assert float(row["p_value"]) < 0.01 and float(row["p_adjusted"]) < 0.05 and row["n_items"] == "200"
    assert "queries: paired bootstrap CI (1000)" in row["method"] and "sign-flip" in row["method"]
    per_task = (tmp_path / "out" / "per_task.md").read_text()
    assert f"| {100 * degraded.mean():.2f}* |" in per_task and f"| {100 * default.mean():.2f} |" in per_task
    assert "*: differs from all-MiniLM-L6-v2 (ours) at p < 0.05 (per task; paired by item, Holm-adjusted" in per_task
    assert "*" in [line for line in (tmp_path / "out" / "table1.md").read_text().splitlines()
                   if line.startswith("| all-MiniLM-L6-v2 [max_length=32]")][0]  # the Retr. and Avg means
    assert (tmp_path / "out" / "plots" / "forest_all-MiniLM-L6-v2-max-length-32_vs_all-MiniLM-L6-v2.png").stat().st_size
    mean = report(tmp_path)["mean over all tasks (1)"]
    assert mean["note"].startswith("B significantly better on 0, worse on 1 of 1 tasks (Holm-adjusted p < 0.05)")
    ranks = (tmp_path / "out" / "ranks.csv").read_text().splitlines()
    assert ranks[1].startswith("all-MiniLM-L6-v2,") and ranks[1].endswith(",1,1,1,1")


@pytest.mark.unit
def test_two_identical_runs_give_delta_zero_p_one_and_no_mark(tmp_path):
    default = queries(np.random.default_rng(1).random(50))
    two_experiments(tmp_path, default, dict(default))
    row = report(tmp_path, "--adjust", "bh")["SciFact"]
    assert (row["delta"], row["ci_low"], row["ci_high"], row["p_value"], row["p_adjusted"]) == \
        ("0.0000", "0.0000", "0.0000", "1", "1")
    assert "*" not in (tmp_path / "out" / "per_task.md").read_text().split("## ")[1].split("\n- ")[0]


@pytest.mark.unit
def test_runs_on_different_queries_are_never_paired(tmp_path):
    default = queries(np.random.default_rng(2).random(50))
    other = {f"x{k}": v for k, v in default.items()}
    two_experiments(tmp_path, default, other)
    row = report(tmp_path)["SciFact"]
    assert row["note"] == "not paired: different queries (50 only in A, 50 only in B)"
    assert (row["delta"], row["ci_low"], row["p_value"]) == ("", "", "")


@pytest.mark.unit
def test_runs_on_other_data_are_never_paired(tmp_path):
    default = queries(np.random.default_rng(3).random(50))
    two_experiments(tmp_path, default, default, data={"source": "local", "fingerprint": "other"})
    assert report(tmp_path)["SciFact"]["note"] == "not paired: different data (the run records' data identities differ)"


@pytest.mark.unit
def test_per_item_scores_that_do_not_give_the_score_are_not_used(tmp_path):
    default = queries(np.random.default_rng(3).random(50))
    results = tmp_path / "results"
    write_run(results, "rev", "SciFact", "ndcg_at_10", float(np.mean(list(default.values()))) + 0.01,
              per_query=default)  # a record that is not this result's
    write_run(results, "rev__max_length-32__abcd1234", "SciFact", "ndcg_at_10", float(np.mean(list(default.values()))),
              per_query=default, differs={"max_length": "32"})
    # the report flags the contradiction (exit 3) and never pairs the contradicted scores
    assert report_main([str(results), "--out", str(tmp_path / "out")]) == 3
    with open(tmp_path / "out" / "comparisons.csv", encoding="utf-8", newline="") as handle:
        row = {r["task"]: r for r in csv.DictReader(handle)}["SciFact"]
    assert row["note"].startswith("no paired test (A: its result file contradicts its run record") and row["p_value"] == ""


def sts_entry(gold, noise: float, seed: int) -> dict:
    scores = np.asarray(gold) + noise * np.random.default_rng(seed).normal(size=len(gold))
    return {"metric": "cosine_spearman", "statistic": "spearman", "gold": list(map(float, gold)),
            "scores": [scores.tolist()]}


@pytest.mark.unit
def test_sts_pairs_are_paired_by_position_only_with_the_same_gold_labels(tmp_path):
    from evalkit.itemscores import statistic

    gold = np.random.default_rng(4).normal(size=300)
    results = tmp_path / "results"
    good, bad = sts_entry(gold, 0.3, 5), sts_entry(gold, 1.5, 6)
    write_run(results, "rev", "STSBenchmark", "cosine_spearman", statistic(good), per_item=good)
    write_run(results, "rev__x-1__abcd1234", "STSBenchmark", "cosine_spearman", statistic(bad), per_item=bad,
              differs={"x": "1"})
    row = report(tmp_path, "--resamples", "300")["STSBenchmark"]
    assert float(row["delta"]) == pytest.approx(100 * (statistic(bad) - statistic(good)), abs=1e-4)
    assert float(row["ci_high"]) < 0 and float(row["p_value"]) < 0.05
    assert row["method"].startswith("pairs: paired bootstrap CI (300); p: paired bootstrap (CI inverted)")
    shuffled = dict(bad, gold=list(reversed(bad["gold"])))
    write_run(results, "rev__x-1__abcd1234", "STSBenchmark", "cosine_spearman", statistic(shuffled),
              per_item=shuffled, differs={"x": "1"})
    assert report(tmp_path)["STSBenchmark"]["note"] == "not paired: different gold labels: not the same pairs"


@pytest.mark.unit
def test_classification_is_compared_over_mteb_experiments(tmp_path):
    results = tmp_path / "results"
    for folder, base, differs in (("rev", 0.80, {}), ("rev__x-1__abcd1234", 0.75, {"x": "1"})):
        experiments = [{"accuracy": base + 0.002 * i} for i in range(10)]
        write_run(results, folder, "Banking77Classification", "accuracy",
                  float(np.mean([e["accuracy"] for e in experiments])), differs=differs,
                  extra_scores={"scores_per_experiment": experiments})
    row = report(tmp_path)["Banking77Classification"]
    assert float(row["delta"]) == pytest.approx(-5.0) and row["n_items"] == "10"
    assert row["method"].endswith("p: exact sign-flip permutation") and float(row["p_value"]) == pytest.approx(2 / 1024, rel=1e-5)
    assert row["note"] == "units are mteb's experiments (classifier training samples, clustering sets or k-means resamples)"


@pytest.mark.unit
def test_bad_significance_options_fail_with_one_line(tmp_path, capsys):
    two_experiments(tmp_path, queries([0.5, 0.6]), queries([0.4, 0.6]))
    assert report_main([str(tmp_path / "results"), "--out", str(tmp_path / "out"), "--reference-run", "nope"]) == 2
    assert "--reference-run 'nope' names 0 runs" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        report_main([str(tmp_path / "results"), "--alpha", "5"])
    assert exc.value.code == 2 and "between 0 and 1" in capsys.readouterr().err


@pytest.mark.integration
@pytest.mark.parametrize("task_name", ["MockClassificationTask", "MockClusteringTask", "LegacyMockClusteringFastTask"])
def test_mteb_still_writes_the_per_experiment_scores_its_score_averages(tmp_path, task_name):
    """The per-experiment units come from mteb's TaskResult as written to disk; if mteb stops writing them, or
    they stop averaging to the main score, this fails naming the mteb version."""
    import mteb
    from mteb.mocks.mock_tasks import classification, clustering
    from mteb.results import TaskResult

    from evalkit.units import from_result

    cls = getattr(classification, task_name, None) or getattr(clustering, task_name)
    model = mteb.get_model_meta("mteb/baseline-random-encoder").load_model()
    result = mteb.evaluate(model, cls(), cache=None, overwrite_strategy="always", show_progress_bar=False)
    result.task_results[0].to_disk(tmp_path / "r.json")
    entry = TaskResult.from_disk(tmp_path / "r.json").scores["test"][0]
    meta = cls().metadata
    units, why = from_result(entry, meta.main_score, meta.type, {"dataset_revision": "x"})
    assert why is None, f"mteb {mteb.__version__}: {why}"
    assert units.kind == "experiment" and len(units.ids) >= 1
    assert units.scores.score == pytest.approx(entry[meta.main_score], rel=1e-9)
