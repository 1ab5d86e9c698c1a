"""Score scale and naming, in one place.

mteb stores scores as fractions (0-1) under v2 metric keys (`cosine_spearman`); the paper and
the published tables report points (0-100) under MTEB v1 names (`cos_sim_spearman`). Every
conversion between the two, and every label the report prints, goes through this module.
"""

from __future__ import annotations

import math

from evalkit.results import model_from_folder

# MTEB v1 main-metric name (paper, published TSVs) -> mteb v2 score key (TaskResult files).
V1_TO_V2 = {
    "accuracy": "accuracy",
    "v_measure": "v_measure",
    "cos_sim_ap": "cosine_ap",
    "map": "map_at_1000",
    "ndcg_at_10": "ndcg_at_10",
    "cos_sim_spearman": "cosine_spearman",
    "map_at_10": "map_at_10",
    "mrr_at_10": "mrr_at_10",
    "recall_at_100": "recall_at_100",
}
# Tasks whose v2 key is not the generic translation of their v1 metric.
TASK_V2_OVERRIDES = {("MindSmallReranking", "map"): "max_over_subqueries_map_at_1000"}

METRIC_LABELS = {
    "accuracy": "Accuracy",
    "v_measure": "V-measure",
    "cosine_ap": "AP (cosine)",
    "max_ap": "AP (max over similarity functions)",
    "map_at_1000": "MAP@1000",
    "max_over_subqueries_map_at_1000": "MAP@1000",
    "ndcg_at_10": "nDCG@10",
    "cosine_spearman": "Spearman (cosine)",
    "map_at_10": "MAP@10",
    "mrr_at_10": "MRR@10",
    "recall_at_100": "Recall@100",
}

# Task types in the paper's Table-1 column order, with the paper's column labels.
CATEGORY_LABELS = {
    "Classification": "Class.",
    "Clustering": "Clust.",
    "PairClassification": "PairClass.",
    "Reranking": "Rerank",
    "Retrieval": "Retr.",
    "STS": "STS",
    "Summarization": "Summ.",
}
CATEGORIES = tuple(CATEGORY_LABELS)
BEIR_METRIC = "ndcg_at_10"


def v2_metric(v1_name: str, task: str | None = None) -> str:
    """The mteb v2 score key for a v1 metric name (unknown names pass through unchanged)."""
    return TASK_V2_OVERRIDES.get((task, v1_name)) or V1_TO_V2.get(v1_name, v1_name)


def metric_label(v2_key: str) -> str:
    return METRIC_LABELS.get(v2_key, v2_key)


def to_points(fraction: float) -> float:
    """An mteb score (0-1) in points (0-100), the paper's scale."""
    value = float(fraction)
    if not math.isfinite(value) or abs(value) > 1.0:
        raise ValueError(f"score {value!r} is not on mteb's 0-1 scale")
    return 100.0 * value


def short_model_name(model: str) -> str:
    """`intfloat/e5-mistral-7b-instruct` -> `e5-mistral-7b-instruct`."""
    return model_from_folder(model).rsplit("/", 1)[-1]
