"""The report's tables: per-task scores next to published ones, and the paper's Table-1 layout.

Frames hold raw numbers in points; `write_tables` writes each table as Markdown, LaTeX (booktabs,
best value in bold) and CSV (raw numbers, 4 decimals).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from statistics import fmean

import pandas as pd

from evalkit.report.compare import comparisons, delta_heading, reference_for, task_order
from evalkit.report.metrics import BEIR_METRIC, CATEGORY_LABELS, metric_label
from evalkit.report.published import KIND_DESCRIPTIONS, Published, mteb_english_tasks
from evalkit.report.runs import Run

if TYPE_CHECKING:
    from evalkit.report.significance import Marks

BLANK = "–"
TABLE1_COLUMNS = (*CATEGORY_LABELS.values(), "Avg", "BEIR")
MARKS = "¹²³⁴⁵⁶⁷⁸⁹"
NOT_COMPARABLE = "not comparable"
FLAG = "(contradicts its run record)"  # beside a score whose result file disagrees with its run record


def _main_metric(task: str) -> str | None:
    """The task's main metric in the paper's Table 1 (mteb v2 key), where the task is one of its 56."""
    return mteb_english_tasks().get(task, (None, None))[1]


def significance_heading(run: Run, marks: Marks) -> str:
    return f"{run.name} differs from {marks.reference.name}"


def per_task_frame(runs: list[Run], references: list[Published], marks: Marks | None = None) -> pd.DataFrame:
    """One row per task and metric: the scores of the runs whose headline metric it is (+ CI), the published
    scores of that metric, Δ against each run's reference, and whether each run differs significantly from the
    reference run (with `marks`). A run is in the rows of the metrics it has."""
    first = {}
    for run in runs:
        for score in run.scores.values():
            first.setdefault((score.task, score.metric), score)
    rows = []
    for task, metric in sorted(first, key=lambda k: (task_order(k[0], first[k].type), k[1] != _main_metric(k[0]),
                                                      k[1])):
        row = {"Task": task, "Type": first[task, metric].type, "Metric": metric_label(metric)}
        for run in runs:
            score = run.scores.get(task)
            score = score if score is not None and score.metric == metric else None
            row[run.label] = score.score if score else None
            row[f"{run.name} CI low"], row[f"{run.name} CI high"] = score.ci if score and score.ci else (None, None)
            if any(s.flag for s in run.scores.values()):  # the column exists only when a score is flagged
                row[f"{run.name} check"] = score.flag if score else None
        for reference in references:
            row[reference.label] = reference.score(task, metric)
        for run in runs:
            reference = reference_for(run, references)
            mine = [c for c in comparisons(run, reference) if (c.task, c.metric) == (task, metric)] if reference else []
            row[delta_heading(run, reference)] = mine[0].delta if mine else None
            row[f"Δ {run.name} outside CI"] = mine[0].outside_ci if mine else None
            row[f"Δ {run.name} note"] = mine[0].note if mine else None
        for run in runs if marks else []:
            if run is not marks.reference:
                own = run.scores.get(task)
                row[significance_heading(run, marks)] = (marks.tasks.get(run.name, {}).get(task)
                                                         if own is not None and own.metric == metric else None)
        rows.append(row)
    return pd.DataFrame(rows)


def footnotes(raw: pd.DataFrame, runs: list[Run]) -> dict[str, str]:
    """Note text -> its footnote mark, in order of first appearance (the Δs that are explained, not counted)."""
    marks: dict[str, str] = {}
    for _, row in raw.iterrows():
        for run in runs:
            for note in (row.get(f"{run.name} check"), row[f"Δ {run.name} note"]):
                if isinstance(note, str) and note not in marks:
                    marks[note] = MARKS[len(marks) % len(MARKS)]
    return marks


def _means(main: dict[str, float], beir: dict[str, float]) -> dict[str, tuple[float | None, int]]:
    """Table-1 column -> (mean in points or None, number of tasks), over the tasks given."""
    types = {task: task_type for task, (task_type, _) in mteb_english_tasks().items()}
    cells = {}
    for category, label in CATEGORY_LABELS.items():
        values = [v for task, v in main.items() if types[task] == category]
        cells[label] = (fmean(values) if values else None, len(values))
    cells["Avg"] = (fmean(main.values()) if main else None, len(main))
    cells["BEIR"] = (fmean(beir.values()) if beir else None, len(beir))
    return cells


def table1_rows(runs: list[Run], references: list[Published]) -> list[tuple[str, dict, int, frozenset]]:
    """(row name, Table-1 cells, decimals, the tasks averaged): ours, then each published row under them."""
    english = mteb_english_tasks()
    rows = []
    for run in runs:
        main = {t: s.score for t, s in run.scores.items() if s.metric == _main_metric(t) and not s.mismatch}
        beir = {t: v for t, v in main.items() if english[t][0] == "Retrieval" and run.scores[t].metric == BEIR_METRIC}
        rows.append((run.label, _means(main, beir), 2, frozenset(main)))
    for ref in references:
        if ref.averages:
            full_tasks = set(english)
            full_row = (f"{ref.name} (published, paper: all 56 tasks)", ref.averages, ref.averages_decimals,
                        frozenset(full_tasks))
        else:
            main = {t: ref.score(t, m) for t, (_, m) in english.items() if ref.score(t, m) is not None}
            beir = {t: ref.score(t, BEIR_METRIC) for t, (ty, _) in english.items()
                    if ty == "Retrieval" and ref.score(t, BEIR_METRIC) is not None}
            full_tasks = set(main)
            full_row = (f"{ref.name} (published, all {len(main)} of its tasks)", _means(main, beir), 2,
                        frozenset(full_tasks))
        same: dict[frozenset, tuple[list[str], dict]] = {}  # like-for-like task set -> (runs, Table-1 cells)
        for run in runs:
            like = {c.task: c for c in comparisons(run, ref) if c.metric == _main_metric(c.task) and c.like_for_like}
            if not like or set(like) == full_tasks:
                continue
            cells = _means({t: c.published for t, c in like.items()}, _beir(like, "published"))
            same.setdefault(frozenset(like), ([], cells))[0].append(run.name)
            if set(like) != {t for t, s in run.scores.items() if s.metric == _main_metric(t) and not s.mismatch}:
                rows.append((f"{run.label}, same tasks as {ref.name} published",
                             _means({t: c.ours for t, c in like.items()}, _beir(like, "ours")), 2, frozenset(like)))
        for tasks, (names, cells) in same.items():
            which = "same tasks" if len(runs) == 1 else f"same tasks as {' and '.join(names)}"
            rows.append((f"{ref.name} (published, {which})", cells, 2, tasks))
        rows.append(full_row)  # after the like-for-like rows: its tasks are not those run
    return rows


def _beir(like: dict, side: str) -> dict[str, float]:
    """The BEIR column's scores (nDCG@10 of retrieval tasks) among like-for-like comparisons."""
    english = mteb_english_tasks()
    return {t: getattr(c, side) for t, c in like.items() if english[t][0] == "Retrieval" and c.metric == BEIR_METRIC}


