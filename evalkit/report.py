"""`python -m evalkit.report`: paper-style tables and plots from results folders, next to published numbers.

    python -m evalkit.report results/ --compare intfloat/e5-mistral-7b-instruct --out report/

Reads `<results>/<org__model>/<revision>/<MtebTask>.json` (mteb TaskResult files) and, where present,
evalkit's run record `<revision>/evalkit/<MtebTask>.run.json`, whose per-query scores give a bootstrap
confidence interval for retrieval tasks. Each problem with the input is one line on stderr; the exit
code is non-zero only when nothing at all could be rendered.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from evalkit.published import Published, available_models, load_published
from evalkit.scale import model_from_folder, short_model_name, to_points

TASKS_DIR = Path(__file__).resolve().parents[1] / "tasks"
SPEC_KEYS = ("type", "split", "hf_subset", "metric")
SUBSET_PREFERENCE = ("default", "en", "en-en")


class ReportInputError(Exception):
    """A result file that cannot be used; reported as one line, the report goes on."""


@dataclass
class TaskScore:
    task: str
    type: str
    metric: str  # mteb v2 key of the main metric
    score: float  # points, 0-100
    ci: tuple[float, float] | None = None  # 95% bootstrap CI over queries, points


@dataclass
class Run:
    """The scores of one model revision: one `<org__model>/<revision>/` folder."""

    model: str
    revision: str
    folder: Path
    scores: dict[str, TaskScore] = field(default_factory=dict)
    name: str = ""  # short model name, plus `@revision` when two runs share a model

    @property
    def label(self) -> str:
        return f"{self.name} (ours)"


def warn(message: str) -> None:
    print(f"evalkit.report: {message}", file=sys.stderr)


def bootstrap_ci(values, *, seed: int = 0, resamples: int = 1000, level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of the mean of `values`, resampling them with replacement."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ValueError("no per-query scores to resample")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 100):  # chunks keep memory flat for large query sets
        stop = min(start + 100, resamples)
        means[start:stop] = values[rng.integers(0, values.size, size=(stop - start, values.size))].mean(axis=1)
    tail = 50.0 * (1.0 - level)
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def load_registry(tasks_dir: Path = TASKS_DIR) -> dict[str, dict]:
    """mteb task name -> its `tasks/<name>.yaml` entry (type, split, hf_subset, metric)."""
    registry = {}
    for path in sorted(Path(tasks_dir).glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            warn(f"{path}: not valid YAML; ignored")
            continue
        if isinstance(data, dict) and data.get("mteb_task"):
            registry[data["mteb_task"]] = data
    return registry


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def _mteb_spec(result) -> dict:
    """Type, split, subset and main metric from mteb's own task metadata (task not in the registry)."""
    import mteb

    try:
        meta = mteb.get_task(result.task_name).metadata
    except Exception:
        raise ReportInputError(f"task {result.task_name!r} is neither in tasks/ nor known to mteb") from None
    split = next((s for s in meta.eval_splits if s in result.scores), next(iter(result.scores), None))
    subsets = [entry.get("hf_subset") for entry in result.scores.get(split, [])]
    subset = next((s for s in SUBSET_PREFERENCE if s in subsets), subsets[0] if subsets else "default")
    return {"type": meta.type, "split": split, "hf_subset": subset, "metric": meta.main_score}


def task_spec(result, registry: dict[str, dict], record: dict | None) -> dict:
    """What to read from a TaskResult: the run record's spec, else the registry's, else mteb's."""
    for source in (record, registry.get(result.task_name)):
        if source and all(source.get(key) for key in SPEC_KEYS):
            return {key: source[key] for key in SPEC_KEYS}
    return _mteb_spec(result)


def read_task_score(path: Path, registry: dict[str, dict], record: dict | None) -> TaskScore:
    """The main score of one TaskResult file, as its run record, the registry or mteb says to read it."""
    from mteb.results import TaskResult

    try:
        result = TaskResult.from_disk(path)
    except Exception as exc:
        raise ReportInputError(f"not an mteb TaskResult ({_first_line(exc)})") from None
    spec = task_spec(result, registry, record)
    entries = [e for e in result.scores.get(spec["split"], []) if e.get("hf_subset") == spec["hf_subset"]]
    if not entries or spec["metric"] not in entries[0]:
        raise ReportInputError(f"no {spec['metric']} for split {spec['split']!r}, subset {spec['hf_subset']!r}")
    try:
        score = to_points(entries[0][spec["metric"]])
    except (TypeError, ValueError) as exc:
        raise ReportInputError(str(exc)) from None
    return TaskScore(result.task_name, spec["type"], spec["metric"], score)


