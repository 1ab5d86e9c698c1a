"""Runs: the scores of each `<org__model>/<revision>/` results folder, read back for the report.

Reads mteb TaskResult files and, where present, evalkit's run record beside them, whose per-query
(retrieval) and per-item (STS, pair classification, summarization) scores give bootstrap confidence
intervals. Where results live and how a folder names its model is `evalkit.results`' business; each
problem with a file is one line on stderr and the rest goes on.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any, Mapping

from evalkit import units as item_units
from evalkit.identity import describe, is_published
from evalkit.itemscores import statistic
from evalkit.report.metrics import short_model_name, to_points
from evalkit.results import identify_model, read_run_records, result_files, scores_entry
from evalkit.errors import first_line, show_traceback
from evalkit.stats import bootstrap_ci, statistic_ci

SPEC_KEYS = ("type", "split", "hf_subset", "metric")
SUBSET_PREFERENCE = ("default", "en", "en-en")
CI_TYPES = ("Retrieval", "STS", "PairClassification", "Summarization")  # where a run record can give a CI
FILE_ROUNDING = 5e-5 + 1e-9  # points: mteb writes a result file's scores to 6 decimals of a fraction
QUERY_MEAN_ROUNDING = 5e-4 + 1e-9  # points: mteb rounds the mean of per-query retrieval scores to 5 decimals


class ReportInputError(Exception):
    """A result file that cannot be used; reported as one line, the report goes on."""


@dataclass
class TaskScore:
    task: str
    type: str
    metric: str  # mteb v2 key of the main metric
    score: float  # points, 0-100
    ci: tuple[float, float] | None = None  # 95% bootstrap CI over queries, pairs or documents, points
    data: str | None = None  # "published" | "local" (not the published test set) | "unverified" | None (unknown)
    hf_subset: str = "default"  # the subset the score is of
    units: item_units.Units | None = None  # the per-item (or per-experiment) scores behind it, for comparisons
    no_units: str | None = None  # why there are none
    mismatch: str | None = None  # why the score contradicts its run record (flagged in every table), or None

    @property
    def comparable(self) -> bool:
        """Whether a published number of this task may be set against it (not when the data is known to differ)."""
        return self.data != "local"

    @property
    def flag(self) -> str | None:
        """The note every table prints beside a score that contradicts its run record, or None."""
        return None if self.mismatch is None else (
            f"{self.task}: {self.mismatch}: the result file was edited or is not this run's; not trusted "
            f"(no CI; its Δ is not counted; left out of the averages)")


@dataclass
class Run:
    """The scores of one model revision: one `<org__model>/<revision>/` folder."""

    model: str
    revision: str
    folder: Path
    scores: dict[str, TaskScore] = field(default_factory=dict)
    name: str = ""  # short model name and variant, plus `@revision` when two runs share both
    differs: dict[str, str] = field(default_factory=dict)  # settings that differ from the defaults (run records)

    @property
    def label(self) -> str:
        return f"{self.name} (ours)"

    @property
    def variant(self) -> str:
        """What sets this run apart from the published protocol and test set, for every label; "" when nothing."""
        settings = {k: v for k, v in self.differs.items() if k != "data"}
        data = {s.data for s in self.scores.values()}
        notes = [describe(settings)] if settings else []
        if "local" in data:
            where = self.differs.get("data")
            notes.append(f"local data{' ' + where if where else ''}, not the published test set")
        elif "unverified" in data:
            notes.append("local data, unverified")
        return "; ".join(notes)


def warn(message: str) -> None:
    print(f"evalkit.report: {message}", file=sys.stderr)




def _mteb_spec(result) -> dict:
    """Type, split, subset and main metric from mteb's own task metadata (task not in the registry)."""
    import mteb

    try:
        meta = mteb.get_task(result.task_name).metadata
    except (KeyError, ValueError) as exc:
        raise ReportInputError(f"task {result.task_name!r} is neither in tasks/ nor known to mteb") from exc
    split = next((s for s in meta.eval_splits if s in result.scores), next(iter(result.scores), None))
    subsets = [entry.get("hf_subset") for entry in result.scores.get(split, [])]
    subset = next((s for s in SUBSET_PREFERENCE if s in subsets), subsets[0] if subsets else "default")
    return {"type": meta.type, "split": split, "hf_subset": subset, "metric": meta.main_score}


