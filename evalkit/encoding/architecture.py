"""What an architecture allows: the positions max_length may use, and the attention implementation to load with."""

from __future__ import annotations

import importlib.util

import torch

from evalkit import EvalkitError
from evalkit.config import ModelConfig

# Architectures whose position ids start after the padding index (fairseq's scheme): max_position_embeddings
# less pad_token_id + 1 positions are usable.
POSITION_OFFSET_TYPES = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "longformer",
                         "mpnet", "ibert", "luke", "esm")


def check_positions(arch, cfg: ModelConfig) -> None:
    """model.max_length must fit the model's position embeddings (one line if not)."""
    limit = getattr(arch, "max_position_embeddings", None)
    if not isinstance(limit, int):
        return
    offset = (getattr(arch, "pad_token_id", None) or 0) + 1 if arch.model_type in POSITION_OFFSET_TYPES else 0
    if cfg.max_length > limit - offset:
        less = f" less {offset} for its padding offset" if offset else ""
        raise EvalkitError(f"model.max_length={cfg.max_length} exceeds the {limit - offset} positions {cfg.name} "
                           f"has (max_position_embeddings {limit}{less}); set model.max_length <= {limit - offset}")


# transformers' names of the attention implementations a model class may declare, with the flag that says so
ATTENTION_FLAGS = {"flash_attention_2": "_supports_flash_attn", "sdpa": "_supports_sdpa",
                   "flex_attention": "_supports_flex_attn"}


def attention_for(cfg: ModelConfig, arch, device: torch.device, dtype: torch.dtype) -> str | None:
    """The attn_implementation to load with. `auto`: flash_attention_2 where the flash-attn package is installed
    and the model runs on CUDA in half precision, else sdpa, else eager, as the architecture supports them
    (None, transformers' own choice, for a model class evalkit cannot see: remote code). A named one is a
    requirement: one line when the architecture lacks it."""
    wanted = cfg.attn_implementation
    cls = model_class(arch)
    if cls is None:
        return None if wanted == "auto" else wanted
    supported = ["eager"] + [name for name, flag in ATTENTION_FLAGS.items() if getattr(cls, flag, False)]
    if wanted == "auto":
        flash = (device.type == "cuda" and dtype in (torch.float16, torch.bfloat16)
                 and importlib.util.find_spec("flash_attn") is not None)
        return next(name for name in ("flash_attention_2", "sdpa", "eager") if name in supported
                    and (name != "flash_attention_2" or flash))
    if wanted in ("eager", *ATTENTION_FLAGS) and wanted not in supported:
        import transformers

        raise EvalkitError(f"model.attn_implementation={wanted}: {cls.__name__} ({arch.model_type}) does not support it "
                           f"in transformers {transformers.__version__}; it supports {', '.join(supported)} "
                           f"(model.attn_implementation=auto picks the best of them)")
    return wanted


def model_class(arch):
    """The transformers class AutoModel builds for a config, or None (remote code, unknown)."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    if getattr(arch, "auto_map", None):
        return None
    try:
        return MODEL_MAPPING[type(arch)]
    except (KeyError, ValueError):
        return None
