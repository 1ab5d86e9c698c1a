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

from evalkit import EvalkitError

BATCH = 32  # sentence-transformers' own default batch size


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
                           f"{(str(exc).splitlines() or [type(exc).__name__])[0]}") from exc


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
