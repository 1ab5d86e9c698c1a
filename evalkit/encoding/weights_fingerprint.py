"""Which weights an embedding came from: a fingerprint that changes whenever the weights or tokenizer do.

    local folder (or pkg:<module>/<path>)  sha256 over the files that decide the numbers: the safetensors
                                           weights, config.json, tokenizer and sentence-transformers files,
                                           and the model's own code (*.py, run under trust_remote_code).
                                           A folder re-trained in place gets another fingerprint even when
                                           sizes and times look alike; each file's hash is remembered by
                                           (path, size, mtime, ctime, inode) in `<cache root>/fingerprints.json`
                                           (a rewrite changes the ctime even when the mtime is put back), so
                                           an unchanged 14 GB checkpoint is read once, not on every run.
    hub model                              `hub:<repo>@<commit>`: the commit the local hub cache resolves
                                           the revision to (a hub commit pins every file by content).
    random weights                         the architecture config, seed and the device they were drawn on.

A separate tokenizer (`tokenizer:` in the model config) is fingerprinted the same way and folded in.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from evalkit import EvalkitError
from evalkit.config import ModelConfig
from evalkit.files import atomic_write, cache_root

# The files of a model folder that can change an embedding evalkit computes (weights load from safetensors
# only; other formats in the folder, such as ONNX exports or pickled .bin weights, are never read). The
# folder's Python files are the model's own code, run under trust_remote_code.
DECISIVE = ("*.safetensors", "config.json", "*.py", "tokenizer*", "vocab*", "merges.txt", "*.model", "special_tokens_map.json",
            "added_tokens.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
            "*_Pooling/config.json", "*_Normalize/*", "*_Dense/config.json", "*_Dense/*.safetensors")
CHUNK = 1 << 24


def weights_fingerprint(cfg: ModelConfig, device_type: str = "cpu") -> str:
    """A short stable id of the weights and tokenizer `cfg` loads (see the module docstring)."""
    from evalkit.encoding.model import is_local, random_init_device, resolve_path

    if cfg.random_init is not None:
        drawn = {**asdict(cfg.random_init), "drawn_on": random_init_device(device_type)}
        weights = "random:" + _digest(json.dumps(drawn, sort_keys=True, default=str).encode())
    else:
        source = resolve_path(cfg.name_or_path)
        weights = model_folder_fingerprint(Path(source)) if is_local(source) else hub_commit_fingerprint(source, cfg.revision)
    if cfg.tokenizer is None:
        return weights
    tok = resolve_path(cfg.tokenizer)
    tokenizer = (tokenizer_file_fingerprint(Path(tok)) if os.path.isfile(tok) else model_folder_fingerprint(Path(tok))
                 ) if is_local(tok) else hub_commit_fingerprint(tok, cfg.revision)
    return f"{weights}+tok:{tokenizer}"


def model_folder_fingerprint(folder: Path) -> str:
    """sha256 (16 hex digits) over the decisive files of a model folder: names and contents."""
    if not folder.is_dir():
        raise EvalkitError(f"model path is not a folder: {folder}")
    files = sorted({p for pattern in (*DECISIVE, *module_patterns(folder)) for p in folder.glob(pattern) if p.is_file()})
    if not files:
        raise EvalkitError(f"{folder} holds no model files (no config.json, *.safetensors or tokenizer files)")
    known = _load_known()
    h = hashlib.sha256()
    for path in files:
        h.update(f"{path.relative_to(folder).as_posix()}={_file_sha256(path, known)};".encode())
    _save_known(known)
    return "sha256:" + h.hexdigest()[:16]


def module_patterns(folder: Path) -> tuple[str, ...]:
    """The weights and settings inside each sentence-transformers module folder modules.json names (a
    StaticEmbedding's or a custom module's weights live there, not beside config.json)."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        paths = [str(m.get("path") or "") for m in modules]
    except (OSError, ValueError, AttributeError, TypeError):
        return ()
    return tuple(f"{path}/{kind}" for path in paths if path and ".." not in path
                 for kind in ("*.safetensors", "*.json", "*.txt", "*.model"))


def tokenizer_file_fingerprint(path: Path) -> str:
    known = _load_known()
    digest = _file_sha256(path, known)
    _save_known(known)
    return "sha256:" + digest[:16]


def hub_commit_fingerprint(repo: str, revision: str | None) -> str:
    """`hub:<repo>@<commit>`: the commit of the snapshot the local hub cache holds for this revision."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = snapshot_download(repo, revision=revision, local_files_only=True)
    except (LocalEntryNotFoundError, OSError, ValueError) as exc:
        if revision and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
            return f"hub:{repo}@{revision}"  # pinned by commit: the hub serves exactly these files
        raise EvalkitError(f"{repo}@{revision or 'main'} is not in the local Hugging Face cache, so which weights "
                           f"it names cannot be pinned; pin model.revision to a commit, or download it first") from exc
    return f"hub:{repo}@{Path(snapshot).name}"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _file_sha256(path: Path, known: dict) -> str:
    """The file's sha256, reused from `known` while its size, times and inode are unchanged."""
    stat = path.stat()
    key = str(path.resolve())
    seen = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns, "inode": stat.st_ino}
    entry = known.get(key)
    if entry and all(entry.get(k) == v for k, v in seen.items()):
        return entry["sha256"]
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    known[key] = {**seen, "sha256": h.hexdigest()}
    known["_dirty"] = True
    return h.hexdigest()


def _known_path() -> Path:
    return cache_root() / "fingerprints.json"


def _load_known() -> dict:
    try:
        data = json.loads(_known_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: hash again (a cache of hashes, never a source of truth)
    return data if isinstance(data, dict) else {}


def _save_known(known: dict) -> None:
    if known.pop("_dirty", False):
        try:
            atomic_write(_known_path(), json.dumps(known, indent=0, sort_keys=True))
        except OSError:
            pass  # a read-only cache root costs a re-hash next time, nothing else
