"""Attention over a packed stream (texts end to end, `cu` marking where each starts) and which kernel runs it.

`pack` builds the stream: token ids, position ids restarting at 0 per text, and `cu` (cumulative lengths,
N + 1 entries). Each kernel takes q (T, Hq, D), k and v (T, Hkv, D) and keeps attention within each text:

  flash       FlashAttention-2 varlen (`aten._flash_attention_forward`), CUDA, float16/bfloat16
  flash_attn  the flash-attn package's `flash_attn_varlen_func` (optional; CUDA, float16/bfloat16)
  flex        flex attention with a block-sparse document mask (compiled on first use)
  sdpa        texts gathered into a padded (N, L) block for `scaled_dot_product_attention(is_causal)`;
              the linear layers, most of the work, still see no padding. Runs anywhere.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F

from evalkit import EvalkitError
from evalkit.config import VarlenKernel


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
