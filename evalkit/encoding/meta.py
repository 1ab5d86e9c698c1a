"""The mteb ModelMeta written beside each result (`model_meta.json`), so mteb's own tools (ResultCache,
leaderboard tables) show the model as it is.

A model mteb knows (its registry has an entry under the model's name) starts from mteb's own entry: license,
languages, release date, reference, training data, max tokens. Facts measured on the loaded model
(parameters, embedding size) and the run's own identity (revision, similarity, whether instructions are
used; no mteb loader, since evalkit's encoder ran it) are set from what ran. A model mteb does not know gets the model config's `license`, `languages`,
`release_date` and `reference`, and mteb's conventions for the rest (max tokens = the position embeddings).
"""

from __future__ import annotations

import logging

from evalkit.config import ModelConfig

log = logging.getLogger(__name__)

DECLARED = ("license", "languages", "release_date", "reference")  # ModelConfig fields that describe the model


def registry_entry(name: str):
    """mteb's own ModelMeta for `name`, or None when mteb does not know the model."""
    import mteb

    try:
        return mteb.get_model_meta(name, fetch_from_hf=False)  # never the hub
    except (KeyError, ValueError):
        return None


def declared(cfg: ModelConfig) -> dict:
    return {key: getattr(cfg, key) for key in DECLARED if getattr(cfg, key) is not None}


def model_meta(cfg: ModelConfig, model, embed_dim: int | None = None):
    """The ModelMeta of the model as loaded and run (`embed_dim`: the embedding's width where a head changes it)."""
    from mteb.models.model_meta import ModelMeta, ScoringFunction

    n_parameters = sum(p.numel() for p in model.parameters())
    measured = {
        "name": cfg.name,
        "revision": cfg.revision or "no_revision_available",
        "n_parameters": n_parameters,
        "n_embedding_parameters": embedding_parameters(model),
        "memory_usage_mb": round(n_parameters * 4 / 2**20),  # mteb's convention: float32 weights
        "embed_dim": embed_dim or int(model.config.hidden_size),
        "similarity_fn_name": ScoringFunction(str(cfg.similarity)),  # as evalkit scored
        "use_instructions": cfg.prompt is not None or any((cfg.prompts or {}).values()),
        "loader": None,  # evalkit's encoder produced the results, not mteb's loader for the model
        "loader_kwargs": {},
    }
    known = registry_entry(cfg.name)
    if known is None:
        return ModelMeta.create_empty(overwrites={
            **declared(cfg), **measured,
            "max_tokens": getattr(getattr(model, "config", None), "max_position_embeddings", None) or cfg.max_length,
            "open_weights": True,
            "framework": ["PyTorch", "Transformers"],
            "modalities": ["text"],
        })
    for key, value in declared(cfg).items():
        if value != getattr(known, key):
            log.warning("model config says %s=%r for %s, mteb's registry %r: the config's is written",
                        key, value, cfg.name, getattr(known, key))
    return known.model_copy(update={**declared(cfg), **measured})


def embedding_parameters(model) -> int | None:
    """The input embedding's parameters, where the model exposes one (a SentenceTransformer may not)."""
    embeddings = getattr(model, "get_input_embeddings", None)
    return embeddings().weight.numel() if embeddings is not None else None