def table1_frame(rows: list[tuple[str, dict, int, frozenset]]) -> pd.DataFrame:
    records = []
    for name, cells, _, _ in rows:
        record = {"Model": name}
        for column in TABLE1_COLUMNS:
            record[column], record[f"{column} n"] = cells[column]
        records.append(record)
    return pd.DataFrame(records)


def _fmt(value, decimals: int = 2, signed: bool = False) -> str:
    if value is None or pd.isna(value):
        return BLANK
    if round(value, decimals) == 0:  # never -0.00 (nor +0.00 for a Δ)
        return f"{0:.{decimals}f}"
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def _bold_max(values: dict[str, float | None]) -> set[str]:
    """The keys holding the largest value, when at least two values compete."""
    present = {k: v for k, v in values.items() if v is not None and not pd.isna(v)}
    if len(present) < 2:
        return set()
    best = max(present.values())
    return {k for k, v in present.items() if v == best}


def per_task_display(raw: pd.DataFrame, runs: list[Run], references: list[Published], sig: Marks | None = None):
    """Formatted cells, and per row the best score (the LaTeX bold), for the per-task table. A Δ against a
    published score that is not comparable carries a footnote mark, and is not counted as outside the CI; a
    score that differs significantly from the reference run's carries a `*`; a score that contradicts its run
    record is flagged and never bold."""
    labels = [run.label for run in runs]
    score_columns = labels + [ref.label for ref in references]
    marks = footnotes(raw, runs)
    cells, bold = [], []
    for _, row in raw.iterrows():
        out = {"Task": row["Task"], "Type": row["Type"], "Metric": row["Metric"]}
        for run in runs:
            low, high = row[f"{run.name} CI low"], row[f"{run.name} CI high"]
            significant = sig is not None and row.get(significance_heading(run, sig)) is True
            flag = row.get(f"{run.name} check")
            out[run.label] = (_fmt(row[run.label]) + ("*" if significant else "")
                              + (f"{marks[flag]} {FLAG}" if isinstance(flag, str) else ""))
            out[f"{run.name} 95% CI"] = BLANK if pd.isna(low) else f"[{low:.2f}, {high:.2f}]"
        for ref in references:
            out[ref.label] = _fmt(row[ref.label])
        for run in runs:
            outside, note = row[f"Δ {run.name} outside CI"], row[f"Δ {run.name} note"]
            mark = marks.get(note, "") if isinstance(note, str) else ""
            heading = delta_heading(run, reference_for(run, references))
            out[heading] = _fmt(row[heading], signed=True) + mark
            out[f"Δ {run.name} outside CI"] = NOT_COMPARABLE + mark if mark else (
                BLANK if outside is None or pd.isna(outside) else ("yes" if outside else "no"))
        cells.append(out)
        trusted = [run.label for run in runs if not isinstance(row.get(f"{run.name} check"), str)]  # never bold a flag
        bold.append(_bold_max({c: row[c] for c in score_columns if c in trusted or c not in labels}))
    return pd.DataFrame(cells, columns=list(cells[0]) if cells else None), bold


