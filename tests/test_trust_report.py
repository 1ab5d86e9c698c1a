"""The report never shows a number beside the wrong thing: a row is one metric, a score that contradicts its run
record is flagged, averages over different task sets are never ranked against each other."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from evalkit.report.__main__ import main as report_main

pytestmark = pytest.mark.unit
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def write_result(folder: Path, task: str, metric: str, score: float, *, record_score: float | None = None,
                 per_query: dict | None = None, per_item: dict | None = None, subset: str = "default",
                 model: str = MINILM) -> None:
    """A TaskResult and its run record, as the runner writes them (record_score: what the record says;
    per_query: query id -> score of the metric)."""
    import mteb
    from mteb.results import TaskResult

    (folder / "evalkit").mkdir(parents=True, exist_ok=True)
    mteb_task = mteb.get_task(task)
    TaskResult.from_task_results(mteb_task, {"test": {subset: {metric: score, "main_score": score}}},
                                 evaluation_time=1.0).to_disk(folder / f"{task}.json")
    record = {"mteb_task": task, "type": mteb_task.metadata.type, "split": "test", "hf_subset": subset,
              "hf_subsets": [subset], "metric": metric, "score": score if record_score is None else record_score,
              "model": {"name": model, "revision": folder.name}, "per_query": {metric: per_query} if per_query else {}, "per_item": per_item}
    (folder / "evalkit" / f"{task}.run.json").write_text(json.dumps(record))


def report(tmp_path: Path, *args) -> int:
    return report_main([str(tmp_path / "results"), *map(str, args), "--out", str(tmp_path / "out"), "--no-plots"])


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_run_with_another_headline_metric_is_in_the_row_of_its_metric(tmp_path):
    """SciFact scored by nDCG@10 in one folder and by MAP@10 (task.metric=map_at_10) in another: two rows, each
    with the published number of its own metric, and the MAP@10 run is not averaged into Table 1."""
    model = tmp_path / "results" / MINILM.replace("/", "__")
    write_result(model / "ndcg", "SciFact", "ndcg_at_10", 0.645)
    write_result(model / "map10", "SciFact", "map_at_10", 0.331)
    assert report(tmp_path) == 0
    table = rows(tmp_path / "out" / "per_task.csv")
    assert [(r["Task"], r["Metric"]) for r in table] == [("SciFact", "nDCG@10"), ("SciFact", "MAP@10")]
    ndcg, map10 = table
    ours_ndcg, ours_map = "all-MiniLM-L6-v2@ndcg (ours)", "all-MiniLM-L6-v2@map10 (ours)"
    published = "all-MiniLM-L6-v2 (published)"
    assert (ndcg[ours_ndcg], ndcg[ours_map], ndcg[published]) == ("64.5000", "", "64.5100")
    assert (map10[ours_ndcg], map10[ours_map], map10[published]) == ("", "33.1000", "59.5900")
    assert map10["Δ all-MiniLM-L6-v2@map10: ours − published"] == "-26.4900"
    assert ndcg["Δ all-MiniLM-L6-v2@map10: ours − published"] == ""
    table1 = {r["Model"]: r for r in rows(tmp_path / "out" / "table1.csv")}
    assert table1[ours_ndcg]["Retr."] == "64.5000" and table1[ours_map]["Retr. n"] == "0"
    assert "SciFact (MAP@10, all-MiniLM-L6-v2@map10 (ours))" in (tmp_path / "out" / "table1.md").read_text()
    assert "A row is one metric" in (tmp_path / "out" / "per_task.md").read_text()


def test_averages_over_different_task_sets_are_never_bolded_against_each_other(tmp_path):
    """minilm on SciFact and NFCorpus: ours (2/56) ties the published same-task average; the published average
    over all 9 of its tasks is higher but over other tasks, so it is not bold and does not unbold ours."""
    folder = tmp_path / "results" / MINILM.replace("/", "__") / "rev"
    write_result(folder, "SciFact", "ndcg_at_10", 0.6451)
    write_result(folder, "NFCorpus", "ndcg_at_10", 0.3159)
    assert report(tmp_path) == 0
    latex = (tmp_path / "out" / "table1.tex").read_text(encoding="utf-8")
    all_nine = next(line for line in latex.splitlines() if "all 9 of its tasks" in line)
    assert "48.72 (9/56)" in all_nine and r"\textbf" not in all_nine
    assert r"\textbf{48.05 (2/56)}" in latex


def test_the_usage_line_names_the_command_as_typed(capsys):
    with pytest.raises(SystemExit):
        report_main(["--help"])
    assert capsys.readouterr().out.startswith("usage: evalkit report ")
    with pytest.raises(SystemExit):
        report_main(["--help"], prog="python -m evalkit.report")
    assert capsys.readouterr().out.startswith("usage: python -m evalkit.report ")


def write_sts(folder: Path, score: float, entry: dict) -> None:
    write_result(folder, "STSBenchmark", "cosine_spearman", score, per_item=entry)


def sts_entry() -> dict:
    import numpy as np

    rng = np.random.default_rng(0)
    gold = rng.normal(size=200)
    return {"metric": "cosine_spearman", "statistic": "spearman", "gold": gold.tolist(),
            "scores": [(gold + 0.6 * rng.normal(size=200)).tolist()]}


@pytest.mark.parametrize("case", ["record", "per-query", "per-item"])
def test_a_score_that_contradicts_its_run_record_is_flagged_in_every_table(tmp_path, capsys, case):
    """A hand-edited score (0.7012 for 0.6451): against the record's score, against the mean of its per-query
    scores (the record edited too), or against the metric its per-item scores recompute. The number is never
    shown unflagged: a mark and a note beside it, no CI, no counted Δ, out of Table 1, exit 3."""
    from evalkit.itemscores import statistic

    folder = tmp_path / "results" / MINILM.replace("/", "__") / "rev"
    per_query = {f"q{i}": v for i, v in enumerate([0.6451, 0.5451, 0.7451])}  # mean 0.6451
    if case == "per-item":
        entry = sts_entry()
        write_sts(folder, round(statistic(entry), 4) + 0.05, entry)
        task, why = "STSBenchmark", "its per-item scores give"
    else:
        write_result(folder, "SciFact", "ndcg_at_10", 0.7012, per_query=per_query,
                     record_score=0.6451 if case == "record" else None)
        task, why = "SciFact", "its run record 64.5100" if case == "record" else "the mean of its 3 per-query scores"
    write_result(folder, "NFCorpus", "ndcg_at_10", 0.3159, per_query={"q1": 0.3, "q2": 0.3318})  # consistent
    assert report(tmp_path) == 3
    err = capsys.readouterr().err
    assert f"{task}: the result file says" in err and why in err and "contradict their run records" in err
    table = {r["Task"]: r for r in rows(tmp_path / "out" / "per_task.csv")}
    flagged, fine = table[task], table["NFCorpus"]
    assert why in flagged["all-MiniLM-L6-v2 check"] and fine["all-MiniLM-L6-v2 check"] == ""
    assert flagged["all-MiniLM-L6-v2 CI low"] == "" and fine["all-MiniLM-L6-v2 CI low"] != ""
    assert flagged["Δ all-MiniLM-L6-v2 outside CI"] == ""  # never counted as a regression (or as a hit)
    markdown = (tmp_path / "out" / "per_task.md").read_text(encoding="utf-8")
    line = next(x for x in markdown.splitlines() if x.startswith(f"| {task} "))
    assert "¹ (contradicts its run record)" in line and "not comparable¹" in line
    assert f"- ¹ {task}: the result file says" in markdown
    latex = next(x for x in (tmp_path / "out" / "per_task.tex").read_text(encoding="utf-8").splitlines()
                 if x.startswith(task))
    assert "(contradicts its run record)" in latex and r"\textbf" not in latex  # never set in bold as the best
    table1 = {r["Model"]: r for r in rows(tmp_path / "out" / "table1.csv")}
    assert table1["all-MiniLM-L6-v2 (ours)"]["Avg n"] == "1"  # NFCorpus only
    assert f"{task} (all-MiniLM-L6-v2 (ours))" in (tmp_path / "out" / "table1.md").read_text(encoding="utf-8")


def test_scores_that_agree_with_their_run_records_are_not_flagged(tmp_path, capsys):
    from evalkit.itemscores import statistic

    folder = tmp_path / "results" / MINILM.replace("/", "__") / "rev"
    write_result(folder, "SciFact", "ndcg_at_10", 0.64508, per_query={"q1": 0.645081, "q2": 0.645083},
                 record_score=0.64508 + 1e-17)  # mteb rounds the per-query mean to 5 decimals
    entry = sts_entry()
    write_sts(folder, statistic(entry), entry)
    assert report(tmp_path) == 0
    assert "contradict" not in capsys.readouterr().err
    assert "all-MiniLM-L6-v2 check" not in rows(tmp_path / "out" / "per_task.csv")[0]


def test_a_model_given_only_by_overrides_is_named_after_its_weights(tmp_path):
    """No model config names `me/my-ckpt`: its folder and its report label say which weights it was given."""
    from evalkit.config import RunConfig, load_model_config
    from evalkit.identity import Data, experiment
    from evalkit.report.runs import Run, TaskScore, name_runs
    from evalkit.tasks import get_task_spec

    from dataclasses import replace

    model = replace(load_model_config("tiny_mistral"), name="me/my-ckpt", name_or_path="/ckpts/step-1000/")
    cfg = RunConfig(task=get_task_spec("scifact"), model=model, results_dir=str(tmp_path))
    exp = experiment(cfg, Data({"source": "hub", "datasets": []}))
    assert exp.differs == {"weights": "step-1000"} and exp.folder.startswith("seed0__weights-step-1000__")
    run = Run("me/my-ckpt", exp.folder, tmp_path, {"SciFact": TaskScore("SciFact", "Retrieval", "ndcg_at_10", 50.0)},
              differs=exp.differs)
    name_runs([run])
    assert run.label == "my-ckpt [weights=step-1000] (ours)"


def test_plots_name_a_headline_metric_that_is_not_the_tasks_main_one():
    from evalkit.report import plots
    from evalkit.report.compare import Comparison

    rows = [Comparison("SciFact", "Retrieval", "map_at_10", 33.1, 59.59, None),
            Comparison("NFCorpus", "Retrieval", "ndcg_at_10", 31.6, 31.59, None)]
    for draw in (plots.bars, plots.delta):
        ticks = [t.get_text() for t in draw(rows, "ours", "published").axes[0].get_yticklabels()]
        assert "SciFact (MAP@10)" in ticks and "NFCorpus" in ticks, draw
