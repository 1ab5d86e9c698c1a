"""Packed forward passes: many texts in one row, no padding, attention kept within each text.

Texts are concatenated into one token stream with position ids restarting at 0 per text (`varlen.pack`).
The decoder layers of llama-family models (Mistral, Llama, Qwen2) run over the stream with their own
weights; only the attention needs to know the boundaries, and that goes through one of the kernels in
`varlen.py`.

`PackedDecoder` fuses the projections (q|k|v and gate|up as one matrix each; the HF modules keep views of
the same memory, so nothing is copied twice) and runs the final norm only on the pooled rows. Two options,
both off by default and both under the batch planner's packed-vs-padded check: `compiled` runs the decoder
through `torch.compile(dynamic=True)` (one compilation serves every batch shape), and `fused="liger"` swaps
RMSNorm, the rotary embedding and SwiGLU for liger-kernel's Triton kernels (CUDA).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from evalkit.encoding.fused import TORCH_OPS, Ops, fused_ops, rms as _rms
from evalkit.encoding.model import not_causal
from evalkit.encoding.varlen import KERNELS, LAST_TOKEN_KERNELS, Packed

PACKABLE_TYPES = ("mistral", "llama", "qwen2")


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
    if str(cfg.pooling) not in ("last", "cls", "mean") or not cfg.include_prompt:
        return f"pooling {cfg.pooling}" + ("" if cfg.include_prompt else " without the prompt") + " runs padded only"
    return packable(model, cfg.max_length, cfg.trust_remote_code)


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
