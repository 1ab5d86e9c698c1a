"""Score checks: run the suite's tasks with `evalkit.runner.run`, exactly as users do, and compare metrics.

Two rules per task and metric: the tolerance (|Δ| in points, either direction) and, where the baseline holds
per-item scores, the significance rule: a paired drop whose p, adjusted across the suite's tested rows, is
below the level (evalkit.stats.paired: baseline and today's scores of the same queries or pairs).
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from evalkit import EvalkitError, stats, units
from evalkit.check.rows import Row
from evalkit.check.suite import Suite, SuiteTask, data_folder, encode_config
from evalkit.config import TaskSpec, load_model_config
from evalkit.results import read_record, scores_entry

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
        record = read_record(summary.path)
        found = {m: units.checked(units.from_record(record, m, spec.type)[0], value)[0] for m, value in metrics.items()}
        log.info("%s: %s (%.0f s)", entry.task, ", ".join(f"{k}={v:.5f}" for k, v in metrics.items()), seconds)
        out[entry.task] = {
            "model": model.name,
            "revision": model.revision,
            "mteb_task": spec.mteb_task,
            "split": spec.split,
            "hf_subset": spec.hf_subset,
            "data_dir": entry.data_dir,
            "metrics": metrics,
            "items": {m: u.to_json() for m, u in found.items() if u is not None},  # for the significance rule
            "seconds": round(seconds, 1),
        }
    return out


def compare(suite: Suite, base: Mapping[str, Any], now: Mapping[str, Any] | None, *, alpha: float = 0.05,
            adjustment: str = "holm") -> list[Row]:
    """One row per task and metric; `now` None means the scores were not run (rows skipped). alpha 0 turns the
    significance rule off."""
    rows, tested = [], []
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
            note = "" if ok else (f"tolerance: {'dropped' if delta < 0 else 'rose'} {abs(delta):.3f} points, "
                                  f"more than {tol:g}" + _identity_note(base_entry, now[entry.task]))
            row = Row(entry.task, metric, bs, f"{100 * n:.3f}", f"{delta:+.3f}", f"±{tol:g}", ok, note,
                      rules=[] if ok else ["tolerance"])
            rows.append(row)
            if alpha:
                result, row.unavailable = paired_change(entry.task, metric, base_entry, now[entry.task])
                if result is not None:
                    row.ci = f"[{100 * result.ci[0]:+.3f}, {100 * result.ci[1]:+.3f}]"
                    tested.append((row, result))
    significance_rule(tested, alpha, adjustment)
    return rows


def paired_change(task: str, metric: str, base: Mapping[str, Any], now: Mapping[str, Any]
                  ) -> tuple[stats.Paired | None, str]:
    """(today − baseline on the same items, "") or (None, why the significance rule cannot be applied)."""
    stored, current = (base.get("items") or {}).get(metric), (now.get("items") or {}).get(metric)
    if stored is None:
        return None, ("the baseline has no per-item scores (recorded before the rule existed, or for a metric "
                      "without them); record them with --update-baseline")
    if current is None:
        return None, "this run has no per-item scores of the metric (evalkit keeps them for nDCG@10, MAP@10, " \
                     "Recall@100 of retrieval and the main metric of STS, pair classification, summarization)"
    try:
        before, after = units.pair(units.from_json(stored), units.from_json(current))
        return stats.paired(before, after, seed=[0, zlib.crc32(f"{task}/{metric}".encode())]), ""
    except units.Mismatch as exc:
        return None, f"not the same items as the baseline's: {exc}"
    except (KeyError, TypeError, ValueError) as exc:
        return None, f"unusable per-item scores in the baseline ({type(exc).__name__}: {exc})"


def significance_rule(tested: list[tuple[Row, stats.Paired]], alpha: float, adjustment: str) -> None:
    """Adjust the rows' p across the suite and fail each row whose drop is significant."""
    adjusted = stats.adjust([result.p_value for _, result in tested], adjustment)
    name = {"holm": "Holm", "bh": "Benjamini-Hochberg"}[adjustment]
    for (row, result), p in zip(tested, adjusted):
        row.p = f"{result.p_value:.3g} ({p:.3g})"
        if result.delta < 0 and p < alpha:
            row.ok = False
            row.rules.append("significance")
            finding = (f"significance: paired Δ {100 * result.delta:+.3f} points, 95% CI {row.ci}, p {result.p_value:.3g} "
                       f"({name}-adjusted over {len(tested)} rows: {p:.3g} < {alpha:g}; {result.n} items)")
            row.note = f"{row.note}; {finding}" if row.note else finding


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
