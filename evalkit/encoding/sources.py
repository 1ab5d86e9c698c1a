"""Which protocol `model=<local folder or hub id>` runs with, and where each part of it came from.

In order: an evalkit model config whose `name` is that hub id (its YAML is the protocol, as for `model=<name>`);
else the sentence-transformers folder's own files (`st_folder`), with what mteb's model registry sets for a hub
id it knows (`mteb.get_model_meta`): the prompts, the similarity and the revision its loader passes. A registry
entry whose loader is not mteb's sentence-transformers wrapper (its own wrapper class) is refused in one line:
evalkit does not reproduce another wrapper's code.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from evalkit import EvalkitError

ST_WRAPPER = "SentenceTransformerEncoderWrapper"
REGISTRY_KEYS = ("model_prompts", "trust_remote_code")  # loader_kwargs evalkit takes from the registry


def registry_entry(name: str):
    """mteb's ModelMeta for a hub id, or None when its registry does not know it."""
    import mteb

    try:
        return mteb.get_model_meta(name)
    except KeyError:
        return None


def registry_protocol(name: str, trust_remote_code: bool = False) -> dict[str, Any] | None:
    """What mteb's registry loader sets for `name` (prompts, similarity, revision), or None for a model it does
    not know; one line for an entry evalkit cannot reproduce."""
    meta = registry_entry(name)
    if meta is None:
        return None
    loader = getattr(meta, "loader", None)
    loader_name = getattr(loader, "__qualname__", str(loader))
    if loader_name != ST_WRAPPER:
        raise EvalkitError(f"{name}: mteb's registry loads it with its own wrapper {getattr(loader, '__module__', '')}."
                           f"{loader_name}, which evalkit does not reproduce; write an evalkit model config for it "
                           f"(--config-dir with model/<name>.yaml)")
    kwargs = dict(getattr(meta, "loader_kwargs", None) or {})
    unknown = sorted(set(kwargs) - set(REGISTRY_KEYS))
    if unknown:
        raise EvalkitError(f"{name}: mteb's registry loads it with {', '.join(unknown)}, which evalkit does not "
                           f"apply; write an evalkit model config for it")
    if kwargs.get("trust_remote_code") and not trust_remote_code:
        raise EvalkitError(f"{name}: mteb's registry loads it with trust_remote_code=True; pass "
                           f"model.trust_remote_code=true to run the model's own code")
    similarity = getattr(meta, "similarity_fn_name", None)
    return {"prompts": kwargs.get("model_prompts"), "similarity": getattr(similarity, "value", similarity),
            "revision": getattr(meta, "revision", None), "loader": f"{loader.__module__}.{loader_name}"}


def evalkit_config_named(name: str) -> str | None:
    """The model config file (its CLI name) whose `name` is `name`, if evalkit or the user's folders have one."""
    from evalkit.config import load_model_config, model_names

    return next((file for file in model_names() if load_model_config(file).name == name), None)


def folder_model(source: str, revision: str | None = None, trust_remote_code: bool = False):
    """(ModelConfig, notes) for `model=<source>`: the folder's protocol with the registry's parts, and for each
    setting not from the folder where it came from and why."""
    from evalkit.encoding.model import is_local, resolve_path
    from evalkit.encoding.st_folder import folder_model_config

    notes: dict[str, str] = {}
    registry = None if is_local(resolve_path(source)) else registry_protocol(source, trust_remote_code)
    if registry is not None and revision is None and registry["revision"]:
        revision = registry["revision"]
        notes["revision"] = f"mteb registry ({registry['loader']})"
    cfg = folder_model_config(source, revision, trust_remote_code)
    if registry is not None:
        if registry["prompts"]:
            if {k: v for k, v in cfg.prompts.items() if v} != registry["prompts"]:
                notes["prompts"] = ("mteb registry: its loader passes model_prompts, which replace the folder's "
                                    "prompts in mteb's wrapper")
            cfg = replace(cfg, prompts=dict(registry["prompts"]))
        if registry["similarity"] and str(registry["similarity"]) != str(cfg.similarity):
            notes["similarity"] = f"mteb registry ({registry['similarity']}); the folder says {cfg.similarity}"
            cfg = replace(cfg, similarity=str(registry["similarity"]))
    return cfg, notes


def folder_record(cfg) -> dict[str, Any] | None:
    """For the run record of a folder model: what its folder says (every module and setting read), where each
    setting not from the folder came from, and which path ran (evalkit's own, or SentenceTransformer.encode and
    why); None for a model defined by an evalkit config."""
    if not cfg.from_folder:
        return None
    from evalkit.encoding.st_folder import local_folder, read_st_folder, why_not_evalkit

    folder = read_st_folder(local_folder(cfg.name_or_path, cfg.revision))
    _, notes = folder_model(cfg.name_or_path, cfg.revision, cfg.trust_remote_code)
    return {"read": folder.record(), "sources": notes, "encode_with": str(cfg.encode_with),
            "why_sentence_transformers": why_not_evalkit(folder)}
