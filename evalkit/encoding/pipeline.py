"""The steps after the backbone: pooling, per-row heads, then L2 normalization where the task type wants it.

    backbone hidden states -> pooling (`Pipeline.pooling`, done inside the forward pass) -> heads -> [cache]
    -> normalize (per task type, after the cache: cached vectors are the raw ones)

`heads` holds a sentence-transformers folder's Dense layers (`evalkit.encoding.head`, empty for other models):
the forward passes, the cache and the mteb adapter take them as they are. Whether a task's embeddings are normalized is decided here only (`Normalize.applies`),
for the encoder and for the experiment identity alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from evalkit.config import ModelConfig


@dataclass(frozen=True)
class Normalize:
    """L2 normalization, for every task type but `skipped` (e5: classification's embeddings stay raw)."""

    enabled: bool = True
    skipped: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> Normalize:
        return cls(bool(cfg.normalize), frozenset(str(t) for t in cfg.unnormalized_types))

    def applies(self, task_type: str) -> bool:
        return self.enabled and str(task_type) not in self.skipped

    @staticmethod
    def rows(out: np.ndarray) -> np.ndarray:
        return torch.nn.functional.normalize(torch.from_numpy(out), p=2, dim=-1).numpy()


def normalizes(cfg: ModelConfig, task_type: str) -> bool:
    """Whether embeddings of this task type are L2-normalized under this model config."""
    return Normalize.from_config(cfg).applies(task_type)


Head = Callable[[torch.Tensor], torch.Tensor]  # pooled (B, H) float32 -> (B, H') float32, on the model's device


@dataclass(frozen=True)
class Pipeline:
    """What turns the backbone's hidden states into the embedding a task gets."""

    pooling: str  # last | cls | mean: read by the forward passes (the packed decoder pools in its last layer)
    heads: tuple[Head, ...] = ()  # after pooling, before the cache, in order
    normalize: Normalize = Normalize()

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> Pipeline:
        from evalkit.encoding.head import load_head

        return cls(pooling=str(cfg.pooling), heads=load_head(cfg), normalize=Normalize.from_config(cfg))

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """The heads applied to pooled embeddings (unchanged when there are none)."""
        for step in self.heads:
            pooled = step(pooled)
        return pooled

    def finish(self, out: np.ndarray, normalize: bool) -> np.ndarray:
        """The last step, after the cache: L2-normalized rows where `normalize` (`normalize.applies(task type)`)."""
        return Normalize.rows(out) if normalize else out
