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
from evalkit.data import read_beir_folder
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


def planned(path: Path, data: dict):
    return SimpleNamespace(path=path, experiment=SimpleNamespace(identity={"model": "m", "data": data}))


# -- a data folder forgotten ---------------------------------------------------------------------------------

def test_a_forgotten_data_dir_says_no_data_folder_was_given_and_where_data_would_come_from(tmp_path):
    path = stored_result(tmp_path, LOCAL, "/data/beir/scifact")
    with pytest.raises(EvalkitError) as caught:
        finished(planned(path, HUB), overwrite=False)
    message = str(caught.value)
    assert "was computed from the local data folder /data/beir/scifact" in message
    assert "given no data folder" in message and "from the hub (mteb/scifact@0a1b2c, the revision mteb pins)" in message
    assert "pass data_dir=/data/beir/scifact" in message and "holds another experiment" not in message


def test_a_data_folder_given_where_the_hub_was_used_says_so(tmp_path):
    path = stored_result(tmp_path, HUB, None)
    with pytest.raises(EvalkitError, match=r"computed from the hub's data \(mteb/scifact@0a1b2c.*reads a local data "
                                           r"folder: leave out data_dir="):
        finished(planned(path, LOCAL), overwrite=False)


def test_other_differences_still_name_the_first_difference(tmp_path):
    path = stored_result(tmp_path, LOCAL, "/a")
    with pytest.raises(EvalkitError, match=r"holds another experiment \(data.fingerprint: \"sha256:abc\" -> "):
        finished(planned(path, {**LOCAL, "fingerprint": "sha256:def"}), overwrite=False)


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
