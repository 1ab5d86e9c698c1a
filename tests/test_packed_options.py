"""The packed forward's options (compile, fused liger kernels, the flash-attn package's kernel) give the default
path's embeddings or fail in one line where they cannot run; long inputs stay inside the token budget."""

from __future__ import annotations

import copy
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evalkit import EvalkitError
from evalkit.config import EncodeConfig, load_model_config
from evalkit.encoding import fused
from evalkit.encoding.batching import activation_bytes_per_token, gpu_budget, packed_batches
from evalkit.encoding.encoder import Encoder
from evalkit.encoding.packing import PackedDecoder
from evalkit.encoding.varlen import pack

from test_packing import TEXTS, min_cosine, with_encode


@pytest.fixture(scope="module")
def encoder():
    return Encoder(load_model_config("tiny_mistral"), instructions={}, encode=EncodeConfig(cache=False))


@pytest.mark.integration  # torch.compile takes a minute on two busy cores
def test_compiled_packed_forward_equals_the_default(encoder):
    reference = with_encode(encoder, packing="packed").embed(TEXTS * 3)
    compiled = with_encode(encoder, packing="packed", compile=True, max_tokens_per_batch=200)
    out = compiled.embed(TEXTS * 3)  # several batches of other shapes: one dynamic compilation serves them
    assert min_cosine(out, reference) >= 0.9999
    np.testing.assert_allclose(out, reference, atol=1e-5)
    record = compiled.stats.as_record()
    assert record["packing"] == "packed/sdpa+compile" and record["compile_seconds"] > 0
    assert record["forward_passes"] > 1


@pytest.mark.unit
@pytest.mark.parametrize("settings, message", [
    (dict(fused_ops="liger"), "encode.fused_ops=liger needs the liger-kernel package .* and a CUDA device"),
    (dict(varlen_kernel="flash_attn"), "encode.varlen_kernel=flash_attn needs the flash-attn package .* CUDA device"),
])
def test_a_cuda_only_option_on_a_cpu_is_one_line(encoder, settings, message):
    with pytest.raises(EvalkitError, match=message) as info:
        with_encode(encoder, packing="packed", **settings).embed(TEXTS)
    assert "\n" not in str(info.value)


@pytest.mark.unit
def test_packed_only_options_on_a_padded_path_are_said_not_done(encoder, caplog):
    clone = with_encode(encoder, packing="padded", compile=True)
    clone.embed(TEXTS)
    assert clone.stats.packing == "padded/no-mask" and "apply to packed batches only" in caplog.text


