"""Plots of one run against its published reference (matplotlib's object API on Agg canvases; PNG and SVG).

bars    per-task scores, ours vs published, grouped by task category
scatter ours vs published, the y = x line, the outlying tasks labelled
delta   Δ = ours − published per task, sorted, with the CI of Δ where the run record gives one
forest  Δ = B − A per task between two runs, with its paired 95% CI, significant ones filled
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from evalkit.report.compare import Comparison, comparisons, reference_for
from evalkit.report.metrics import CATEGORIES, CATEGORY_LABELS
from evalkit.report.runs import warn

if TYPE_CHECKING:
    from evalkit.report.published import Published
    from evalkit.report.runs import Run
    from evalkit.report.significance import TaskComparison

OURS, PUBLISHED = "#1f77b4", "#bbbbbb"
CATEGORY_COLORS = dict(zip(CATEGORIES, matplotlib.colormaps["tab10"].colors))
OUTLIER_POINTS = 2.0  # |Δ| at or above this many points gets a label in the scatter
MAX_LABELS = 12
ROW_INCHES = 0.26  # height of one task row in the bar charts
LEADER = {"arrowstyle": "-", "color": "#666666", "lw": 0.6, "shrinkA": 1, "shrinkB": 4}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.@-]+", "-", text).strip("-")


def _color(task_type: str):
    return CATEGORY_COLORS.get(task_type, "#7f7f7f")


def _figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas: no pyplot, no process-wide backend or figure registry."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, stem: Path) -> list[Path]:
    """PNG and SVG (text kept as text, so it stays searchable and editable)."""
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        for path in paths:
            fig.savefig(path, dpi=150, bbox_inches="tight")
    return paths


def _grouped(rows: list[Comparison]) -> list[tuple[str, list[Comparison]]]:
    """(category, its rows) in the paper's category order; unknown types last, as "Other"."""
    groups = [(c, [r for r in rows if r.type == c]) for c in CATEGORIES]
    groups.append(("Other", [r for r in rows if r.type not in CATEGORIES]))
    return [(category, group) for category, group in groups if group]


