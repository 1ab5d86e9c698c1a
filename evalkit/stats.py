"""Resampling statistics of per-item scores: bootstrap CIs, paired comparisons, p-value adjustment, rank intervals.

Pure numpy. A score is either the mean of per-item values (retrieval per query, summarization per document,
classification and clustering per experiment) or a statistic recomputed on a resample of the items (Spearman
over STS pairs, max AP over pair-classification pairs); `Scores` holds either. Resamples draw item indices
with replacement, 100 resamples at a time, from `numpy.random.default_rng(seed)`; every interval is the
equal-tailed percentile interval of the resampled values. Methods and their assumptions: docs/statistics.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Callable, Iterator, Sequence

import numpy as np

CHUNK = 100  # resamples drawn at a time: memory stays flat for large item sets
EXACT_FLIPS = 16  # up to this many items the sign-flip test enumerates all 2^n sign patterns
ADJUSTMENTS = ("holm", "bh")


def resampled_indices(n: int, resamples: int, seed) -> Iterator[np.ndarray]:
    """Bootstrap index matrices, (k, n) each, `resamples` rows in all: items drawn with replacement."""
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, CHUNK):
        yield rng.integers(0, n, size=(min(CHUNK, resamples - start), n))


def percentile_interval(values, level: float = 0.95) -> tuple[float, float]:
    """The equal-tailed `level` interval of resampled values (NaN resamples, e.g. a constant column, ignored)."""
    tail = 50.0 * (1.0 - level)
    low, high = np.nanpercentile(np.asarray(values, dtype=float), [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_ci(values, *, seed=0, resamples: int = 1000, level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the mean of `values`, resampling them with replacement."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("no per-query scores to resample")
    means = np.concatenate([values[index].mean(axis=1) for index in resampled_indices(values.size, resamples, seed)])
    return percentile_interval(means, level)


def statistic_ci(statistic: Callable[[np.ndarray], float], n: int, *, seed=0, resamples: int = 1000,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of `statistic(index)` (the score recomputed on the items at `index`), resampling n items."""
    if n == 0:
        raise ValueError("no per-item scores to resample")
    values = [statistic(row) for index in resampled_indices(n, resamples, seed) for row in index]
    return percentile_interval(values, level)


@dataclass(frozen=True)
class Scores:
    """One score and the n per-item values it comes from: their mean (`values`), or `statistic(index)`."""

    n: int
    values: np.ndarray | None = None
    statistic: Callable[[np.ndarray], float] | None = None

    @classmethod
    def mean_of(cls, values) -> "Scores":
        values = np.asarray(values, dtype=float)
        return cls(values.size, values=values)

    @property
    def score(self) -> float:
        return self.value(np.arange(self.n))

    def value(self, index: np.ndarray) -> float:
        return float(self.values[index].mean()) if self.values is not None else float(self.statistic(index))

    def on(self, index: np.ndarray) -> np.ndarray:
        """The score on each row of a (k, n) index matrix."""
        if self.values is not None:
            return self.values[index].mean(axis=1)
        return np.array([self.statistic(row) for row in index], dtype=float)


def joint_replicates(scores: Sequence[Scores], *, seed=0, resamples: int = 1000) -> np.ndarray:
    """(resamples, len(scores)): each score on the same resampled items, so paired runs are resampled jointly."""
    n = scores[0].n
    if any(s.n != n for s in scores) or n == 0:
        raise ValueError(f"paired scores need the same, non-zero number of items (got {[s.n for s in scores]})")
    return np.concatenate([np.stack([s.on(index) for s in scores], axis=1)
                           for index in resampled_indices(n, resamples, seed)])


@dataclass(frozen=True)
class Paired:
    """B − A on the same items: Δ, its percentile CI, a two-sided p-value, and the bootstrap replicates of Δ."""

    delta: float
    ci: tuple[float, float]
    p_value: float
    n: int
    method: str
    replicates: np.ndarray  # Δ on each joint resample (for means over tasks)


