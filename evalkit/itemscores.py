"""Per-item scores of STS, pair classification and summarization, for bootstrap confidence intervals.

mteb has no public per-item hook for these types, so `capture` watches the per-item arrays mteb scores from
through `evalkit.mteb_hooks` (the one module that touches mteb's internals). What is kept is what the main
metric is computed from, as one entry:

    {"metric", "statistic": spearman|pearson|ap|mean, "gold": [...] (not for mean), "scores": [[...], ...]}

and the metric is `max` over the score columns of `statistic(gold, column)`: one column for cosine Spearman,
five for pair classification's max AP (distances negated, as mteb scores them), per-document correlations
for summarization (SummEval v1 keeps mteb bug #1156: each document counts (rho + p-value) / 2). `statistic`
recomputes it on any resample of the items; `verified` keeps an entry only when it reproduces mteb's score.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from evalkit.stats import statistic_ci

log = logging.getLogger(__name__)

STS_COLUMNS = {"cosine": "cosine_scores", "manhattan": "manhattan_distances", "euclidean": "euclidean_distances"}
# pair classification: mteb's score column, and whether a higher value means more similar
PAIR_COLUMNS = {"similarity": ("similarity_scores", True), "cosine": ("cosine_scores", True),
                "manhattan": ("manhattan_distances", False), "euclidean": ("euclidean_distances", False),
                "dot": ("dot_scores", True)}
SUMMARY_COLUMNS = {"cosine": "cosine_scores", "dot": "dot_scores", "": "similarity_scores"}


def _split_metric(metric: str) -> tuple[str, str]:
    """`cosine_spearman` -> ("cosine", "spearman"); `spearman` -> ("", "spearman")."""
    prefix, _, stat = metric.rpartition("_")
    return prefix, stat


def sts_entry(metric: str, scores: dict, gold) -> dict | None:
    prefix, stat = _split_metric(metric)
    column = STS_COLUMNS.get(prefix) or ("similarity_scores" if prefix == "" else None)
    if stat not in ("spearman", "pearson") or column is None:
        return None
    values = scores.get(column)
    if values is None and column == "similarity_scores":
        values = scores["cosine_scores"]  # mteb: a model without a similarity function is scored by cosine
    return {"metric": metric, "statistic": stat, "gold": list(map(float, gold)), "scores": [list(map(float, values))]}


def pair_entry(metric: str, scores: dict, labels) -> dict | None:
    prefix, stat = _split_metric(metric)
    if stat != "ap" or (prefix != "max" and prefix not in PAIR_COLUMNS):
        return None
    names = list(PAIR_COLUMNS) if prefix == "max" else [prefix]
    columns = []
    for name in names:
        key, higher_is_similar = PAIR_COLUMNS[name]
        columns.append([float(v) if higher_is_similar else -float(v) for v in scores[key]])
    return {"metric": metric, "statistic": "ap", "gold": [int(v) for v in labels], "scores": columns}


def summary_entry(metric: str, distances: dict, deprecated: bool) -> dict | None:
    from scipy.stats import pearsonr, spearmanr

    prefix, stat = _split_metric(metric)
    if stat not in ("spearman", "pearson") or prefix not in SUMMARY_COLUMNS:
        return None
    correlate = spearmanr if stat == "spearman" else pearsonr
    per_document = []
    for human, predicted in zip(distances["human_scores"], distances[SUMMARY_COLUMNS[prefix]], strict=True):
        result = correlate(human, predicted)
        per_document.append((result.statistic + result.pvalue) / 2 if deprecated else float(result.statistic))
    return {"metric": metric, "statistic": "mean", "scores": [list(map(float, per_document))]}


def capture(task, metric: str) -> dict[str, dict]:
    """Watch the task's scoring (see evalkit.mteb_hooks) so that each evaluated subset's per-item entry lands
    in the returned dict (hf_subset -> entry), for the main metric; types without per-item scores leave it empty."""
    from evalkit.mteb_hooks import deprecated_summarization, watch_item_scores

    captured: dict[str, dict] = {}
    builders = {"sts": sts_entry, "pair": pair_entry}

    def keep(family: str, subset: str, scores, gold) -> None:
        if family == "summary":
            entry = summary_entry(metric, scores, deprecated_summarization(task))
        else:
            entry = builders[family](metric, scores, gold)
        if entry is not None:
            captured[subset] = entry

    watch_item_scores(task, keep)
    return captured


def statistic(entry: dict[str, Any], index=None) -> float:
    """The entry's metric on the items at `index` (all items when None)."""
    columns = [np.asarray(c, dtype=float) for c in entry["scores"]]
    gold = np.asarray(entry["gold"], dtype=float) if "gold" in entry else None
    if index is not None:
        columns = [c[index] for c in columns]
        gold = gold[index] if gold is not None else None
    kind = entry["statistic"]
    if kind == "mean":
        return float(columns[0].mean())
    if kind == "ap":
        from sklearn.metrics import average_precision_score

        return max(float(average_precision_score(gold, c)) for c in columns)
    from scipy.stats import pearsonr, spearmanr

    correlate = spearmanr if kind == "spearman" else pearsonr
    return max(float(correlate(gold, c).statistic) for c in columns)


def verified(entry: dict | None, main_score: float, where: str) -> dict | None:
    """The entry when it recomputes mteb's score (so a CI from it is centred where mteb's score is), else None."""
    if entry is None:
        return None
    again = statistic(entry)
    if not math.isclose(again, main_score, rel_tol=1e-9, abs_tol=1e-12):
        log.warning("%s: per-item scores give %r, mteb's score is %r; no confidence interval", where, again, main_score)
        return None
    return entry


def item_ci(entry: dict[str, Any], *, seed: int = 0, resamples: int = 1000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the entry's metric, resampling items (pairs, documents) with replacement."""
    return statistic_ci(lambda index: statistic(entry, index), len(entry["scores"][0]), seed=seed,
                        resamples=resamples, level=level)
