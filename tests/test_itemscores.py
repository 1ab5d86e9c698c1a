"""Per-item scores: caught from mteb's own scoring, they recompute mteb's main score exactly, and their
bootstrap CI behaves; the run record says which instruction and normalization applied."""

from __future__ import annotations

import json
import logging
import random

import numpy as np
import pytest

from evalkit import itemscores
from evalkit.config import EncodeConfig, RunConfig, load_model_config
from evalkit.results import record_path
from evalkit.runner import run
from evalkit.tasks import get_task_spec

from test_mteb_folder import STS_ROWS, write_jsonl


WORDS = "cat river volcano chess bread comet violin glacier lamp orbit".split()


def tiny_record(tmp_path, task: str, folder) -> dict:
    cfg = RunConfig(task=get_task_spec(task), model=load_model_config("tiny_mistral"), data_dir=str(folder),
                    results_dir=str(tmp_path / "r"), encode=EncodeConfig(cache=False, show_progress=False))
    summary = run(cfg)
    record = json.loads(record_path(summary.path).read_text())
    assert record["score"] == summary.score
    return record


def pair_rows(n=40):
    rng = random.Random(0)
    return [{"sentence1": " ".join(rng.sample(WORDS, 4)), "sentence2": " ".join(rng.sample(WORDS, 4)),
             "labels": i % 3 != 0} for i in range(n)]


def summeval_rows(n=6):
    rng = random.Random(1)
    words = lambda k: " ".join(rng.choices(WORDS, k=k))  # noqa: E731
    return [{"text": words(30), "human_summaries": [words(8) for _ in range(3)],
             "machine_summaries": [words(8) for _ in range(5)], "relevance": [rng.choice([1, 2, 3, 4, 5]) * 1.0
                                                                            for _ in range(5)]} for _ in range(n)]


@pytest.mark.integration
@pytest.mark.parametrize("task,rows,statistic,columns", [
    ("STSBenchmark", STS_ROWS, "spearman", 1),
    ("SICKNLPairClassification", pair_rows(), "ap", 5),  # max AP over five similarity functions
    ("SummEval", summeval_rows(), "mean", 1),  # mteb bug #1156 kept: (rho + p) / 2 per document
    ("SummEvalSummarization.v2", summeval_rows(), "mean", 1),
])
def test_per_item_scores_recompute_the_main_score(tmp_path, task, rows, statistic, columns):
    record = tiny_record(tmp_path, task, write_jsonl(tmp_path / task / "test.jsonl", rows).parent)
    entry = record["per_item"]
    assert (entry["metric"], entry["statistic"], len(entry["scores"])) == (record["metric"], statistic, columns)
    assert itemscores.statistic(entry) == pytest.approx(record["score"], rel=1e-12)
    items = len(entry["scores"][0])  # pairs; or documents, less any mteb skips for tied scores
    assert items == len(rows) if statistic != "mean" else 0 < items <= len(rows)
    low, high = itemscores.item_ci(entry, seed=0, resamples=200)
    assert low <= record["score"] <= high


@pytest.mark.integration
def test_summeval_v1_keeps_mteb_bug_1156_and_v2_does_not(tmp_path):
    folder = write_jsonl(tmp_path / "summeval" / "test.jsonl", summeval_rows()).parent
    v1 = tiny_record(tmp_path, "SummEval", folder)["per_item"]["scores"][0]
    v2 = tiny_record(tmp_path, "SummEvalSummarization.v2", folder)["per_item"]["scores"][0]
    assert len(v1) == len(v2) and v1 != v2  # (rho + p) / 2 against rho, document by document
    assert all(-1 <= rho <= 1 for rho in v2)


@pytest.mark.integration
def test_the_record_says_which_instruction_and_normalization_applied(tmp_path):
    rows = [{"text": f"{w} {i}", "label": i % 2} for i, w in enumerate(WORDS * 3)]
    folder = write_jsonl(tmp_path / "b77" / "train.jsonl", rows).parent
    write_jsonl(folder / "test.jsonl", rows[:10])
    record = tiny_record(tmp_path, "Banking77Classification", folder)
    assert record["instruction_source"] == "conf/tasks/Banking77Classification.yaml"
    assert record["normalized"] is False and record["per_item"] is None  # mteb gives no per-item scores here
    query = record["encode"]["samples"]["query"]
    assert query["text"].startswith(f"Instruct: {record['instruction']}\nQuery: ") and abs(query["norm"] - 1) > 1e-3
    assert record["encode"]["inputs"] == {"query": {"texts": record["encode"]["texts"],
                                                    "instructed": record["encode"]["texts"]}}


@pytest.mark.unit
def test_a_capture_that_does_not_reproduce_the_score_is_dropped(caplog):
    entry = {"metric": "cosine_spearman", "statistic": "spearman", "gold": [0, 1, 2, 3], "scores": [[0, 1, 3, 2]]}
    assert itemscores.verified(entry, itemscores.statistic(entry), "T") is entry
    with caplog.at_level(logging.WARNING):
        assert itemscores.verified(entry, 0.5, "T") is None
    assert "T: per-item scores give" in caplog.text and "no confidence interval" in caplog.text


@pytest.mark.unit
def test_item_ci_is_deterministic_and_narrows_with_more_items():
    rng = np.random.default_rng(0)
    gold = rng.normal(size=2000)
    entry = {"statistic": "spearman", "gold": gold.tolist(), "scores": [(gold + rng.normal(size=2000)).tolist()]}
    wide = {"statistic": "spearman", "gold": entry["gold"][:200], "scores": [entry["scores"][0][:200]]}
    ci = itemscores.item_ci(entry, seed=3, resamples=300)
    assert ci == itemscores.item_ci(entry, seed=3, resamples=300)
    assert ci[0] < itemscores.statistic(entry) < ci[1]
    small = itemscores.item_ci(wide, seed=3, resamples=300)
    assert (ci[1] - ci[0]) < (small[1] - small[0]) / 2  # ~ 1/sqrt(n): 10x the items, ~3x narrower


@pytest.mark.unit
def test_max_ap_takes_the_max_inside_each_resample():
    labels = [1, 0, 1, 0, 1, 1, 0, 0]
    good, bad = [0.9, 0.1, 0.8, 0.2, 0.7, 0.6, 0.3, 0.4], [0.1, 0.9, 0.2, 0.8, 0.3, 0.4, 0.7, 0.6]
    entry = {"statistic": "ap", "gold": labels, "scores": [bad, good]}
    assert itemscores.statistic(entry) == 1.0
    assert itemscores.statistic(entry, np.array([0, 1, 1, 2])) == 1.0