def task_spec(result, registry: Mapping[str, Any], record: dict | None) -> dict:
    """What to read from a TaskResult: the run record's spec, else the task registry's, else mteb's."""
    spec = registry.get(result.task_name)
    from_registry = {key: str(getattr(spec, key)) for key in SPEC_KEYS} if spec is not None else None
    for source in (record, from_registry):
        if source and all(source.get(key) for key in SPEC_KEYS):
            return {key: source[key] for key in SPEC_KEYS}
    return _mteb_spec(result)


def read_task_score(path: Path, registry: Mapping[str, Any], record: dict | None) -> TaskScore:
    """The main score of one TaskResult file, as its run record, the task registry (mteb name -> TaskSpec)
    or mteb says to read it."""
    from mteb.results import TaskResult

    try:
        result = TaskResult.from_disk(path)
    except Exception as exc:
        raise ReportInputError(f"not an mteb TaskResult ({first_line(exc, 160, with_type=True)})") from exc
    spec = task_spec(result, registry, record)
    entry = scores_entry(result.scores, spec["split"], spec["hf_subset"])
    if entry is None or spec["metric"] not in entry:
        raise ReportInputError(f"no {spec['metric']} for split {spec['split']!r}, subset {spec['hf_subset']!r}")
    try:
        score = to_points(entry[spec["metric"]])
    except (TypeError, ValueError) as exc:
        raise ReportInputError(str(exc)) from exc
    task_score = TaskScore(result.task_name, spec["type"], spec["metric"], score, data=data_status(record),
                           hf_subset=spec["hf_subset"])
    try:
        if spec["type"] in CI_TYPES:
            task_score.units, task_score.no_units = item_units.from_record(record, spec["metric"], spec["type"])
            if task_score.units is not None:
                task_score.units, task_score.no_units = item_units.checked(task_score.units, entry[spec["metric"]])
        else:
            data = ((record or {}).get("identity") or {}).get("data") or {"dataset_revision": result.dataset_revision}
            task_score.units, task_score.no_units = item_units.from_result(entry, spec["metric"], spec["type"], data)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        task_score.no_units = f"unusable per-item scores ({first_line(exc, 160, with_type=True)})"
    return task_score


def data_status(record: dict | None) -> str | None:
    """"published" or "local" from the data identity in the run record (a local folder is the published test
    set only when its fingerprint is one shipped in reference/test_sets.tsv); "unverified" for a local folder
    named by an older record without one; None when nothing is known."""
    identity = (record or {}).get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("data"), dict):
        task = identity.get("task") or {}
        return "published" if is_published(identity["data"], task.get("mteb_task"), task.get("split"),
                                           task.get("hf_subset")) else "local"
    return "unverified" if (record or {}).get("data_dir") else None


def score_ci(score: TaskScore, seed: int, resamples: int) -> str | None:
    """Set `score.ci` from its per-query or per-item scores; the reason when there is none."""
    if score.units is None:
        return score.no_units
    try:
        if score.units.scores.values is not None:
            low, high = bootstrap_ci(score.units.scores.values, seed=seed, resamples=resamples)
        else:
            low, high = statistic_ci(score.units.scores.statistic, score.units.scores.n, seed=seed,
                                     resamples=resamples)
        score.ci = (to_points(low), to_points(high))
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        return f"unusable per-{score.units.kind} scores ({first_line(exc, 160, with_type=True)})"
    return None


