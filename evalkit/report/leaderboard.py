"""The leaderboard view of a benchmark run: the runs next to published models on an mteb benchmark's tasks, per
task, per task type and mteb's benchmark mean (the mean over its tasks), with each run's rank and a mark on
every number that is not like for like.

    evalkit report results/ --benchmark "MTEB(eng, v2)" [--published-dir MTEB_RESULTS ...] --out report/

A task's score is mteb's main score averaged over the splits and subsets the benchmark selects (one of each for
MTEB(eng, v2)). Published numbers: those shipped for the benchmark in `reference/` and any mteb results folder
(`mteb.ResultCache` layout, `<org__model>/<revision>/<Task>.json`). The runs' rank is by the mean over the
tasks every run has and every published model has comparably (no mark); mteb's benchmark mean is shown for a
model with every task, marks included, as mteb's leaderboard computes it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from evalkit import EvalkitError
from evalkit.report.metrics import CATEGORIES, short_model_name, to_points
from evalkit.report.published import REFERENCE_DIR
from evalkit.report.runs import Run, warn
from evalkit.results import model_from_folder

SHIPPED = {"MTEB(eng, v2)": "mteb_eng_v2.published.tsv"}  # benchmark -> published numbers in reference/
SHIPPED_SOURCE = "embeddings-benchmark/results @ f4cc6c8b (evalkit/report/reference/mteb_eng_v2.published.tsv)"
MARKS = {  # key -> (sign, meaning); a marked number is shown but left out of the like-for-like mean and rank
    "revision": ("†", "published on an older dataset revision than the one mteb pins"),
    "mteb1": ("‡", "reranking scored by mteb 1 (MAP over each query's candidates), not mteb 2's retrieval-style "
                   "map@1000"),
    "local": ("§", "run on local data that is not the published test set"),
}
BLANK = "–"


@dataclass
class BenchTask:
    name: str
    type: str
    splits: list[str]
    subsets: list[str]
    revision: str  # the dataset revision mteb pins


@dataclass
class Column:
    label: str
    ours: bool
    source: str
    cells: dict[str, tuple[float, tuple[str, ...]]] = field(default_factory=dict)  # task -> (points, mark keys)


@dataclass
class Leaderboard:
    benchmark: str
    tasks: list[BenchTask]
    columns: list[Column]
    like: list[str]  # tasks in the like-for-like mean
    left_out: dict[str, str]  # task every run has, left out of the like-for-like mean -> why

    def mean(self, column: Column, tasks: list[str]) -> float | None:
        values = [column.cells[t][0] for t in tasks if t in column.cells]
        return sum(values) / len(values) if values and len(values) == len(tasks) else None

    def benchmark_mean(self, column: Column) -> float | None:
        return self.mean(column, [t.name for t in self.tasks])

    def ranks(self) -> dict[str, int]:
        """Column label -> rank by the like-for-like mean (1 = best)."""
        means = {c.label: self.mean(c, self.like) for c in self.columns}
        shown = {label: round(m, 2) for label, m in means.items() if m is not None}  # equal as shown: equal rank
        return {label: 1 + sum(other > m for other in shown.values()) for label, m in shown.items()}


def benchmark_tasks(name: str) -> tuple[str, list[BenchTask]]:
    """mteb's spelling of the benchmark and its tasks with the splits and subsets it selects (imports mteb)."""
    from evalkit.benchmarks import get_benchmark

    bench = get_benchmark(name)
    return bench.name, [BenchTask(t.metadata.name, t.metadata.type, list(t.eval_splits), list(t.hf_subsets),
                                  str(t.metadata.dataset.get("revision"))) for t in bench.tasks]


def task_points(scores: dict, task: BenchTask) -> float | None:
    """mteb's main score of a TaskResult's `scores`, averaged over the benchmark's splits and subsets; None
    when one of them is missing."""
    values = []
    for split in task.splits:
        entries = {e.get("hf_subset"): e for e in scores.get(split) or []}
        for subset in task.subsets:
            if subset not in entries or entries[subset].get("main_score") is None:
                return None
            values.append(float(entries[subset]["main_score"]))
    return to_points(sum(values) / len(values))


