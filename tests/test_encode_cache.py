"""The embedding cache: re-runs do no forward passes, shared corpora encode once, killed runs resume."""

from __future__ import annotations

import json
import os
import sqlite3
from types import SimpleNamespace

import numpy as np
import pytest
from safetensors import safe_open

import evalkit.encoding.loaded as loaded_module
from evalkit.encoding.cache import EmbeddingCache, model_identity, text_key
from evalkit.encoding.cache_cli import main
from evalkit.encoding.shard import evict
from evalkit.config import EncodeConfig, TaskSpec, load_model_config
from evalkit.encoding.encoder import Encoder

pytestmark = pytest.mark.unit

DOCS = [f"document {i} about {'rivers ' * (i % 5)}and {'cats ' * (i % 3)}" for i in range(40)]


@pytest.fixture(scope="module")
def base():
    return Encoder(load_model_config("tiny_mistral"), instructions={}, encode=EncodeConfig(cache=False))


def cached(base: Encoder, folder, **settings) -> Encoder:
    return base.fresh(encode=EncodeConfig(cache=True, cache_dir=str(folder), show_progress=False, **settings))


def test_a_rerun_does_no_forward_passes(base, tmp_path, monkeypatch):
    first = cached(base, tmp_path)
    expected = first.embed(DOCS, normalize=False)
    assert first.stats.forward_passes >= 1 and first.stats.cache_hits == 0
    calls = []
    monkeypatch.setattr(loaded_module.PackedDecoder, "__call__", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(loaded_module, "forward_padded", lambda *a, **k: calls.append(1))
    again = cached(base, tmp_path)
    np.testing.assert_array_equal(again.embed(DOCS, normalize=False), expected)
    assert calls == [] and again.stats.forward_passes == 0 and again.stats.cache_hits == len(DOCS)
    normalized = again.embed(DOCS)  # raw vectors are cached; normalization comes after
    np.testing.assert_allclose(np.linalg.norm(normalized, axis=1), 1.0, atol=1e-6)


def test_two_tasks_sharing_a_corpus_encode_it_once(base, tmp_path):
    specs = {name: TaskSpec(name=name, mteb_task=name, type="Retrieval", split="test", metric="ndcg_at_10",
                            instruction=f"Find documents for {name}") for name in ("TaskA", "TaskB")}
    encoder = cached(base, tmp_path).fresh(instructions=specs)
    loader = [{"text": DOCS[:25]}, {"text": DOCS[25:]}]
    doc = SimpleNamespace(value="document")
    a = encoder.encode(loader, task_metadata=SimpleNamespace(name="TaskA", type="Retrieval"), hf_split="test",
                       hf_subset="default", prompt_type=doc)
    passes = encoder.stats.forward_passes
    b = encoder.encode(loader, task_metadata=SimpleNamespace(name="TaskB", type="Retrieval"), hf_split="test",
                       hf_subset="default", prompt_type=doc)
    np.testing.assert_array_equal(a, b)
    assert encoder.stats.forward_passes == passes and encoder.stats.cache_hits == len(DOCS)
    query = encoder.encode([{"text": DOCS[:3]}], task_metadata=SimpleNamespace(name="TaskB", type="Retrieval"),
                           hf_split="test", hf_subset="default", prompt_type=SimpleNamespace(value="query"))
    assert encoder.stats.forward_passes > passes  # instructed queries are other texts
    assert not np.allclose(query, a[:3])


def test_a_killed_run_resumes_from_the_last_finished_shard(base, tmp_path, monkeypatch):
    expected = cached(base, tmp_path / "clean").embed(DOCS, normalize=False)
    real = loaded_module.PackedDecoder.__call__
    done = []

    def dies_on_the_fourth_batch(*args, **kwargs):
        if len(done) == 3:
            raise KeyboardInterrupt("killed")
        done.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(loaded_module.PackedDecoder, "__call__", dies_on_the_fourth_batch)
    settings = dict(max_tokens_per_batch=64, cache_shard_texts=4)
    with pytest.raises(KeyboardInterrupt):
        cached(base, tmp_path / "killed", **settings).embed(DOCS, normalize=False)
    monkeypatch.setattr(loaded_module.PackedDecoder, "__call__", real)
    resumed = cached(base, tmp_path / "killed", **settings)
    out = resumed.embed(DOCS, normalize=False)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert 0 < resumed.stats.cache_hits < len(DOCS)  # the finished shards were used, the rest encoded


def test_orphan_shards_are_adopted_and_the_index_is_sqlite_and_safetensors(base, tmp_path):
    cached(base, tmp_path).embed(DOCS, normalize=False)
    folder = next(p for p in tmp_path.iterdir() if p.is_dir())
    (folder / "index.sqlite").unlink()  # as if the process died after writing a shard
    for extra in folder.glob("index.sqlite-*"):
        extra.unlink()
    again = cached(base, tmp_path)
    again.embed(DOCS, normalize=False)
    assert again.stats.cache_hits == len(DOCS)
    files = {p.name for p in folder.rglob("*") if p.is_file()}
    assert {"model.json", "index.sqlite"} <= files
    for shard in (folder / "shards").iterdir():
        assert shard.suffix == ".safetensors"
        with safe_open(str(shard), framework="numpy") as fh:
            assert set(fh.keys()) == {"keys", "embeddings"} and fh.get_tensor("keys").shape[1] == 32
    with sqlite3.connect(folder / "index.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == len(set(DOCS))
    json.loads((folder / "model.json").read_text())
    for path in folder.rglob("*"):
        if path.is_file():
            assert not path.read_bytes().startswith(b"\x80"), f"{path} looks like a pickle"


def test_the_key_holds_what_changes_an_embedding():
    cfg = load_model_config("tiny_mistral")
    same = model_identity(load_model_config("tiny_mistral", normalize=False, padding_side="left"))
    assert model_identity(cfg) == same
    for change in (dict(max_length=128), dict(pooling="mean"), dict(dtype="float16"), dict(revision="other")):
        assert model_identity(load_model_config("tiny_mistral", **change)) != model_identity(cfg), change
    assert model_identity(cfg, "cuda") != model_identity(cfg, "cpu")  # random weights drawn elsewhere
    assert text_key("Instruct: a\nQuery: b") != text_key("b")


def test_size_limit_drops_least_recently_used_shards(tmp_path):
    import torch

    cache = EmbeddingCache(tmp_path, {"name": "m"})
    for i in range(4):
        name = cache.put([text_key(f"t{i}")], torch.ones(1, 1000))
        os.utime(cache.shards / f"{name}.safetensors", (1000 + i, 1000 + i))  # t0 used longest ago
    size = sum(p.stat().st_size for p in cache.shards.glob("*.safetensors"))
    assert evict(tmp_path, size // 2) == 2
    found, _ = EmbeddingCache(tmp_path, {"name": "m"}).get([text_key(f"t{i}") for i in range(4)])
    assert found.tolist() == [2, 3]


def test_cache_info_and_clear(tmp_path, capsys, base):
    cached(base, tmp_path).embed(DOCS[:5])
    assert main(["info", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "evalkit/tiny-random-mistral" in out and "5 texts" in out
    assert main(["clear", "--dir", str(tmp_path), "nothing-matches"]) == 0
    assert any(tmp_path.iterdir())
    assert main(["clear", "--dir", str(tmp_path)]) == 0
    assert not any(p.is_dir() for p in tmp_path.iterdir())