def fake_liger(monkeypatch):
    """liger-kernel's three ops as their documented contract states them, in PyTorch (liger runs on CUDA only):
    RMSNorm in casting mode 'llama', RoPE on (B, H, T, D) views with cos/sin (B, T, D) as HF's
    apply_rotary_pos_emb, SwiGLU over a fused gate|up tensor. Checks evalkit's glue (shapes, layouts), not
    liger's kernels: benchmarks/gpu_check.sh runs those."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    def apply(fn):
        return type("Function", (), {"apply": staticmethod(fn)})

    def rms(x, w, eps, offset, mode, in_place):
        assert mode == "llama" and offset == 0.0
        x32 = x.float()
        return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)

    def rope(q, k, cos, sin):
        assert q.dim() == 4 and cos.dim() == 3 and q.shape[2] == cos.shape[1]  # (B, H, T, D), (B, T, D)
        return apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1)

    def swiglu(y):
        gate, up = y.chunk(2, dim=-1)
        return F.silu(gate) * up

    for name, attr, fn in (("rms_norm", "LigerRMSNormFunction", rms), ("rope", "LigerRopeFunction", rope),
                           ("swiglu", "LigerFusedGateUpSiLUMulFunction", swiglu)):
        module = types.ModuleType(f"liger_kernel.ops.{name}")
        setattr(module, attr, apply(fn))
        monkeypatch.setitem(sys.modules, f"liger_kernel.ops.{name}", module)
    fused.fused_ops.cache_clear()


@pytest.mark.unit
def test_the_liger_glue_computes_the_default_forward(encoder, monkeypatch):
    fake_liger(monkeypatch)
    try:
        ids = encoder.tokenize(TEXTS)
        decoder = PackedDecoder(copy.deepcopy(encoder.model))
        out = decoder(pack(ids), "last", "sdpa", fused="liger")
        np.testing.assert_allclose(out.numpy(), decoder(pack(ids), "last", "sdpa").numpy(), atol=1e-5)
    finally:
        fused.fused_ops.cache_clear()


@pytest.mark.unit
def test_4096_token_documents_fit_an_80_gb_card_with_the_7b_shape():
    """The 7B shape at max_length 4096 on an 80 GB card: the budget holds every 4,096-token document, and
    weights plus the activation bound of a full batch stay within the card (half its free memory, by rule)."""
    from transformers import AutoConfig

    arch = AutoConfig.for_model("mistral", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                num_attention_heads=32, num_key_value_heads=8, vocab_size=32000)
    per_layer = 4096 * (4096 + 2 * 1024 + 4096) + 3 * 4096 * 14336 + 2 * 4096
    weights = 2 * (32 * per_layer + 32000 * 4096 + 4096)  # float16: 14.2 GB
    card = 80 * 10**9
    free = card - weights - 2 * 10**9  # the CUDA context and allocator reserve
    budget = gpu_budget(arch, 2, free, 4096)
    per_token = activation_bytes_per_token(arch, 2)
    assert budget >= 4096 and weights + budget * per_token <= weights + 0.5 * free < card
    # packed sdpa gathers texts into (N, longest) blocks: held to the budget as well
    lengths = [4096] + [30] * 600 + [4096] * 3
    for batch in packed_batches(lengths, budget, None, max_block=budget):
        assert len(batch) * max(lengths[i] for i in batch) <= budget
        assert sum(lengths[i] for i in batch) <= budget


@pytest.mark.integration
def test_long_documents_run_packed_within_the_budget_and_equal_padded(encoder, monkeypatch):
    """max_length 4096 on the tiny model: texts of up to 4,096 tokens beside short ones; every packed batch
    keeps its tokens and its sdpa block within the budget, and the embeddings equal padded ones."""
    long = Encoder(load_model_config("tiny_mistral", max_length=4096), instructions={},
                   encode=EncodeConfig(cache=False, packing="packed", max_tokens_per_batch=6000))
    rng = np.random.default_rng(0)
    seqs = [[1] + rng.integers(3, 32000, int(n)).tolist() + [2] for n in (4094, 3000, 2500, 40, 12, 25, 7, 4094)]
    padded = with_encode(long, packing="padded", max_tokens_per_batch=6000).embed_ids(seqs)
    seen = []
    forward = long.planner.forward

    def spy(path, inputs):
        seen.append((len(inputs.cu) - 1, int(inputs.cu[-1]), inputs.max_len))
        return forward(path, inputs)

    monkeypatch.setattr(long.planner, "forward", spy)
    out = long.embed_ids(seqs)
    for texts, tokens, longest in seen[1:]:  # the first call is the packed-vs-padded check
        assert texts == 1 or (tokens <= 6000 and texts * longest <= 6000)
    assert long.stats.max_tokens_per_batch == 6000 and len(seen) > 3
    assert min_cosine(out, padded) >= 0.9999


@pytest.mark.integration
def test_a_cast_encoder_packs_with_the_cast_weights():
    """gpu_smoke casts a loaded encoder to float16 after packing in float32: the packed decoder's fused
    matrices must follow the cast, not keep the float32 weights (a dtype error, or stale weights)."""
    own = Encoder(load_model_config("tiny_mistral"), instructions={},
                  encode=EncodeConfig(cache=False, packing="packed"))
    before = own.embed(TEXTS)
    own.cast(torch.bfloat16)
    packed = own.embed(TEXTS)
    assert own.stats.packing.startswith("packed")
    padded = with_encode(own, packing="padded").embed(TEXTS)
    assert min_cosine(packed, padded) >= 0.999 and min_cosine(packed, before) >= 0.99
    assert not np.array_equal(packed, before)  # computed in bfloat16, not served from float32 weights


@pytest.mark.integration
def test_a_cast_encoder_never_reads_the_vectors_of_the_other_dtype(tmp_path):
    """The embedding cache keys on the dtype the model runs in: after a cast, nothing computed before it is served."""
    own = Encoder(load_model_config("tiny_mistral"), instructions={},
                  encode=EncodeConfig(cache=True, cache_dir=str(tmp_path), show_progress=False))
    own.embed(TEXTS)
    own.cast(torch.bfloat16)
    hits = own.stats.cache_hits
    own.embed(TEXTS)
    assert own.stats.cache_hits == hits and own.cfg.dtype == "bfloat16"
    own.embed(TEXTS)  # the bfloat16 vectors are cached under their own key
    assert own.stats.cache_hits == hits + len(TEXTS)
