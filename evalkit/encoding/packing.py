"""Packed forward passes: many texts in one row, no padding, attention kept within each text.

Texts are concatenated into one token stream with position ids restarting at 0 per text and
`cu` (cumulative lengths, N + 1 entries) marking where each text starts. The decoder layers of
llama-family models (Mistral, Llama, Qwen2) run over the stream with their own weights; only the
attention needs to know the boundaries, and that goes through one of PyTorch's kernels:

  flash       FlashAttention-2 varlen (`aten._flash_attention_forward`), CUDA, float16/bfloat16
  flash_attn  the flash-attn package's `flash_attn_varlen_func` (optional; CUDA, float16/bfloat16)
  flex        flex attention with a block-sparse document mask (compiled on first use)
  sdpa        texts gathered into a padded (N, L) block for `scaled_dot_product_attention(is_causal)`;
              the linear layers, most of the work, still see no padding. Runs anywhere.

`PackedDecoder` fuses the projections (q|k|v and gate|up as one matrix each; the HF modules keep views of
the same memory, so nothing is copied twice) and runs the final norm only on the pooled rows. Two options,
both off by default and both under the batch planner's packed-vs-padded check: `compiled` runs the decoder through
`torch.compile(dynamic=True)` (one compilation serves every batch shape), and `fused="liger"` swaps RMSNorm,
the rotary embedding and SwiGLU for liger-kernel's Triton kernels (CUDA).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from evalkit import EvalkitError
from evalkit.config import VarlenKernel
from evalkit.encoding.fused import TORCH_OPS, Ops, fused_ops, rms as _rms
from evalkit.encoding.model import not_causal

PACKABLE_TYPES = ("mistral", "llama", "qwen2")


@dataclass
class Packed:
    """One packed batch: the texts' token ids end to end."""

    ids: torch.Tensor  # (T,) token ids
    positions: torch.Tensor  # (T,) restarting at 0 per text
    cu: torch.Tensor  # (N + 1,) int32 offsets of the texts in the stream
    max_len: int

    def to(self, device) -> "Packed":
        return Packed(*(t.to(device, non_blocking=True) for t in (self.ids, self.positions, self.cu)), self.max_len)

    def pinned(self) -> "Packed":
        return Packed(self.ids.pin_memory(), self.positions.pin_memory(), self.cu.pin_memory(), self.max_len)


def pack(seqs: list[list[int]], pin: bool = False) -> Packed:
    """Token id lists -> one packed batch on the CPU (pinned when `pin`, for async copies)."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.int64)
    ids = torch.tensor([t for s in seqs for t in s], dtype=torch.long)
    cu = torch.zeros(len(seqs) + 1, dtype=torch.int32)
    cu[1:] = lengths.cumsum(0)
    positions = torch.arange(len(ids), dtype=torch.long) - torch.repeat_interleave(cu[:-1].long(), lengths)
    packed = Packed(ids, positions, cu, int(lengths.max()))
    return packed.pinned() if pin else packed


def packable(model, max_length: int, trust_remote_code: bool = False) -> str | None:
    """None when `model` can run packed; else the reason it cannot. Packing re-implements a causal
    llama-family decoder, so anything that may differ from one is refused here; what this cannot see is
    caught by the batch planner, which compares packed with padded embeddings before the first packed batch."""
    cfg = model.config
    if trust_remote_code:
        return "trust_remote_code is on: the model runs its own code, which packing would bypass"
    if cfg.model_type not in PACKABLE_TYPES:
        return f"model type {cfg.model_type!r} is not one of {', '.join(PACKABLE_TYPES)}"
    window = getattr(cfg, "sliding_window", None)
    if window is not None and getattr(cfg, "use_sliding_window", True) and max_length > window:
        return f"max_length {max_length} exceeds the sliding window {window}"
    if getattr(cfg, "hidden_act", "silu") != "silu":
        return f"activation {cfg.hidden_act!r} is not silu"
    return not_causal(model)


def padding_reason(packing: str, model, cfg) -> str | None:
    """Why the forward passes must run padded, or None when they may run packed."""
    if packing == "padded":
        return "encode.packing=padded"
    return packable(model, cfg.max_length, cfg.trust_remote_code)


def pick_kernel(name: str, device: torch.device, dtype: torch.dtype) -> VarlenKernel:
    """`name`, or for auto: flash where it runs (CUDA, half precision), else sdpa."""
    half_on_cuda = device.type == "cuda" and dtype in (torch.float16, torch.bfloat16)
    flash_ok = half_on_cuda and flash_available()
    if name == "flash" and not flash_ok:
        raise EvalkitError("encode.varlen_kernel=flash needs a CUDA device and float16 or bfloat16")
    if name == "flash_attn" and not (half_on_cuda and importlib.util.find_spec("flash_attn") is not None):
        raise EvalkitError("encode.varlen_kernel=flash_attn needs the flash-attn package (pip install flash-attn "
                           "--no-build-isolation) and a CUDA device in float16 or bfloat16")
    if name != "auto":
        return VarlenKernel(name)
    return VarlenKernel.flash if flash_ok else VarlenKernel.sdpa


@lru_cache(maxsize=1)
def flash_available() -> bool:
    return torch.cuda.is_available() and hasattr(torch.ops.aten, "_flash_attention_forward")


def flash_takes_gqa(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether this build's FlashAttention-2 op takes fewer key/value heads than query heads (grouped-query
    attention). Asked once, on a few bytes of input, when the planner picks a path; if not, k and v are expanded."""
    q = torch.zeros((2, 2, 64), device=device, dtype=dtype)
    kv = torch.zeros((2, 1, 64), device=device, dtype=dtype)
    cu = torch.tensor([0, 2], device=device, dtype=torch.int32)
    try:
        torch.ops.aten._flash_attention_forward(q, kv, kv, cu, cu, 2, 2, 0.0, True, False, scale=0.125)
    except RuntimeError:
        return False
    return True


