"""Result files: the one owner of where results go, how they are written and how they are read back.

Layout (mteb's own, so `mteb.ResultCache` reads it):
    <results_dir>/<org__model>/<revision>/<MtebTask>.json          TaskResult
    <results_dir>/<org__model>/<revision>/model_meta.json
    <results_dir>/<org__model>/<revision>/evalkit/<MtebTask>.run.json   run record

Under a results root, `baselines/` (the gate's committed baselines), dot-folders (sweep metadata) and
anything deeper than three levels (the gate's own runs under `check/`) are not results.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

from evalkit import EvalkitError
from evalkit.files import atomic_write, source_checkout

PACKAGES = ("evalkit", "mteb", "torch", "transformers", "tokenizers", "datasets", "numpy", "hydra-core")


NOT_RESULTS = ("evalkit", "baselines")  # folders under a results root that hold no TaskResult files


def model_dir(results_dir: str | Path, name: str, revision: str | None) -> Path:
    """`<results_dir>/<org__model>/<revision>`; a name or revision that would land elsewhere is refused."""
    check_names(name, revision)
    return Path(results_dir) / name.replace("/", "__") / (revision or "no_revision_available")


def result_path(results_dir: str | Path, name: str, revision: str | None, mteb_task: str) -> Path:
    return model_dir(results_dir, name, revision) / f"{mteb_task}.json"


def check_names(name: str, revision: str | None) -> None:
    """A model name (`org/model`) and a revision that each make one folder under results_dir which the report
    reads: no empty, `.` or `..` parts (so no absolute path), no `\\`, a revision without `/`, neither hidden
    (a leading `.`) nor one of the folders that hold no results."""
    folder = name.replace("/", "__")
    if (any(part in ("", ".", "..") for part in name.split("/")) or "\\" in name or "\0" in name
            or folder.startswith(".") or folder in NOT_RESULTS or len(folder) > 200):
        raise EvalkitError(f"model.name {name!r} cannot name a folder under results_dir (no '..', '.' or empty "
                           f"parts, no absolute path, no '\\', no leading '.')")
    if revision is not None and (revision in ("", ".", "..") or revision.startswith(".") or revision in NOT_RESULTS
                                 or any(c in revision for c in "/\\\0") or len(revision) > 200):
        raise EvalkitError(f"model.revision {revision!r} cannot name a folder under results_dir (no '/', '\\', "
                           f"'..' or leading '.')")


def record_path(result_path: Path) -> Path:
    return result_path.parent / "evalkit" / f"{result_path.stem}.run.json"


def model_from_folder(folder_name: str) -> str:
    """`intfloat__e5-mistral-7b-instruct` (a results folder) -> `intfloat/e5-mistral-7b-instruct`."""
    return folder_name.replace("__", "/", 1)


def is_result_file(path: Path, results_dir: Path) -> bool:
    """<org__model>/<revision>/<Task>.json at most three levels below `results_dir` (a root, a model folder
    or a revision folder), outside the folders that hold no results."""
    parts = path.relative_to(results_dir).parts
    return (path.suffix == ".json" and path.name != "model_meta.json" and len(parts) <= 3
            and not any(p.startswith(".") or p in NOT_RESULTS for p in parts[:-1]))


def result_files(results_dir: Path) -> list[Path]:
    """Every TaskResult file under `results_dir`, sorted."""
    return sorted(p for p in Path(results_dir).rglob("*.json") if is_result_file(p, Path(results_dir)))


def scores_entry(scores: Mapping[str, Any], split: str, subset: str) -> dict[str, Any] | None:
    """The score dict of one split and subset in a TaskResult's `scores` (object or JSON alike), or None."""
    return next((e for e in scores.get(split) or [] if e.get("hf_subset") == subset), None)


def task_score(task_result, split: str, subset: str, metric: str) -> float:
    entry = scores_entry(task_result.scores, split, subset)
    if entry is None:
        raise KeyError(f"{task_result.task_name}: no {split}/{subset} scores")
    return float(entry[metric])


def read_record(result_path: Path) -> dict | None:
    """The run record beside a TaskResult file, or None when there is none (or it is unreadable)."""
    try:
        record = json.loads(record_path(result_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def read_run_records(folder: Path) -> tuple[dict[str, dict], list[str]]:
    """(mteb task name -> evalkit run record, problems) for the records in `<folder>/evalkit/`."""
    records, problems = {}, []
    for path in sorted((folder / "evalkit").glob("*.run.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"{path}: unreadable run record ({type(exc).__name__}); ignored")
            continue
        if isinstance(record, dict):
            records[record.get("mteb_task") or path.name.removesuffix(".run.json")] = record
    return records, problems


def identify_model(folder: Path, records: Mapping[str, dict]) -> tuple[str, str]:
    """(model name, revision) of a revision folder: from a run record, else model_meta.json, else the names."""
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


def environment() -> dict[str, Any]:
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"python": platform.python_version(), "versions": versions, "git_sha": git_sha(), "hardware": hardware()}


def git_sha() -> str | None:
    """The commit of the evalkit checkout this runs from (`-dirty` with local changes); None for an installed wheel."""
    checkout = source_checkout()
    if checkout is None or not (checkout / ".git").exists():
        return None
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=checkout,
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


def write_result(path: Path, task_result, record: dict[str, Any], model_meta) -> None:
    """Run record and model meta first, the TaskResult last: its presence means 'finished'."""
    atomic_write(record_path(path), json.dumps(record, indent=2, default=str))
    atomic_write(path.parent / "model_meta.json", json.dumps(model_meta.to_dict(), indent=2, default=str))
    atomic_write(path, task_result.to_disk)
