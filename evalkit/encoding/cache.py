"""Content-addressed embedding cache: safetensors shards and a SQLite index, never pickle.

    <root>/<model key>/model.json                 what produced these embeddings (for `cache info`)
    <root>/<model key>/shards/<name>.safetensors  "keys" (n, 32) uint8 sha256 + "embeddings" (n, H)
    <root>/<model key>/index.sqlite               key -> (shard, row); rebuilt from the shards at will

The model key hashes everything that changes an embedding: model name and path, revision,
tokenizer, random init, pooling, max length, dtype and evalkit's token-id scheme. A text's key
is the sha256 of the rendered text, instruction included. Vectors are the raw pooled ones
(normalization is applied after reading), in the forward pass's dtype where pooling picks one
token (lossless), else float32.

A shard is written to a temporary name and renamed, so a killed run leaves whole shards only;
shards the index does not know (the process died before indexing them, or another rank wrote
them) are adopted when the cache is opened. Shard names are unique per process, so several
ranks may write into one folder. Shard files' mtimes mark use; past `max_bytes` the least
recently used shards of the whole root are deleted.

    python -m evalkit cache info [--dir DIR]          python -m evalkit cache clear [--dir DIR] [MODEL]
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evalkit.files import atomic_write, cache_root

ID_SCHEME = "bos+text+eos/v1"  # bump when token ids are built differently (see model.token_ids)
CHUNK = 500  # keys per SQLite query


def embeddings_root() -> Path:
    """The default cache folder: `embeddings/` under evalkit's cache root."""
    return cache_root() / "embeddings"


def model_identity(cfg, device_type: str = "cpu") -> dict[str, Any]:
    """Every model setting that changes an embedding (not normalize or padding side).

    Random weights are drawn differently on a GPU and a CPU, so for them the device counts."""
    random_init = None
    if cfg.random_init is not None:
        random_init = {**asdict(cfg.random_init), "drawn_on": "cuda" if device_type == "cuda" else "cpu"}
    return {
        "name": cfg.name, "name_or_path": cfg.name_or_path, "revision": cfg.revision, "tokenizer": cfg.tokenizer,
        "random_init": random_init, "pooling": cfg.pooling, "max_length": cfg.max_length, "dtype": cfg.dtype,
        "id_scheme": ID_SCHEME,
    }


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


