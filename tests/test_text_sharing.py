"""Each distinct text encoded once across a suite: plan counts it (exact from local folders, estimated from
mteb's statistics), a suite run orders tasks sharing a corpus together and the second encodes none of it;
plan takes its rate from the run records."""

from __future__ import annotations

import pytest

import json
import shutil

from evalkit.config import EncodeConfig, RunConfig, load_model_config
from evalkit.plan import make_plan, measured_rate, plan_from_stats, suite_run_order
from evalkit.results import record_path
from evalkit.runner import prepare_run, run
from evalkit.tasks import get_task_spec, suite_task_names
from evalkit.textsets import count_new

from conftest import write_beir
from test_cli import evalkit

CORPUS = {f"d{i}": (f"Claim {i}", f"Evidence sentence number {i} about topic {i % 3}.") for i in range(12)}


def two_tasks_one_corpus(root):
    """BEIR folders for FEVER and ClimateFEVER with the same corpus and different queries."""
    write_beir(root / "fever", CORPUS, {"q0": "Is topic 0 real?", "q1": "What about topic 1?"},
               [("q0", "d0", 1), ("q1", "d1", 1)])
    write_beir(root / "climate-fever", CORPUS, {"c0": "Does the climate change topic 2?", "c1": "Topic 0 again?"},
               [("c0", "d2", 1), ("c1", "d3", 1)])
    return root


@pytest.mark.unit
def test_plan_counts_a_shared_local_corpus_once_and_exactly(tmp_path):
    root = two_tasks_one_corpus(tmp_path / "beir")
    plans = {p.task: p for p in make_plan("ClimateFEVER,FEVER", "tiny_mistral", str(root))}
    first, second = plans["ClimateFEVER"], plans["FEVER"]
    assert first.source == second.source == "local" and first.texts == second.texts == 14
    assert first.to_encode == first.tokens  # the first task encodes all it asks for
    queries = next(s for s in second.sets if s.part == "queries")
    assert second.new.texts == 2 and second.to_encode == queries.tokens  # the second: only its queries
    assert second.new.notes == ["documents: 12 texts already encoded by an earlier task (exact: local folders)"]


@pytest.mark.unit
def test_plan_estimates_fever_and_climatefever_share_their_corpus_from_mteb_statistics():
    model = load_model_config("e5_mistral_7b")
    fever, climate = (plan_from_stats(get_task_spec(t), model) for t in ("FEVER", "ClimateFEVER"))
    new = count_new({"ClimateFEVER": climate.sets, "FEVER": fever.sets})
    documents = next(s for s in fever.sets if s.part == "documents")
    assert new["ClimateFEVER"].tokens == climate.tokens
    assert new["FEVER"].tokens == fever.tokens - documents.tokens  # FEVER's 5.4M documents are ClimateFEVER's
    assert "5,416,568 texts already encoded for ClimateFEVER (estimated" in new["FEVER"].notes[0]
    # the same sentences under two instructions are two sets of texts: e5 instructs classification per task
    intent, domain = (plan_from_stats(get_task_spec(t), model) for t in ("MTOPIntentClassification",
                                                                         "MTOPDomainClassification"))
    assert not count_new({"a": domain.sets, "b": intent.sets})["b"].notes
    minilm = load_model_config("minilm")  # no instructions: the same texts
    intent, domain = (plan_from_stats(get_task_spec(t), minilm) for t in ("MTOPIntentClassification",
                                                                          "MTOPDomainClassification"))
    assert count_new({"a": domain.sets, "b": intent.sets})["b"].tokens == 0


@pytest.mark.unit
def test_a_suite_run_takes_tasks_sharing_a_corpus_one_after_the_other():
    order = suite_run_order(suite_task_names("mteb_eng"))
    assert sorted(order) == sorted(suite_task_names("mteb_eng"))
    assert order.index("FEVER") == order.index("ClimateFEVER") + 1
    assert order.index("MTOPIntentClassification") == order.index("MTOPDomainClassification") + 1


@pytest.mark.integration
def test_the_second_task_on_a_shared_corpus_does_no_forward_pass_for_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "cache"))
    root = two_tasks_one_corpus(tmp_path / "beir")
    records = {}
    order = suite_run_order(["FEVER", "ClimateFEVER"])
    for task in order:
        cfg = RunConfig(task=get_task_spec(task), model=load_model_config("tiny_mistral"), data_root=str(root),
                        results_dir=str(tmp_path / "results"), encode=EncodeConfig(show_progress=False))
        run(cfg)
        records[task] = json.loads(record_path(prepare_run(cfg).path).read_text())["encode"]["by_side"]
    first, second = (records[task] for task in order)
    assert first["document"]["forward_passes"] >= 1 and first["document"]["cache_hits"] == 0
    assert second["document"] == {"texts": 12, "cache_hits": 12, "forward_passes": 0, "tokens": 0}
    assert second["query"]["forward_passes"] >= 1 and second["query"]["cache_hits"] == 0


@pytest.mark.integration
def test_plan_takes_its_rate_from_matching_run_records(small_beir, tmp_path):
    model = load_model_config("tiny_mistral")
    rate, note = measured_rate(str(tmp_path / "results"), model, None)
    assert rate == 25_000 and note.startswith("the default: no run record of evalkit/tiny-random-mistral, float32")
    for task in ("scifact", "nfcorpus"):
        run(RunConfig(task=get_task_spec(task), model=model, data_dir=str(small_beir),
                      results_dir=str(tmp_path / "results"), encode=EncodeConfig(cache=False, show_progress=False)))
    encodes = [json.loads(p.read_text())["encode"] for p in (tmp_path / "results").rglob("*.run.json")]
    expected = sum(e["tokens"] for e in encodes) / sum(e["forward_seconds"] for e in encodes)
    rate, note = measured_rate(str(tmp_path / "results"), model, None)
    assert rate == expected and note.startswith("measured: 2 run records of evalkit/tiny-random-mistral, float32, CPU")
    assert "NFCorpus" in note and "SciFact" in note
    assert measured_rate(str(tmp_path / "results"), load_model_config("tiny_mistral", dtype="bfloat16"), None)[0] == 25_000
    assert measured_rate(str(tmp_path / "results"), model, "H200")[0] == 25_000  # another device: not this rate
    proc = evalkit("plan", "task=scifact", "model=tiny_mistral", f"results_dir={tmp_path / 'results'}")
    assert proc.returncode == 0, proc.stderr
    assert f"at {expected:,.0f} tokens/s per GPU (measured: 2 run records" in proc.stdout
    next((tmp_path / "results").rglob("NFCorpus.run.json")).write_text("[]")  # JSON, but no record: skipped
    assert measured_rate(str(tmp_path / "results"), model, None)[1].startswith("measured: 1 run records")
    shutil.rmtree(tmp_path / "results")
