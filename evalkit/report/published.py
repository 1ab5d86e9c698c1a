"""Published MTEB numbers shipped with evalkit (`evalkit/report/reference/*.tsv`), in points (0-100).

`load_published("intfloat/e5-mistral-7b-instruct")` gives the model's per-task scores keyed by mteb v2
metric key, plus the paper's Table-1 averages where the paper gives them. See reference/README.md.

Some published numbers cannot be compared with an mteb 2 run: a row marked `comparable: no` (its `note`
says why), and every Reranking score from mteb 1, since mteb 2 evaluates reranking retrieval-style. They
carry a note, which the report prints as a footnote instead of counting their Δ.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.resources import files

from evalkit.report.metrics import CATEGORY_LABELS, short_model_name, v2_metric
from evalkit.results import model_from_folder

REFERENCE_DIR = files("evalkit.report") / "reference"  # package data, read the same from a wheel or a clone
E5 = "intfloat/e5-mistral-7b-instruct"
TASK_FILES = {E5: "e5-mistral-7b-instruct.tsv"}
AVERAGES_FILES = {E5: "e5-mistral-7b-instruct.averages.tsv"}
BASELINES_FILE = "baselines.tsv"
# published numbers for the tasks of the local mteb dataset folders (../shared/data/mteb), same columns plus
# hf_subset, comparable and note
MTEB_DATA_FILE = "baselines.mteb-data.tsv"
RERANKING_NOTE = ("published with mteb 1, which reranked each query's candidates by MAP; mteb 2 evaluates "
                  "reranking retrieval-style (map@1000 on new dataset revisions): not comparable")
# baselines.tsv has several rows per (model, task, metric); this is the `kind` each model uses.
PREFERRED_KIND = {
    "sentence-transformers/all-MiniLM-L6-v2": "mteb_results_run",
    "BAAI/bge-small-en-v1.5": "model_card",
    E5: "model_card",
}
KIND_DESCRIPTIONS = {
    "model_card": "HF model card (model-index)",
    "mteb_results_run": "mteb run in embeddings-benchmark/results",
    "mteb_legacy_run": "legacy mteb 0.0.2 run in embeddings-benchmark/results",
}


@dataclass(frozen=True)
class Published:
    """One model's published numbers."""

    model: str
    kind: str
    scores: dict[str, dict[str, float]]  # task -> mteb v2 metric key -> points
    averages: dict[str, tuple[float, int]] = field(default_factory=dict)  # Table-1 label -> (points, n tasks)
    averages_decimals: int = 1
    notes: dict[str, str] = field(default_factory=dict)  # task -> why its published score is not comparable
    subsets: dict[str, str] = field(default_factory=dict)  # task -> the subset of its score, where the file says

    @property
    def name(self) -> str:
        """Short model name, plus the kind where it is not the model's usual one."""
        suffix = "" if self.kind == PREFERRED_KIND.get(self.model) else f":{self.kind}"
        return short_model_name(self.model) + suffix

    @property
    def label(self) -> str:
        return f"{self.name} (published)"

    def score(self, task: str, metric: str) -> float | None:
        return self.scores.get(task, {}).get(metric)

    def note(self, task: str) -> str | None:
        return self.notes.get(task)

    def matches(self, task: str, hf_subset: str) -> bool:
        """Whether a run's score of this subset can be set against the published one."""
        return self.subsets.get(task, hf_subset) == hf_subset


def _read_tsv(name: str) -> list[dict[str, str]]:
    with REFERENCE_DIR.joinpath(name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@lru_cache(maxsize=1)
def mteb_english_tasks() -> dict[str, tuple[str, str]]:
    """The 56 MTEB-English (v1) tasks of the paper's Table 1 -> (task type, mteb v2 main-metric key)."""
    return {row["task"]: (row["type"], v2_metric(row["metric"], row["task"])) for row in _read_tsv(TASK_FILES[E5])}


def _baseline_rows() -> list[dict[str, str]]:
    return _read_tsv(BASELINES_FILE) + _read_tsv(MTEB_DATA_FILE)


def _not_comparable(row: dict[str, str], task_type: str | None) -> str | None:
    """Why a published row cannot be compared with an mteb 2 run, or None. A row without an mteb version
    (a model card) predates mteb 2."""
    if row.get("comparable", "yes") == "no":
        return row.get("note") or "marked not comparable"
    version = re.match(r"\d+", row.get("mteb_version") or "")
    return RERANKING_NOTE if task_type == "Reranking" and (version is None or int(version[0]) < 2) else None


def available_models() -> dict[str, list[str]]:
    """Model -> the `kind`s of published numbers shipped for it (preferred kind first)."""
    kinds: dict[str, list[str]] = {model: [kind] for model, kind in PREFERRED_KIND.items()}
    for row in _baseline_rows():
        kinds.setdefault(row["model"], [])
        if row["kind"] not in kinds[row["model"]]:
            kinds[row["model"]].append(row["kind"])
    return kinds


def resolve_model(name: str) -> str:
    """Full model name for `name`: full, `org__model` or short name, any case."""
    wanted = model_from_folder(name).lower()
    for model in available_models():
        if wanted in (model.lower(), short_model_name(model).lower()):
            return model
    known = ", ".join(available_models())
    raise KeyError(f"no published numbers for {name!r} (known: {known})")


def load_published(name: str, kind: str | None = None) -> Published:
    """Published numbers for a model; `name` may end in `:KIND` to pick a baselines.tsv kind."""
    if kind is None and ":" in name:
        name, kind = name.split(":", 1)
    model = resolve_model(name)
    kinds = available_models()[model]
    kind = kind or kinds[0]
    if kind not in kinds:
        raise KeyError(f"no {kind!r} numbers for {model} (available: {', '.join(kinds)})")
    scores: dict[str, dict[str, float]] = {}
    notes: dict[str, str] = {}
    subsets: dict[str, str] = {}
    types = {task: task_type for task, (task_type, _) in mteb_english_tasks().items()}

    def add(row: dict[str, str]) -> None:
        scores.setdefault(row["task"], {})[v2_metric(row["metric"], row["task"])] = float(row["score"])
        note = _not_comparable(row, row.get("type") or types.get(row["task"]))
        if note:
            notes[row["task"]] = note
        if row.get("hf_subset"):
            subsets[row["task"]] = row["hf_subset"]

    for row in _baseline_rows():
        if row["model"] == model and row["kind"] == kind:
            add(row)
    averages: dict[str, tuple[float, int]] = {}
    if model in TASK_FILES and kind == PREFERRED_KIND[model]:
        for row in _read_tsv(TASK_FILES[model]):
            add(row)
        for row in _read_tsv(AVERAGES_FILES[model]):
            averages[row["paper_label"]] = (float(row["score"]), int(row["n_datasets"]))
        if not set(averages) >= {*CATEGORY_LABELS.values(), "Avg", "BEIR"}:
            raise ValueError(f"{AVERAGES_FILES[model]} lacks a Table-1 column")
    return Published(model, kind, scores, averages, notes=notes, subsets=subsets)
