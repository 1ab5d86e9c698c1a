"""Score checks: run the suite's tasks with `evalkit.runner.run`, exactly as users do, and compare metrics."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from evalkit import EvalkitError
from evalkit.check.rows import Row
from evalkit.check.suite import Suite, SuiteTask, data_folder, encode_config
from evalkit.config import TaskSpec, load_model_config
from evalkit.results import scores_entry

log = logging.getLogger(__name__)


def task_metrics(suite: Suite, entry: SuiteTask) -> list[str]:
    return list(entry.metrics or suite.scores.metrics)


def task_tolerance(suite: Suite, entry: SuiteTask) -> float:
    return suite.scores.tolerance if entry.tolerance is None else entry.tolerance


def read_metrics(path: Path, spec: TaskSpec, metrics: list[str]) -> dict[str, float]:
    """The metrics from an mteb result file; a missing metric is an error naming what is there."""
    entry = scores_entry(json.loads(path.read_text(encoding="utf-8"))["scores"], spec.split, spec.hf_subset)
    if entry is None:
        raise EvalkitError(f"{path}: no {spec.split}/{spec.hf_subset} scores")
    missing = [m for m in metrics if not isinstance(entry.get(m), (int, float))]
    if missing:
        raise EvalkitError(f"{path}: no metric {', '.join(missing)} (has e.g. {', '.join(sorted(entry)[:8])})")
    return {m: float(entry[m]) for m in metrics}


def measure(suite: Suite, results_dir: Path, specs: Mapping[str, TaskSpec],
            model_overrides: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Run every task of the suite (overwriting earlier runs in results_dir); task name -> baseline entry."""
    from evalkit.config import RunConfig
    from evalkit.runner import run

    checks = suite.scores
    model = load_model_config(checks.model, **dict(model_overrides or {}))
    folders = {e.task: data_folder(e, suite.name) for e in checks.tasks}  # every folder checked before any run
    out: dict[str, dict[str, Any]] = {}
    for entry in checks.tasks:
        spec = specs[entry.task]
        folder = folders[entry.task]
        cfg = RunConfig(task=spec, model=model, data_dir=str(folder) if folder else None,
                        results_dir=str(results_dir), overwrite=True, encode=encode_config(suite),
                        strict_instructions=True)  # the gate measures the paper's instructions, never mteb's
        start = time.perf_counter()
        summary = run(cfg)
        seconds = time.perf_counter() - start
        metrics = read_metrics(summary.path, spec, task_metrics(suite, entry))
        log.info("%s: %s (%.0f s)", entry.task, ", ".join(f"{k}={v:.5f}" for k, v in metrics.items()), seconds)
        out[entry.task] = {
            "model": model.name,
            "revision": model.revision,
            "mteb_task": spec.mteb_task,
            "split": spec.split,
            "hf_subset": spec.hf_subset,
            "data_dir": entry.data_dir,
            "metrics": metrics,
            "seconds": round(seconds, 1),
        }
    return out


def compare(suite: Suite, base: Mapping[str, Any], now: Mapping[str, Any] | None) -> list[Row]:
    """One row per task and metric; `now` None means the scores were not run (rows skipped)."""
    rows = []
    for entry in suite.scores.tasks:
        tol = task_tolerance(suite, entry)
        base_entry = base.get(entry.task) or {}
        for metric in task_metrics(suite, entry):
            b = (base_entry.get("metrics") or {}).get(metric)
            bs = "-" if b is None else f"{100 * b:.3f}"
            if now is None:
                rows.append(Row(entry.task, metric, bs, "-", "", f"±{tol:g}", None, "not run"))
                continue
            n = now[entry.task]["metrics"][metric]
            if b is None:
                rows.append(Row(entry.task, metric, "-", f"{100 * n:.3f}", "", f"±{tol:g}", False,
                                "no baseline score; record one with --update-baseline"))
                continue
            delta = 100 * (n - b)
            ok = abs(delta) <= tol + 1e-9
            note = "" if ok else (f"{'dropped' if delta < 0 else 'rose'} {abs(delta):.3f} points, more than {tol:g}"
                                  + _identity_note(base_entry, now[entry.task]))
            rows.append(Row(entry.task, metric, bs, f"{100 * n:.3f}", f"{delta:+.3f}", f"±{tol:g}", ok, note))
    return rows


def _identity_note(base: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    diffs = [f"{k} {base.get(k)} -> {now.get(k)}" for k in ("model", "revision", "data_dir", "split")
             if k in base and base.get(k) != now.get(k)]
    return f" (baseline differs: {', '.join(diffs)})" if diffs else ""


def specs_with(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, TaskSpec]:
    """The task registry keyed by CLI name, with fields of some tasks replaced (instruction, ...)."""
    from evalkit.tasks import load_task_specs, resolve_task_name

    specs = dict(load_task_specs())
    for name, fields in (overrides or {}).items():
        key = resolve_task_name(name, specs)
        specs[key] = replace(specs[key], **fields)
    return specs
