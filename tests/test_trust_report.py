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
    """A TaskResult and its run record, as the runner writes them (record_score: what the record says)."""
    import mteb
    from mteb.results import TaskResult

    (folder / "evalkit").mkdir(parents=True, exist_ok=True)
    mteb_task = mteb.get_task(task)
    TaskResult.from_task_results(mteb_task, {"test": {subset: {metric: score, "main_score": score}}},
                                 evaluation_time=1.0).to_disk(folder / f"{task}.json")
    record = {"mteb_task": task, "type": mteb_task.metadata.type, "split": "test", "hf_subset": subset,
              "hf_subsets": [subset], "metric": metric, "score": score if record_score is None else record_score,
              "model": {"name": model, "revision": folder.name}, "per_query": per_query or {}, "per_item": per_item}
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
