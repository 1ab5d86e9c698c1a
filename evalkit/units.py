"""The per-item scores behind a task's main score, read from a run record or a TaskResult, and their pairing.

Units by task type: retrieval, one per query (the run record's per-query scores, keyed by query id); STS and
pair classification, one per pair, and summarization, one per document (the run record's per-item entry,
see evalkit.itemscores; positional, so two runs pair only when their data identity and gold labels agree);
classification and clustering, one per experiment mteb averages (`scores_per_experiment`: a classifier per
resampled training set, each scored on the whole test set; `v_measures`: the dataset's clustering sets for
the older clustering tasks, k-means on seeded resamples of the documents for the newer ones). An experiment
is paired by its index: mteb seeds each one the same way for every model, so experiment i sees the same
training sample, clustering set or documents in both runs. For classification and resampled clustering the
spread is that of mteb's probe, not of the test set (docs/statistics.md).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from evalkit.stats import Scores

KINDS = {"Retrieval": "query", "STS": "pair", "PairClassification": "pair", "Summarization": "document",
         "Classification": "experiment", "Clustering": "experiment"}
# mteb 2.26 rounds retrieval metrics to 5 decimals (retrieval_metrics.py) and every score in a result file to 6
# (TaskResult.to_disk): per-item scores recompute a file's score to within this
FILE_ROUNDING = 1e-5
NO_UNITS = {"MultilabelClassification": "mteb keeps no per-experiment scores of its main metric here"}


class Mismatch(ValueError):
    """Two runs whose items are not the same items: never paired."""


@dataclass(frozen=True)
class Units:
    """One task score's per-item scores: what they are (`kind`), their ids (query ids; positions for pairs,
    documents and experiments), the data they are of, and the score as `Scores`."""

    kind: str
    ids: tuple[str, ...]
    scores: Scores
    data: Any = None  # the run record's data identity; None when unknown
    gold: str = ""  # a digest of the gold labels of positional items ("" when there are none)

    def to_json(self) -> dict[str, Any]:
        """What the gate's baseline keeps: mean-type units as ids and values, other units as the per-item entry."""
        base = {"kind": self.kind, "ids": list(self.ids), "data": self.data, "gold": self.gold}
        if self.scores.values is not None:
            return {**base, "values": self.scores.values.tolist()}
        return {**base, "per_item": self.scores.statistic.entry}


def _digest(values) -> str:
    return hashlib.sha256(json.dumps([float(v) for v in values]).encode()).hexdigest()[:16]


class _EntryStatistic:
    """itemscores.statistic on a per-item entry held as arrays (converted once, not on every resample)."""

    def __init__(self, entry: Mapping[str, Any]):
        self.entry = dict(entry)
        self._arrays = {**self.entry, "scores": [np.asarray(c, dtype=float) for c in entry["scores"]]}
        if "gold" in entry:
            self._arrays["gold"] = np.asarray(entry["gold"], dtype=float)

    def __call__(self, index) -> float:
        from evalkit.itemscores import statistic

        return statistic(self._arrays, index)


def from_entry_json(entry: Mapping[str, Any], kind: str, data: Any) -> Units:
    statistic = _EntryStatistic(entry)
    n = len(entry["scores"][0])
    return Units(kind, tuple(str(i) for i in range(n)), Scores(n, statistic=statistic), data,
                 _digest(entry.get("gold", [])))


def from_record(record: Mapping[str, Any] | None, metric: str, task_type: str) -> tuple[Units | None, str | None]:
    """(units of `metric` from an evalkit run record, None) or (None, why there are none)."""
    if record is None:
        return None, "no run record"
    data = (record.get("identity") or {}).get("data") if isinstance(record.get("identity"), dict) else None
    per_query = (record.get("per_query") or {}).get(metric)
    if per_query:
        return Units("query", tuple(map(str, per_query)), Scores.mean_of(list(per_query.values())), data), None
    per_item = record.get("per_item") or {}
    if per_item.get("metric") == metric and per_item.get("scores"):
        return from_entry_json(per_item, KINDS.get(task_type, "item"), data), None
    return None, f"run record has no per-{'query' if task_type == 'Retrieval' else 'item'} {metric}"


