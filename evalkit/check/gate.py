"""The gate: measure a suite (golden embeddings first, then scores), compare with its baseline, maybe rewrite it."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from evalkit.check import baseline as baseline_file
from evalkit.check import golden, scores
from evalkit.check.rows import Row
from evalkit import EvalkitError
from evalkit.check.suite import Suite, encode_config, load_probes

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    suite: str
    baseline_path: Path
    rows: list[Row]
    seconds: dict[str, float] = field(default_factory=dict)  # golden, scores, total
    updated: bool = False
    changes: list[str] = field(default_factory=list)  # what --update-baseline changed
    environment_note: str = ""

    @property
    def held(self) -> int:
        return sum(r.ok is True for r in self.rows)

    @property
    def ok(self) -> bool:
        """No check failed and at least one held: a gate that checked nothing has not passed."""
        return self.held > 0 and all(r.ok is not False for r in self.rows)

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.ok is False]


def baseline_path(suite: Suite, baseline_dir: Path | None = None) -> Path:
    """`<baseline_dir>/<suite>.json`, by default `baselines/<suite>.json` beside the suite file."""
    return Path(baseline_dir or Path(suite.file).parent / "baselines") / f"{suite.name}.json"


def refuse_packaged_baseline(path: Path) -> None:
    """A baseline inside the installed package is package data: rewritten only in evalkit's own source tree."""
    from evalkit.conf_path import CONF_DIR
    from evalkit.files import source_checkout

    if path.resolve().is_relative_to(CONF_DIR.resolve()) and source_checkout() is None:
        raise EvalkitError(f"{path} belongs to the installed evalkit package and is not rewritten: pass "
                           f"--baseline-dir DIR, or copy the suite into your own config folder (--config-dir) "
                           f"so that its baseline lives beside it")


def default_results_dir(suite_name: str) -> Path:
    return Path("results") / "check" / suite_name


def measure_golden(suite: Suite, specs, model_overrides: Mapping[str, Any] | None = None
                   ) -> tuple[dict[str, Any], dict[str, Callable]]:
    """(model name -> baseline entry, model name -> its tokenizer's id-to-token function for the notes),
    for every golden model of the suite."""
    from evalkit.encoding.encoder import load_encoder

    probes = load_probes(suite.golden.probes)
    instructions = {spec.mteb_task: spec for spec in specs.values()}
    entries, namers = {}, {}
    for name in suite.golden.models:
        encoder = load_encoder(name, instructions=instructions, encode=encode_config(suite), strict_instructions=True,
                               **dict(model_overrides or {}))
        entries[name] = golden.measure(encoder, probes, specs)
        namers[name] = encoder.tokenizer.convert_ids_to_tokens
    return entries, namers


def check(suite: Suite, path: Path | None = None, *, results_dir: Path | None = None, update: bool = False,
          golden_only: bool = False, keep_going: bool = False, model_overrides: Mapping[str, Any] | None = None,
          task_overrides: Mapping[str, Mapping[str, Any]] | None = None, alpha: float = 0.05,
          adjustment: str = "holm") -> Outcome:
    """Run the suite and compare. Golden failures stop before the scores unless keep_going or update. Scores
    fail beyond their tolerance, and on a paired drop significant at `alpha` (0: off) after `adjustment`."""
    start = time.perf_counter()
    if golden_only and suite.golden is None:
        raise EvalkitError(f"suite {suite.name} has no golden checks: --golden-only would check nothing "
                           f"(drop --golden-only to run its score checks)")
    path = path or baseline_path(suite)
    if update:
        refuse_packaged_baseline(path)
    base = baseline_file.load(path)
    specs = scores.specs_with(task_overrides)
    outcome = Outcome(suite.name, path, [])
    golden_now = None
    if suite.golden:
        t = time.perf_counter()
        golden_now, namers = measure_golden(suite, specs, model_overrides)
        outcome.seconds["golden"] = time.perf_counter() - t
        for name, entry in golden_now.items():
            outcome.rows += golden.compare(name, (base or {}).get("golden", {}).get(name), entry,
                                           suite.golden.min_cosine, namers[name])
    scores_now = None
    if suite.scores:
        run_scores = not golden_only and (not outcome.failed or keep_going or update)  # no golden row failed
        if run_scores:
            t = time.perf_counter()
            scores_now = scores.measure(suite, results_dir or default_results_dir(suite.name), specs, model_overrides)
            outcome.seconds["scores"] = time.perf_counter() - t
        elif not golden_only:
            log.warning("golden embeddings changed: score checks skipped (--keep-going runs them anyway)")
        outcome.rows += scores.compare(suite, (base or {}).get("scores", {}), scores_now, alpha=alpha,
                                       adjustment=adjustment)
    if update:
        from evalkit.results import environment

        new = baseline_file.write(path, suite.name, base, golden_now, scores_now, environment())
        outcome.updated, outcome.changes = True, baseline_file.changes(base, new)
    elif not outcome.ok:
        outcome.environment_note = baseline_file.environment_note(base)
    outcome.seconds["total"] = time.perf_counter() - start
    return outcome
