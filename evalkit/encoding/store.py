"""The embedding store: each text computed once (cache lookup, duplicates in a call, torchrun ranks) and checked.

`EmbeddingStore.embed` starts from a NaN matrix, serves what the embedding cache holds (with a cache, rank 0
decides what is still to encode, for every rank), has the batch planner compute the rest (under torchrun each
rank its share, then the ranks swap results), copies repeated texts, and refuses (one line, so no result is
written) a row that was never filled or is not finite, whether it came from the model or the cache.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from evalkit.config import EncodeConfig
from evalkit.distributed import exchange, from_rank0, my_share, world_size
from evalkit.encoding.cache import EmbeddingCache, embeddings_root, model_identity, still_to_encode, text_key
from evalkit.encoding.shard import ShardBuffer
from evalkit.encoding.checks import refuse_holes
from evalkit.encoding.model import peak_memory_bytes
from evalkit.encoding.planner import BatchPlanner
from evalkit.encoding.stats import EncodeStats

SIDE_COUNTS = ("texts", "cache_hits", "repeated", "forward_passes", "tokens")


def cache_root(encode: EncodeConfig) -> Path:
    """The embedding cache folder `encode` names (`encode.cache_dir`, else evalkit's default)."""
    return Path(encode.cache_dir or embeddings_root())


class EmbeddingStore:
    """Embeddings of texts before normalization, from the cache where it holds them, else from `planner`."""

    def __init__(self, planner: BatchPlanner, encode: EncodeConfig, stats: EncodeStats) -> None:
        self.planner = planner
        self.model = planner.model
        self.encode = encode
        self.stats = stats
        self.caches: dict[str, EmbeddingCache] = {}  # by the model identity they hold embeddings of
        self.written: set[str] = set()  # cache shards this store wrote: a text found there is repeated, not a hit

    @property
    def root(self) -> Path:
        return cache_root(self.encode)

    def cache(self) -> EmbeddingCache | None:
        """The cache of the model as it now runs (its dtype included), or None with encode.cache=false."""
        if not self.encode.cache:
            return None
        identity = model_identity(self.model.cfg, self.model.device.type, self.model.weights_fingerprint())
        name = json.dumps(identity, sort_keys=True)
        if name not in self.caches:
            limit = self.encode.cache_max_gb
            self.caches[name] = EmbeddingCache(self.root, identity, int(limit * 1e9) if limit else None)
        return self.caches[name]

    def embed(self, texts: list[str], side: str = "query", ids: list | None = None) -> np.ndarray:
        """Embeddings (N, H) float32 before normalization, in the order of `texts`. A row that is not finite or
        was never filled is refused with one line naming the first such text (by its id in `ids` where given,
        else its position and start)."""
        stats = self.stats
        out = np.full((len(texts), self.model.dimension), np.nan, dtype=np.float32)
        filled = np.zeros(len(texts), dtype=bool)
        cache = self.cache()
        keys = [text_key(self.model.cache_text(t)) for t in texts] if cache is not None else None
        # with a cache, decided once by rank 0's for every rank: ranks whose caches differ still agree on the work
        decide = lambda: still_to_encode(cache, keys, len(texts))  # noqa: E731
        found, vectors, todo, copies = from_rank0(decide) if cache is not None else decide()
        if vectors is not None:
            out[found] = vectors
            filled[found] = True
        again = self.written_here(cache, keys, found)
        stats.cache_hits += len(found) - again
        stats.repeated += len(copies) + again
        before = (stats.forward_passes, stats.tokens)
        if world_size() > 1:  # torchrun: this rank encodes its share, then the ranks swap results
            mine = my_share(todo, [len(t) for t in texts])
            filled[exchange(out, self.compute(texts, mine, out, cache, keys))] = True
        else:
            filled[self.compute(texts, todo, out, cache, keys)] = True
        for i, j in copies:  # the same text twice in one call: computed once
            out[i], filled[i] = out[j], filled[j]
        stats.texts += len(texts)
        count = stats.by_side.setdefault(side, dict.fromkeys(SIDE_COUNTS, 0))
        for key, value in zip(SIDE_COUNTS, (len(texts), len(found) - again, len(copies) + again,
                                            stats.forward_passes - before[0], stats.tokens - before[1])):
            count[key] += value
        stats.peak_memory_bytes = max(stats.peak_memory_bytes, peak_memory_bytes(self.model.device))
        refuse_holes(out, filled, found, texts, ids, side, self.model.cfg.name, self.root)
        return out

    def compute(self, texts: list[str], todo: list[int], out: np.ndarray, cache: EmbeddingCache | None,
                keys: list[bytes] | None) -> list[int]:
        """The texts at positions `todo` through the model into out[todo], and into the cache; the rows written."""
        written: list[int] = []
        shard = ShardBuffer(cache, self.encode.cache_shard_texts, self.model.storage_dtype())
        items = [texts[i] for i in todo]
        batches = self.model.batches(items) if self.model.runs_itself else self.planner.batches(items, self.model.tokenize)
        for batch_rows, pooled in batches:
            rows = [todo[r] for r in batch_rows]
            out[rows] = pooled.numpy()
            written.extend(rows)
            if cache is not None:
                shard.add([keys[r] for r in rows], pooled)
        shard.flush()
        self.written.update(shard.names)
        return written

    def written_here(self, cache: EmbeddingCache | None, keys: list[bytes] | None, found) -> int:
        """How many of the texts at positions `found` the cache holds in shards this store wrote (texts that
        occurred earlier in this run, not cache hits)."""
        if cache is None or not self.written or not len(found):
            return 0
        where = cache.lookup([keys[i] for i in found])
        return sum(where.get(keys[i], ("",))[0] in self.written for i in found)
