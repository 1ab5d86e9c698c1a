"""End to end on the tiny model: result files mteb can read, run records, resume, sweeps, no partial files."""

from __future__ import annotations

import json
import shutil

import mteb
import pytest
from mteb.results import TaskResult

from evalkit.config import EncodeConfig, RunConfig, load_model_config
from evalkit.results import record_path
from evalkit.runner import prepare_run, run
from evalkit.tasks import get_task_spec

from test_cli import evalkit


def tiny_run(tmp_path, data_dir, task="scifact", **kw) -> RunConfig:
    return RunConfig(task=get_task_spec(task), model=load_model_config("tiny_mistral"), data_dir=str(data_dir),
                     results_dir=str(tmp_path / "results"), encode=EncodeConfig(batch_size=4, cache=False), **kw)


@pytest.mark.integration
def test_cli_run_writes_a_result_mteb_can_load(small_beir, tmp_path):
    proc = evalkit("task=scifact", "model=tiny_mistral", f"data_dir={small_beir}", f"results_dir={tmp_path}/results")
    assert proc.returncode == 0, proc.stderr
    assert "SciFact: ndcg_at_10 = " in proc.stdout
    # eight made-up documents are not the published SciFact test set: a folder of their own, named so
    [path] = (tmp_path / "results" / "evalkit__tiny-random-mistral").glob("seed0__data-small-*/SciFact.json")
    result = TaskResult.from_disk(path)
    assert result.task_name == "SciFact" and "test" in result.scores
    loaded = mteb.ResultCache(cache_path=tmp_path).load_results(models=["evalkit/tiny-random-mistral"])
    assert [r.task_name for m in loaded.model_results for r in m.task_results] == ["SciFact"]
    assert [m.model_revision for m in loaded.model_results] == [path.parent.name]  # its own revision to mteb


@pytest.mark.unit
def test_run_record_holds_what_a_reader_needs(small_beir, tmp_path):
    cfg = tiny_run(tmp_path, small_beir)
    summary = run(cfg)
    record = json.loads(record_path(prepare_run(cfg).path).read_text())
    assert record["instruction"] == get_task_spec("scifact").instruction
    assert record["special_tokens"]["eos_token"] == {"token": "</s>", "id": 2}
    query = record["encode"]["samples"]["query"]
    assert query["text"].startswith("Instruct: Given a scientific claim") and query["token_ids"][-1] == 2
    assert not record["encode"]["samples"]["document"]["text"].startswith("Instruct:")
    assert record["encode"]["texts"] == 12 and record["encode"]["tokens_per_second"] > 0
    assert record["versions"]["mteb"] and record["hardware"]["cpus"] and record["wall_time_s"] > 0
    assert record["config"]["model"]["name"] == "evalkit/tiny-random-mistral"
    per_query = record["per_query"]["ndcg_at_10"]
    assert set(per_query) == {"q0", "q1", "q2", "q3"}
    assert sum(per_query.values()) / 4 == pytest.approx(summary.score, abs=1e-5)


@pytest.mark.integration
def test_a_finished_task_is_skipped_unless_overwrite(small_beir, tmp_path):
    cfg = tiny_run(tmp_path, small_beir)
    assert run(cfg).skipped is False
    before = prepare_run(cfg).path.read_text()
    assert run(cfg).skipped is True
    assert prepare_run(cfg).path.read_text() == before
    cfg.overwrite = True
    assert run(cfg).skipped is False


@pytest.mark.unit
def test_a_failed_run_leaves_no_result(small_beir, tmp_path, monkeypatch):
    cfg = tiny_run(tmp_path, small_beir)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(TaskResult, "to_disk", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        run(cfg)
    folder = prepare_run(cfg).path.parent
    assert not prepare_run(cfg).path.exists()
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.integration
def test_sweep_over_tasks_with_a_data_root(small_beir, tmp_path):
    root = tmp_path / "beir"
    root.mkdir()
    shutil.copytree(small_beir, root / "scifact")
    shutil.copytree(small_beir, root / "nfcorpus")
    proc = evalkit("-m", "task=scifact,nfcorpus", "model=tiny_mistral", f"data_root={root}",
                   f"results_dir={tmp_path}/results")
    assert proc.returncode == 0, proc.stderr
    model = tmp_path / "results" / "evalkit__tiny-random-mistral"
    # local folders that are not the published test sets: each task in its own experiment folder
    nfcorpus, scifact = sorted(model.iterdir())
    assert nfcorpus.name.startswith("seed0__data-nfcorpus-") and scifact.name.startswith("seed0__data-scifact-")
    assert sorted(p.name for p in nfcorpus.glob("*.json")) == ["NFCorpus.json", "model_meta.json"]
    assert sorted(p.name for p in scifact.glob("*.json")) == ["SciFact.json", "model_meta.json"]
