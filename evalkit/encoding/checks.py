"""What must hold before embeddings leave the encoder: every row computed, every value finite, and packed
forward passes equal to padded ones. Each failure is one line (an EvalkitError), so no score is written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evalkit import EvalkitError

PACK_CHECK_TEXTS = 4  # real texts encoded both ways before the first packed batch
PACK_CHECK_COSINE = 0.9999  # packed must agree with padded at least this well, else padded it is


def refuse_holes(out: np.ndarray, filled: np.ndarray, from_cache: np.ndarray, texts: list[str], ids: list | None,
                 side: str, model_name: str, cache_root: Path) -> None:
    """One line when a row of `out` was never filled or is not finite, naming how many and the first (by its
    id where `ids` is given, else its position and first 60 characters)."""
    def first(rows: np.ndarray) -> str:
        i = int(rows[0])
        return f"id {ids[i]!r}" if ids is not None else f"text #{i} {texts[i][:60]!r}"

    missing = np.flatnonzero(~filled)
    if missing.size:
        raise EvalkitError(f"{missing.size} of {len(texts)} {side} embeddings were never computed (first: "
                           f"{first(missing)}); nothing is scored")
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if not bad.size:
        return
    cached = np.intersect1d(bad, from_cache)
    if cached.size:
        raise EvalkitError(f"{cached.size} of {len(texts)} {side} embeddings read from the embedding cache at "
                           f"{cache_root} are not finite (first: {first(cached)}); clear it with "
                           f"`python -m evalkit cache clear`, or run with encode.cache=false")
    raise EvalkitError(f"{model_name} gave non-finite embeddings (NaN or inf) for {bad.size} of {len(texts)} {side} "
                       f"texts (first: {first(bad)}); nothing is scored (float16 overflow? try model.dtype=bfloat16 "
                       f"or float32)")


def min_cosine(packed: torch.Tensor, padded: torch.Tensor) -> tuple[float, int] | None:
    """(the lowest cosine between packed and padded embeddings of the same texts, rows compared), over the
    rows finite in both; None when there is none (non-finite rows are refused by `refuse_holes`)."""
    packed, padded = packed.float().cpu(), padded.float().cpu()
    both = torch.isfinite(packed).all(dim=1) & torch.isfinite(padded).all(dim=1)
    if not bool(both.any()):
        return None
    return F.cosine_similarity(packed[both], padded[both]).min().item(), int(both.sum())
