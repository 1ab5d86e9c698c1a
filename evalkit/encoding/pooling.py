"""Pooling: pure functions of hidden states (B, T, H) and attention mask (B, T).

All of them find real tokens from the mask, so they are right for left and right padding alike.
The result is float32 whatever the dtype of the forward pass.

`last` is evalkit's own scheme (the EOS evalkit appends); the others are sentence-transformers' pooling modes
under their own names (`cls`, `mean`, `max`, `mean_sqrt_len_tokens`, `weightedmean`, `lasttoken`), computed
as its `Pooling` module computes them, `include_prompt: false` included (`pool_modes` with prompt lengths).
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


def last_real_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' `lasttoken`: the last token the mask keeps (the tokenizer's own last token, no EOS
    added); a row the mask keeps nothing of gives zeros."""
    kept = mask.to(torch.int64).flip(dims=[1]).max(dim=1)
    last = mask.shape[1] - 1 - kept.indices
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, last].float() * kept.values.unsqueeze(-1).float()


def max_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return hidden.float().masked_fill(mask.unsqueeze(-1) == 0, float("-inf")).max(dim=1).values


def mean_sqrt_len_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.unsqueeze(-1).float()
    return (hidden.float() * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9).sqrt()


def weighted_mean_pool(hidden: torch.Tensor, mask: torch.Tensor, positions_from: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """Mean weighted by position: the k-th real token of a row weighs k (counted from the row's first real
    token in `positions_from`, the mask before any prompt was left out, so a left-out prompt keeps the weights
    of the tokens after it)."""
    origin = mask if positions_from is None else positions_from
    width = mask.shape[1]
    first = origin.to(torch.int64).argmax(dim=1, keepdim=True)
    positions = torch.arange(1, width + 1, device=mask.device).unsqueeze(0) - first
    weights = (mask.float() * positions.float()).unsqueeze(-1)
    return (hidden.float() * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def exclude_prompt(mask: torch.Tensor, prompt_lengths: torch.Tensor) -> torch.Tensor:
    """The mask with the first `prompt_lengths[r]` real tokens of each row left out (`include_prompt: false`:
    the prompt's tokens, the tokenizer's leading special token included, as sentence-transformers counts them)."""
    first = mask.to(torch.int64).argmax(dim=1, keepdim=True)
    positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
    keep = positions >= first + prompt_lengths.to(mask.device).view(-1, 1)
    return mask * keep.to(mask.dtype)


POOLERS = {"last": last_token_pool, "cls": first_token_pool, "mean": mean_pool, "lasttoken": last_real_pool,
           "max": max_pool, "mean_sqrt_len_tokens": mean_sqrt_len_pool, "weightedmean": weighted_mean_pool}


def pool(kind: str, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return POOLERS[kind](hidden, mask)


def pool_modes(modes: tuple[str, ...], hidden: torch.Tensor, mask: torch.Tensor,
               prompt_lengths: torch.Tensor | None = None) -> torch.Tensor:
    """One or more pooling modes, concatenated in the order given (as sentence-transformers does), with each
    row's prompt left out of the pooled tokens where `prompt_lengths` is given."""
    kept = mask if prompt_lengths is None else exclude_prompt(mask, prompt_lengths)
    parts = [weighted_mean_pool(hidden, kept, mask) if mode == "weightedmean" else POOLERS[mode](hidden, kept)
             for mode in modes]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
