"""Gate suites: `check/<name>.yaml` of the config folders -> Suite. Unknown keys and bad values fail with one line.

A suite names what the gate measures (score checks: one model on some tasks; golden checks:
probe texts through some models) and how far a measurement may move before the gate fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import MISSING

from evalkit import EvalkitError
from evalkit.conf_path import config_files, find_config, shown
from evalkit.config import structured, suggest
from evalkit.errors import first_line

SIDES = ("query", "document")


@dataclass
class SuiteTask:
    task: str = MISSING  # a task name as `python -m evalkit list` shows it (aliases work)
    data_dir: Optional[str] = None  # a local BEIR folder, relative to the repository root; None = the hub
    metrics: Optional[list[str]] = None  # None: the suite's metrics
    tolerance: Optional[float] = None  # points (0.1 = 0.001 of a fraction); None: the suite's


@dataclass
class ScoreChecks:
    model: str = MISSING  # model/<name>.yaml
    tolerance: float = 0.1  # points, either direction
    metrics: list[str] = field(default_factory=lambda: ["ndcg_at_10"])
    tasks: list[SuiteTask] = field(default_factory=list)


@dataclass
class GoldenChecks:
    models: list[str] = field(default_factory=list)  # model/<name>.yaml
    probes: str = "standard"  # check/probes/<name>.yaml
    min_cosine: float = 0.9999


@dataclass
class Suite:
    name: str = MISSING
    description: str = ""
    golden: Optional[GoldenChecks] = None
    scores: Optional[ScoreChecks] = None
    encode: dict[str, Any] = field(default_factory=lambda: {"show_progress": False})  # EncodeConfig keys
    file: Optional[str] = None  # the suite file (set by load_suite; its baseline lives beside it)


@dataclass
class Probe:
    """One golden input: its text goes through the encoder's render and embed like a task's would."""

    id: str = MISSING
    text: str = MISSING
    side: str = "query"  # query | document
    task: str = "SciFact"  # whose instruction (and task type) the encoder applies
    repeat: int = 1  # the text repeated, space-joined: a probe longer than any model's max_length

    @property
    def full_text(self) -> str:
        return " ".join([self.text] * self.repeat) if self.repeat > 1 else self.text


@dataclass
class ProbeFile:
    description: str = ""
    probes: list[Probe] = field(default_factory=list)


def _read_yaml(path: Path, where: str) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise EvalkitError(f"{where}: not valid YAML ({first_line(exc)})") from exc


def suite_names() -> list[str]:
    return list(config_files("check"))


def load_suite(name: str, path: Path | None = None) -> Suite:
    """`check/<name>.yaml` of the config folders (or a suite file elsewhere, `name` ending in .yaml), validated."""
    if path is None and name.endswith((".yaml", ".yml")):
        path, name = Path(name).resolve(), Path(name).stem
    path = path or find_config(f"check/{name}.yaml")
    if path is None or not path.is_file():
        raise EvalkitError(f"unknown suite {name!r}{suggest(name, suite_names())}")
    where = shown(path)
    data = _read_yaml(path, where)
    if "file" in data:
        raise EvalkitError(f"{where}: 'file' is not a suite key (evalkit sets it to where the suite was read from)")
    suite = structured(Suite, {"name": name, **data, "file": str(path)}, where)
    return check_suite(suite, where)


def check_suite(suite: Suite, where: str) -> Suite:
    from evalkit.config import model_names
    from evalkit.tasks import resolve_task_name

    if suite.golden is None and suite.scores is None:
        raise EvalkitError(f"{where}: a suite needs golden checks, score checks or both")
    encode_config(suite, where)
    models = model_names()
    for model in (suite.golden.models if suite.golden else []) + ([suite.scores.model] if suite.scores else []):
        if model not in models:
            raise EvalkitError(f"{where}: unknown model {model!r}{suggest(model, models)}")
    if suite.golden:
        if not 0 < suite.golden.min_cosine <= 1:
            raise EvalkitError(f"{where}: golden.min_cosine must be in (0, 1], got {suite.golden.min_cosine}")
        load_probes(suite.golden.probes)
    if suite.scores:
        if not suite.scores.tasks:
            raise EvalkitError(f"{where}: scores.tasks is empty")
        seen = set()
        for entry in suite.scores.tasks:
            entry.task = resolve_task_name(entry.task)
            if entry.task in seen:
                raise EvalkitError(f"{where}: task {entry.task} is listed twice")
            seen.add(entry.task)
            for tol in (entry.tolerance, suite.scores.tolerance):
                if tol is not None and tol < 0:
                    raise EvalkitError(f"{where}: {entry.task}: a tolerance must be >= 0, got {tol}")
            if entry.metrics is not None and not entry.metrics:
                raise EvalkitError(f"{where}: {entry.task}: metrics is empty")
    return suite


def encode_config(suite: Suite, where: str = "suite"):
    """The suite's encode settings as an EncodeConfig, with any embedding cache off: the gate measures the model."""
    from evalkit.config import EncodeConfig, check_encode

    enc = check_encode(structured(EncodeConfig, suite.encode, f"{where}: encode"), f"{where}: encode")
    enc.cache = False
    return enc


def data_folder(entry: SuiteTask, suite_name: str) -> Path | None:
    """The task's local data folder (a relative path is from the current directory, like any path given on the
    command line), checked to exist."""
    if entry.data_dir is None:
        return None
    folder = Path(entry.data_dir)
    if not folder.is_dir():
        raise EvalkitError(f"suite {suite_name}: data folder for {entry.task} does not exist: {entry.data_dir} "
                           f"(resolved to {folder.resolve()}; relative paths are from the current directory, and "
                           f"the ci suite expects to run from a checkout with ../shared beside it)")
    return folder.resolve()


def load_probes(name: str) -> list[Probe]:
    path = find_config(f"check/probes/{name}.yaml")
    if path is None:
        raise EvalkitError(f"unknown probe set {name!r}{suggest(name, list(config_files('check/probes')))}")
    where = shown(path)
    probes = structured(ProbeFile, _read_yaml(path, where), where).probes
    if not probes:
        raise EvalkitError(f"{where}: no probes")
    from evalkit.tasks import resolve_task_name

    ids = set()
    for probe in probes:
        if probe.id in ids:
            raise EvalkitError(f"{where}: probe id {probe.id!r} is used twice")
        ids.add(probe.id)
        if probe.side not in SIDES:
            raise EvalkitError(f"{where}: {probe.id}: side={probe.side!r} is not one of {', '.join(SIDES)}")
        if probe.repeat < 1:
            raise EvalkitError(f"{where}: {probe.id}: repeat must be >= 1")
        probe.task = resolve_task_name(probe.task)
    return probes