def from_result(entry: Mapping[str, Any], metric: str, task_type: str, data: Any = None
                ) -> tuple[Units | None, str | None]:
    """(units from a TaskResult score entry, None) for classification and clustering: the per-experiment
    scores mteb averages, kept only when their mean is mteb's score; else (None, why there are none)."""
    if task_type in NO_UNITS:
        return None, NO_UNITS[task_type]
    if task_type == "Classification":
        values = [e.get(metric) for e in entry.get("scores_per_experiment") or []]
        where = "scores_per_experiment"
    elif task_type == "Clustering" and metric == "v_measure":
        raw = entry.get("v_measures")
        values = [v for level in raw.values() for v in level] if isinstance(raw, dict) else list(raw or [])
        where = "v_measures"
    else:
        return None, f"mteb keeps no per-item or per-experiment {metric} for {task_type}"
    if not values or any(not isinstance(v, (int, float)) for v in values):
        return None, f"the result file has no {where} of {metric}"
    if not math.isclose(float(np.mean(values)), float(entry.get(metric, math.nan)), rel_tol=0, abs_tol=FILE_ROUNDING):
        return None, f"the mean of {where} is not the score of {metric}"
    return Units("experiment", tuple(str(i) for i in range(len(values))), Scores.mean_of(values), data), None


def checked(units: Units | None, score: float) -> tuple[Units | None, str | None]:
    """The units when they recompute `score` (a fraction, as mteb writes it: rounded), else
    (None, why): a Δ or CI from per-item scores that are not the score's own would be a different number."""
    if units is None:
        return None, None
    again = units.scores.score
    if not math.isclose(again, float(score), rel_tol=0, abs_tol=FILE_ROUNDING):
        return None, f"per-{units.kind} scores give {again!r}, the result file {float(score)!r}"
    return units, None


def from_json(data: Mapping[str, Any]) -> Units:
    """Units as `Units.to_json` wrote them (the gate's baseline); KeyError/TypeError/ValueError when malformed."""
    if "values" in data:
        values = [float(v) for v in data["values"]]
        if len(values) != len(data["ids"]):
            raise ValueError(f"{len(data['ids'])} ids but {len(values)} values")
        return Units(data["kind"], tuple(map(str, data["ids"])), Scores.mean_of(values), data.get("data"))
    return from_entry_json(data["per_item"], data["kind"], data.get("data"))


def _same_data(a: Any, b: Any) -> bool:
    return a is None or b is None or a == b


def pair(a: Units, b: Units) -> tuple[Scores, Scores]:
    """A's and B's scores on the same items, B in A's order; Mismatch (its message says why) when the items
    are not the same: other ids, another count, other gold labels or other data."""
    if a.kind != b.kind:
        raise Mismatch(f"different units ({a.kind} vs {b.kind})")
    if not _same_data(a.data, b.data):
        raise Mismatch("different data (the run records' data identities differ)")
    if a.kind == "query":
        only_a, only_b = set(a.ids) - set(b.ids), set(b.ids) - set(a.ids)
        if only_a or only_b or len(set(a.ids)) != len(a.ids) or len(a.ids) != len(b.ids):
            raise Mismatch(f"different queries ({len(only_a)} only in A, {len(only_b)} only in B)")
        where = {qid: i for i, qid in enumerate(b.ids)}
        return a.scores, Scores.mean_of(b.scores.values[[where[qid] for qid in a.ids]])
    if not a.gold and (a.data is None or b.data is None):
        raise Mismatch(f"no data identity: cannot tell whether the {a.kind}s are the same")
    if len(a.ids) != len(b.ids):
        raise Mismatch(f"different {a.kind} counts ({len(a.ids)} vs {len(b.ids)})")
    if a.gold != b.gold:
        raise Mismatch(f"different gold labels: not the same {a.kind}s")
    return a.scores, b.scores