def record_mismatch(score: TaskScore, record: dict | None) -> str | None:
    """Why the result file's score contradicts its run record: the score the record holds, the mean of its
    per-query scores or the metric recomputed from its per-item scores, each within mteb's rounding; None when
    they agree or the record has none of them for this metric and subset."""
    if not record or record.get("metric") != score.metric or record.get("hf_subset", score.hf_subset) != score.hf_subset:
        return None
    shown = f"the result file says {score.score:.4f}"
    stored = record.get("score")
    if isinstance(stored, (int, float)) and abs(to_points(stored) - score.score) > FILE_ROUNDING:
        return f"{shown}, its run record {to_points(stored):.4f}"
    per_query = (record.get("per_query") or {}).get(score.metric)
    if per_query and len(record.get("hf_subsets") or [score.hf_subset]) == 1:
        mean = to_points(fmean(per_query.values()))
        if abs(mean - score.score) > QUERY_MEAN_ROUNDING:
            return f"{shown}, the mean of its {len(per_query)} per-query scores {mean:.4f}"
    per_item = record.get("per_item") or {}
    if per_item.get("metric") == score.metric:
        again = to_points(statistic(per_item))
        if abs(again - score.score) > FILE_ROUNDING:
            return f"{shown}, its per-item scores give {again:.4f}"
    return None


def load_run(folder: Path, registry: Mapping[str, Any], seed: int = 0, resamples: int = 1000) -> Run:
    records, problems = read_run_records(folder)
    for problem in problems:
        warn(problem)
    run = Run(*identify_model(folder, records), folder)
    for record in records.values():
        differs = (record.get("experiment") or {}).get("differs")
        run.differs.update(differs if isinstance(differs, dict) else {})
    no_ci = []
    for path in (p for p in result_files(folder) if p.parent == folder):
        try:
            score = read_task_score(path, registry, records.get(path.stem))
        except ReportInputError as exc:
            show_traceback(exc)
            warn(f"{path}: {exc}; skipped")
            continue
        run.scores[score.task] = score
        try:
            score.mismatch = record_mismatch(score, records.get(score.task))
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            score.mismatch = f"its run record's scores are unusable ({first_line(exc, 160, with_type=True)})"
        if score.mismatch:
            warn(f"{path}: {score.flag}")
            score.units, score.no_units = None, "its result file contradicts its run record"  # never compared
        elif score.type in CI_TYPES:
            reason = score_ci(score, seed, resamples)
            if reason:
                no_ci.append(f"{score.task} ({reason})")
    if no_ci:
        warn(f"{folder}: no confidence interval for {', '.join(no_ci)}")
    return run


def find_runs(results_dir: Path, registry: Mapping[str, Any], seed: int = 0, resamples: int = 1000) -> list[Run]:
    """Every run under `results_dir` (a results root, a model folder or a revision folder)."""
    if not results_dir.is_dir():
        warn(f"{results_dir}: no such results folder")
        return []
    files = result_files(results_dir)
    if not files:
        warn(f"{results_dir}: no result files (expected <org__model>/<revision>/<Task>.json)")
        return []
    runs = [load_run(folder, registry, seed, resamples) for folder in sorted({p.parent for p in files})]
    for run in runs:
        if not run.scores:
            warn(f"{run.folder}: no usable task scores")
    return [run for run in runs if run.scores]


def name_runs(runs: list[Run]) -> None:
    """Short, distinct names: the model and, in brackets, what differs from the published protocol and test set;
    a model and variant seen in several folders get `@revision` (7 characters), then `#n`."""
    kinds = [(run.model, run.variant) for run in runs]
    for run in runs:
        suffix = f"@{run.revision[:7]}" if kinds.count((run.model, run.variant)) > 1 else ""
        run.name = short_model_name(run.model) + suffix + (f" [{run.variant}]" if run.variant else "")
    names = [run.name for run in runs]
    for i, run in enumerate(runs):
        if names.count(run.name) > 1:
            run.name += f"#{names[:i].count(run.name) + 1}"
