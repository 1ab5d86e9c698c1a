"""Tokens per forward pass: set by the user, from free GPU memory, or measured on a CPU.

On a GPU the budget is what half the free memory holds (`batching.token_budget`). On a CPU memory is no
limit, speed is: past a few thousand tokens a batch can stop fitting the caches and get slower, but a shared
machine's load moves timings by more than that. So the first call large enough that measuring costs it at
most a tenth (`CALIBRATE_MIN_TOKENS`) times texts spread over its first ones at a few budgets, the default
among them: `ROUNDS` interleaved rounds (the order reversed every other round), each budget's rate taken
relative to the default's in the same round, and the median of those ratios kept. A budget replaces the
default only when that median beats it by `MIN_GAIN` (`choose`); noise within that keeps the default.

The choice is remembered in `<cache root>/budgets.json` per model, dtype, max length, forward path and machine,
with the measurement's conditions (torch version and threads, cores, load average, date), so later runs do not
measure again and batch their texts the same way every time. An entry is measured again on the next large call
when it looks stale (`stale`): another torch version, thread or core count, or measured under load that was
heavy and more than twice today's. Smaller calls before that use `CPU_TOKEN_BUDGET`.
`encode.max_tokens_per_batch` overrides all of it (the gate's suites pin it). `evalkit cache info` lists
what was chosen, why, and under what conditions.

A budget changes which texts share a forward pass, never what a text's embedding is meant to be: only the
last bits move (float summation order), as between any two batchings.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from evalkit.encoding.batching import CPU_TOKEN_BUDGET, token_budget
from evalkit.files import atomic_write, cache_root

log = logging.getLogger(__name__)

CANDIDATES = (1024, 2048, 4096, 8192, 16_384)  # tokens per forward pass tried on a CPU (the default joins them)
SAMPLE_TEXTS = 512  # texts the sample is drawn from (the call's first)
SAMPLE_TOKENS = 16_384  # the sample: one batch of the largest candidate
TIMED_TOKENS = 4096  # each budget is timed on its first batches of the sample, at least this many tokens
ROUNDS = 3  # interleaved rounds; the median of each budget's per-round ratio to the default decides
MIN_GAIN = 0.10  # a budget replaces the default only when its median ratio is at least 1 + MIN_GAIN
CALIBRATE_MIN_TOKENS = 1_200_000  # ~10x what the measurement encodes (~37k tokens a round, 3 rounds, a warm-up)
BUSY_PER_CORE = 0.5  # load average per core from which a measurement counts as taken under load
BUSIER_THAN_NOW = 2.0  # ... and is re-measured when that load was more than this many times today's


def budgets_file() -> Path:
    return cache_root() / "budgets.json"


def pick_budget(planner, path, items: list, tokenize) -> tuple[int, str]:
    """(tokens per forward pass, where that number came from) for one call of `planner.batches` on `items`
    along `path`: the planner's `encode` settings, `model`, `stats`, `batching(path)` and `forward(path, inputs)`."""
    fixed = planner.encode.max_tokens_per_batch
    if fixed is not None:
        return fixed, "encode.max_tokens_per_batch"
    model = planner.model
    device, max_length = model.device, model.cfg.max_length
    if device.type == "cuda":
        scores = not path.packed and model.attn_implementation == "eager"
        return (token_budget(model.backbone, device, max_length, scores=scores),
                "half the free GPU memory over the activations per token")
    key, now = budget_key(model, path), conditions()
    entry = remembered(key)
    old = stale(entry, now) if entry is not None else None
    if entry is not None and old is None:
        return entry["budget"], f"calibrated earlier on this machine ({budgets_file()}): {entry.get('reason', '')}"
    default = max(CPU_TOKEN_BUDGET, max_length)
    again = f"; the remembered budget is stale ({old})" if old else ""
    start = time.perf_counter()
    seqs = tokenize(items[:SAMPLE_TEXTS])
    if len(items) * sum(len(s) for s in seqs) / max(1, len(seqs)) < CALIBRATE_MIN_TOKENS:
        return default, (f"the CPU default (calibrated on the first call of >= {CALIBRATE_MIN_TOKENS:,} "
                         f"tokens){again}")
    cut, build = planner.batching(path)
    candidates = tuple(sorted(set(CANDIDATES) | {default}))
    rates = measure(lambda inputs: planner.forward(path, inputs), sample(seqs), cut, build, candidates)
    best, reason = choose(rates, default)
    remember(key, best, rates, reason, now)
    seconds = time.perf_counter() - start
    planner.stats.calibration_seconds += seconds  # the run record says it; plan leaves out runs mostly spent here
    log.info("%s: %d tokens per forward pass, calibrated in %.1f s: %s", model.cfg.name, best, seconds, reason)
    return best, f"calibrated now in {seconds:.1f} s{again}: {reason}"


