"""Golden embeddings: fixed probe texts through a model, compared with stored vectors.

The baseline keeps the model's setup as loaded (class, parameter dtype, pooling, ...) and, per
probe, the rendered text's sha256, its token ids and the vector (float32 little-endian, base64).
Comparing them in that order says *what* changed: setup → config or loading (a dtype the
vectors alone would hide: float16 drifts a small model by ~1e-6); rendered text → instruction or
template; token ids of the same text → tokenizer, BOS/EOS, truncation; vectors alone →
weights, kernels, numerics. Seconds on a CPU, before any retrieval runs.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Mapping

import numpy as np

from evalkit.check.rows import Row
from evalkit.check.suite import Probe
from evalkit.config import TaskSpec


def encode_vector(vec: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").astype(np.float64)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def probes_fingerprint(probes: Mapping[str, Mapping[str, Any]], part: str) -> str:
    """sha256 over every probe's rendered-text hash, token ids or vector rounded to 4 decimals."""
    h = hashlib.sha256()
    for pid in sorted(probes):
        value = probes[pid][part]
        if part == "vector":
            value = np.round(decode_vector(value), 4).tolist()
        h.update(f"{pid}={value};".encode())
    return h.hexdigest()


def measure(encoder, probes: list[Probe], specs: Mapping[str, TaskSpec]) -> dict[str, Any]:
    """A baseline entry for one model: its identity, the probes' hashes, ids and vectors, fingerprints."""
    out: dict[str, Any] = {}
    for probe in probes:
        spec = specs[probe.task]
        rendered = encoder.render([probe.full_text], spec.mteb_task, spec.type, probe.side)
        ids = encoder.tokenize(rendered)[0]  # the method embed() tokenizes with
        vec = encoder.embed(rendered, normalize=encoder.normalizes(spec.type), side=probe.side)[0]
        out[probe.id] = {"text_sha256": sha(rendered[0]), "token_ids": list(map(int, ids)), "vector": encode_vector(vec)}
    return {
        "setup": setup(encoder),
        "dim": int(len(decode_vector(next(iter(out.values()))["vector"]))) if out else 0,
        "fingerprint": {part: probes_fingerprint(out, part) for part in ("text_sha256", "token_ids", "vector")},
        "probes": out,
    }


def setup(encoder) -> dict[str, Any]:
    """What was loaded, as loaded: the parameters' dtype is read from the model, not the config."""
    cfg, model = encoder.cfg, encoder.model
    return {
        "model": cfg.name,
        "revision": cfg.revision,
        "class": type(model).__name__,
        "param_dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "weights_abs_sum": weights_checksum(model),
        "hidden_size": int(model.config.hidden_size),
        "pooling": str(cfg.pooling),
        "normalize": cfg.normalize,
        "padding_side": str(cfg.padding_side),
        "max_length": cfg.max_length,
        "attn_implementation": encoder.stats.attn_implementation,  # as loaded: auto resolved
    }


def weights_checksum(model) -> str:
    """Sum of |w| over all parameters, 6 significant digits: other weights (revision, seed, device of a
    random draw, dtype) give another sum; summation order moves it far less than the rounding."""
    import torch

    with torch.no_grad():
        total = sum(float(p.detach().abs().sum(dtype=torch.float64)) for p in model.parameters())
    return f"{total:.6e}"


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    if denom == 0.0:
        return 1.0 if not a.any() and not b.any() else 0.0
    return float(np.dot(a, b) / denom)


def describe_ids(base: list[int], now: list[int], tokens) -> str:
    """Where two id sequences part, with the tokens there: 'length 15 -> 14; from position 14: [2 '</s>'] -> []'."""
    pos = next((i for i, (x, y) in enumerate(zip(base, now)) if x != y), min(len(base), len(now)))

    def show(seq) -> str:
        return "[" + ", ".join(f"{i} {tokens([i])[0]!r}" for i in seq[pos:pos + 3]) + (", ..." if len(seq) > pos + 3 else "") + "]"

    length = f"length {len(base)} -> {len(now)}; " if len(base) != len(now) else ""
    return f"{length}from position {pos}: {show(base)} -> {show(now)}"