def _mteb1(task: BenchTask, mteb_version: str | None) -> bool:
    major = re.match(r"\d+", mteb_version or "")
    return task.type == "Reranking" and (major is None or int(major[0]) < 2)


def run_column(run: Run, tasks: list[BenchTask]) -> Column:
    column = Column(run.label, True, f"evalkit run {run.folder}")
    for task in tasks:
        path = run.folder / f"{task.name}.json"
        if not path.is_file():
            continue
        try:
            points = task_points(json.loads(path.read_text(encoding="utf-8")).get("scores") or {}, task)
        except (OSError, ValueError, AttributeError) as exc:
            warn(f"{path}: unreadable ({exc}); left out of the leaderboard")
            continue
        if points is None:
            warn(f"{path}: lacks a split or subset {task.name} is selected with; left out of the leaderboard")
            continue
        score = run.scores.get(task.name)
        column.cells[task.name] = (points, ("local",) if score is not None and not score.comparable else ())
    return column


def shipped_columns(benchmark: str, tasks: list[BenchTask]) -> list[Column]:
    """The published numbers evalkit ships for the benchmark, one column per model."""
    if benchmark not in SHIPPED:
        return []
    rows = list(csv.DictReader(io.StringIO((REFERENCE_DIR / SHIPPED[benchmark]).read_text(encoding="utf-8")),
                               delimiter="\t"))
    by_name = {t.name: t for t in tasks}
    columns: dict[str, Column] = {}
    for row in rows:
        task = by_name.get(row["task"])
        if task is None:
            continue
        column = columns.setdefault(row["model"], Column(f"{short_model_name(row['model'])} (published)", False,
                                                                  SHIPPED_SOURCE))
        marks = (("revision",) if row["dataset_revision_matches"] != "yes" else ()) + (
            ("mteb1",) if _mteb1(task, row["mteb_version"]) else ())
        column.cells[task.name] = (to_points(row["main_score"]), marks)
    return list(columns.values())


def folder_columns(folder: Path, tasks: list[BenchTask]) -> list[Column]:
    """One column per `<org__model>/<revision>/` of an mteb results folder (or its `results/` subfolder)."""
    from mteb.results import TaskResult

    if not folder.is_dir():
        raise EvalkitError(f"--published-dir {folder}: no such folder")
    root = folder / "results" if (folder / "results").is_dir() else folder
    by_name = {t.name: t for t in tasks}
    columns = []
    for revision in sorted(p for p in root.glob("*/*") if p.is_dir()):
        model = model_from_folder(revision.parent.name)
        column = Column(f"{short_model_name(model)}@{revision.name[:7]} (published)", False,
                        f"mteb results {revision}")
        for path in sorted(revision.glob("*.json")):
            task = by_name.get(path.stem)
            if task is None:
                continue
            try:
                result = TaskResult.from_disk(path)
            except Exception as exc:  # mteb's reader raises what its format checks raise
                warn(f"{path}: not an mteb TaskResult ({type(exc).__name__}); skipped")
                continue
            points = task_points(result.scores, task)
            if points is None:
                continue
            marks = (("revision",) if str(result.dataset_revision) != task.revision else ()) + (
                ("mteb1",) if _mteb1(task, result.mteb_version) else ())
            column.cells[task.name] = (points, marks)
        if column.cells:
            columns.append(column)
    if not columns:
        warn(f"{folder}: no result of a task of the benchmark (expected <org__model>/<revision>/<Task>.json)")
    return columns


