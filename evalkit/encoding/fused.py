"""The elementwise operations of a llama-family decoder layer, between its matrix products: RMSNorm, the
rotary embedding and SwiGLU. PyTorch's own by default; with `encode.fused_ops=liger`, liger-kernel's fused
Triton kernels (an optional package; CUDA only). The packed forward takes them from `fused_ops(name)`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch
import torch.nn.functional as F

from evalkit import EvalkitError
from evalkit.config import FusedOps


@dataclass(frozen=True)
class Ops:
    rms: Callable  # (x, norm module) -> the HF RMSNorm of x, in x's dtype
    rope: Callable  # (q (T, Hq, D), k (T, Hkv, D), cos, sin (T, 1, D)) -> q, k rotated
    swiglu: Callable  # gate|up (T, 2I) -> silu(gate) * up (T, I)


def rms(x: torch.Tensor, norm) -> torch.Tensor:
    """The HF RMSNorm (float32 statistics, cast back, then the weight) in fewer kernels."""
    return norm.weight * F.rms_norm(x.float(), (x.shape[-1],), eps=_eps(norm)).to(x.dtype)


def _rotate(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


def _rope(q, k, cos, sin):
    return _rotate(q, cos, sin), _rotate(k, cos, sin)


def _swiglu(gate_up):
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


def _eps(norm) -> float:
    return getattr(norm, "variance_epsilon", None) or getattr(norm, "eps", 1e-6)


TORCH_OPS = Ops(rms=rms, rope=_rope, swiglu=_swiglu)


def check_fused(name: str, device: torch.device) -> None:
    """One line when `encode.fused_ops` names kernels this machine cannot run."""
    if name == FusedOps.liger and (device.type != "cuda" or importlib.util.find_spec("liger_kernel") is None):
        raise EvalkitError("encode.fused_ops=liger needs the liger-kernel package (pip install liger-kernel) and a "
                           "CUDA device")


@lru_cache(maxsize=None)
def fused_ops(name: str) -> Ops:
    """The elementwise operations by `encode.fused_ops` name."""
    if name == FusedOps.none:
        return TORCH_OPS
    from liger_kernel.ops.rms_norm import LigerRMSNormFunction
    from liger_kernel.ops.rope import LigerRopeFunction
    from liger_kernel.ops.swiglu import LigerFusedGateUpSiLUMulFunction

    def rms(x, norm):  # casting mode "llama": the HF LlamaRMSNorm's float32 statistics, cast back, then the weight
        return LigerRMSNormFunction.apply(x, norm.weight, _eps(norm), 0.0, "llama", False)

    def rope(q, k, cos, sin):  # liger takes (B, H, T, D) views of (B, T, H, D) memory
        q, k = LigerRopeFunction.apply(q[None].transpose(1, 2), k[None].transpose(1, 2), cos[None, :, 0], sin[None, :, 0])
        return q.transpose(1, 2)[0], k.transpose(1, 2)[0]

    return Ops(rms=rms, rope=rope, swiglu=lambda gate_up: LigerFusedGateUpSiLUMulFunction.apply(gate_up))
