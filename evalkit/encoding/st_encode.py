"""Folders with modules evalkit does not implement (custom modules, StaticEmbedding, Router, LayerNorm, ...):
`SentenceTransformer.encode` itself is the forward pass, so nothing in the folder is skipped or approximated.

The Encoder keeps everything else: the prompt resolution, the embedding cache (the model key names this path),
the experiment identity and folder, the run record (`encode_with: sentence_transformers` and why). Each call is
one side of one task: the resolved prompt goes to sentence-transformers as `prompt=` (so `include_prompt: false`
and a Router's query/document routes act as sentence-transformers defines them), through `encode_query` /
`encode_document` / `encode` as mteb's wrapper calls them.
"""

from __future__ import annotations

import numpy as np
import torch

from evalkit import EvalkitError
from evalkit.errors import first_line
from evalkit.encoding.loaded import LoadedModel

BATCH = 32  # sentence-transformers' own default batch size
CHUNK = 4096  # texts per encode call: one embedding-cache shard's worth at a time


def load_sentence_transformer(cfg, device):
    """The folder as sentence-transformers loads it (local files only; the model's own code only with
    trust_remote_code)."""
    from sentence_transformers import SentenceTransformer

    from evalkit.encoding.st_folder import local_folder

    folder = local_folder(cfg.name_or_path, cfg.revision)
    try:
        return SentenceTransformer(str(folder), device=str(device), trust_remote_code=cfg.trust_remote_code,
                                   local_files_only=True)
    except Exception as exc:  # a module's own loading code can raise anything; the user needs one line
        raise EvalkitError(f"sentence-transformers cannot load {folder}: "
                           f"{first_line(exc)}") from exc


def encode_texts(model, texts: list[str], prefix: str | None, side: str | None) -> np.ndarray:
    """Raw embeddings (N, D) float32 of `texts` with `prefix` as sentence-transformers' prompt (already part of
    each text as evalkit renders it: taken off again so sentence-transformers places and counts it itself)."""
    if prefix:
        if not all(text.startswith(prefix) for text in texts):
            raise EvalkitError("internal: a text does not start with the prompt it was rendered with")
        texts = [text[len(prefix):] for text in texts]
    encode = {"query": model.encode_query, "document": model.encode_document}.get(side, model.encode)
    out = encode(texts, prompt=prefix or "", batch_size=BATCH, convert_to_numpy=True, normalize_embeddings=False,
                 show_progress_bar=False)
    return np.asarray(out, dtype=np.float32)


class SentenceTransformerModel(LoadedModel):
    """A LoadedModel whose forward pass is SentenceTransformer.encode: it batches its own texts (`batches`),
    the embedding store caches what it returns, the Encoder normalizes as the config says."""

    runs_itself = True

    def __init__(self, cfg, device, st) -> None:  # noqa: super().__init__ reads a transformers backbone
        from evalkit.encoding.model import device_name
        from evalkit.encoding.pipeline import Normalize, Pipeline

        self.cfg, self.device, self.st, self.backbone = cfg, device, st, None
        self.tokenizer = getattr(st, "tokenizer", None)
        self.pipeline = Pipeline(pooling=str(cfg.pooling), normalize=Normalize.from_config(cfg))
        self.pad_id = getattr(self.tokenizer, "pad_token_id", None)
        self.attn_implementation = "sentence-transformers"
        self.device_name = device_name(device)
        self._fingerprints: dict[str, str] = {}
        self.prompt_tokens = 0  # sentence-transformers leaves the prompt out itself
        self.prompt, self.side = None, None

    @classmethod
    def load(cls, cfg, device) -> SentenceTransformerModel:
        return cls(cfg, device, load_sentence_transformer(cfg, device))

    @property
    def dimension(self) -> int:
        measure = getattr(self.st, "get_embedding_dimension", None) or self.st.get_sentence_embedding_dimension
        return int(measure())

    hidden_size = dimension
    dtype = property(lambda self: torch.float32)

    def set_prompt(self, prompt, side: str | None) -> None:
        self.prompt, self.side = (prompt.prefix if prompt is not None else None), side

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """No token ids of evalkit's: sentence-transformers tokenizes inside its own modules."""
        return [[] for _ in texts]

    def batches(self, items: list[str]):
        """(row positions, embeddings) per chunk of `items`, from SentenceTransformer.encode."""
        for start in range(0, len(items), CHUNK):
            vectors = encode_texts(self.st, items[start:start + CHUNK], self.prompt, self.side)
            yield list(range(start, start + len(vectors))), torch.from_numpy(vectors)

    def storage_dtype(self) -> torch.dtype:
        return torch.float32

    def with_config(self, cfg) -> SentenceTransformerModel:
        return SentenceTransformerModel(cfg, self.device, self.st)

    def special_tokens(self) -> dict:
        tok = self.tokenizer
        if not hasattr(tok, "bos_token"):  # no transformers tokenizer (a StaticEmbedding's)
            return {}
        return super().special_tokens()
