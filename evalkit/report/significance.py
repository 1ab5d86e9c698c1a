"""Runs against each other: per task a paired Δ with CI and p, adjusted across tasks; means over tasks; ranks.

Δ = B − A in points on the items both runs scored (evalkit.units pairs them and refuses other data);
CIs from resampling the items jointly, p from sign flips or the bootstrap (evalkit.stats); p adjusted
across the tasks of one pair of runs (Holm or Benjamini-Hochberg). Rows go to comparisons.csv/.md.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from evalkit import stats
from evalkit.report.compare import task_order
from evalkit.report.metrics import CATEGORY_LABELS, metric_label, to_points
from evalkit.report.runs import Run
from evalkit.units import Mismatch, pair

COLUMNS = ("task", "a", "b", "metric", "delta", "ci_low", "ci_high", "p_value", "p_adjusted", "n_items", "method",
           "note")
ADJUSTMENT_NAMES = {"holm": "Holm", "bh": "Benjamini-Hochberg"}
PLURAL = {"query": "queries"}


@dataclass
class TaskComparison:
    """One task, one pair of runs: Δ = B − A in points; no CI/p where the items could not be paired."""

    task: str
    type: str
    a: str
    b: str
    metric: str
    delta: float | None
    ci: tuple[float, float] | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    n_items: int | None = None
    method: str = ""
    note: str = ""
    replicates: np.ndarray | None = field(default=None, repr=False)  # Δ on each resample (fractions)

    def significant(self, alpha: float) -> bool:
        return self.p_adjusted is not None and self.p_adjusted < alpha

    def row(self) -> dict:
        low, high = self.ci or (None, None)
        return {"task": self.task, "a": self.a, "b": self.b, "metric": self.metric, "delta": self.delta,
                "ci_low": low, "ci_high": high, "p_value": self.p_value, "p_adjusted": self.p_adjusted,
                "n_items": self.n_items, "method": self.method, "note": self.note}


def task_seed(seed: int, task: str) -> list[int]:
    """Each task's own random stream: tasks resampled independently, the same draws in every report."""
    return [seed, zlib.crc32(task.encode())]


def compare_task(a: Run, b: Run, task: str, *, seed: int, resamples: int) -> TaskComparison:
    sa, sb = a.scores[task], b.scores[task]
    row = TaskComparison(task, sa.type, a.name, b.name, sa.metric, None)
    if (sa.metric, sa.hf_subset) != (sb.metric, sb.hf_subset):
        row.note = f"not compared: {sa.metric}/{sa.hf_subset} vs {sb.metric}/{sb.hf_subset}"
        return row
    if sa.units is None or sb.units is None:
        row.delta = sb.score - sa.score
        why = "; ".join(f"{side}: {s.no_units}" for side, s in (("A", sa), ("B", sb)) if s.units is None)
        row.note = f"no paired test ({why}); Δ of the two scores, their data not checked"
        return row
    try:
        scores_a, scores_b = pair(sa.units, sb.units)
    except Mismatch as exc:
        row.note = f"not paired: {exc}"
        return row
    try:
        result = stats.paired(scores_a, scores_b, seed=task_seed(seed, task), resamples=resamples)
    except ValueError as exc:  # no items
        row.note = f"no paired test ({exc})"
        return row
    unit = sa.units.kind
    row.delta, row.ci = to_points(result.delta), (to_points(result.ci[0]), to_points(result.ci[1]))
    row.p_value, row.n_items, row.replicates = result.p_value, result.n, result.replicates
    row.method = f"{PLURAL.get(unit, unit + 's')}: {result.method}"
    if unit == "experiment":
        row.note = "units are mteb's experiments (classifier training samples, clustering sets or k-means resamples)"
    return row


def compare_runs(a: Run, b: Run, *, seed: int = 0, resamples: int = 1000, adjustment: str = "holm"
                 ) -> list[TaskComparison]:
    """Every task both runs scored, in the report's task order, p adjusted across those tasks."""
    tasks = sorted(set(a.scores) & set(b.scores), key=lambda t: task_order(t, a.scores[t].type))
    rows = [compare_task(a, b, t, seed=seed, resamples=resamples) for t in tasks]
    adjusted = stats.adjust([np.nan if r.p_value is None else r.p_value for r in rows], adjustment)
    for r, p in zip(rows, adjusted):
        r.p_adjusted = None if np.isnan(p) else float(p)
    return rows