def paired(a: Scores, b: Scores, *, seed=0, resamples: int = 1000, level: float = 0.95) -> Paired:
    """Compare B with A on the same n items, resampled jointly. p: a sign-flip permutation test of the mean
    difference when both scores are item means (exact up to EXACT_FLIPS items), else twice the smaller share
    of bootstrap Δs on either side of 0 (the percentile CI inverted)."""
    replicates = joint_replicates([a, b], seed=seed, resamples=resamples)
    deltas = replicates[:, 1] - replicates[:, 0]
    if a.values is not None and b.values is not None:
        differences = b.values - a.values
        delta = float(differences.mean())
        p, test = sign_flip_p(differences, seed=seed, flips=resamples)
    else:
        delta = b.score - a.score
        p, test = bootstrap_p(deltas), "p: paired bootstrap (CI inverted)"
    return Paired(delta, percentile_interval(deltas, level), p, a.n, f"paired bootstrap CI ({resamples}); {test}",
                  deltas)


def sign_flip_p(differences, *, seed=0, flips: int = 1000) -> tuple[float, str]:
    """Two-sided p of mean(differences) = 0 against random sign flips of the per-item differences (under the
    null, A and B are exchangeable within an item); (p, method). Identical runs give p = 1."""
    d = np.asarray(differences, dtype=float)
    observed = abs(d.mean())
    slack = 1e-12 * max(1.0, float(np.abs(d).max(initial=0.0)))  # rounding never decides a tie
    if d.size <= EXACT_FLIPS:
        signs = np.array(list(product((1.0, -1.0), repeat=d.size)))
        return float(np.mean(np.abs(signs @ d) / d.size >= observed - slack)), "p: exact sign-flip permutation"
    rng = np.random.default_rng([*np.atleast_1d(seed), 1])  # a stream of its own, not the bootstrap's
    hits = 0
    for start in range(0, flips, CHUNK):
        signs = rng.choice((-1.0, 1.0), size=(min(CHUNK, flips - start), d.size))
        hits += int(np.sum(np.abs(signs @ d) / d.size >= observed - slack))
    return (1 + hits) / (1 + flips), f"p: sign-flip permutation ({flips})"


def bootstrap_p(deltas) -> float:
    """Two-sided p from bootstrap Δs: twice the smaller share at or beyond 0 on either side, capped at 1."""
    deltas = np.asarray(deltas, dtype=float)
    deltas = deltas[~np.isnan(deltas)]
    below, above = int(np.sum(deltas <= 0)), int(np.sum(deltas >= 0))
    return min(1.0, 2 * (min(below, above) + 1) / (deltas.size + 1))


def adjust(p_values, method: str = "holm") -> np.ndarray:
    """Adjusted p-values across a family of tests: Holm (family-wise error) or Benjamini-Hochberg ("bh", false
    discovery rate). NaN (no test) stays NaN and does not count in the family."""
    if method not in ADJUSTMENTS:
        raise ValueError(f"unknown adjustment {method!r} (known: {', '.join(ADJUSTMENTS)})")
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = tested.size
    if m == 0:
        return out
    order = tested[np.argsort(p[tested], kind="stable")]
    ranked = p[order]
    if method == "holm":
        adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked))
    else:
        adjusted = np.minimum.accumulate(np.minimum(1.0, m / np.arange(1, m + 1) * ranked)[::-1])[::-1]
    out[order] = adjusted
    return out


def mean_over_tasks(deltas: Sequence[float], replicates: Sequence[np.ndarray], level: float = 0.95
                    ) -> tuple[float, tuple[float, float]]:
    """The mean of per-task Δs and its percentile CI from their bootstrap replicates (each task's items resampled
    on their own, the same number of resamples per task; replicate r of the mean is the mean of replicates r)."""
    stacked = np.stack([np.asarray(r, dtype=float) for r in replicates])  # (tasks, resamples)
    return float(np.mean(deltas)), percentile_interval(stacked.mean(axis=0), level)


def ranks(scores: np.ndarray) -> np.ndarray:
    """Competition ranks along the last axis, 1 = highest score; ties share the better rank."""
    scores = np.asarray(scores, dtype=float)
    return 1 + (scores[..., None, :] > scores[..., :, None]).sum(axis=-1)


def rank_intervals(replicates: np.ndarray, level: float = 0.95) -> list[tuple[int, int]]:
    """Per model (column of a (resamples, models) array of scores), the equal-tailed `level` interval of its
    rank over the resamples."""
    r = ranks(replicates)
    tail = (1.0 - level) / 2
    low = np.quantile(r, tail, axis=0, method="lower")
    high = np.quantile(r, 1 - tail, axis=0, method="higher")
    return [(int(lo), int(hi)) for lo, hi in zip(low, high)]