def read_run_records(folder: Path) -> dict[str, dict]:
    """mteb task name -> evalkit run record, for the records in `<folder>/evalkit/`."""
    records = {}
    for path in sorted((folder / "evalkit").glob("*.run.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            warn(f"{path}: unreadable run record ({_first_line(exc)}); ignored")
            continue
        if isinstance(record, dict):
            records[record.get("mteb_task") or path.name.removesuffix(".run.json")] = record
    return records


def identify_model(folder: Path, records: dict[str, dict]) -> tuple[str, str]:
    """(model name, revision): from a run record, else model_meta.json, else the folder names."""
    for record in records.values():
        model = record.get("model") or {}
        if isinstance(model, dict) and model.get("name"):
            return model["name"], str(model.get("revision") or folder.name)
    try:
        meta = json.loads((folder / "model_meta.json").read_text(encoding="utf-8"))
        if meta.get("name"):
            return meta["name"], str(meta.get("revision") or folder.name)
    except (OSError, ValueError, AttributeError):
        pass
    return model_from_folder(folder.parent.name), folder.name


def query_ci(score: TaskScore, record: dict | None, seed: int, resamples: int) -> str | None:
    """Set `score.ci` from the record's per-query scores; the reason when there is none."""
    if record is None:
        return "no run record"
    per_query = (record.get("per_query") or {}).get(score.metric)
    if not per_query:
        return f"run record has no per-query {score.metric}"
    try:
        low, high = bootstrap_ci(list(per_query.values()), seed=seed, resamples=resamples)
        score.ci = (to_points(low), to_points(high))
    except (TypeError, ValueError) as exc:
        return f"unusable per-query scores ({_first_line(exc)})"
    return None


def load_run(folder: Path, registry: dict[str, dict], seed: int = 0, resamples: int = 1000) -> Run:
    records = read_run_records(folder)
    run = Run(*identify_model(folder, records), folder)
    no_ci = []
    for path in sorted(folder.glob("*.json")):
        if path.name == "model_meta.json":
            continue
        try:
            score = read_task_score(path, registry, records.get(path.stem))
        except ReportInputError as exc:
            warn(f"{path}: {exc}; skipped")
            continue
        run.scores[score.task] = score
        if score.type == "Retrieval":
            reason = query_ci(score, records.get(score.task), seed, resamples)
            if reason:
                no_ci.append(f"{score.task} ({reason})")
    if no_ci:
        warn(f"{folder}: no confidence interval for {', '.join(no_ci)}")
    return run


def is_result_file(path: Path, results_dir: Path) -> bool:
    """mteb's layout is <org__model>/<revision>/<Task>.json: at most three levels below a results root.
    Deeper files (the gate's own runs under check/), run records, baselines and sweep metadata are not results."""
    parts = path.relative_to(results_dir).parts
    return len(parts) <= 3 and not any(p.startswith(".") or p in ("evalkit", "baselines") for p in parts[:-1])


def find_runs(results_dir: Path, registry: dict[str, dict], seed: int = 0, resamples: int = 1000) -> list[Run]:
    """Every run under `results_dir` (a results root, a model folder or a revision folder)."""
    if not results_dir.is_dir():
        warn(f"{results_dir}: no such results folder")
        return []
    files = [p for p in results_dir.rglob("*.json") if p.name != "model_meta.json" and is_result_file(p, results_dir)]
    if not files:
        warn(f"{results_dir}: no result files (expected <org__model>/<revision>/<Task>.json)")
        return []
    runs = [load_run(folder, registry, seed, resamples) for folder in sorted({p.parent for p in files})]
    for run in runs:
        if not run.scores:
            warn(f"{run.folder}: no usable task scores")
    return [run for run in runs if run.scores]


def name_runs(runs: list[Run]) -> None:
    """Short, distinct names: a model seen in several folders gets `@revision` (7 characters), then `#n`."""
    models = [run.model for run in runs]
    for run in runs:
        suffix = f"@{run.revision[:7]}" if models.count(run.model) > 1 else ""
        run.name = short_model_name(run.model) + suffix
    names = [run.name for run in runs]
    for i, run in enumerate(runs):
        if names.count(run.name) > 1:
            run.name += f"#{names[:i].count(run.name) + 1}"


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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m evalkit.report",
        description="Paper-style tables (Markdown, LaTeX, CSV) and plots from results folders, "
        "compared with published numbers.",
    )
    parser.add_argument("results", nargs="+", type=Path,
                        help="results folder(s): a results root, an <org__model> folder or a <revision> folder")
    parser.add_argument("--compare", action="append", default=[], metavar="MODEL[:KIND]",
                        help="published numbers to compare with (repeatable); default: those of the models run; "
                        f"known: {', '.join(available_models())}")
    parser.add_argument("--out", "-o", type=Path, default=Path("report"), help="output folder (default: report)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    parser.add_argument("--no-plots", action="store_true", help="write the tables only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    registry = load_registry()
    runs = [run for folder in args.results for run in find_runs(folder, registry, args.seed, args.resamples)]
    if not runs:
        warn("nothing to report: no task score could be read from the results folder(s)")
        return 1
    name_runs(runs)
    references = load_references(args.compare, runs)

    from evalkit import plots, tables

    tables.warn_missing_published(runs, references, warn)
    written = tables.write_tables(runs, references, args.out, seed=args.seed, resamples=args.resamples)
    if not args.no_plots:
        written += plots.write_plots(runs, references, args.out / "plots", warn)
    print(f"evalkit.report: wrote {len(written)} files to {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