def compare(name: str, base: Mapping[str, Any] | None, now: Mapping[str, Any], min_cosine: float,
            tokens=lambda ids: [str(i) for i in ids]) -> list[Row]:
    """Rows setup / inputs / token_ids / cosine_min for one model. `tokens` maps ids to token strings for the notes."""
    task = f"golden/{name}"
    if base is None:
        return [Row(task, part, "-", "measured", "", "baseline", False, "no golden baseline for this model; "
                    "record one with --update-baseline") for part in ("setup", "inputs", "token_ids", "cosine_min")]
    bp, np_ = base["probes"], now["probes"]
    missing, new = sorted(set(bp) - set(np_)), sorted(set(np_) - set(bp))
    both = [p for p in np_ if p in bp]
    rows = [_setup_row(task, base.get("setup", {}), now["setup"])]
    changed_text = [p for p in both if bp[p]["text_sha256"] != np_[p]["text_sha256"]]
    rows.append(_identity_row(task, "inputs", base, now, "text_sha256", changed_text + missing + new, len(np_),
                              _probe_notes(changed_text, missing, new, "rendered text (instruction, template or probe) changed")))
    # ids of the same text: a changed text is the inputs row's finding, not the tokenizer's
    changed_ids = [p for p in both if p not in changed_text and bp[p]["token_ids"] != np_[p]["token_ids"]]
    notes = [f"{p}: {describe_ids(bp[p]['token_ids'], np_[p]['token_ids'], tokens)}" for p in changed_ids[:3]]
    more = f" (+{len(changed_ids) - 3} more)" if len(changed_ids) > 3 else ""
    rows.append(_identity_row(task, "token_ids", base, now, "token_ids", changed_ids, len(both),
                              "same text, other ids (tokenizer, BOS/EOS or truncation): " + "; ".join(notes) + more
                              if notes else ""))
    rows.append(_cosine_row(task, base, now, both, min_cosine))
    return rows


def _setup_row(task: str, base: Mapping[str, Any], now: Mapping[str, Any]) -> Row:
    diffs = [k for k in sorted(set(base) | set(now)) if base.get(k) != now.get(k)]

    def digest(d: Mapping[str, Any]) -> str:
        return sha(repr(sorted(d.items())))[:10]

    note = "; ".join(f"{k} {base.get(k)} -> {now.get(k)}" for k in diffs)
    delta = ", ".join(diffs) if len(diffs) <= 2 else f"{len(diffs)} fields"
    return Row(task, "setup", digest(base), digest(now), delta or "same", "identical", not diffs, note)


def _probe_notes(changed: list[str], missing: list[str], new: list[str], what: str) -> str:
    parts = []
    if changed:
        parts.append(f"{what}: {', '.join(changed)}")
    if missing:
        parts.append(f"probes gone: {', '.join(missing)}")
    if new:
        parts.append(f"probes not in the baseline: {', '.join(new)}")
    return "; ".join(parts)


def _identity_row(task: str, metric: str, base, now, part: str, changed: list[str], total: int, note: str) -> Row:
    return Row(task, metric, base["fingerprint"][part][:10], now["fingerprint"][part][:10],
               f"{len(changed)}/{total} differ", "identical", not changed, note)


def _cosine_row(task: str, base, now, both: list[str], min_cosine: float) -> Row:
    if base["dim"] != now["dim"]:
        return Row(task, "cosine_min", str(base["dim"]), str(now["dim"]), "dim changed", f">= {min_cosine}", False,
                   f"embedding dimension {base['dim']} -> {now['dim']}")
    cos = {p: cosine(decode_vector(base["probes"][p]["vector"]), decode_vector(now["probes"][p]["vector"])) for p in both}
    if not cos:
        return Row(task, "cosine_min", "-", "-", "", f">= {min_cosine}", False, "no probe in both baseline and now")
    worst = min(cos, key=cos.get)
    low = sorted((p for p in cos if cos[p] < min_cosine), key=cos.get)
    note = ""
    if low:
        note = "below: " + ", ".join(f"{p} {cos[p]:.6f}" for p in low[:5]) + (f" (+{len(low) - 5} more)" if len(low) > 5 else "")
    return Row(task, "cosine_min", "1", f"{cos[worst]:.7f}", f"{cos[worst] - 1:+.1e}", f">= {min_cosine}", not low,
               note or f"worst: {worst}")
