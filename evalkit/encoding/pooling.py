"""Pooling: pure functions of hidden states (B, T, H) and attention mask (B, T).

All three find real tokens from the mask, so they are right for left and right padding alike.
The result is float32 whatever the dtype of the forward pass.
"""

from __future__ import annotations

import torch


def last_token_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The hidden state of each row's last real token (the EOS evalkit appended)."""
    width = mask.shape[1]
    last = width - 1 - mask.flip(dims=[1]).to(torch.int64).argmax(dim=1)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, last].float()


def first_token_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The hidden state of each row's first real token ([CLS])."""
    first = mask.to(torch.int64).argmax(dim=1)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, first].float()


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).float()
    return (hidden.float() * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


POOLERS = {"last": last_token_pool, "cls": first_token_pool, "mean": mean_pool}


def pool(kind: str, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return POOLERS[kind](hidden, mask)
