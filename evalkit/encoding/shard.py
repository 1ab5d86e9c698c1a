"""Embedding-cache shards: the file format (a safetensors file whose metadata carries a checksum of its
contents), the buffer that fills one, and least-recently-used eviction.

    "keys"        (n, 32) uint8   sha256 of each rendered text
    "embeddings"  (n, H)          the raw pooled vectors
    metadata      {"format": "evalkit-shard/2", "sha256": <hex>}   sha256 over both tensors' dtype, shape and bytes

`read_shard` returns a shard only when it parses and its checksum matches, else raises `DamagedShard` with
the reason; the caller discards it and recomputes its texts. A flipped bit, a truncated file, a header that
reinterprets the bytes (another dtype or shape) or rows rewritten out of place all change the checksum.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

FORMAT = "evalkit-shard/2"


class DamagedShard(Exception):
    """A shard that cannot be trusted: unreadable, truncated, or its checksum does not match."""


def digest(keys: torch.Tensor, vectors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for name, tensor in (("keys", keys), ("embeddings", vectors)):
        tensor = tensor.contiguous()
        h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        h.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def write_shard(path: Path, keys: list[bytes], vectors: torch.Tensor) -> None:
    """Write `path` (the caller makes it atomic): keys and vectors and their checksum."""
    from safetensors.torch import save_file

    key_tensor = torch.frombuffer(bytearray(b"".join(keys)), dtype=torch.uint8).view(len(keys), 32)
    vectors = vectors.contiguous().cpu()
    save_file({"keys": key_tensor, "embeddings": vectors}, str(path),
              metadata={"format": FORMAT, "sha256": digest(key_tensor, vectors)})


def read_shard(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(keys (n, 32) uint8, vectors (n, H)) of a verified shard. FileNotFoundError when it is gone (evicted);
    DamagedShard(reason) when it is there but cannot be trusted."""
    from safetensors.torch import load

    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise DamagedShard(f"unreadable ({exc.strerror or exc})") from exc
    try:
        size = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + size]).get("__metadata__") or {}
        tensors = load(data)
        keys, vectors = tensors["keys"], tensors["embeddings"]
    except Exception as exc:  # safetensors, json and key errors alike: the file is not a whole shard
        raise DamagedShard(f"unreadable or truncated ({type(exc).__name__})") from exc
    if meta.get("format") != FORMAT or "sha256" not in meta:
        raise DamagedShard("no checksum (not written by this evalkit)")
    if keys.dtype != torch.uint8 or keys.dim() != 2 or keys.shape[1] != 32 or len(keys) != len(vectors):
        raise DamagedShard("keys and embeddings do not line up")
    if digest(keys, vectors) != meta["sha256"]:
        raise DamagedShard("checksum mismatch (flipped bits or rows rewritten)")
    return keys, vectors


def read_keys(path: Path) -> list[bytes]:
    """The keys of a shard, without reading its vectors (indexing); DamagedShard when they cannot be read."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            raw = fh.get_tensor("keys")
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise DamagedShard(f"unreadable or truncated ({type(exc).__name__})") from exc
    if raw.ndim != 2 or raw.shape[1] != 32:
        raise DamagedShard("its keys are not sha256 digests")
    return [bytes(row) for row in raw]


class ShardBuffer:
    """Finished embeddings waiting to become one cache shard of `size` texts (nothing, without a cache).
    Non-finite vectors are never stored: the run refuses them, and a re-run must meet them again."""

    def __init__(self, cache: Any, size: int, dtype) -> None:
        self.cache, self.size, self.dtype = cache, size, dtype
        self.keys: list[bytes] = []
        self.parts: list = []

    def add(self, keys: list[bytes], vectors) -> None:
        if self.cache is None:
            return
        finite = torch.isfinite(vectors).all(dim=1)
        if not bool(finite.all()):
            keys = [key for key, ok in zip(keys, finite.tolist()) if ok]
            vectors = vectors[finite]
        self.keys.extend(keys)
        self.parts.append(vectors.to(self.dtype))
        if len(self.keys) >= self.size:
            self.flush()

    def flush(self) -> None:
        if self.cache is not None and self.keys:
            self.cache.put(self.keys, torch.cat(self.parts))
        self.keys, self.parts = [], []


def evict(root: Path, max_bytes: int, keep: Path | None = None) -> int:
    """Delete least recently used shards under `root` until it holds at most max_bytes; returns how many."""
    files = []
    for path in Path(root).glob("*/shards/*.safetensors"):
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue  # evicted or discarded by another process meanwhile
        files.append((stat.st_mtime, stat.st_size, path))
    files.sort(key=lambda item: item[0])
    total = sum(size for _, size, _ in files)
    removed = 0
    for _, size, path in files:
        if total <= max_bytes:
            break
        if path == keep:
            continue
        total -= size
        path.unlink(missing_ok=True)
        removed += 1
    return removed