def summary(rows: list[TaskComparison], alpha: float, adjustment: str, label: str = "all tasks"
            ) -> TaskComparison | None:
    """The mean Δ over the paired tasks with its CI (each task's items resampled on their own), its
    bootstrap p, and how many tasks B wins or loses significantly; None without a paired task."""
    paired = [r for r in rows if r.replicates is not None]
    if not paired:
        return None
    mean, (low, high) = stats.mean_over_tasks([r.delta for r in paired], [r.replicates for r in paired])
    means = np.mean([r.replicates for r in paired], axis=0)
    wins = sum(r.significant(alpha) and r.delta > 0 for r in paired)
    losses = sum(r.significant(alpha) and r.delta < 0 for r in paired)
    return TaskComparison(
        f"mean over {label} ({len(paired)})", "", paired[0].a, paired[0].b, "main metric of each task",
        mean, (to_points(low), to_points(high)), stats.bootstrap_p(means), None, sum(r.n_items for r in paired),
        "mean of per-task Δ; CI and p from each task's items resampled on their own",
        f"B significantly better on {wins}, worse on {losses} of {len(paired)} tasks "
        f"({ADJUSTMENT_NAMES[adjustment]}-adjusted p < {alpha:g})"
        + (f"; {len(rows) - len(paired)} tasks without a paired test left out" if len(rows) > len(paired) else ""))


def category_summaries(rows: list[TaskComparison], alpha: float, adjustment: str) -> dict[str, TaskComparison]:
    """Table-1 column -> the mean Δ over its tasks, p adjusted across the columns; only columns whose every
    shared task was paired (a partial mean would not be the column's)."""
    out = {}
    for category, label in CATEGORY_LABELS.items():
        mine = [r for r in rows if r.type == category]
        if mine and all(r.replicates is not None for r in mine):
            out[label] = summary(mine, alpha, adjustment, label)
    if rows and all(r.replicates is not None for r in rows):
        out["Avg"] = summary(rows, alpha, adjustment, "Avg")
    adjusted = stats.adjust([s.p_value for s in out.values()], adjustment)
    for s, p in zip(out.values(), adjusted):
        s.p_adjusted = float(p)
    return out


def reference_run(runs: list[Run], name: str | None) -> Run:
    """The run others are compared with: the one named, else the first with the model config's own settings."""
    if name:
        matches = [r for r in runs if name in (r.name, r.label, r.folder.name)]
        if len(matches) != 1:
            raise ValueError(f"--reference-run {name!r} names {len(matches)} runs (runs: "
                             f"{', '.join(r.name for r in runs)})")
        return matches[0]
    return next((r for r in runs if not r.variant), runs[0])


def all_pairs(runs: list[Run], reference: Run, **kwargs) -> list[list[TaskComparison]]:
    """Reference against each other run first (the pairs the tables mark), then every other pair."""
    others = [r for r in runs if r is not reference]
    pairs = [(reference, r) for r in others] + list(combinations(others, 2))
    return [compare_runs(a, b, **kwargs) for a, b in pairs]


@dataclass
class RankRow:
    run: str
    mean: float  # points, over the tasks ranked
    rank: int
    low: int
    high: int


def rank_table(runs: list[Run], *, seed: int = 0, resamples: int = 1000) -> tuple[list[RankRow], list[str]]:
    """Each run's mean score over the tasks every run scored with pairable items, its rank and the 95% interval
    of its rank over joint resamples (items of each task resampled alike for all runs); (rows, tasks used)."""
    if len(runs) < 2:
        return [], []
    tasks, replicates, observed = [], [], []
    for task in sorted(set.intersection(*(set(r.scores) for r in runs))):
        first = runs[0].scores[task]
        if any(r.scores[task].units is None or r.scores[task].metric != first.metric for r in runs):
            continue
        try:
            aligned = [pair(first.units, r.scores[task].units)[1] for r in runs]
            replicates.append(stats.joint_replicates(aligned, seed=task_seed(seed, task), resamples=resamples))
        except ValueError:  # Mismatch included: other items, or none
            continue
        tasks.append(task)
        observed.append([s.score for s in aligned])
    if not tasks:
        return [], []
    means = np.mean(replicates, axis=0)  # (resamples, runs)
    centre = np.mean(observed, axis=0)
    intervals = stats.rank_intervals(means)
    rows = [RankRow(r.name, to_points(m), int(k), lo, hi)
            for r, m, k, (lo, hi) in zip(runs, centre, stats.ranks(centre), intervals)]
    return sorted(rows, key=lambda row: row.rank), tasks


def describe_method(resamples: int, seed: int, alpha: float, adjustment: str) -> str:
    return (f"Δ = B − A in points on the items both runs scored (queries, pairs, documents; for classification "
            f"and clustering mteb's experiments). 95% CI: paired percentile bootstrap, items resampled jointly "
            f"({resamples} resamples, seed {seed}). p (two-sided): sign-flip permutation test of the mean per-item "
            f"difference where the score is a mean over items, else twice the smaller bootstrap tail beyond 0. "
            f"p_adjusted: {ADJUSTMENT_NAMES[adjustment]} across the tasks of each pair of runs; significant: "
            f"p_adjusted < {alpha:g}. Runs whose items differ (other ids, gold labels or data) are never paired.")