def build(benchmark: str, runs: list[Run], published_dirs: list[Path] = ()) -> Leaderboard:
    name, tasks = benchmark_tasks(benchmark)
    ours = [run_column(run, tasks) for run in runs]
    published = shipped_columns(name, tasks) + [c for d in published_dirs for c in folder_columns(d, tasks)]
    order = {t: i for i, t in enumerate(CATEGORIES)}
    tasks.sort(key=lambda t: (order.get(t.type, len(order)), t.type, t.name))
    run_by_all = [t.name for t in tasks if ours and all(t.name in c.cells for c in ours)]
    like, left_out = [], {}
    for task in run_by_all:
        why = [f"{c.label}: {', '.join(MARKS[m][1] for m in c.cells[task][1])}" for c in ours + published
               if task in c.cells and c.cells[task][1]]
        why += [f"no published number of {c.label}" for c in published if task not in c.cells]
        (left_out.__setitem__(task, "; ".join(why)) if why else like.append(task))
    return Leaderboard(name, tasks, ours + published, like, left_out)


def _cell(board: Leaderboard, column: Column, task: str) -> str:
    if task not in column.cells:
        return BLANK
    points, marks = column.cells[task]
    return f"{points:.2f}" + "".join(MARKS[m][0] for m in marks)


def rows(board: Leaderboard) -> list[tuple[str, str, list[str]]]:
    """(first column, second column, one cell per model) of the table, tasks then summaries."""
    out = [(t.name, t.type, [_cell(board, c, t.name) for c in board.columns]) for t in board.tasks]
    fmt = lambda v: BLANK if v is None else f"{v:.2f}"  # noqa: E731
    for kind in dict.fromkeys(t.type for t in board.tasks):
        like = [t.name for t in board.tasks if t.type == kind and t.name in board.like]
        if like:
            out.append((f"mean {kind}", f"{len(like)} like for like", [fmt(board.mean(c, like)) for c in board.columns]))
    out.append(("mean, like for like", f"{len(board.like)} of {len(board.tasks)} tasks",
                [fmt(board.mean(c, board.like)) for c in board.columns]))
    ranks = board.ranks()
    out.append(("rank, like for like", "by the mean above", [f"{ranks[c.label]} of {len(ranks)}" if c.label in ranks else BLANK
                                                  for c in board.columns]))
    out.append(("mteb benchmark mean", f"all {len(board.tasks)} tasks",
                [fmt(board.benchmark_mean(c)) if board.benchmark_mean(c) is not None
                 else f"{BLANK} ({len(c.cells)}/{len(board.tasks)})" for c in board.columns]))
    return out


def notes(board: Leaderboard) -> list[str]:
    used = {m for c in board.columns for _, marks in c.cells.values() for m in marks}
    out = [f"{MARKS[m][0]} {MARKS[m][1]}; shown, left out of the like-for-like mean and rank." for m in MARKS
           if m in used]
    out.append(f"{BLANK}: no score. Like for like: the tasks every run has, with an unmarked number from every "
               f"model; a run's rank is by that mean. mteb benchmark mean: the mean over all "
               f"{len(board.tasks)} tasks, marks included (as mteb's leaderboard), for a model with every task.")
    out += [f"left out of the like-for-like mean: {task} ({why})" for task, why in board.left_out.items()]
    out += [f"{c.label}: {c.source}" for c in board.columns]
    return out


def to_markdown(board: Leaderboard) -> str:
    head = ["Task", "Type", *(c.label for c in board.columns)]
    lines = [f"# {board.benchmark}: leaderboard", "", "| " + " | ".join(head) + " |",
             "| --- | --- |" + " ---: |" * len(board.columns)]
    lines += ["| " + " | ".join([a, b, *cells]) + " |" for a, b, cells in rows(board)]
    return "\n".join(lines + [""] + [f"- {n}" for n in notes(board)]) + "\n"


def _tex(text: str) -> str:
    return re.sub(r"([&%$#_{}])", r"\\\1", text).replace("–", "--").replace("†", r"$^\dagger$").replace(
        "‡", r"$^\ddagger$").replace("§", r"\S{}")


