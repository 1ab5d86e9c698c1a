"""`python -m evalkit cache info [--verify]|clear`: what the embedding cache holds, and emptying it.

`info` never fails on a damaged cache: it reports a damaged or missing index, and with `--verify` reads
every shard, checks its checksum and counts non-finite vectors (exit 1 when anything is damaged).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

from evalkit import EvalkitError
from evalkit.files import cache_root  # evalkit.encoding.cache (torch) loads after parsing: --help is fast


def describe(root: Path, verify: bool = False) -> list[dict[str, Any]]:
    """What each model folder under `root` holds; never fails on a damaged cache, it reports it.
    `verify` reads every shard and checks its checksum and that its vectors are finite."""
    from evalkit.encoding.cache import INDEX

    rows = []
    for folder in sorted(p for p in Path(root).glob("*") if (p / "shards").is_dir()):
        try:
            info = json.loads((folder / "model.json").read_text())
        except (OSError, ValueError):
            info = {}
        shards = sorted((folder / "shards").glob("*.safetensors"))
        texts, index = _index_count(folder / INDEX)
        row = {"key": folder.name, "name": info.get("name", "?"), "revision": info.get("revision"),
               "dtype": info.get("dtype"), "max_length": info.get("max_length"), "texts": texts, "index": index,
               "shards": len(shards), "bytes": sum(_size(p) for p in shards)}
        if verify:
            row["damaged"], row["nonfinite"] = _verify(shards)
        rows.append(row)
    return rows


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _index_count(path: Path) -> tuple[int, str]:
    """(texts the index knows, its state): read-only, so looking never changes the cache."""
    if not path.exists():
        return 0, "missing (rebuilt from the shards on next use)"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM entries").fetchone()[0], "ok"
    except sqlite3.Error as exc:
        return 0, f"damaged: {exc} (rebuilt from the shards on next use)"


def _verify(shards: list[Path]) -> tuple[list[tuple[str, str]], int]:
    import torch

    from evalkit.encoding.shard import DamagedShard, read_shard

    damaged, nonfinite = [], 0
    for path in shards:
        try:
            _, vectors = read_shard(path)
        except FileNotFoundError:
            continue
        except DamagedShard as exc:
            damaged.append((path.name, str(exc)))
            continue
        nonfinite += int((~torch.isfinite(vectors.float()).all(dim=1)).sum())
    return damaged, nonfinite


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="evalkit cache", description="the embedding cache")
    parser.add_argument("command", choices=["info", "clear"])
    parser.add_argument("model", nargs="?", help="clear: only models whose name contains this")
    parser.add_argument("--dir", default=None, help=f"cache folder (default {cache_root() / 'embeddings'})")
    parser.add_argument("--verify", action="store_true", help="info: read every shard and check its checksum")
    args = parser.parse_intermixed_args(argv)
    from evalkit.encoding.cache import embeddings_root

    root = Path(args.dir) if args.dir else embeddings_root()
    rows = describe(root, verify=args.verify and args.command == "info") if root.is_dir() else []
    if args.command == "info":
        print(f"{root}")
        for r in rows:
            print(f"  {r['key']}  {r['name']} @ {r['revision']}  {r['dtype']}  max_length={r['max_length']}  "
                  f"{r['texts']} texts in {r['shards']} shards, {r['bytes'] / 1e6:.1f} MB")
            if r["index"] != "ok":
                print(f"    index {r['index']}")
            if args.verify:
                print(f"    verified: {r['shards'] - len(r['damaged'])} shards ok, {len(r['damaged'])} damaged "
                      f"(discarded on next use), {r['nonfinite']} non-finite vectors")
                for name, reason in r["damaged"]:
                    print(f"    damaged: {name}: {reason}")
        print(f"  total: {sum(r['texts'] for r in rows)} texts, {sum(r['bytes'] for r in rows) / 1e6:.1f} MB")
        bad = sum(len(r.get("damaged", [])) + bool(r.get("nonfinite")) for r in rows)
        return 1 if bad else 0
    chosen = [r for r in rows if args.model is None or args.model in r["name"]]
    for r in chosen:
        try:
            shutil.rmtree(root / r["key"])
        except OSError as exc:
            raise EvalkitError(f"cannot remove {root / r['key']} ({exc.strerror or exc}); nothing after it was "
                               f"removed") from exc
    print(f"removed {len(chosen)} model folder(s), {sum(r['bytes'] for r in chosen) / 1e6:.1f} MB, from {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
