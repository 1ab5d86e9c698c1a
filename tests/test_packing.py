"""Packed and token-budget batching: same embeddings as padded batches, budgets kept, workers honest."""

from __future__ import annotations

import copy
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from evalkit import EvalkitError  # noqa: E402
from evalkit.config import EncodeConfig, load_model_config  # noqa: E402
from evalkit.encoding.batching import Feeder, length_batches, packed_batches, token_budget  # noqa: E402
from evalkit.encoding.encoder import Encoder  # noqa: E402
from evalkit.encoding.model import forward_padded, pad_batch, token_ids  # noqa: E402
from evalkit.encoding.packing import PackedDecoder, packable  # noqa: E402
from evalkit.encoding.planner import ForwardPath  # noqa: E402
from evalkit.encoding.varlen import pack, pick_kernel  # noqa: E402

pytestmark = pytest.mark.unit

TEXTS = ["a", "short text", "cats and dogs " * 40, "rivers " * 9, "", "the longest text of all here " * 30]


@pytest.fixture(scope="module")
def encoder():
    return Encoder(load_model_config("tiny_mistral"), instructions={}, encode=EncodeConfig(cache=False))


def with_encode(encoder: Encoder, **settings) -> Encoder:
    """A fresh encoder over the same loaded model, with these encode settings (no cache)."""
    return encoder.fresh(encode=EncodeConfig(cache=False, **settings))


def padded_forward(encoder: Encoder, ids, pooling: str, use_mask: bool = True) -> torch.Tensor:
    return forward_padded(encoder.model, *pad_batch(ids, encoder.pad_id, encoder.cfg.padding_side), pooling,
                          torch.device("cpu"), use_mask)


def min_cosine(a, b) -> float:
    return F.cosine_similarity(torch.as_tensor(a), torch.as_tensor(b)).min().item()


@pytest.mark.parametrize("pooling", ["last", "mean", "cls"])
def test_packed_forward_equals_padded_forward(encoder, pooling):
    cfg = load_model_config("tiny_mistral", pooling=pooling)
    ids = token_ids(encoder.tokenizer, TEXTS, cfg)
    padded = padded_forward(encoder, ids, pooling)
    packed = PackedDecoder(copy.deepcopy(encoder.model))(pack(ids), pooling, "sdpa")
    assert packed.dtype == torch.float32 and packed.shape == padded.shape
    assert min_cosine(packed, padded) >= 0.9999
    np.testing.assert_allclose(packed.numpy(), padded.numpy(), atol=1e-4)


def test_dropping_the_mask_is_exact_for_a_right_padded_decoder(encoder):
    ids = token_ids(encoder.tokenizer, TEXTS, encoder.cfg)
    masked = padded_forward(encoder, ids, "last", use_mask=True)
    unmasked = padded_forward(encoder, ids, "last", use_mask=False)
    np.testing.assert_allclose(unmasked.numpy(), masked.numpy(), atol=1e-5)


@pytest.mark.parametrize("settings", [dict(packing="packed"), dict(packing="padded"),
                                      dict(packing="packed", max_tokens_per_batch=64)])
def test_encoder_paths_agree(encoder, settings):
    reference = with_encode(encoder, packing="padded", max_tokens_per_batch=10_000).embed(TEXTS)
    clone = with_encode(encoder, **settings)
    out = clone.embed(TEXTS)
    assert min_cosine(out, reference) >= 0.9999
    record = clone.stats.as_record()
    assert record["texts"] == len(TEXTS) and record["forward_passes"] >= 1 and record["tokens_per_second"] > 0
    assert record["packing"].startswith(settings["packing"])
    if settings["packing"] == "packed":
        assert record["padding_fraction"] == 0.0


def test_packing_auto_picks_packed_for_mistral_and_padded_where_it_cannot(encoder):
    assert with_encode(encoder).planner.path()[0] == ForwardPath(packed=True, kernel="sdpa")
    # a right-padded decoder needs no mask
    assert with_encode(encoder, packing="padded").planner.path()[0] == ForwardPath(packed=False, use_mask=False)
    left = encoder.fresh(model=encoder.loaded.with_config(load_model_config("tiny_mistral", padding_side="left")),
                         encode=EncodeConfig(cache=False, packing="padded"))
    assert left.planner.path()[0] == ForwardPath(packed=False, use_mask=True)


def test_packable_names_its_reason():
    class Config:
        model_type, hidden_act, sliding_window = "bert", "gelu", None

    class Model:
        config = Config()

    assert "bert" in packable(Model(), 512)
    Config.model_type, Config.hidden_act, Config.sliding_window = "mistral", "silu", 256
    assert "sliding window" in packable(Model(), 512) and packable(Model(), 256) is None
    with pytest.raises(EvalkitError, match="flash needs a CUDA device"):
        pick_kernel("flash", torch.device("cpu"), torch.float32)


def test_packed_batches_keep_the_token_budget_and_cover_everything():
    lengths = [5, 100, 7, 50, 50, 3, 99, 400]
    batches = list(packed_batches(lengths, max_tokens=150))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert sum(lengths[i] for i in batch) <= 150 or len(batch) == 1  # a long text goes alone
    assert [lengths[b[0]] for b in batches] == sorted((lengths[b[0]] for b in batches), reverse=True)
    assert all(len(b) == 1 for b in length_batches([9, 9, 9], None, 9))
    cuts = list(length_batches([100, 95, 91, 89, 50, 46, 10], None, 10_000, max_padding=0.1))
    assert cuts == [[0, 1, 2], [3], [4, 5], [6]]


def test_token_budget_on_a_cpu_fits_the_longest_text(encoder):
    assert token_budget(encoder.model, torch.device("cpu"), 512) >= 512
    assert token_budget(encoder.model, torch.device("cpu"), 100_000) == 100_000  # beyond the default budget too


def test_feeder_tokenizes_ahead_and_hands_over_worker_errors():
    texts = [str(i) * (i % 7 + 1) for i in range(50)]
    feeder = Feeder(texts, lambda part: [[1] * len(t) for t in part], lambda lengths: packed_batches(lengths, 20),
                    lambda seqs: len(seqs), padded=False, window=16)
    batches = list(feeder)
    assert sorted(r for b in batches for r in b.rows) == list(range(50))
    assert sum(b.tokens for b in batches) == sum(len(t) for t in texts)

    def broken(part):
        raise ValueError("tokenizer exploded")

    with pytest.raises(ValueError, match="tokenizer exploded"):
        list(Feeder(texts, broken, lambda lengths: packed_batches(lengths, 20), len, padded=False))
