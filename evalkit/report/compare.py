"""Each run next to the published numbers it is compared with: which reference, and the Δ per task."""

from __future__ import annotations

from dataclasses import dataclass

from evalkit.report.metrics import CATEGORIES, metric_label
from evalkit.report.published import Published, available_models, load_published, mteb_english_tasks
from evalkit.report.runs import Run, warn


@dataclass(frozen=True)
class Comparison:
    """One task of one run, next to its reference's published score (points)."""

    task: str
    type: str
    metric: str
    ours: float
    published: float | None
    ci: tuple[float, float] | None
    note: str | None = None  # why the published score is not comparable: its Δ is explained, not a regression

    @property
    def shown(self) -> str:
        """The task's name for a plot, with the metric where it is not the task's main one (`task.metric=`)."""
        main = mteb_english_tasks().get(self.task, (None, None))[1]
        return self.task if main in (None, self.metric) else f"{self.task} ({metric_label(self.metric)})"

    @property
    def delta(self) -> float | None:
        return None if self.published is None else self.ours - self.published

    @property
    def like_for_like(self) -> bool:
        """The run scored the published test set with the published protocol, and the published score is one
        to compare with (no note): the pairs a Δ, an outlier or a same-tasks average may be built from."""
        return self.published is not None and self.note is None

    @property
    def outside_ci(self) -> bool | None:
        if self.published is None or self.ci is None or self.note:
            return None
        return not self.ci[0] <= self.published <= self.ci[1]


def reference_for(run: Run, references: list[Published]) -> Published | None:
    """The published numbers a run's Δ is taken against: its own model's, else the first --compare."""
    return next((p for p in references if p.model == run.model), references[0] if references else None)


def delta_heading(run: Run, reference: Published | None) -> str:
    """The Δ column's heading: what minus what, and whether the published numbers are another model's."""
    if reference is None:
        return f"Δ {run.name}"
    if reference.model == run.model:
        return f"Δ {run.name}: ours − published"
    return f"Δ {run.name}: ours − {reference.name} published (another model)"


def task_order(task: str, task_type: str) -> tuple[int, str]:
    return (CATEGORIES.index(task_type) if task_type in CATEGORIES else len(CATEGORIES), task.lower())


def comparisons(run: Run, reference: Published | None) -> list[Comparison]:
    """Each task of the run next to its published score; none where the run's data is not the published test
    set (a Δ between two test sets means nothing)."""
    scores = sorted(run.scores.values(), key=lambda s: task_order(s.task, s.type))
    out = []
    for s in scores:
        same = reference is not None and s.comparable and reference.matches(s.task, s.hf_subset)
        published = reference.score(s.task, s.metric) if same else None
        note = (s.flag or reference.note(s.task)) if published is not None else None
        out.append(Comparison(s.task, s.type, s.metric, s.score, published, s.ci, note))
    return out


def warn_missing_published(runs: list[Run], references: list[Published]) -> None:
    seen = set()
    for run in runs:
        reference = reference_for(run, references)
        local = [s.task for s in run.scores.values() if not s.comparable]
        if local:
            warn(f"{run.label}: {', '.join(sorted(local))}: local data, not the published test set; no Δ")
        for c in comparisons(run, reference) if reference else []:
            if c.published is None and c.task not in local and (c.task, c.metric, reference.label) not in seen:
                seen.add((c.task, c.metric, reference.label))
                subset = run.scores[c.task].hf_subset
                other = "" if reference.matches(c.task, subset) else (
                    f" for subset {subset} (it has {reference.subsets[c.task]})")
                warn(f"{c.task}: no published {metric_label(c.metric)} in {reference.label}{other}; no Δ")


def load_references(names: list[str], runs: list[Run]) -> list[Published]:
    """The published numbers named by --compare; by default those of the models that were run."""
    if not names:
        known = {m.lower() for m in available_models()}
        names = list(dict.fromkeys(run.model for run in runs if run.model.lower() in known))
        if not names:
            warn(f"no published numbers for {', '.join(sorted({r.model for r in runs}))}; "
                 f"pass --compare MODEL (known: {', '.join(available_models())})")
    references = []
    for name in names:
        try:
            references.append(load_published(name))
        except (KeyError, ValueError) as exc:
            warn(str(exc).strip('"'))
    return references
