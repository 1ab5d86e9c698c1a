"""Any encoder architecture runs with the stock config (attn_implementation auto; a named one is a requirement,
one line when absent), and CPU batches are sized by measurement, remembered per model and machine."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from evalkit import EvalkitError
from evalkit.config import EncodeConfig, load_model_config
from evalkit.encoding import calibrate
from evalkit.encoding.encoder import Encoder
from evalkit.encoding.architecture import attention_for

from benchmarks.random_models import st_folder
from test_cli import assert_one_line_error, evalkit
from test_packing import TEXTS, min_cosine, with_encode


@pytest.fixture(scope="module")
def mpnet_folder(tmp_path_factory):
    """A sentence-transformers folder of a random tiny MPNet: transformers 5 has no sdpa kernel for MPNet."""
    return st_folder(tmp_path_factory.mktemp("models") / "tiny-mpnet", "mpnet", "tiny")


@pytest.mark.integration
def test_an_architecture_without_sdpa_runs_with_the_stock_config(mpnet_folder, small_beir, tmp_path):
    """minilm.yaml with another path, as a user copies it: the run picks eager and records it."""
    proc = evalkit("task=scifact", "model=minilm", f"model.name_or_path={mpnet_folder}", "model.name=test/tiny-mpnet",
                   f"data_dir={small_beir}", f"results_dir={tmp_path}/results", "encode.cache=false")
    assert proc.returncode == 0, proc.stderr
    [record] = (tmp_path / "results").rglob("SciFact.run.json")
    record = json.loads(record.read_text())
    assert record["encode"]["attn_implementation"] == "eager" and record["model"]["attn_implementation"] == "auto"


@pytest.mark.integration
def test_a_named_attention_the_architecture_lacks_is_one_line(mpnet_folder, small_beir, tmp_path):
    proc = evalkit("task=scifact", "model=minilm", f"model.name_or_path={mpnet_folder}", "model.attn_implementation=sdpa",
                   f"data_dir={small_beir}", f"results_dir={tmp_path}/results")
    assert_one_line_error(proc, "model.attn_implementation=sdpa: MPNetModel (mpnet) does not support it",
                          "it supports eager", "model.attn_implementation=auto")
    assert not (tmp_path / "results").exists()


@pytest.mark.integration
def test_a_sentence_transformers_folder_gives_sentence_transformers_embeddings(mpnet_folder):
    from sentence_transformers import SentenceTransformer

    encoder = Encoder(load_model_config("minilm", name_or_path=str(mpnet_folder), device="cpu"), instructions={},
                      encode=EncodeConfig(cache=False))
    ours = encoder.embed(TEXTS)
    theirs = SentenceTransformer(str(mpnet_folder), device="cpu").encode(TEXTS, convert_to_numpy=True)
    assert min_cosine(ours, theirs) >= 0.9999


@pytest.mark.unit
def test_auto_takes_the_best_attention_the_architecture_supports(monkeypatch):
    from transformers import AutoConfig

    cfg = load_model_config("minilm")
    bert, mpnet = AutoConfig.for_model("bert"), AutoConfig.for_model("mpnet")
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert attention_for(cfg, bert, cpu, torch.float32) == "sdpa"
    assert attention_for(cfg, mpnet, cuda, torch.float16) == "eager"
    real = importlib.util.find_spec
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object() if name == "flash_attn" else real(name, *a))
    assert attention_for(cfg, bert, cuda, torch.float16) == "flash_attention_2"  # with the flash-attn package
    assert attention_for(cfg, bert, cuda, torch.float32) == "sdpa"  # flash runs in half precision only
    named = load_model_config("minilm", attn_implementation="flash_attention_2")
    assert attention_for(named, bert, cpu, torch.float32) == "flash_attention_2"  # a requirement, not a wish
    with pytest.raises(EvalkitError, match="flex_attention: MPNetModel"):
        attention_for(load_model_config("minilm", attn_implementation="flex_attention"), mpnet, cpu, torch.float32)


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """The tiny Mistral with no token budget set, a private cache root and a small calibration."""
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(calibrate, "CALIBRATE_MIN_TOKENS", 1000)
    monkeypatch.setattr(calibrate, "CANDIDATES", (64, 256, 1024))
    monkeypatch.setattr(calibrate, "SAMPLE_TOKENS", 1024)
    return Encoder(load_model_config("tiny_mistral"), instructions={}, encode=EncodeConfig(cache=False))


@pytest.mark.integration
def test_a_cpu_measures_its_token_budget_once_and_remembers_it(tiny, monkeypatch):
    texts = TEXTS * 8  # 48 texts: a call large enough to calibrate on
    first = with_encode(tiny)
    out = first.embed(texts)
    assert first.stats.budget_reason.startswith("calibrated now") and "tokens/s by budget: 64:" in first.stats.budget_reason
    assert first.stats.max_tokens_per_batch in (64, 256, 1024)
    [entry] = json.loads(calibrate.budgets_file().read_text()).values()
    assert entry["budget"] == first.stats.max_tokens_per_batch and set(entry["tokens_per_s"]) == {"64", "256", "1024"}

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again")

    monkeypatch.setattr(calibrate, "measure", no_measuring)
    again = with_encode(tiny)
    np.testing.assert_allclose(again.embed(texts), out, atol=1e-5)
    assert again.stats.budget_reason.startswith("calibrated earlier on this machine")
    assert again.stats.max_tokens_per_batch == first.stats.max_tokens_per_batch
    pinned = with_encode(tiny, max_tokens_per_batch=100)
    pinned.embed(texts)
    assert (pinned.stats.max_tokens_per_batch, pinned.stats.budget_reason) == (100, "encode.max_tokens_per_batch")
    other = with_encode(tiny, packing="padded")  # another forward path: its own budget, from the default for now
    other.embed(TEXTS)
    assert other.stats.budget_reason.startswith("the CPU default") and other.stats.max_tokens_per_batch == 16_384


@pytest.mark.integration
def test_an_unreadable_budget_file_is_measured_again(tiny, caplog):
    calibrate.budgets_file().parent.mkdir(parents=True, exist_ok=True)
    calibrate.budgets_file().write_text("{not json")
    clone = with_encode(tiny)
    clone.embed(TEXTS * 8)
    assert clone.stats.budget_reason.startswith("calibrated now") and "unreadable" in caplog.text
