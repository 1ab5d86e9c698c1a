"""What a new user meets in the first hour: messages that say what happened and what to do, numbers that say
what they measured (the CPU token budget, plan's rate, the run summary's counts), and no noise about nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from evalkit import EvalkitError
from evalkit.config import load_model_config
from evalkit.beir_folder import read_beir_folder
from evalkit.plan import measured_rate, mostly_calibration
from evalkit.results import record_path
from evalkit.runner import finished

from conftest import write_beir

pytestmark = pytest.mark.unit

HUB = {"source": "hub", "datasets": ["mteb/scifact@0a1b2c"]}
LOCAL = {"source": "local", "fingerprint": "sha256:abc"}


def stored_result(tmp_path: Path, data: dict, data_dir: str | None) -> Path:
    """A finished result file whose run record says it was computed on `data`."""
    path = tmp_path / "results" / "org__model" / "rev" / "SciFact.json"
    record_path(path).parent.mkdir(parents=True)
    record_path(path).write_text(json.dumps({"identity": {"model": "m", "data": data}, "data_dir": data_dir}))
    path.write_text("{}")
    return path


def prepared_at(path: Path, data: dict):
    return SimpleNamespace(path=path, experiment=SimpleNamespace(identity={"model": "m", "data": data}))


# -- a data folder forgotten ---------------------------------------------------------------------------------

def test_a_forgotten_data_dir_says_no_data_folder_was_given_and_where_data_would_come_from(tmp_path):
    path = stored_result(tmp_path, LOCAL, "/data/beir/scifact")
    with pytest.raises(EvalkitError) as caught:
        finished(prepared_at(path, HUB), overwrite=False)
    message = str(caught.value)
    assert "was computed from the local data folder /data/beir/scifact" in message
    assert "given no data folder" in message and "from the hub (mteb/scifact@0a1b2c, the revision mteb pins)" in message
    assert "pass data_dir=/data/beir/scifact" in message and "holds another experiment" not in message


def test_a_data_folder_given_where_the_hub_was_used_says_so(tmp_path):
    path = stored_result(tmp_path, HUB, None)
    with pytest.raises(EvalkitError, match=r"computed from the hub's data \(mteb/scifact@0a1b2c.*reads a local data "
                                           r"folder: leave out data_dir="):
        finished(prepared_at(path, LOCAL), overwrite=False)


def test_other_differences_still_name_the_first_difference(tmp_path):
    path = stored_result(tmp_path, LOCAL, "/a")
    with pytest.raises(EvalkitError, match=r"holds another experiment \(data.fingerprint: \"sha256:abc\" -> "):
        finished(prepared_at(path, {**LOCAL, "fingerprint": "sha256:def"}), overwrite=False)


# -- plan's rate: what it was measured on, and not from runs that mostly calibrated ---------------------------

def run_record(results: Path, task: str, model, device: str, tokens: int, forward: float, **encode) -> None:
    path = results / "org__model" / "rev" / f"{task}.json"
    record_path(path).parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    record_path(path).write_text(json.dumps({"model": {"name": model.name, "dtype": model.dtype}, "encode": {
        "device": device, "tokens": tokens, "forward_seconds": forward, **encode}}))


def test_plan_leaves_out_a_run_that_was_mostly_calibration_and_names_the_device_kind(tmp_path):
    model = load_model_config("tiny_mistral")
    run_record(tmp_path, "A", model, "CPU Xeon", 10_000, 10.0, calibration_seconds=2.0)
    run_record(tmp_path, "B", model, "CPU Xeon", 1_000, 2.0, calibration_seconds=30.0)  # mostly calibration
    run_record(tmp_path, "C", model, "CPU Xeon", 1_000, 2.0, budget_reason="calibrated now in 40.5 s (tokens/s by")
    rate, note, kind = measured_rate(str(tmp_path), model, "CPU")
    assert (rate, kind) == (1_000.0, "CPU")  # A alone: 10,000 tokens in 10 s
    assert note.startswith("measured: 1 run records") and "(2 left out: they spent longer calibrating" in note
    run_record(tmp_path, "D", model, "NVIDIA H200", 50_000, 1.0)
    assert measured_rate(str(tmp_path), model, "H200")[::2] == (50_000.0, "GPU")
    assert not mostly_calibration({"forward_seconds": 5.0, "budget_reason": "calibrated earlier on this machine"})


def test_qrels_warning_names_only_what_was_lost(tmp_path, caplog):
    folder = write_beir(tmp_path / "b", {"d0": ("", "a"), "d1": ("", "b")}, {"q0": "x", "q1": "y"},
                        [("q0", "d0", 1), ("q1", "d9", 1)])
    with caplog.at_level(logging.WARNING):
        read_beir_folder(folder, "test")
    assert "1 of 2 judged documents are not in corpus.jsonl" in caplog.text
    assert "qrels query ids" not in caplog.text  # "0 of 2 ... (dropped)": a warning about nothing


# -- the CPU token budget: measured robustly, kept with its conditions, measured again when stale -------------

from evalkit.encoding import calibrate  # noqa: E402

NOW = {"torch": "2.13.0", "threads": 2, "cores": 2, "load": 1.0, "date": "2026-12-03T18:00:00Z"}


def fake_planner():
    """What pick_budget reads of a BatchPlanner: a CPU model, its encode settings, stats and batching."""
    from torch import device

    from evalkit.encoding.stats import EncodeStats

    model = SimpleNamespace(device=device("cpu"), attn_implementation="sdpa", device_name="CPU Test",
                            cfg=SimpleNamespace(name="m", revision="r", dtype="float32", max_length=256))
    return SimpleNamespace(encode=SimpleNamespace(max_tokens_per_batch=None), model=model, stats=EncodeStats(),
                           batching=lambda path: (None, None), forward=lambda path, inputs: None)


PATH = SimpleNamespace(packed=False, describe=lambda: "padded")
BIG = [[1] * 1000] * 2000  # 2M tokens: calibrates


@pytest.fixture
def measured(monkeypatch, tmp_path):
    """pick_budget with a private cache root, the conditions `NOW` (or as a test sets them) and injected timings;
    returns the list of measurements made."""
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(calibrate, "conditions", lambda: dict(NOW))
    calls = []

    def timings(forward, seqs, cut, build, candidates):
        calls.append(candidates)
        return {b: [1000.0 * (1.5 if b == 1024 else 1.0)] * 3 for b in candidates}  # 1,024: 50% faster

    monkeypatch.setattr(calibrate, "measure", timings)
    return calls


def test_noise_within_the_minimum_gain_keeps_the_default():
    default = [1000.0, 800.0, 1200.0]  # the load moves every rate by ±20% from round to round
    budget, why = calibrate.choose({1024: [1080.0, 850.0, 1250.0], 16_384: default}, 16_384)
    assert budget == 16_384 and why.startswith("the default 16,384 kept, no budget was 10% faster (best 1,024: +6%")


def test_a_gain_beyond_the_minimum_in_most_rounds_is_taken_one_noisy_round_is_not():
    rates = {1024: [1300.0, 1250.0, 400.0], 4096: [1000.0, 2900.0, 1000.0], 16_384: [1000.0, 1000.0, 1000.0]}
    budget, why = calibrate.choose(rates, 16_384)  # 4096 won one round threefold (noise); 1,024 two rounds of three
    assert budget == 1024 and why.startswith("1,024 is 25% faster than the default 16,384 (median of 3 interleaved")


def test_a_load_that_drifts_between_rounds_is_compared_within_each_round():
    # the machine gets busier every round; 2,048 is 20% faster than the default in every round
    rates = {2048: [1200.0, 600.0, 300.0], 16_384: [1000.0, 500.0, 250.0]}
    assert calibrate.choose(rates, 16_384)[0] == 2048


def test_the_budget_is_kept_with_its_conditions_and_used_while_they_hold(measured):
    planner = fake_planner()
    budget, why = calibrate.pick_budget(planner, PATH, BIG, lambda items: items)
    assert budget == 1024 and why.startswith("calibrated now in ") and "1,024 is 50% faster" in why
    assert 16_384 in measured[0]  # the default is always among the candidates
    [entry] = json.loads(calibrate.budgets_file().read_text()).values()
    assert entry["conditions"] == NOW and entry["budget"] == 1024 and "50% faster" in entry["reason"]
    assert planner.stats.calibration_seconds > 0
    again, why = calibrate.pick_budget(fake_planner(), PATH, BIG, lambda items: items)
    assert again == 1024 and why.startswith("calibrated earlier on this machine") and len(measured) == 1


@pytest.mark.parametrize("then, because", [
    ({"torch": "2.12.0"}, "torch 2.12.0 then, 2.13.0 now"),
    ({"threads": 8, "cores": 8}, "torch threads 8 then, 2 now"),
    ({"load": 12.0}, "measured at load 12.0, 1.0 now, on 2 cores"),
])
def test_a_stale_entry_is_measured_again(measured, then, because):
    calibrate.pick_budget(fake_planner(), PATH, BIG, lambda items: items)
    data = json.loads(calibrate.budgets_file().read_text())
    [entry] = data.values()
    entry["conditions"].update(then)
    entry["budget"] = 8192
    calibrate.budgets_file().write_text(json.dumps(data))
    assert any(because in line for line in calibrate.describe_budgets(dict(NOW)))
    small, why = calibrate.pick_budget(fake_planner(), PATH, BIG[:10], lambda items: items)  # too small to measure
    assert small == 16_384 and f"the remembered budget is stale ({because})" in why and len(measured) == 1
    budget, why = calibrate.pick_budget(fake_planner(), PATH, BIG, lambda items: items)
    assert budget == 1024 and len(measured) == 2 and f"stale ({because})" in why
    assert json.loads(calibrate.budgets_file().read_text())[next(iter(data))]["conditions"] == NOW


def test_a_measurement_under_the_load_of_today_or_a_quieter_one_is_not_stale():
    assert calibrate.stale({"conditions": {**NOW, "load": 12.0}}, {**NOW, "load": 10.0}) is None  # as busy today
    assert calibrate.stale({"conditions": {**NOW, "load": 0.2}}, {**NOW, "load": 9.0}) is None  # quieter then
    assert "kept the measurement's conditions" in calibrate.stale({"budget": 2048}, NOW)  # an older evalkit's


def test_cache_info_shows_the_budget_why_and_its_conditions(measured, capsys):
    from evalkit.encoding.cache_cli import main as cache_main

    calibrate.pick_budget(fake_planner(), PATH, BIG, lambda items: items)
    assert cache_main(["info"]) == 0
    out = capsys.readouterr().out
    assert ('m float32 max_length=256 padded (sdpa) on CPU Test: 1,024 tokens per forward pass: 1,024 is 50% faster '
            'than the default 16,384') in out
    assert "measured 2026-12-03T18:00:00Z at load 1.0 on 2 cores, 2 torch threads, torch 2.13.0" in out
    assert "current: used as is" in out


# -- the run's counts and output: repeated texts are not cache hits, the libraries' noise is off --------------

def test_texts_repeated_within_a_run_are_not_counted_as_cache_hits(tiny_encoder, tmp_path):
    from evalkit.config import EncodeConfig

    def fresh():
        return tiny_encoder.fresh(encode=EncodeConfig(cache=True, cache_dir=str(tmp_path), show_progress=False))

    texts = ["a cat", "a river", "a cat", "a volcano", "a cat"]
    first = fresh()
    first.embed(texts, side="document")
    assert (first.stats.cache_hits, first.stats.repeated) == (0, 2)  # "a cat" twice more in the same call
    first.embed(["a river", "a comet"], side="query")  # "a river": encoded by the call before, in this run
    assert (first.stats.cache_hits, first.stats.repeated) == (0, 3)
    assert first.stats.by_side["query"]["repeated"] == 1 and first.stats.by_side["query"]["cache_hits"] == 0
    again = fresh()  # another run: what the first one wrote is the cache's
    again.embed(texts, side="document")
    assert (again.stats.cache_hits, again.stats.repeated) == (5, 0)


def summary(**counts):
    from evalkit.runner import RunSummary

    return RunSummary("scifact", "SciFact", "ndcg_at_10", Path("r/SciFact.json"), True, False, score=0.5,
                      wall_time_s=1.0, **counts)


def test_the_summary_says_repeated_texts_encoded_once_not_from_the_cache():
    from evalkit.__main__ import summary_line

    first = summary_line(summary(texts=1000, cache_hits=0, repeated=206))
    assert "(794 texts encoded, 206 repeated texts encoded once, 0 from the embedding cache; 1.0 s)" in first
    plain = summary_line(summary(texts=12, cache_hits=0, repeated=0))
    assert "(12 texts encoded, 0 from the embedding cache;" in plain and "repeated" not in plain
    assert "(all 12 texts from the embedding cache;" in summary_line(summary(texts=12, cache_hits=12))


def test_a_run_turns_the_libraries_progress_bars_off_and_says_mteb_superseded_notice_once(caplog, recwarn):
    import datasets
    import huggingface_hub.utils as hub
    import mteb
    from transformers.utils import logging as hf_logging

    from evalkit.runner import quiet_libraries

    before = hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled(), hub.are_progress_bars_disabled()
    task = mteb.get_task("ArxivClusteringP2P")  # superseded in mteb; the e5 paper's suite runs it
    assert task.superseded_by
    with quiet_libraries(), caplog.at_level(logging.WARNING):
        assert not hf_logging.is_progress_bar_enabled() and not datasets.is_progress_bar_enabled()
        assert hub.are_progress_bars_disabled() == before[2]  # downloads keep their bars
        task.check_if_dataset_is_superseded()
    assert [r for r in caplog.records if "is superseded by" in r.getMessage()]  # said once, in the log
    assert not [w for w in recwarn if "is superseded by" in str(w.message)]  # not warned a second time
    assert (hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled(),
            hub.are_progress_bars_disabled()) == before