def to_latex(board: Leaderboard) -> str:
    body = []
    for a, b, cells in rows(board):
        numbers = [float(re.match(r"[\d.]+", x)[0]) if re.match(r"\d", x) and not a.startswith("rank") else None
                   for x in cells]
        best = max((n for n in numbers if n is not None), default=None)
        shown = [f"\\textbf{{{_tex(x)}}}" if n is not None and n == best else _tex(x) for x, n in zip(cells, numbers)]
        body.append(" & ".join([_tex(a), _tex(b), *shown]) + r" \\")
    head = " & ".join(["Task", "Type", *(_tex(c.label) for c in board.columns)]) + r" \\"
    return "\n".join([r"\begin{table}[t]", r"\centering\small", r"\begin{tabular}{ll" + "r" * len(board.columns) + "}",
                      r"\toprule", head, r"\midrule", *body[:len(board.tasks)], r"\midrule", *body[len(board.tasks):],
                      r"\bottomrule", r"\end{tabular}", f"\\caption{{{_tex(board.benchmark)}: leaderboard. "
                      + _tex(" ".join(notes(board)[:2])) + "}", r"\end{table}"]) + "\n"


def to_csv(board: Leaderboard) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "ours", "task", "type", "score", "marks", "like_for_like"])
    for column in board.columns:
        for task in board.tasks:
            if task.name in column.cells:
                points, marks = column.cells[task.name]
                writer.writerow([column.label, column.ours, task.name, task.type, f"{points:.4f}",
                                 ";".join(MARKS[m][1] for m in marks), task.name in board.like])
    ranks = board.ranks()
    for column in board.columns:
        like, full = board.mean(column, board.like), board.benchmark_mean(column)
        writer.writerow([column.label, column.ours, "mean, like for like", "", "" if like is None else f"{like:.4f}",
                         f"rank {ranks.get(column.label, '')} of {len(ranks)}", ""])
        writer.writerow([column.label, column.ours, "mteb benchmark mean", "", "" if full is None else f"{full:.4f}",
                         "", ""])
    return buffer.getvalue()


def plot(board: Leaderboard, stem: Path) -> list[Path]:
    """Per task type and overall, the like-for-like mean of every model; the runs in colour."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    kinds = [k for k in dict.fromkeys(t.type for t in board.tasks)
             if any(t.type == k and t.name in board.like for t in board.tasks)]
    groups = [(k, [t.name for t in board.tasks if t.type == k and t.name in board.like]) for k in kinds]
    groups.append((f"mean ({len(board.like)} tasks)", board.like))
    fig = Figure(figsize=(max(5.0, 0.6 * len(groups) * max(1, len(board.columns))) + 2.5, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(board.columns))
    for i, column in enumerate(board.columns):
        values = [board.mean(column, tasks) or 0.0 for _, tasks in groups]
        ax.bar([g + i * width for g in range(len(groups))], values, width,
               label=column.label, color=f"C{i}" if column.ours else str(0.45 + 0.4 * i / len(board.columns)))
    ax.set_xticks([g + width * (len(board.columns) - 1) / 2 for g in range(len(groups))],
                  [f"{k}\n({len(t)})" for k, t in groups], fontsize=8)
    ax.set_ylabel("score (points)")
    ax.set_title(f"{board.benchmark}: like-for-like means", fontsize=10)
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    written = []
    for ext in ("png", "svg"):
        fig.savefig(stem.with_suffix(f".{ext}"), dpi=150)
        written.append(stem.with_suffix(f".{ext}"))
    return written


def write_leaderboard(benchmark: str, runs: list[Run], published_dirs: list[Path], out: Path,
                      plots: bool = True) -> list[Path]:
    """leaderboard_<benchmark>.md, .tex, .csv (and .png, .svg) under `out`."""
    from evalkit.benchmarks import short_alias

    board = build(benchmark, runs, published_dirs)
    if not board.like:
        warn(f"{board.benchmark}: no task every run has with a comparable published number; "
             f"the leaderboard has no like-for-like mean")
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"leaderboard_{short_alias(board.benchmark)}"
    written = []
    for ext, text in (("md", to_markdown(board)), ("tex", to_latex(board)), ("csv", to_csv(board))):
        stem.with_suffix(f".{ext}").write_text(text, encoding="utf-8")
        written.append(stem.with_suffix(f".{ext}"))
    return written + (plot(board, stem) if plots and board.like else [])