def choose(rates: dict[int, list[float]], default: int, min_gain: float | None = None) -> tuple[int, str]:
    """(budget, why) from each budget's tokens/s per round (`measure`): the budget whose median ratio to the
    default's rate in the same round is highest, if that beats the default by `min_gain` (MIN_GAIN); else the
    default. Pairing each round with the default's own cancels a load that drifts between rounds."""
    min_gain = MIN_GAIN if min_gain is None else min_gain
    ratios = {b: statistics.median(r / d for r, d in zip(runs, rates[default]) if d > 0) for b, runs in rates.items()}
    best = max((b for b in ratios if b != default), key=ratios.get, default=default)
    medians = ", ".join(f"{b}: {statistics.median(r):,.0f}" for b, r in rates.items())
    rounds = len(rates[default])
    shown = f"median of {rounds} interleaved rounds; tokens/s by budget: {medians}"
    if best == default or ratios[best] < 1 + min_gain:
        return default, (f"the default {default:,} kept, no budget was {min_gain:.0%} faster (best {best:,}: "
                         f"{ratios[best] - 1:+.0%}; {shown})")
    return best, f"{best:,} is {ratios[best] - 1:.0%} faster than the default {default:,} ({shown})"


def conditions() -> dict[str, Any]:
    """What a CPU measurement depended on: torch's version and threads, the cores, the 1-minute load average."""
    try:
        load = round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # no load average on this system
        load = None
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "cores": os.cpu_count(), "load": load,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def stale(entry: dict[str, Any], now: dict[str, Any]) -> str | None:
    """Why a remembered budget should be measured again under the conditions `now`, or None: no conditions kept,
    another torch version, thread or core count, or measured under heavy load more than twice today's."""
    then = entry.get("conditions")
    if not isinstance(then, dict):
        return "measured before evalkit kept the measurement's conditions"
    for key, what in (("torch", "torch"), ("threads", "torch threads"), ("cores", "CPU cores")):
        if then.get(key) != now.get(key):
            return f"{what} {then.get(key)} then, {now.get(key)} now"
    busy, today = _per_core(then), _per_core(now)
    if busy is not None and today is not None and busy >= BUSY_PER_CORE and busy > BUSIER_THAN_NOW * today:
        return f"measured at load {then['load']:.1f}, {now['load']:.1f} now, on {now.get('cores')} cores"
    return None


def _per_core(cond: dict[str, Any]) -> float | None:
    load, cores = cond.get("load"), cond.get("cores")
    return load / cores if isinstance(load, (int, float)) and isinstance(cores, int) and cores > 0 else None


def sample(seqs: list[list[int]], tokens: int | None = None) -> list[list[int]]:
    """Texts spread evenly over `seqs`, about `tokens` (SAMPLE_TOKENS) tokens in all."""
    tokens = tokens or SAMPLE_TOKENS
    mean = max(1.0, sum(len(s) for s in seqs) / max(1, len(seqs)))
    step = max(1, int(len(seqs) * mean / tokens))
    return seqs[::step]