class EmbeddingCache:
    def __init__(self, root: str | Path, identity: dict[str, Any], max_bytes: int | None = None) -> None:
        blob = json.dumps(identity, sort_keys=True)
        self.root = Path(root)
        self.dir = self.root / hashlib.sha256(blob.encode()).hexdigest()[:20]
        self.shards = self.dir / "shards"
        self.shards.mkdir(parents=True, exist_ok=True)
        if not (self.dir / "model.json").exists():
            atomic_write(self.dir / "model.json", json.dumps(identity, indent=1, sort_keys=True))
        self.max_bytes = max_bytes
        self.db = sqlite3.connect(self.dir / "index.sqlite", timeout=60, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS entries (key BLOB PRIMARY KEY, shard TEXT, row INTEGER)")
        self.db.execute("CREATE TABLE IF NOT EXISTS shards (name TEXT PRIMARY KEY, rows INTEGER)")
        self.adopt_orphans()

    # -- reading ---------------------------------------------------------------------------------
    def lookup(self, keys: list[bytes]) -> dict[bytes, tuple[str, int]]:
        found: dict[bytes, tuple[str, int]] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), CHUNK):
            part = unique[start:start + CHUNK]
            marks = ",".join("?" * len(part))
            rows = self.db.execute(f"SELECT key, shard, row FROM entries WHERE key IN ({marks})", part)
            found.update((key, (shard, row)) for key, shard, row in rows)
        return found

    def get(self, keys: list[bytes]):
        """(positions in `keys` found, their vectors as one float32 numpy array (n, H), or None)."""
        import numpy as np
        from safetensors.torch import load_file

        where = self.lookup(keys)
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for pos, key in enumerate(keys):
            if key in where:
                shard, row = where[key]
                by_shard.setdefault(shard, []).append((pos, row))
        positions, parts = [], []
        for shard, pairs in by_shard.items():
            path = self.shards / f"{shard}.safetensors"
            try:
                vectors = load_file(path)["embeddings"]
                os.utime(path)  # recently used
            except OSError:
                self._forget(shard)  # evicted by another process: a miss
                continue
            parts.append(vectors[[row for _, row in pairs]].float().numpy())
            positions.extend(pos for pos, _ in pairs)
        if not parts:
            return np.zeros(0, dtype=np.int64), None
        return np.asarray(positions, dtype=np.int64), np.concatenate(parts)

    # -- writing ---------------------------------------------------------------------------------
    def put(self, keys: list[bytes], vectors) -> str:
        """One shard of (keys, vectors: a torch tensor (n, H)); returns its name."""
        import torch
        from safetensors.torch import save_file

        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        key_tensor = torch.frombuffer(bytearray(b"".join(keys)), dtype=torch.uint8).view(len(keys), 32)
        tensors = {"keys": key_tensor, "embeddings": vectors.contiguous().cpu()}
        atomic_write(self.shards / f"{name}.safetensors", lambda tmp: save_file(tensors, str(tmp)))
        self._index(name, keys)
        if self.max_bytes is not None:
            evict(self.root, self.max_bytes, keep=self.shards / f"{name}.safetensors")
        return name

    def _index(self, name: str, keys: list[bytes]) -> None:
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO entries VALUES (?, ?, ?)",
                                [(key, name, row) for row, key in enumerate(keys)])
            self.db.execute("INSERT OR REPLACE INTO shards VALUES (?, ?)", (name, len(keys)))

    def _forget(self, name: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM entries WHERE shard = ?", (name,))
            self.db.execute("DELETE FROM shards WHERE name = ?", (name,))

    def adopt_orphans(self) -> int:
        """Index shards on disk the index lacks; forget indexed shards that are gone."""
        from safetensors import safe_open

        on_disk = {p.stem for p in self.shards.glob("*.safetensors")}
        known = {name for (name,) in self.db.execute("SELECT name FROM shards")}
        for name in known - on_disk:
            self._forget(name)
        for name in sorted(on_disk - known):
            with safe_open(str(self.shards / f"{name}.safetensors"), framework="numpy") as fh:
                raw = fh.get_tensor("keys")
            self._index(name, [bytes(row) for row in raw])
        return len(on_disk - known)

    def close(self) -> None:
        self.db.close()


class ShardBuffer:
    """Finished embeddings waiting to become one cache shard of `size` texts (nothing, without a cache)."""

    def __init__(self, cache: EmbeddingCache | None, size: int, dtype) -> None:
        self.cache, self.size, self.dtype = cache, size, dtype
        self.keys: list[bytes] = []
        self.parts: list = []

    def add(self, keys: list[bytes], vectors) -> None:
        if self.cache is None:
            return
        self.keys.extend(keys)
        self.parts.append(vectors.to(self.dtype))
        if len(self.keys) >= self.size:
            self.flush()

    def flush(self) -> None:
        import torch

        if self.cache is not None and self.keys:
            self.cache.put(self.keys, torch.cat(self.parts))
        self.keys, self.parts = [], []


def evict(root: Path, max_bytes: int, keep: Path | None = None) -> int:
    """Delete least recently used shards under `root` until it holds at most max_bytes; returns how many."""
    files = sorted(Path(root).glob("*/shards/*.safetensors"), key=lambda p: p.stat().st_mtime)
    total = sum(p.stat().st_size for p in files)
    removed = 0
    for path in files:
        if total <= max_bytes:
            break
        if path == keep:
            continue
        total -= path.stat().st_size
        path.unlink(missing_ok=True)
        removed += 1
    return removed


# -- `evalkit cache info|clear` -------------------------------------------------------------------------

def describe(root: Path) -> list[dict[str, Any]]:
    rows = []
    for folder in sorted(p for p in Path(root).glob("*") if (p / "shards").is_dir()):
        info = json.loads((folder / "model.json").read_text()) if (folder / "model.json").exists() else {}
        shards = list((folder / "shards").glob("*.safetensors"))
        texts = 0
        if (folder / "index.sqlite").exists():
            with sqlite3.connect(folder / "index.sqlite") as db:
                texts = db.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        rows.append({"key": folder.name, "name": info.get("name", "?"), "revision": info.get("revision"),
                     "dtype": info.get("dtype"), "max_length": info.get("max_length"), "texts": texts,
                     "shards": len(shards), "bytes": sum(p.stat().st_size for p in shards)})
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="evalkit cache", description="the embedding cache")
    parser.add_argument("command", choices=["info", "clear"])
    parser.add_argument("model", nargs="?", help="clear: only models whose name contains this")
    parser.add_argument("--dir", default=None, help=f"cache folder (default {embeddings_root()})")
    args = parser.parse_intermixed_args(argv)
    root = Path(args.dir) if args.dir else embeddings_root()
    rows = describe(root) if root.is_dir() else []
    if args.command == "info":
        print(f"{root}")
        for r in rows:
            print(f"  {r['key']}  {r['name']} @ {r['revision']}  {r['dtype']}  max_length={r['max_length']}  "
                  f"{r['texts']} texts in {r['shards']} shards, {r['bytes'] / 1e6:.1f} MB")
        print(f"  total: {sum(r['texts'] for r in rows)} texts, {sum(r['bytes'] for r in rows) / 1e6:.1f} MB")
        return 0
    chosen = [r for r in rows if args.model is None or args.model in r["name"]]
    for r in chosen:
        shutil.rmtree(root / r["key"])
    print(f"removed {len(chosen)} model folder(s), {sum(r['bytes'] for r in chosen) / 1e6:.1f} MB, from {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

