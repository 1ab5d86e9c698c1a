"""Sweeps and sizing: suites expand to their tasks, the joblib launcher runs a sweep, plan counts right."""

from __future__ import annotations

import json
import shutil

import pytest

from evalkit import EvalkitError
from evalkit.__main__ import canonical_overrides
from evalkit.config import EncodeConfig, RunConfig, load_model_config
from evalkit.plan import make_plan, plan_from_stats
from evalkit.results import record_path
from evalkit.runner import prepare_run, run
from evalkit.tasks import get_task_spec, suite_task_names

from test_cli import evalkit


@pytest.mark.unit
def test_suites_expand_to_the_registry():
    assert len(suite_task_names("mteb_eng")) == 56
    beir = suite_task_names("beir")
    assert len(beir) == 15 and "MSMARCO" in beir and "CQADupstackRetrieval" in beir
    assert suite_task_names("scifact,NFCorpus") == ["SciFact", "NFCorpus"]
    with pytest.raises(EvalkitError, match="unknown suite 'bier'; did you mean beir"):
        suite_task_names("bier")


@pytest.mark.unit
def test_suite_override_becomes_a_multirun_over_tasks():
    argv = canonical_overrides(["suite=beir", "model=minilm"])
    tasks = argv[1].removeprefix("task=").split(",")
    assert argv[0] == "--multirun" and sorted(tasks) == sorted(suite_task_names("beir"))
    assert tasks.index("FEVER") == tasks.index("ClimateFEVER") + 1  # one corpus: encoded once, then read at once


@pytest.mark.integration
def test_joblib_launcher_runs_a_sweep_in_parallel_processes(small_beir, tmp_path):
    root = tmp_path / "beir"
    for name in ("scifact", "nfcorpus"):
        shutil.copytree(small_beir, root / name)
    proc = evalkit("-m", "task=scifact,nfcorpus", "model=tiny_mistral", f"data_root={root}",
                   f"results_dir={tmp_path}/results", "hydra/launcher=local", "hydra.launcher.n_jobs=2", timeout=600)
    assert proc.returncode == 0, proc.stderr
    model = tmp_path / "results" / "evalkit__tiny-random-mistral"  # local data: one experiment folder per task
    assert sorted(p.name for p in model.glob("seed0__data-*/*.json")) == [
        "NFCorpus.json", "SciFact.json", "model_meta.json", "model_meta.json"]


@pytest.mark.integration
def test_plan_counts_the_tokens_a_real_run_encodes(small_beir, tmp_path):
    """The plan's token count equals what a run of the same task sends through the model (cache off)."""
    (tmp_path / "root").mkdir()
    shutil.copytree(small_beir, tmp_path / "root" / "scifact")
    [plan] = make_plan("scifact", "tiny_mistral", str(tmp_path / "root"))
    cfg = RunConfig(task=get_task_spec("scifact"), model=load_model_config("tiny_mistral"), data_dir=str(small_beir),
                    results_dir=str(tmp_path / "results"), encode=EncodeConfig(cache=False, show_progress=False))
    run(cfg)
    record = json.loads(record_path(prepare_run(cfg).path).read_text())
    assert (plan.source, plan.texts) == ("local", record["encode"]["texts"]) == ("local", 12)
    assert plan.tokens == record["encode"]["tokens"]


@pytest.mark.unit
def test_plan_from_mteb_statistics_sizes_msmarco():
    plan = plan_from_stats(get_task_spec("msmarco"), load_model_config("e5_mistral_7b"))
    assert plan.texts > 8_800_000  # 8.8M passages + the dev queries
    assert 300 * 10**6 < plan.tokens < plan.texts * 512
    assert plan.hours(25_000) == pytest.approx(plan.tokens / 25_000 / 3600)


@pytest.mark.unit
def test_plan_command_prints_a_table(capsys):
    """Each task's row and the total row carry the plan's own numbers (texts, tokens, to encode, hours)."""
    from evalkit.plan import main as plan_main

    plan_main(["suite=beir", "tokens_per_s=30000"])
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:1].strip()}  # not the notes
    plans = make_plan("beir", "e5_mistral_7b", None)
    assert len(plans) == 15
    for p in plans:
        assert rows[p.task][-4:] == [f"{p.texts:,}", f"{p.tokens:,}", f"{p.to_encode:,}", f"{p.to_encode / 30000 / 3600:.2f}"]
    left = sum(p.to_encode for p in plans)
    assert rows["total"][-4:] == [f"{sum(p.texts for p in plans):,}", f"{sum(p.tokens for p in plans):,}", f"{left:,}",
                                 f"{left / 30000 / 3600:.2f}"]
    assert "at 30,000 tokens/s" in out
