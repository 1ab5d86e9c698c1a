"""Content-addressed embedding cache: safetensors shards and a SQLite index, never pickle.

    <root>/<model key>/model.json                 what produced these embeddings (for `cache info`)
    <root>/<model key>/shards/<name>.safetensors  "keys" (n, 32) uint8 sha256 + "embeddings" (n, H) + checksum
    <root>/<model key>/index.sqlite               key -> (shard, row); rebuilt from the shards at will
    <root>/.evalkit-cache, <root>/<model key>/.evalkit-cache   markers: evalkit wrote this folder

Only folders holding the marker are ever deleted (`cache clear`, eviction): a folder passed as the cache
that evalkit did not create is never removed.

The model key hashes everything that changes an embedding: the weights and tokenizer fingerprint
(`weights_fingerprint.weights_fingerprint`: file contents, not sizes or times), model name and path, revision,
random init, pooling, max length, dtype and evalkit's token-id scheme. A text's key is the sha256 of
the rendered text, instruction included. Vectors are the raw pooled ones (normalization is applied
after reading), in the forward pass's dtype where pooling picks one token (lossless), else float32.

The cache is an optimisation, never a source of truth. Every read is verified: the shard's checksum
(`shard.read_shard`), and the stored key of every row served against the key asked for. A shard that
fails either check, or cannot be read, is deleted with a one-line warning and its texts are recomputed.
The index is only a hint: a damaged one (not a database, malformed) is rebuilt from the shards.

A shard is written to a temporary name and renamed, so a killed run leaves whole shards only;
shards the index does not know (the process died before indexing them, or another rank wrote
them) are adopted when the cache is opened. Shard names are unique per process, so several
ranks may write into one folder. Shard files' mtimes mark use; past `max_bytes` the least
recently used shards of the whole root are deleted.

A shared folder (NFS and other network file systems): the index uses SQLite's rollback journal, never
WAL (WAL keeps its lock state in shared memory, which processes on different hosts do not share). The
journal needs working POSIX locks (NFSv4, or NFSv3 with lockd; not a `nolock` mount). Where they are
broken the index can be damaged, which is detected and rebuilt; since every read is verified, that costs
time, never a wrong embedding. Shards are renamed into place, which is atomic on NFS too.

A folder that cannot be written (read-only, full disk) is one line naming `python -m evalkit cache clear`,
`encode.cache=false` and `encode.cache_dir=`; the Encoder checks it before the model loads.

    python -m evalkit cache info [--verify] [--dir DIR]     python -m evalkit cache clear [--dir DIR] [MODEL]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from evalkit import EvalkitError
from evalkit.encoding.shard import DamagedShard, evict, read_keys, read_shard, write_shard
from evalkit.files import CACHE_MARKER as MARKER
from evalkit.files import atomic_write, cache_root, probe_writable
from evalkit.errors import first_line

ID_SCHEME = "bos+text+eos/v1"  # bump when token ids are built differently (see model.token_ids)
CHUNK = 500  # keys per SQLite query
INDEX = "index.sqlite"
MARKER_TEXT = "an evalkit embedding cache folder: `python -m evalkit cache clear` may delete it\n"

log = logging.getLogger(__name__)


def embeddings_root() -> Path:
    """The default cache folder: `embeddings/` under evalkit's cache root."""
    return cache_root() / "embeddings"


def model_identity(cfg, device_type: str = "cpu", weights: str | None = None) -> dict[str, Any]:
    """Every model setting that changes an embedding (not normalize or padding side; trust_remote_code runs the
    model's own code instead of transformers'), and the fingerprint of
    the weights and tokenizer (`weights`, computed here when not given).

    Random weights are drawn differently on a GPU and a CPU, so for them the device counts."""
    from evalkit.encoding.weights_fingerprint import weights_fingerprint
    from evalkit.encoding.model import random_init_device
    from evalkit.encoding.st_folder import protocol_extras

    random_init = None
    if cfg.random_init is not None:
        random_init = {**asdict(cfg.random_init), "drawn_on": random_init_device(device_type)}
    return {
        "name": cfg.name, "name_or_path": cfg.name_or_path, "revision": cfg.revision, "tokenizer": cfg.tokenizer,
        "weights": weights if weights is not None else weights_fingerprint(cfg, device_type),
        "random_init": random_init, "pooling": cfg.pooling, "max_length": cfg.max_length, "dtype": cfg.dtype,
        "trust_remote_code": cfg.trust_remote_code, "id_scheme": ID_SCHEME, **protocol_extras(cfg),
    }


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def cache_error(root: Path, exc: BaseException) -> EvalkitError:
    """A cache folder that cannot be used, as one line that says how to get going again."""
    reason = getattr(exc, "strerror", None) or first_line(exc)
    return EvalkitError(f"the embedding cache at {root} cannot be written ({reason}): free space or fix its "
                        f"permissions, clear it with `python -m evalkit cache clear`, or run with encode.cache=false "
                        f"or encode.cache_dir=<another folder>")