def bars(rows: list[Comparison], ours: str, published: str):
    """Horizontal bars per task, ours above published, under a header row per category."""
    ordered, positions, headers, y = [], [], [], 0.0
    for category, group in _grouped(rows):
        headers.append((category, y))
        y += 1
        for row in group:
            ordered.append(row)
            positions.append(y)
            y += 1
        y += 0.3
    fig = _figure(8, 1.2 + ROW_INCHES * y)
    ax = fig.subplots()
    ax.barh([p - 0.2 for p in positions], [r.ours for r in ordered], 0.4, color=OURS, label=ours)
    ax.barh([p + 0.2 for p in positions], [r.published for r in ordered], 0.4, color=PUBLISHED, label=published)
    for category, header in headers:
        short = CATEGORY_LABELS.get(category, category)
        ax.text(1, header, category if short == category else f"{category} ({short})", va="center",
                fontsize=9, fontweight="bold", color=_color(category))
    ax.set_yticks(positions, [r.shown for r in ordered], fontsize=8)
    ax.set_ylim(y - 0.6, -0.7)
    ax.set_xlim(0, 100)
    ax.set_xlabel("Score of the task's main metric (points, 0–100)")
    ax.set_title(f"Per-task scores: {ours} vs {published}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    return fig


def scatter(rows: list[Comparison], ours: str, published: str):
    """Ours (y) vs published (x); y = x dashed; the tasks with the largest |Δ| ≥ OUTLIER_POINTS ringed and
    named in the right margin."""
    fig = _figure(7.5, 7)
    ax = fig.subplots()
    values = [v for r in rows for v in (r.ours, r.published)]
    low, high = max(0.0, min(values) - 5), min(100.0, max(values) + 5)
    ax.plot([low, high], [low, high], "--", color="#555555", lw=1, label="y = x (same as published)")
    for category, group in _grouped(rows):
        ax.scatter([r.published for r in group], [r.ours for r in group], s=28, color=_color(category),
                   label=category, zorder=3, edgecolor="white", linewidth=0.5)
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_aspect("equal")
    ax.set_xlabel("Published score (points)")
    ax.set_ylabel("Our score (points)")
    ax.set_title(f"{ours} vs {published}\n"
                 f"labelled: the tasks with |Δ| ≥ {OUTLIER_POINTS:g} points (Δ in brackets)", fontsize=11)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=4, fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
    outliers = sorted((r for r in rows if r.like_for_like and abs(r.delta) >= OUTLIER_POINTS),
                      key=lambda r: -abs(r.delta))[:MAX_LABELS]  # a Δ with a note is explained, not an outlier
    ax.scatter([r.published for r in outliers], [r.ours for r in outliers], s=70, facecolors="none",
               edgecolors="black", linewidth=0.8, zorder=4)
    _margin_labels(ax, outliers)
    return fig


def _spread(wanted: list[float], step: float, low: float, high: float) -> list[float]:
    """Positions as close to `wanted` (ascending) as possible, at least `step` apart, within [low, high]."""
    placed: list[float] = []
    for y in wanted:
        placed.append(max(y, low, placed[-1] + step) if placed else max(y, low))
    for i in range(len(placed) - 1, -1, -1):
        ceiling = high if i == len(placed) - 1 else placed[i + 1] - step
        placed[i] = min(placed[i], ceiling)
    return placed


def _margin_labels(ax, outliers: list[Comparison]) -> None:
    """Outlier labels in the right margin, each at its point's height where room allows, with a leader line.
    The labels cannot overlap; keeping the points' vertical order keeps the leaders from tangling."""
    low, high = ax.get_ylim()
    rows = sorted(outliers, key=lambda r: r.ours)
    heights = _spread([r.ours for r in rows], (high - low) * 0.032, low, high)
    x = ax.get_xlim()[1] + (high - low) * 0.03
    for row, y in zip(rows, heights):
        ax.annotate(f"{row.shown} ({row.delta:+.1f})", (row.published, row.ours), (x, y), ha="left", va="center",
                    fontsize=7, annotation_clip=False, arrowprops=LEADER)


def delta(rows: list[Comparison], ours: str, published: str):
    """Δ per task, sorted; bars coloured by category; the CI of Δ where a bootstrap CI exists; a task whose
    published score is not comparable is labelled so."""
    rows = sorted(rows, key=lambda r: r.delta)
    fig = _figure(9, 1.8 + ROW_INCHES * len(rows))
    ax = fig.subplots()
    positions = range(len(rows))
    ax.barh(positions, [r.delta for r in rows], color=[_color(r.type) for r in rows], height=0.7)
    for i, r in enumerate(rows):
        if r.ci is not None:
            ax.errorbar(r.delta, i, xerr=[[r.ours - r.ci[0]], [r.ci[1] - r.ours]], fmt="none", ecolor="black",
                        capsize=2, lw=0.8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(list(positions), [r.shown + (" (not comparable)" if r.note else "") for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("Δ = ours − published (points)")
    ax.set_title(f"Δ per task: {ours} − {published}")
    handles = [Patch(color=_color(category), label=category) for category, _ in _grouped(rows)]
    if any(r.ci is not None for r in rows):
        handles.append(Line2D([], [], color="black", lw=0.8, label="95% CI (bootstrap over queries or items)"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return fig


def write_plots(runs: list[Run], references: list[Published], out: Path) -> list[Path]:
    """bars, scatter and delta plots of each run against its reference, as PNG and SVG under `out`."""
    written = []
    for run in runs:
        reference = reference_for(run, references)
        rows = [c for c in comparisons(run, reference) if c.published is not None] if reference else []
        if not rows:
            why = "local data, not the published test set" if any(not s.comparable for s in run.scores.values()) \
                else "no task with a published score to compare with"
            warn(f"{run.label}: {why}; no plots")
            continue
        out.mkdir(parents=True, exist_ok=True)
        stem = f"{_slug(run.name)}_vs_{_slug(reference.name)}"
        for kind, draw in (("bars", bars), ("scatter", scatter), ("delta", delta)):
            written += _save(draw(rows, run.label, reference.label), out / f"{stem}_{kind}")
    return written


def forest(rows: list[TaskComparison], alpha: float):
    """Δ = B − A per task (points) with its paired 95% CI; filled where the adjusted p is below `alpha`, hollow
    where not, a cross where there is no paired test (its Δ alone)."""
    rows = [r for r in rows if r.delta is not None]
    fig = _figure(8, 1.6 + ROW_INCHES * max(len(rows), 1))
    ax = fig.subplots()
    for i, r in enumerate(rows):
        color = _color(r.type)
        if r.ci is None:
            ax.plot(r.delta, i, "x", color=color)
            continue
        ax.errorbar(r.delta, i, xerr=[[r.delta - r.ci[0]], [r.ci[1] - r.delta]], fmt="o", color=color, capsize=2,
                    lw=0.9, markerfacecolor=color if r.significant(alpha) else "white")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(list(range(len(rows))), [r.task for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel("Δ = B − A (points), paired 95% CI")
    title = f"A: {rows[0].a}\nB: {rows[0].b}" if rows else "no task in common"
    ax.set_title(title, fontsize=9)
    handles = [Line2D([], [], marker="o", color="#444444", label=f"significant (adjusted p < {alpha:g})"),
               Line2D([], [], marker="o", color="#444444", markerfacecolor="white", label="not significant"),
               Line2D([], [], marker="x", color="#444444", lw=0, label="no paired test")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return fig


def write_forest(pairs: list[list[TaskComparison]], alpha: float, out: Path) -> list[Path]:
    """One forest plot per pair of runs (PNG and SVG under `out`)."""
    written = []
    for rows in pairs:
        if not any(r.delta is not None for r in rows):
            continue
        out.mkdir(parents=True, exist_ok=True)
        written += _save(forest(rows, alpha), out / f"forest_{_slug(rows[0].b)}_vs_{_slug(rows[0].a)}")
    return written
