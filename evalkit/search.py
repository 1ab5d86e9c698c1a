"""Exact retrieval search in bounded memory, as mteb's SearchProtocol.

mteb's own full-corpus search (`SearchEncoderWrapper`) scores every query against a corpus chunk
of 50k documents at once, then merges each query's top-k into a Python heap one (score, id) pair
at a time: on MS MARCO (8.8M documents, 7k queries, k = 1000) that is over a billion heap
operations and a 1.4 GB score matrix per chunk. Here the corpus is encoded chunk by chunk (through
the encoder, so the embedding cache still applies), and a running top-k lives on the encoder's
device: each query block is scored against the chunk and merged with `torch.topk` over
[current top-k | new scores]. Memory: one corpus chunk of embeddings plus at most `score_bytes`
of scores, whatever the corpus size. Scores are the model's similarity as mteb computes it (float32:
cosine, both sides normalized; dot; euclidean, the negative distance), so results are mteb's; only documents tied exactly at the k-th score may be picked differently.

Reranking (`top_ranked` given) is left to mteb's wrapper: its candidate lists are small.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class RunningTopK:
    """The k best (score, document index) per query, merged chunk by chunk on `device`."""

    def __init__(self, queries, k: int, device: torch.device, score_bytes: int = 256 << 20,
                 similarity: str = "cosine") -> None:
        if similarity not in ("cosine", "dot", "euclidean"):
            raise ValueError(f"unknown similarity {similarity!r}")
        self.similarity = similarity
        self.queries = self._prepare(queries, device)
        self.k, self.device, self.score_bytes = k, device, score_bytes
        n = len(self.queries)
        self.values = torch.empty((n, 0), dtype=torch.float32, device=device)
        self.index = torch.empty((n, 0), dtype=torch.long, device=device)

    def add(self, documents, offset: int) -> None:
        """Score a chunk of document embeddings whose first row is corpus row `offset`."""
        docs = self._prepare(documents, self.device)
        width = self.values.shape[1] + len(docs)
        keep = min(self.k, width)
        block = max(1, self.score_bytes // (4 * width))
        ids = torch.arange(offset, offset + len(docs), device=self.device)
        values = torch.empty((len(self.queries), keep), dtype=torch.float32, device=self.device)
        index = torch.empty((len(self.queries), keep), dtype=torch.long, device=self.device)
        for start in range(0, len(self.queries), block):
            rows = slice(start, start + block)
            scored = (-torch.cdist(self.queries[rows], docs, p=2.0) if self.similarity == "euclidean"
                      else self.queries[rows] @ docs.T)
            scores = torch.cat([self.values[rows], scored], dim=1)
            candidates = torch.cat([self.index[rows], ids.expand(scores.shape[0], -1)], dim=1)
            values[rows], where = scores.topk(keep, dim=1)
            index[rows] = candidates.gather(1, where)
        self.values, self.index = values, index

    def _prepare(self, vectors, device: torch.device) -> torch.Tensor:
        vectors = torch.as_tensor(vectors, dtype=torch.float32).to(device)
        return F.normalize(vectors, p=2, dim=1) if self.similarity == "cosine" else vectors

    def result(self) -> tuple[list[list[float]], list[list[int]]]:
        return self.values.cpu().tolist(), self.index.cpu().tolist()


def retrieval_loader(dataset, task_metadata, prompt_type, batch_size: int = 32, num_proc: int | None = None):
    """mteb's own data loader for a corpus or query set: documents come out as mteb joins them (title + text)."""
    from evalkit.mteb_hooks import loader

    return loader(dataset, task_metadata, prompt_type, batch_size, num_proc)


class ExactSearch:
    """An evalkit Encoder as mteb's SearchProtocol; encode and similarity pass through to it."""

    def __init__(self, encoder, corpus_chunk_size: int = 50_000, score_bytes: int = 256 << 20) -> None:
        self.encoder = encoder
        self.corpus_chunk_size = corpus_chunk_size
        self.score_bytes = score_bytes
        self.corpus = None

    # -- EncoderProtocol, delegated (so one object serves every task type) -----------------------
    def encode(self, inputs, **kwargs):
        return self.encoder.encode(inputs, **kwargs)

    def similarity(self, embeddings1, embeddings2):
        return self.encoder.similarity(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1, embeddings2):
        return self.encoder.similarity_pairwise(embeddings1, embeddings2)

    @property
    def mteb_model_meta(self):
        return self.encoder.mteb_model_meta

    # -- SearchProtocol ------------------------------------------------------------------------------
    def index(self, corpus, *, task_metadata, hf_split: str, hf_subset: str, encode_kwargs: dict,
              num_proc: int | None = None, **kwargs: Any) -> None:
        self.corpus = corpus

    def search(self, queries, *, task_metadata, hf_split: str, hf_subset: str, top_k: int, encode_kwargs: dict,
               top_ranked=None, num_proc: int | None = None, **kwargs: Any) -> dict[str, dict[str, float]]:
        from mteb.types import PromptType

        if self.corpus is None:
            raise ValueError("index() the corpus before search()")
        where = {"task_metadata": task_metadata, "hf_split": hf_split, "hf_subset": hf_subset}
        if top_ranked is not None:
            return self._rerank(queries, top_k, encode_kwargs, top_ranked, num_proc, where)

        def embed(dataset, prompt_type):
            loader = retrieval_loader(dataset, task_metadata, prompt_type, encode_kwargs.get("batch_size", 32), num_proc)
            return self.encoder.encode(loader, prompt_type=prompt_type, **where, **encode_kwargs)

        similarity = str(getattr(self.encoder.cfg, "similarity", "cosine"))
        best = RunningTopK(embed(queries, PromptType.query), top_k, self.encoder.device, self.score_bytes, similarity)
        for start in range(0, len(self.corpus), self.corpus_chunk_size):
            chunk = self.corpus.select(range(start, min(start + self.corpus_chunk_size, len(self.corpus))))
            best.add(embed(chunk, PromptType.document), offset=start)
        values, index = best.result()
        doc_ids = list(self.corpus["id"])
        self.corpus = None
        return {qid: {doc_ids[j]: score for score, j in zip(values[i], index[i])}
                for i, qid in enumerate(queries["id"])}

    def _rerank(self, queries, top_k, encode_kwargs, top_ranked, num_proc, where):
        from mteb.models import SearchEncoderWrapper

        wrapper = SearchEncoderWrapper(self.encoder)
        wrapper.index(self.corpus, encode_kwargs=encode_kwargs, num_proc=num_proc, **where)
        self.corpus = None
        return wrapper.search(queries, top_k=top_k, encode_kwargs=encode_kwargs, top_ranked=top_ranked,
                              num_proc=num_proc, **where)
