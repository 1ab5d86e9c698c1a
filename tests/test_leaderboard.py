"""The leaderboard report of a benchmark run: runs next to published models per task, per type and mteb's
benchmark mean, with ranks, and marks where a number is not like for like."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.report.__main__ import main as report_main
from evalkit.report.leaderboard import benchmark_tasks, build, shipped_columns, to_markdown
from evalkit.report.published import REFERENCE_DIR
from evalkit.report.runs import find_runs, name_runs

from conftest import REPO, shared_path

PINNED = {t.name: t.revision for t in benchmark_tasks("MTEB(eng, v2)")[1]}
MAIN = {"STSBenchmark": "cosine_spearman", "BIOSSES": "cosine_spearman", "SummEvalSummarization.v2": "cosine_spearman", "STS17": "cosine_spearman",
        "AskUbuntuDupQuestions": "map_at_1000"}


def write_result(folder: Path, task: str, score: float, *, subset: str = "default", revision: str | None = None,
                 mteb_version: str = "2.26.24") -> None:
    """An mteb TaskResult file with one test-split score."""
    folder.mkdir(parents=True, exist_ok=True)
    entry = {"main_score": score, MAIN[task]: score, "hf_subset": subset, "languages": ["eng-Latn"]}
    (folder / f"{task}.json").write_text(json.dumps({
        "dataset_revision": revision or PINNED[task], "task_name": task, "mteb_version": mteb_version,
        "scores": {"test": [entry]}, "evaluation_time": 1.0, "kg_co2_emissions": None}))


def runs_of(root: Path):
    runs = find_runs(root, {}, resamples=10)
    name_runs(runs)
    return runs


@pytest.mark.realdata
def test_the_shipped_numbers_are_the_shared_reference_and_give_its_benchmark_means():
    shared = shared_path("reference", "mteb_eng_v2.published.tsv")
    assert (REFERENCE_DIR / "mteb_eng_v2.published.tsv").read_bytes() == shared.read_bytes()
    name, tasks = benchmark_tasks("MTEB(eng, v2)")
    columns = {c.label: c for c in shipped_columns(name, tasks)}
    assert all(len(c.cells) == 41 for c in columns.values())
    board = build("MTEB(eng, v2)", [])
    means = {c.label: round(board.benchmark_mean(c), 2) for c in board.columns}
    # the means the reference README states: 67.97 and 59.03 over the 41 tasks
    assert means == {"e5-mistral-7b-instruct (published)": 67.97, "all-MiniLM-L6-v2 (published)": 59.03}
    marked = {t for t, (_, marks) in columns["e5-mistral-7b-instruct (published)"].cells.items() if marks}
    assert marked == {"AskUbuntuDupQuestions", "MindSmallReranking", "MTOPDomainClassification",
                      "AmazonCounterfactualClassification"}
    assert columns["all-MiniLM-L6-v2 (published)"].cells["MindSmallReranking"][1] == ("revision", "mteb1")


@pytest.mark.unit
def test_a_partial_run_is_ranked_on_its_tasks_like_for_like(tmp_path):
    run = tmp_path / "results" / "me__my-model" / "rev1"
    write_result(run, "STSBenchmark", 0.87)  # between e5 (88.60) and MiniLM (82.03)
    write_result(run, "SummEvalSummarization.v2", 0.30)
    write_result(run, "AskUbuntuDupQuestions", 0.70)  # published numbers are mteb-1 reranking: marked
    board = build("MTEB(eng, v2)", runs_of(tmp_path / "results"))
    assert board.like == ["STSBenchmark", "SummEvalSummarization.v2"]
    assert "AskUbuntuDupQuestions" in board.left_out and "mteb 1" in board.left_out["AskUbuntuDupQuestions"]
    ours = board.columns[0]
    assert ours.label == "my-model (ours)" and board.mean(ours, board.like) == pytest.approx(58.5)
    assert board.ranks() == {"my-model (ours)": 2, "e5-mistral-7b-instruct (published)": 1,
                             "all-MiniLM-L6-v2 (published)": 3}
    text = to_markdown(board)
    assert "| AskUbuntuDupQuestions | Reranking | 70.00 | 66.98†‡ | 63.48†‡ |" in text
    assert "| rank, like for like | by the mean above | 2 of 3 | 1 of 3 | 3 of 3 |" in text
    assert "| mteb benchmark mean | all 41 tasks | – (3/41) | 67.97 | 59.03 |" in text
    assert "| ImdbClassification | Classification | – | 94.73 | 61.76 |" in text  # a task not run: a dash


@pytest.mark.unit
def test_a_result_lacking_the_benchmarks_subset_is_left_out(tmp_path, capsys):
    run = tmp_path / "me__my-model" / "rev1"
    write_result(run, "STS17", 0.9, subset="ko-ko")  # the benchmark selects en-en
    board = build("MTEB(eng, v2)", runs_of(tmp_path))
    assert "STS17" not in board.columns[0].cells and "lacks a split or subset" in capsys.readouterr().err


@pytest.mark.unit
def test_published_models_from_an_mteb_results_folder_join_without_editing_evalkit(tmp_path):
    write_result(tmp_path / "mine" / "me__my-model" / "rev1", "STSBenchmark", 0.85)
    other = tmp_path / "mteb-results" / "results" / "org__other-model" / "0123456789abcdef"
    write_result(other, "STSBenchmark", 0.86, mteb_version="1.12.75")
    write_result(other, "SummEvalSummarization.v2", 0.31, revision="0" * 40)  # an older dataset revision
    board = build("MTEB(eng, v2)", runs_of(tmp_path / "mine"), [tmp_path / "mteb-results"])
    column = next(c for c in board.columns if c.label == "other-model@0123456 (published)")
    assert column.cells == {"STSBenchmark": (86.0, ()), "SummEvalSummarization.v2": (31.0, ("revision",))}
    assert board.ranks()["other-model@0123456 (published)"] == 2  # 86.00 between e5 and ours
    assert f"mteb results {other}" in to_markdown(board)


@pytest.mark.unit
def test_the_report_command_writes_markdown_latex_csv_and_a_plot(tmp_path):
    write_result(tmp_path / "results" / "me__my-model" / "rev1", "STSBenchmark", 0.85)
    out = tmp_path / "report"
    assert report_main([str(tmp_path / "results"), "--benchmark", "mteb_eng_v2", "--out", str(out)]) == 0
    stem = out / "leaderboard_mteb_eng_v2"
    assert all(stem.with_suffix(ext).is_file() for ext in (".md", ".tex", ".csv", ".png", ".svg"))
    assert r"\toprule" in stem.with_suffix(".tex").read_text() and "85.00" in stem.with_suffix(".tex").read_text()
    rows = list(csv.DictReader(stem.with_suffix(".csv").open()))
    assert {"model": "my-model (ours)", "task": "STSBenchmark", "score": "85.0000", "like_for_like": "True"}.items() \
        <= next(r for r in rows if r["model"] == "my-model (ours)").items()


@pytest.mark.parametrize("args, message", [
    (["--benchmark", "MTEB(eng, v9)"], "unknown mteb benchmark 'MTEB(eng, v9)'"),
    (["--benchmark", "mteb_eng_v2", "--published-dir", "/no/such/folder"], "--published-dir /no/such/folder: no such"),
    (["--published-dir", "/tmp"], "--published-dir needs --benchmark"),
])
@pytest.mark.integration
def test_bad_leaderboard_arguments_are_one_line_and_write_nothing(tmp_path, args, message):
    write_result(tmp_path / "results" / "me__my-model" / "rev1", "STSBenchmark", 0.85)
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "evalkit.report", str(tmp_path / "results"), *args, "--out",
                           str(out)], capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


@pytest.mark.unit
def test_two_runs_are_ranked_on_the_tasks_both_have(tmp_path):
    write_result(tmp_path / "me__model-a" / "rev1", "STSBenchmark", 0.90)
    write_result(tmp_path / "me__model-a" / "rev1", "BIOSSES", 0.90)
    write_result(tmp_path / "me__model-b" / "rev1", "STSBenchmark", 0.80)
    board = build("MTEB(eng, v2)", runs_of(tmp_path))
    assert board.like == ["STSBenchmark"]  # BIOSSES: only model-a has it
    assert board.ranks() == {"model-a (ours)": 1, "e5-mistral-7b-instruct (published)": 2, "model-b (ours)": 4,
                             "all-MiniLM-L6-v2 (published)": 3}
