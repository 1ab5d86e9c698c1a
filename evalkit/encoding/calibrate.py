"""Tokens per forward pass: set by the user, from free GPU memory, or measured on a CPU.

On a GPU the budget is what half the free memory holds (`batching.token_budget`). On a CPU memory is no
limit, speed is: past a few thousand tokens a batch stops fitting the caches and gets slower. So the first
call large enough that measuring costs it at most a tenth (`CALIBRATE_MIN_TOKENS`) times texts spread over
its first ones at a few budgets (two rounds, the order reversed in the second, the best rate of each kept)
and encodes at the fastest; the choice is remembered in `<cache root>/budgets.json` per model, dtype, max length, forward path and machine, so later
runs do not measure again and batch their texts the same way every time. Smaller calls before that use
`CPU_TOKEN_BUDGET`. `encode.max_tokens_per_batch` overrides all of it (the gate's suites pin it).

A budget changes which texts share a forward pass, never what a text's embedding is meant to be: only the
last bits move (float summation order), as between any two batchings.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from evalkit.encoding.batching import CPU_TOKEN_BUDGET, token_budget
from evalkit.files import atomic_write, cache_root

log = logging.getLogger(__name__)

CANDIDATES = (1024, 2048, 4096, 8192, 16_384)  # tokens per forward pass tried on a CPU
SAMPLE_TEXTS = 512  # texts the sample is drawn from (the call's first)
SAMPLE_TOKENS = 16_384  # the sample: one batch of the largest candidate
TIMED_TOKENS = 4096  # each budget is timed on its first batches of the sample, at least this many tokens
ROUNDS = 2
CALIBRATE_MIN_TOKENS = 750_000  # ~10x what the measurement encodes: a call this large (estimated) calibrates


def budgets_file() -> Path:
    return cache_root() / "budgets.json"


def pick_budget(planner, path, items: list, tokenize) -> tuple[int, str]:
    """(tokens per forward pass, where that number came from) for one call of `planner.batches` on `items`
    along `path`: the planner's `encode` settings, `model`, `batching(path)` and `forward(path, inputs)`."""
    fixed = planner.encode.max_tokens_per_batch
    if fixed is not None:
        return fixed, "encode.max_tokens_per_batch"
    model = planner.model
    device, max_length = model.device, model.cfg.max_length
    if device.type == "cuda":
        scores = not path.packed and model.attn_implementation == "eager"
        return (token_budget(model.backbone, device, max_length, scores=scores),
                "half the free GPU memory over the activations per token")
    key = budget_key(model, path)
    known = remembered(key)
    if known is not None:
        return max(known, 1), f"calibrated earlier on this machine ({budgets_file()})"
    default = max(CPU_TOKEN_BUDGET, max_length)
    start = time.perf_counter()
    seqs = tokenize(items[:SAMPLE_TEXTS])
    if len(items) * sum(len(s) for s in seqs) / max(1, len(seqs)) < CALIBRATE_MIN_TOKENS:
        return default, f"the CPU default (calibrated on the first call of >= {CALIBRATE_MIN_TOKENS:,} tokens)"
    cut, build = planner.batching(path)
    rates = measure(lambda inputs: planner.forward(path, inputs), sample(seqs), cut, build)
    best = max(rates, key=rates.get)
    remember(key, best, rates)
    seconds = time.perf_counter() - start
    shown = ", ".join(f"{b}: {r:,.0f}" for b, r in rates.items())
    log.info("%s: %d tokens per forward pass, calibrated in %.1f s (tokens/s %s)", model.cfg.name, best, seconds, shown)
    return best, f"calibrated now in {seconds:.1f} s (tokens/s by budget: {shown})"


def sample(seqs: list[list[int]], tokens: int | None = None) -> list[list[int]]:
    """Texts spread evenly over `seqs`, about `tokens` (SAMPLE_TOKENS) tokens in all."""
    tokens = tokens or SAMPLE_TOKENS
    mean = max(1.0, sum(len(s) for s in seqs) / max(1, len(seqs)))
    step = max(1, int(len(seqs) * mean / tokens))
    return seqs[::step]


def measure(forward, seqs: list[list[int]], cut, build, candidates: tuple[int, ...] | None = None,
            rounds: int = ROUNDS) -> dict[int, float]:
    """Best tokens/s of `forward` at each budget (CANDIDATES), timed on the first batches `cut` makes of `seqs`
    (at least TIMED_TOKENS tokens, or the budget): rounds interleaved, the order reversed every other round,
    so a change in load hits every budget alike."""
    candidates = candidates or CANDIDATES
    lengths = [len(s) for s in seqs]
    prepared, tokens = {}, {}
    for budget in candidates:
        prepared[budget], tokens[budget] = [], 0
        for rows in cut(lengths, budget):
            if tokens[budget] >= max(budget, TIMED_TOKENS):
                break
            prepared[budget].append(build([seqs[i] for i in rows]))
            tokens[budget] += sum(lengths[i] for i in rows)
    forward(prepared[candidates[0]][-1])  # warm-up: first-call allocations and thread pools
    rates = dict.fromkeys(candidates, 0.0)
    for number in range(rounds):
        for budget in candidates if number % 2 == 0 else reversed(candidates):
            begin = time.perf_counter()
            for inputs in prepared[budget]:
                forward(inputs)
            rates[budget] = max(rates[budget], tokens[budget] / (time.perf_counter() - begin))
    return rates


def budget_key(model, path) -> str:
    """What a measured budget holds for: the model (its shape), dtype, max length, forward path, machine."""
    cfg = model.cfg
    return json.dumps([cfg.name, cfg.revision, str(cfg.dtype), cfg.max_length, path.describe(),
                       model.attn_implementation, model.device_name, torch.__version__])


def _read() -> dict:
    path = budgets_file()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s is unreadable (%s): measuring the CPU token budget again", path, type(exc).__name__)
        return {}
    return data if isinstance(data, dict) else {}


def remembered(key: str) -> int | None:
    entry = _read().get(key)
    budget = entry.get("budget") if isinstance(entry, dict) else None
    return budget if isinstance(budget, int) and budget > 0 else None


def remember(key: str, budget: int, rates: dict[int, float]) -> None:
    data = _read()
    data[key] = {"budget": budget, "tokens_per_s": {str(b): round(r) for b, r in rates.items()},
                 "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    try:
        atomic_write(budgets_file(), json.dumps(data, indent=1))
    except OSError as exc:  # a cache root that cannot be written: measured again next time, nothing worse
        log.warning("cannot remember the CPU token budget in %s (%s)", budgets_file(), exc)