def check_cache_writable(root: Path) -> None:
    """Fail now, before any work, when `root` cannot be created or written."""
    try:
        probe_writable(root)
    except OSError as exc:
        raise cache_error(Path(root), exc) from exc


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    """An index that is not a database or is malformed (rebuild it), not a full disk or a lock (report it)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return type(exc) is sqlite3.DatabaseError
    return code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


class EmbeddingCache:
    def __init__(self, root: str | Path, identity: dict[str, Any], max_bytes: int | None = None) -> None:
        blob = json.dumps(identity, sort_keys=True)
        self.root = Path(root)
        self.dir = self.root / hashlib.sha256(blob.encode()).hexdigest()[:20]
        self.shards = self.dir / "shards"
        self.max_bytes = max_bytes
        try:
            self.shards.mkdir(parents=True, exist_ok=True)
            for folder in (self.root, self.dir):
                if not (folder / MARKER).exists():
                    atomic_write(folder / MARKER, MARKER_TEXT)
            if not (self.dir / "model.json").exists():
                atomic_write(self.dir / "model.json", json.dumps(identity, indent=1, sort_keys=True))
        except OSError as exc:
            raise cache_error(self.root, exc) from exc
        self.db: sqlite3.Connection | None = None
        self._recovering = False
        self.adopt_orphans()  # opens the index (see _sql)

    # -- the index: a hint, rebuilt from the shards when damaged -----------------------------------
    def _open_index(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.dir / INDEX, timeout=60, check_same_thread=False)
        db.execute("PRAGMA journal_mode=DELETE")  # never WAL: see the module docstring (network file systems)
        db.execute("CREATE TABLE IF NOT EXISTS entries (key BLOB PRIMARY KEY, shard TEXT, row INTEGER)")
        db.execute("CREATE TABLE IF NOT EXISTS shards (name TEXT PRIMARY KEY, rows INTEGER)")
        return db

    def _sql(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """work(db), the index opened when needed. The one recovery: a damaged index (not a database, malformed)
        is deleted, opened empty and rebuilt from the shards, and the work done once more; any other failure
        (full disk, read-only, locked), or damage again while rebuilding, is one line."""
        try:
            if self.db is None:
                self.db = self._open_index()
            return work(self.db)
        except sqlite3.DatabaseError as exc:
            if self._recovering or not _damaged(exc):
                raise cache_error(self.root, exc) from exc
            self._drop_index(exc)
        self._recovering = True
        try:
            self.db = self._open_index()
            self.adopt_orphans()
            return work(self.db)
        except sqlite3.DatabaseError as exc:
            raise cache_error(self.root, exc) from exc
        finally:
            self._recovering = False

    def _drop_index(self, exc: Exception) -> None:
        path = self.dir / INDEX
        log.warning("the embedding cache index %s is damaged (%s); rebuilding it from the shards", path, exc)
        if self.db is not None:
            self.db.close()
            self.db = None
        try:
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        except OSError as err:
            raise cache_error(self.root, err) from err

    # -- reading ---------------------------------------------------------------------------------
    def lookup(self, keys: list[bytes]) -> dict[bytes, tuple[str, int]]:
        unique = list(dict.fromkeys(keys))

        def work(db):
            found: dict[bytes, tuple[str, int]] = {}
            for start in range(0, len(unique), CHUNK):
                part = unique[start:start + CHUNK]
                marks = ",".join("?" * len(part))
                rows = db.execute(f"SELECT key, shard, row FROM entries WHERE key IN ({marks})", part)
                found.update((key, (shard, row)) for key, shard, row in rows)
            return found

        return self._sql(work)

    def get(self, keys: list[bytes]):
        """(positions in `keys` found, their vectors as one float32 numpy array (n, H), or None).
        Only verified rows are served; a shard that fails verification is discarded (a miss)."""
        import numpy as np

        where = self.lookup(keys)
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for pos, key in enumerate(keys):
            if key in where:
                shard, row = where[key]
                by_shard.setdefault(shard, []).append((pos, row))
        positions, parts = [], []
        for shard, pairs in by_shard.items():
            vectors = self._verified(shard, [keys[pos] for pos, _ in pairs], [row for _, row in pairs])
            if vectors is not None:
                parts.append(vectors.float().numpy())
                positions.extend(pos for pos, _ in pairs)
        if not parts:
            return np.zeros(0, dtype=np.int64), None
        return np.asarray(positions, dtype=np.int64), np.concatenate(parts)

    def _verified(self, shard: str, wanted: list[bytes], rows: list[int]):
        """The shard's vectors at `rows`, when the shard's checksum holds and its keys there are `wanted`."""
        import torch

        path = self.shards / f"{shard}.safetensors"
        try:
            stored, vectors = read_shard(path)
        except FileNotFoundError:
            self._forget(shard)  # evicted by another process: a miss
            return None
        except DamagedShard as exc:
            self.discard(shard, str(exc))
            return None
        index = torch.tensor(rows, dtype=torch.long)
        expected = torch.frombuffer(bytearray(b"".join(wanted)), dtype=torch.uint8).view(len(wanted), 32)
        if max(rows) >= len(stored) or not torch.equal(stored[index], expected):
            self.discard(shard, "its rows are not where the index says")
            return None
        try:
            os.utime(path)  # recently used (best effort: a read-only cache still serves)
        except OSError:
            pass
        return vectors[index]

    def discard(self, name: str, reason: str) -> None:
        """Delete a shard that cannot be trusted and forget its rows: they are computed again."""
        path = self.shards / f"{name}.safetensors"
        log.warning("embedding cache shard %s discarded (%s); its texts are recomputed", path, reason)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise cache_error(self.root, exc) from exc
        self._forget(name)

    # -- writing ---------------------------------------------------------------------------------
    def put(self, keys: list[bytes], vectors) -> str:
        """One shard of (keys, vectors: a torch tensor (n, H)); returns its name."""
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        path = self.shards / f"{name}.safetensors"
        try:
            atomic_write(path, lambda tmp: write_shard(tmp, keys, vectors))
        except OSError as exc:
            raise cache_error(self.root, exc) from exc
        self._index(name, keys)
        if self.max_bytes is not None:
            evict(self.root, self.max_bytes, keep=path)
        return name

    def _index(self, name: str, keys: list[bytes]) -> None:
        def work(db):
            with db:
                db.executemany("INSERT OR IGNORE INTO entries VALUES (?, ?, ?)",
                               [(key, name, row) for row, key in enumerate(keys)])
                db.execute("INSERT OR REPLACE INTO shards VALUES (?, ?)", (name, len(keys)))

        self._sql(work)

    def _forget(self, name: str) -> None:
        def work(db):
            with db:
                db.execute("DELETE FROM entries WHERE shard = ?", (name,))
                db.execute("DELETE FROM shards WHERE name = ?", (name,))

        self._sql(work)

    def adopt_orphans(self) -> int:
        """Index shards on disk the index lacks (a damaged one is discarded); forget indexed shards that are gone."""
        try:
            on_disk = {p.stem for p in self.shards.glob("*.safetensors")}
        except OSError as exc:
            raise cache_error(self.root, exc) from exc
        known = set(self._sql(lambda db: [name for (name,) in db.execute("SELECT name FROM shards")]))
        for name in known - on_disk:
            self._forget(name)
        adopted = 0
        for name in sorted(on_disk - known):
            try:
                keys = read_keys(self.shards / f"{name}.safetensors")
            except FileNotFoundError:
                continue
            except DamagedShard as exc:
                self.discard(name, str(exc))
                continue
            self._index(name, keys)
            adopted += 1
        return adopted

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


def still_to_encode(cache: EmbeddingCache | None, keys: list[bytes] | None, n: int):
    """(positions the cache holds, their vectors or None, positions to encode, (copy, of) pairs for a text
    that occurs twice in one call)."""
    import numpy as np

    if cache is None:
        return np.zeros(0, dtype=np.int64), None, list(range(n)), []
    found, vectors = cache.get(keys)
    done, first = set(found.tolist()), {}  # first: key -> where that text first occurs
    todo = [i for i in range(n) if i not in done and first.setdefault(keys[i], i) == i]
    copies = [(i, first[keys[i]]) for i in range(n) if i not in done and first[keys[i]] != i]
    return found, vectors, todo, copies