def table1_display(rows: list[tuple[str, dict, int, frozenset]], starred: dict[str, set[str]] | None = None):
    """Formatted "mean (k/K)" cells, and per row the cells that are best in their column among the rows that
    average the same tasks (averages over different task sets are never ranked against each other); the columns
    named in `starred` (row name -> columns) carry a `*`."""
    english = mteb_english_tasks()
    totals = {label: sum(t == cat for t, _ in english.values()) for cat, label in CATEGORY_LABELS.items()}
    totals.update(Avg=len(english), BEIR=totals["Retr."])
    cells = []
    for name, row, decimals, _ in rows:
        out = {"Model": name}
        for column in TABLE1_COLUMNS:
            value, n = row[column]
            star = "*" if column in (starred or {}).get(name, ()) else ""
            out[column] = BLANK if value is None else f"{value:.{decimals}f}{star} ({n}/{totals[column]})"
        cells.append(out)
    best = {c: set().union(*(_bold_max({i: row[c][0] for i, (_, row, _, same) in enumerate(rows) if same == tasks})
                             for tasks in {r[3] for r in rows})) for c in TABLE1_COLUMNS}
    bold = [{c for c in TABLE1_COLUMNS if i in best[c]} for i in range(len(rows))]
    return pd.DataFrame(cells), bold


def to_markdown(title: str, frame: pd.DataFrame, notes: list[str]) -> str:
    text_columns = {"Task", "Type", "Metric", "Model"}
    lines = [f"## {title}", "", "| " + " | ".join(frame.columns) + " |",
             "| " + " | ".join("---" if c in text_columns else "---:" for c in frame.columns) + " |"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines + [""] + [f"- {note}" for note in notes]) + "\n"


def _latex_escape(text: str) -> str:
    for old, new in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("#", r"\#"), ("_", r"\_"),
                     ("$", r"\$"), ("Δ", r"$\Delta$"), ("–", "--"), ("−", "$-$")):
        text = text.replace(old, new)
    return text


def to_latex(caption: str, frame: pd.DataFrame, bold: list[set[str]]) -> str:
    """A booktabs table; the cells named in `bold` (per row) are set in bold."""
    text_columns = {"Task", "Type", "Metric", "Model"}
    spec = "".join("l" if c in text_columns else "r" for c in frame.columns)
    body = []
    for (_, row), strong in zip(frame.iterrows(), bold):
        cells = [_latex_escape(str(row[c])) for c in frame.columns]
        body.append(" & ".join(rf"\textbf{{{v}}}" if c in strong else v for c, v in zip(frame.columns, cells))
                    + r" \\")
    return "\n".join([r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{_latex_escape(caption)}}}",
                      rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
                      " & ".join(_latex_escape(c) for c in frame.columns) + r" \\", r"\midrule", *body,
                      r"\bottomrule", r"\end{tabular}", r"\end{table}"]) + "\n"


def source_notes(runs: list[Run], references: list[Published]) -> list[str]:
    """Where each column comes from: the model and revision of each run (and, in brackets, what differs from
    the published protocol and test set), the source of each published set."""
    variants = ["[...]: settings that differ from the model config and task files the published numbers used; "
                "local data that is not the published test set (its fingerprint is not one in "
                "evalkit/report/reference/test_sets.tsv) gets no Δ"] if any(run.variant for run in runs) else []
    return [f"{run.label}: {run.model}, revision {run.revision}" for run in runs] + variants + [
        f"{ref.label}: {KIND_DESCRIPTIONS.get(ref.kind, ref.kind)}, shipped in evalkit/report/reference/"
        for ref in references]


