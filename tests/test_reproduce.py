"""Real data, real weights: all-MiniLM-L6-v2 on the local SciFact and NFCorpus folders reproduces
the published mteb scores (../shared/reference/baselines.tsv) to +-0.05 points. Minutes on CPU."""

from __future__ import annotations

import csv

import pytest

from evalkit.config import EncodeConfig, RunConfig, load_model_config
from evalkit.results import task_score
from evalkit.runner import plan_run, run
from evalkit.tasks import get_task_spec

from conftest import shared_path

METRICS = ("ndcg_at_10", "map_at_10", "recall_at_100", "mrr_at_10")
# NFCorpus has duplicate documents, so tied scores; mteb 2 breaks MRR ties by doc id (mteb #5092), the
# published run (mteb 1.12.75) by insertion order. Measured here: 50.40 vs 50.46. nDCG/MAP/recall
# come from pytrec_eval and match exactly.
TOLERANCE = {("NFCorpus", "mrr_at_10"): 0.1}


def published(task: str) -> dict[str, float]:
    with shared_path("reference", "baselines.tsv").open(encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t")
                if r["model"] == "sentence-transformers/all-MiniLM-L6-v2" and r["task"] == task
                and r["kind"] == "mteb_results_run"]
    return {r["metric"]: float(r["score"]) for r in rows}


@pytest.mark.slow
@pytest.mark.parametrize("alias,task", [("scifact", "SciFact"), ("nfcorpus", "NFCorpus")])
def test_minilm_reproduces_published_scores(alias, task, tmp_path):
    expected = published(task)
    assert set(expected) == set(METRICS)
    cfg = RunConfig(task=get_task_spec(alias), model=load_model_config("minilm"),
                    data_dir=str(shared_path("data", "beir", alias)), results_dir=str(tmp_path),
                    encode=EncodeConfig(show_progress=False))
    run(cfg)
    from mteb.results import TaskResult

    result = TaskResult.from_disk(plan_run(cfg).path)
    for metric in METRICS:
        ours = 100 * task_score(result, "test", "default", metric)
        assert ours == pytest.approx(expected[metric], abs=TOLERANCE.get((task, metric), 0.05)), metric