# -- attention over a packed stream: q (T, Hq, D), k and v (T, Hkv, D) -> (T, Hq, D) ----------------

def flash_varlen(q, k, v, batch: Packed, scale: float, cu_q=None, max_q=None, causal=True,
                 expand_kv: bool = False) -> torch.Tensor:
    if expand_kv and k.shape[1] != q.shape[1]:
        k, v = (x.repeat_interleave(q.shape[1] // x.shape[1], dim=1) for x in (k, v))
    cu_q = batch.cu if cu_q is None else cu_q
    out = torch.ops.aten._flash_attention_forward(
        q, k, v.contiguous(), cu_q, batch.cu, max_q or batch.max_len, batch.max_len, 0.0, causal, False, scale=scale)
    return out[0]


def flash_last(q_last, k, v, batch: Packed, scale: float, expand_kv: bool = False) -> torch.Tensor:
    """Attention of each text's last token only: q_last (N, Hq, D) against the whole stream."""
    cu_q = torch.arange(len(batch.cu), dtype=torch.int32, device=q_last.device)
    # the last token sees its whole text
    return flash_varlen(q_last, k, v, batch, scale, cu_q, 1, causal=False, expand_kv=expand_kv)


def flash_attn_varlen(q, k, v, batch: Packed, scale: float, cu_q=None, max_q=None, causal=True) -> torch.Tensor:
    """The flash-attn package's varlen kernel (grouped-query heads natively)."""
    from flash_attn import flash_attn_varlen_func

    cu_q = batch.cu if cu_q is None else cu_q
    return flash_attn_varlen_func(q, k, v, cu_q, batch.cu, max_q or batch.max_len, batch.max_len, softmax_scale=scale,
                                  causal=causal)


def flash_attn_last(q_last, k, v, batch: Packed, scale: float) -> torch.Tensor:
    cu_q = torch.arange(len(batch.cu), dtype=torch.int32, device=q_last.device)
    return flash_attn_varlen(q_last, k, v, batch, scale, cu_q, 1, causal=False)


def sdpa_last(q_last, k, v, batch: Packed, scale: float) -> torch.Tensor:
    index, valid = _blocks(batch, q_last.device)
    out = F.scaled_dot_product_attention(q_last[:, :, None, :], k[index].transpose(1, 2), v[index].transpose(1, 2),
                                         attn_mask=valid[:, None, None, :], scale=scale,
                                         enable_gqa=k.shape[1] != q_last.shape[1])
    return out[:, :, 0, :]


def _blocks(batch: Packed, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, L) stream positions of each text's tokens (pads repeat its last token) and which are real."""
    lengths = batch.cu[1:] - batch.cu[:-1]
    steps = torch.arange(batch.max_len, device=device)
    index = torch.minimum(batch.cu[:-1, None] + steps[None, :], batch.cu[1:, None] - 1)
    return index, steps[None, :] < lengths[:, None]


def sdpa_varlen(q, k, v, batch: Packed, scale: float) -> torch.Tensor:
    index, valid = _blocks(batch, q.device)

    def block(x):  # (T, H, D) -> (N, H, L, D)
        return x[index].transpose(1, 2)

    out = F.scaled_dot_product_attention(block(q), block(k), block(v), is_causal=True, scale=scale,
                                         enable_gqa=k.shape[1] != q.shape[1])
    return out.transpose(1, 2)[valid]  # row-major over (N, L): the packed order


def flex_varlen(q, k, v, batch: Packed, scale: float) -> torch.Tensor:
    """Flex attention over the stream padded to a multiple of FLEX_BLOCK tokens (the padding is a
    text of its own), so that a few compiled shapes serve every batch."""
    from torch.nn.attention.flex_attention import create_block_mask

    total = q.shape[0]
    size = -(-total // FLEX_BLOCK) * FLEX_BLOCK
    lengths = (batch.cu[1:] - batch.cu[:-1]).long()
    doc = torch.full((size,), len(lengths), dtype=torch.long, device=q.device)
    doc[:total] = torch.repeat_interleave(torch.arange(len(lengths), device=q.device), lengths, output_size=total)

    def same_text_causal(b, h, qi, ki):
        return (doc[qi] == doc[ki]) & (qi >= ki)

    def padded(x):  # (T, H, D) -> (1, H, size, D)
        return F.pad(x, (0, 0, 0, 0, 0, size - total)).transpose(0, 1)[None]

    mask = create_block_mask(same_text_causal, None, None, size, size, device=q.device, _compile=True)
    from torch._dynamo import config as dynamo_config

    # one compiled graph per padded size: allow that many here, without changing the process-wide limit
    with dynamo_config.patch(cache_size_limit=FLEX_SHAPES):
        out = _compiled_flex()(padded(q), padded(k), padded(v), block_mask=mask, scale=scale,
                               enable_gqa=k.shape[1] != q.shape[1])
    return out[0].transpose(0, 1)[:total]


FLEX_BLOCK = 2048
FLEX_SHAPES = 64  # distinct padded stream sizes compiled (64 x 2048 tokens covers the largest budget)


@lru_cache(maxsize=1)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


KERNELS = {"flash": flash_varlen, "sdpa": sdpa_varlen, "flex": flex_varlen, "flash_attn": flash_attn_varlen}
LAST_TOKEN_KERNELS = {"flash": flash_last, "sdpa": sdpa_last, "flex": sdpa_last, "flash_attn": flash_attn_last}


# -- the decoder over a packed stream ----------------------------------------------------------------

@dataclass(frozen=True)
class FusedLayer:
    """One decoder layer's projections fused: q|k|v (and their biases) and gate|up, one matrix each."""

    qkv: torch.Tensor
    qkv_bias: torch.Tensor | None
    gate_up: torch.Tensor


class PackedDecoder:
    """A llama-family decoder (Mistral, Llama, Qwen2) run over packed streams with one attention kernel.

    Built once per loaded model, by the `LoadedModel` that owns it: the q/k/v and gate/up weights are concatenated
    into one matrix each and the model's own Linear modules are pointed at views of those matrices, so the
    model computes what it did before and no weight is held twice. Moving or casting the model afterwards
    would separate the two: `LoadedModel.cast` drops its PackedDecoder and builds a new one from the cast weights."""

    def __init__(self, model) -> None:
        self.model = model
        with torch.no_grad():  # not inference mode: the fused weights stay ordinary tensors
            self.layers = [_fuse_layer(layer) for layer in model.layers]
        self._compiled = None

    def __call__(self, batch: Packed, pooling: str, kernel: str = "sdpa", expand_kv: bool = False,
                 fused: str = "none", compiled: bool = False) -> torch.Tensor:
        """A packed batch (on the model's device) -> pooled embeddings (N, H), float32 on the device.
        `expand_kv`: repeat key/value heads for a flash build without grouped-query support; `fused`: the
        elementwise kernels (`fused_ops`); `compiled`: through torch.compile (compiled on the first call)."""
        decode = self._decode
        if compiled:
            if self._compiled is None:
                self._compiled = torch.compile(self._decode, dynamic=True)
            decode = self._compiled
        with torch.inference_mode():
            return decode(batch, pooling, kernel, expand_kv, fused_ops(fused))

    @staticmethod
    def _attend(q, k, v, batch: Packed, scale: float, kernel: str, expand_kv: bool, last_only: bool):
        kernels = LAST_TOKEN_KERNELS if last_only else KERNELS
        extra = {"expand_kv": expand_kv} if kernel == "flash" else {}
        return kernels[kernel](q, k, v, batch, scale, **extra)

    def _decode(self, batch: Packed, pooling: str, kernel: str, expand_kv: bool, ops: Ops = TORCH_OPS) -> torch.Tensor:
        """The decoder layers over the stream. With last-token pooling the final layer computes its
        attention output and MLP for the last tokens only: nothing else reaches the embedding."""
        model = self.model
        x = model.embed_tokens(batch.ids)
        cos, sin = model.rotary_emb(x[None], batch.positions[None])
        cos, sin = cos[0, :, None, :], sin[0, :, None, :]  # (T, 1, D)
        last = batch.cu[1:].long() - 1
        for number, (layer, fused_layer) in enumerate(zip(model.layers, self.layers), start=1):
            attn, mlp = layer.self_attn, layer.mlp
            dim = attn.head_dim
            heads, kv_heads = attn.q_proj.weight.shape[0] // dim, attn.k_proj.weight.shape[0] // dim
            qkv = F.linear(ops.rms(x, layer.input_layernorm), fused_layer.qkv, fused_layer.qkv_bias)
            q, k, v = qkv.split([heads * dim, kv_heads * dim, kv_heads * dim], dim=-1)
            q, k = ops.rope(q.view(-1, heads, dim), k.view(-1, kv_heads, dim), cos, sin)
            v = v.reshape(-1, kv_heads, dim)
            if pooling == "last" and number == len(model.layers):
                out = self._attend(q[last].contiguous(), k, v, batch, attn.scaling, kernel, expand_kv, True)
                x = x[last]
            else:
                out = self._attend(q, k, v, batch, attn.scaling, kernel, expand_kv, False)
            x = x + attn.o_proj(out.reshape(len(x), heads * dim))
            x = x + mlp.down_proj(ops.swiglu(F.linear(ops.rms(x, layer.post_attention_layernorm), fused_layer.gate_up)))
        if pooling == "last":
            return ops.rms(x, model.norm).float()
        return pool_packed(x, batch, pooling, model.norm)


def _fuse_layer(layer) -> FusedLayer:
    attn, mlp = layer.self_attn, layer.mlp
    linears = [attn.q_proj, attn.k_proj, attn.v_proj]
    return FusedLayer(_fuse_linears(linears), _fuse_biases(linears), _fuse_linears([mlp.gate_proj, mlp.up_proj]))


def _fuse_linears(linears) -> torch.Tensor:
    """One matrix of the linears' weights stacked; each linear's weight becomes a view of its rows."""
    fused = torch.cat([lin.weight.detach() for lin in linears])
    start = 0
    for lin in linears:
        rows = lin.weight.shape[0]
        lin.weight = torch.nn.Parameter(fused[start:start + rows], requires_grad=False)
        start += rows
    return fused


def _fuse_biases(linears) -> torch.Tensor | None:
    if all(lin.bias is None for lin in linears):
        return None
    return torch.cat([lin.bias.detach() if lin.bias is not None else
                      torch.zeros(lin.weight.shape[0], dtype=lin.weight.dtype, device=lin.weight.device)
                      for lin in linears])


def pool_packed(x: torch.Tensor, batch: Packed, pooling: str, norm) -> torch.Tensor:
    cu = batch.cu.long()
    if pooling == "cls":
        return _rms(x[cu[:-1]], norm).float()
    lengths = cu[1:] - cu[:-1]
    text = torch.repeat_interleave(torch.arange(len(lengths), device=x.device), lengths, output_size=len(x))
    sums = torch.zeros((len(lengths), x.shape[-1]), dtype=torch.float32, device=x.device)
    return sums.index_add_(0, text, _rms(x, norm).float()) / lengths[:, None].float()