def write_tables(runs: list[Run], references: list[Published], out: Path, *, seed: int = 0,
                 resamples: int = 1000, marks: Marks | None = None) -> list[Path]:
    """per_task.{md,tex,csv} and table1.{md,tex,csv} under `out`; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    raw = per_task_frame(runs, references, marks)
    display, bold = per_task_display(raw, runs, references, marks)
    deltas = [f"{delta_heading(run, ref)} = {run.label} − {ref.label}"
              + (" (another model's published numbers)" if ref.model != run.model else "")
              for run in runs if (ref := reference_for(run, references))]
    notes = ["Main metric of each task, in points (0–100). Δ in points: " + ("; ".join(deltas) or "none") + ".",
             f"95% CI: percentile bootstrap ({resamples} resamples, seed {seed}) from the run record's per-item "
             "scores: the mean over queries (retrieval), the metric recomputed on resampled pairs (STS: Spearman; "
             "pair classification: max AP over similarity functions) or the mean over documents (summarization). "
             "mteb exposes no per-item scores for classification and clustering: no CI there. "
             "'outside CI': the published score lies outside it.",
             *([marks.note("per task")] if marks and marks.tested else []),
             *[f"{mark} {note}" for note, mark in footnotes(raw, runs).items()], *source_notes(runs, references)]
    if any(s.metric != _main_metric(s.task) for run in runs for s in run.scores.values() if _main_metric(s.task)):
        notes.insert(1, "A row is one metric: a run scored with another headline metric (task.metric=) is in the "
                        "row of that metric, next to the published number of that metric.")
    written = _write(out / "per_task", "Per-task scores", display, bold, raw, notes)  # the CSV keeps each Δ's note

    rows = table1_rows(runs, references)
    starred = {run.label: {c for c, yes in marks.columns.get(run.name, {}).items() if yes} for run in runs} \
        if marks else None
    display, bold = table1_display(rows, starred)
    english = mteb_english_tasks()
    extra = sorted({t for run in runs for t in run.scores if t not in english})
    names = [name for name, _, _, _ in rows]
    notes = ["Mean of the main metric (points) over the tasks present; (k/K): k of the K MTEB-English tasks "
             "of that column were present. Avg: all tasks present; BEIR: mean nDCG@10 of the 15 retrieval tasks."]
    if any("(published, paper" in name for name in names):
        notes.append("(published, paper: all 56 tasks): arXiv:2401.00368 Table 1 (Table 3 for BEIR), 1 decimal.")
    if any(" of its tasks)" in name for name in names):
        notes.append("(published, all k of its tasks): every published score shipped for that model, whichever "
                     "tasks were run; compare with the (published, same tasks) row.")
    if any("(published, same tasks" in name for name in names):
        notes.append("(published, same tasks…): the published per-task scores averaged over the tasks of that run "
                     "that compare like for like (the published test set and protocol, a published score without a "
                     "note); where the run has other tasks too, its row over just those tasks is listed as "
                     "'…, same tasks as … published'.")
    if marks and marks.tested:
        notes.append(marks.note("the mean Δ over the column's tasks, where both runs have the same tasks there; "
                                "CI and p from each task's items resampled on their own"))
    notes += source_notes(runs, references)
    if extra:
        notes.append(f"Not MTEB-English tasks, left out of this table: {', '.join(extra)}.")
    other = sorted({f"{s.task} ({metric_label(s.metric)}, {run.label})" for run in runs for s in run.scores.values()
                    if s.task in english and s.metric != english[s.task][1]})
    flagged = sorted(f"{s.task} ({run.label})" for run in runs for s in run.scores.values() if s.mismatch)
    if flagged:
        notes.append(f"Left out of the averages, their result files contradicting their run records (see the "
                     f"per-task table): {', '.join(flagged)}.")
    if other:
        notes.append(f"Scored with another headline metric than the task's main one, left out of this table: "
                     f"{', '.join(other)}.")
    return written + _write(out / "table1", "Table 1 layout (MTEB English, 56 tasks)", display, bold,
                            table1_frame(rows), notes)


def _write(stem: Path, title: str, display: pd.DataFrame, bold, raw: pd.DataFrame, notes) -> list[Path]:
    paths = [stem.with_suffix(s) for s in (".md", ".tex", ".csv")]
    paths[0].write_text(to_markdown(title, display, notes), encoding="utf-8")
    paths[1].write_text(to_latex(title, display, bold), encoding="utf-8")
    raw.to_csv(paths[2], index=False, float_format="%.4f", lineterminator="\n")
    return paths
