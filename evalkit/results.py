"""Result files: the one owner of where results go, how they are written and how they are read back.

Layout (mteb's own, so `mteb.ResultCache` reads it):
    <results_dir>/<org__model>/<revision>/<MtebTask>.json          TaskResult
    <results_dir>/<org__model>/<revision>/model_meta.json
    <results_dir>/<org__model>/<revision>/evalkit/<MtebTask>.run.json   run record
    <results_dir>/<org__model>/<revision>/evalkit/<MtebTask>.lock       held while a run checks, runs and writes

A run holds the lock of its result path from the check "already done?" to the last write, so two runs to one
path never interleave: the second waits, then skips (the same experiment, finished) or is refused (another).
The run record stores a digest of the result file's scores (`scores_sha256`); a record and result that
disagree (two writers, a hand edit) are never taken as a finished experiment (`pair_problem`).

Under a results root, `baselines/` (the gate's committed baselines), dot-folders (sweep metadata) and
anything deeper than three levels (the gate's own runs under `check/`) are not results.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import platform
import subprocess
import tempfile
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Mapping

from evalkit import EvalkitError
from evalkit.files import atomic_write, file_mode, source_checkout

log = logging.getLogger(__name__)

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


def scores_digest(scores: Any) -> str:
    """sha256 of a TaskResult's `scores` as read back from its file (key order and spacing do not count)."""
    blob = json.dumps(scores, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()


def pair_problem(path: Path, record: Mapping[str, Any] | None = None) -> str | None:
    """Why the TaskResult at `path` and its run record are not one run's (None when they agree): the record's
    digest of the scores, else (a record from before the digest) its headline score, against the file's."""
    record = read_record(path) if record is None else record
    if record is None:
        return "it has no readable run record"
    try:
        scores = json.loads(path.read_text(encoding="utf-8"))["scores"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its scores cannot be read ({type(exc).__name__})"
    if record.get("scores_sha256") is not None:
        if record["scores_sha256"] != scores_digest(scores):
            return "its scores are not those its run record was written with"
        return None
    entry = scores_entry(scores, record.get("split"), record.get("hf_subset")) if isinstance(scores, dict) else None
    try:
        same = entry is not None and float(entry[record["metric"]]) == float(record["score"])
    except (KeyError, TypeError, ValueError):
        same = False
    return None if same else "its headline score is not the one its run record holds"


def write_result(path: Path, task_result, record: dict[str, Any], model_meta) -> None:
    """The TaskResult is written to a temporary file first and the record gets the digest of its scores as
    written; then the record, the model meta and, last, the TaskResult renamed into place: its presence means
    'finished'. Call under `result_lock(path)`, which keeps another run from writing in between."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    staged = Path(name)
    try:
        task_result.to_disk(staged)
        record = {**record, "scores_sha256": scores_digest(json.loads(staged.read_text(encoding="utf-8"))["scores"])}
        atomic_write(record_path(path), json.dumps(record, indent=2, default=str))
        atomic_write(path.parent / "model_meta.json", json.dumps(model_meta.to_dict(), indent=2, default=str))
        os.chmod(staged, file_mode())
        os.replace(staged, path)
    except BaseException:
        if not path.exists():  # no result: leave no record of it either (an older pair is caught by its digest)
            record_path(path).unlink(missing_ok=True)
        raise
    finally:
        staged.unlink(missing_ok=True)


def lock_path(result_path: Path) -> Path:
    return result_path.parent / "evalkit" / f"{result_path.stem}.lock"


@contextmanager
def result_lock(path: Path, take: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on the result path `path` (an flock on `lock_path(path)`), waiting with one log
    line while another run holds it. Folders made for the lock, and the lock file, are removed on release, so a
    run that fails leaves nothing behind. Where the lock file cannot be made (a read-only results_dir) nothing
    can be written either: the run goes on unlocked and fails at its write check, or skips a finished result."""
    if not take:
        yield
        return
    lock = lock_path(path)
    made: list[Path] = []  # folders this call created
    try:
        fh = _locked(lock, made)
    except OSError as exc:
        _remove_empty(made)
        if exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.ENOENT, errno.EEXIST):
            log.warning("cannot lock %s (%s); running without the lock", lock, exc.strerror or exc)
        yield
        return
    try:
        yield
    finally:
        try:
            lock.unlink(missing_ok=True)  # before unlocking: a waiter then finds its file gone and opens anew
        except OSError:
            pass
        fh.close()
        _remove_empty(made)


def _locked(lock: Path, made: list[Path]):
    """An open file holding the flock of `lock`, the file still at that path (one removed by the run that
    held it before is opened anew); folders it makes on the way are added to `made`."""
    while True:
        missing, folder = [], lock.parent
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        for part in reversed(missing):
            part.mkdir(exist_ok=True)
            made.append(part)
        try:
            fh = open(lock, "a+")
        except FileNotFoundError:  # its folder removed meanwhile by the run that held the lock: make it again
            continue
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                fh.close()
                raise
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            log.warning("waiting for another evalkit run writing %s (%s) to finish", lock.parent.parent, holder)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            same = os.stat(lock).st_ino == os.fstat(fh.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            fh.seek(0)
            fh.truncate()
            fh.write(f"pid {os.getpid()} on {platform.node()}\n")
            fh.flush()
            return fh
        fh.close()


def _remove_empty(folders: list[Path]) -> None:
    """rmdir each of `folders` that is empty, deepest first (one another run filled stays)."""
    for folder in sorted(set(folders), key=lambda p: len(p.parts), reverse=True):
        try:
            folder.rmdir()
        except OSError:
            pass
