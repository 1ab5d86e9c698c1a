"""Result files: where they go, what the run record holds, and writing both without leaving partial files.

Layout (mteb's own, so `mteb.ResultCache` reads it):
    <results_dir>/<org__model>/<revision>/<MtebTask>.json          TaskResult
    <results_dir>/<org__model>/<revision>/model_meta.json
    <results_dir>/<org__model>/<revision>/evalkit/<MtebTask>.run.json   run record
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from evalkit.config import ROOT

PACKAGES = ("evalkit", "mteb", "torch", "transformers", "tokenizers", "beir", "datasets", "numpy", "hydra-core")


def model_dir(results_dir: str | Path, name: str, revision: str | None) -> Path:
    return Path(results_dir) / name.replace("/", "__") / (revision or "no_revision_available")


def record_path(result_path: Path) -> Path:
    return result_path.parent / "evalkit" / f"{result_path.stem}.run.json"


def task_score(task_result, split: str, subset: str, metric: str) -> float:
    for entry in task_result.scores.get(split, []):
        if entry.get("hf_subset") == subset:
            return float(entry[metric])
    raise KeyError(f"{task_result.task_name}: no {split}/{subset} scores")


def environment() -> dict[str, Any]:
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"python": platform.python_version(), "versions": versions, "git_sha": git_sha(), "hardware": hardware()}


def git_sha() -> str | None:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if sha.returncode != 0:
        return None
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["gpu_count"] = torch.cuda.device_count()
    except ImportError:
        pass
    return info


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` then rename onto `path`: readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_json(path: Path, obj: Any) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8"))


def write_result(path: Path, task_result, record: dict[str, Any], model_meta) -> None:
    """Run record and model meta first, the TaskResult last: its presence means 'finished'."""
    _write_json(record_path(path), record)
    _write_json(path.parent / "model_meta.json", model_meta.to_dict())
    _atomic_write(path, task_result.to_disk)