def fmt(value, decimals: int = 2) -> str:
    return "" if value is None else f"{value:.{decimals}f}"


def metric_name(row: TaskComparison) -> str:
    return metric_label(row.metric) if row.type else row.metric


def write(pairs: list[list[TaskComparison]], ranking: tuple[list[RankRow], list[str]], out, *, alpha: float,
          adjustment: str, seed: int, resamples: int) -> list:
    """comparisons.csv (one row per task and pair of runs, then each pair's mean over tasks), comparisons.md
    (the same, readable, with the rank intervals) and ranks.csv; returns the paths written."""
    import csv

    rows = []
    for task_rows in pairs:
        rows += task_rows
        mean = summary(task_rows, alpha, adjustment)
        rows += [mean] if mean else []
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "comparisons.csv", out / "comparisons.md"]
    with open(paths[0], "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) and k not in ("p_value", "p_adjusted")
                                 else f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.row().items()})
    lines = ["## Runs compared, paired by item", "", "| task | A | B | metric | Δ (B − A) | 95% CI | p | p adj. | n | note |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        ci = f"[{r.ci[0]:.2f}, {r.ci[1]:.2f}]" if r.ci else "–"
        mark = "*" if r.significant(alpha) else ""
        lines.append(f"| {r.task} | {r.a} | {r.b} | {metric_name(r)} | {fmt(r.delta) or '–'}{mark} | {ci} | "
                     f"{fmt(r.p_value, 4) or '–'} | {fmt(r.p_adjusted, 4) or '–'} | {r.n_items or '–'} | {r.note} |")
    lines += ["", f"- {describe_method(resamples, seed, alpha, adjustment)} *: significant.",
              "- mean over …: the mean of the per-task Δs (points), its CI and p from resampling each task's items on "
              "their own; 'significantly better/worse' counts tasks with adjusted p below the level."]
    ranks, tasks = ranking
    if ranks:
        paths.append(out / "ranks.csv")
        with open(paths[2], "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["run", "mean", "rank", "rank_low", "rank_high", "tasks"])
            for r in ranks:
                writer.writerow([r.run, f"{r.mean:.4f}", r.rank, r.low, r.high, len(tasks)])
        lines += ["", "## Rank intervals", "", "| run | mean (points) | rank | 95% rank interval |",
                  "| --- | ---: | ---: | ---: |"]
        lines += [f"| {r.run} | {r.mean:.2f} | {r.rank} | {r.low}–{r.high} |" for r in ranks]
        lines += ["", f"- Over the {len(tasks)} tasks every run scored on the same items ({', '.join(tasks)}): mean "
                  f"main score; rank 1 = best. Interval: the 2.5th to 97.5th percentile of each run's rank over "
                  f"{resamples} resamples, each task's items resampled alike for all runs."]
    paths[1].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


@dataclass
class Marks:
    """Which cells of the tables differ significantly from the reference run: per run, per task (per-task table)
    and per Table-1 column (the mean over the column's tasks, only where both runs have the same tasks there)."""

    reference: Run
    alpha: float
    adjustment: str
    tasks: dict[str, dict[str, bool]] = field(default_factory=dict)  # run name -> task -> significant
    columns: dict[str, dict[str, bool]] = field(default_factory=dict)  # run name -> Table-1 column -> significant

    @property
    def tested(self) -> bool:
        """Whether any task of any run was tested against the reference (else the tables say nothing of it)."""
        return any(self.tasks.values())

    def note(self, what: str) -> str:
        return (f"*: differs from {self.reference.label} at p < {self.alpha:g} ({what}; paired by item, "
                f"{ADJUSTMENT_NAMES[self.adjustment]}-adjusted; comparisons.csv has Δ, CI and p)")


def table_marks(reference: Run, pairs: list[list[TaskComparison]], runs: list[Run], alpha: float,
                adjustment: str, english: set[str]) -> Marks:
    """Marks from the reference-vs-run pairs (the first len(runs) - 1 of `all_pairs`)."""
    marks = Marks(reference, alpha, adjustment)
    others = [r for r in runs if r is not reference]
    for run, rows in zip(others, pairs):
        marks.tasks[run.name] = {r.task: r.significant(alpha) for r in rows if r.p_adjusted is not None}
        shared = [r for r in rows if r.task in english]
        same = {category: {t for t in run.scores if t in english and run.scores[t].type == category}
                == {t for t in reference.scores if t in english and reference.scores[t].type == category}
                for category in CATEGORY_LABELS}
        columns = category_summaries(shared, alpha, adjustment)
        label_of = {label: category for category, label in CATEGORY_LABELS.items()}
        marks.columns[run.name] = {
            column: s.significant(alpha) for column, s in columns.items()
            if (same[label_of[column]] if column in label_of else all(same.values()))}
    return marks