def measure(forward, seqs: list[list[int]], cut, build, candidates: tuple[int, ...] | None = None,
            rounds: int | None = None) -> dict[int, list[float]]:
    """Tokens/s of `forward` at each budget (CANDIDATES) in each round (ROUNDS), timed on the first batches `cut`
    makes of `seqs` (at least TIMED_TOKENS tokens, or the budget): rounds interleaved, the order reversed every
    other round, so a change in load hits every budget alike."""
    candidates = candidates or CANDIDATES
    rounds = rounds or ROUNDS
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
    rates: dict[int, list[float]] = {budget: [] for budget in candidates}
    for number in range(rounds):
        for budget in candidates if number % 2 == 0 else reversed(candidates):
            begin = time.perf_counter()
            for inputs in prepared[budget]:
                forward(inputs)
            rates[budget].append(tokens[budget] / max(time.perf_counter() - begin, 1e-9))
    return rates


def budget_key(model, path) -> str:
    """What a measured budget holds for: the model (its shape), dtype, max length, forward path, machine (torch's
    version and threads are conditions: `stale`)."""
    cfg = model.cfg
    return json.dumps([cfg.name, cfg.revision, str(cfg.dtype), cfg.max_length, path.describe(),
                       model.attn_implementation, model.device_name])


def read_budgets() -> dict:
    """budgets.json as a dict: {} when it is missing or unreadable (said once, then it is measured again)."""
    path = budgets_file()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s is unreadable (%s): measuring the CPU token budget again", path, type(exc).__name__)
        return {}
    return data if isinstance(data, dict) else {}


def remembered(key: str) -> dict[str, Any] | None:
    """The entry measured for `key`, when it names a usable budget."""
    entry = read_budgets().get(key)
    budget = entry.get("budget") if isinstance(entry, dict) else None
    return entry if isinstance(budget, int) and budget > 0 else None


def remember(key: str, budget: int, rates: dict[int, list[float]], reason: str, measured: dict[str, Any]) -> None:
    data = read_budgets()
    data[key] = {"budget": budget, "reason": reason,
                 "tokens_per_s": {str(b): round(statistics.median(r)) for b, r in rates.items()},
                 "conditions": measured}
    try:
        atomic_write(budgets_file(), json.dumps(data, indent=1))
    except OSError as exc:  # a cache root that cannot be written: measured again next time, nothing worse
        log.warning("cannot remember the CPU token budget in %s (%s)", budgets_file(), exc)


def describe_budgets(now: dict[str, Any] | None = None) -> list[str]:
    """`evalkit cache info`'s lines on budgets.json: per model and forward path, the budget, why, the
    measurement's conditions, and whether it would be measured again (`stale`) under the conditions `now`."""
    data, now = read_budgets(), now or conditions()
    lines = [f"CPU token budgets in {budgets_file()}: {len(data) or 'none measured yet'}"]
    for key, entry in data.items():
        try:
            name, _, dtype, max_length, path, attn, device = json.loads(key)[:7]
            what = f"{name} {dtype} max_length={max_length} {path} ({attn}) on {device}"
        except (ValueError, TypeError):
            what = key
        if not isinstance(entry, dict) or not isinstance(entry.get("budget"), int):
            lines.append(f"  {what}: unreadable entry (measured again)")
            continue
        lines.append(f"  {what}: {entry['budget']:,} tokens per forward pass: "
                     f"{entry.get('reason') or 'measured by an older evalkit, reason not kept'}")
        cond = entry.get("conditions")
        if isinstance(cond, dict):
            load = "unknown" if cond.get("load") is None else f"{cond['load']:.1f}"
            lines.append(f"    measured {cond.get('date')} at load {load} on {cond.get('cores')} cores, "
                         f"{cond.get('threads')} torch threads, torch {cond.get('torch')}")
        old = stale(entry, now)
        lines.append(f"    stale now ({old}): measured again on the next large call" if old else
                     "    current: used as is")
    return lines
