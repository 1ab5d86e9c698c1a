"""A loaded model: tokenizer, backbone weights on their device and the pooling/head pipeline, built once.

`LoadedModel.load(cfg)` loads; the constructor wraps parts already loaded, so several encoders (other encode
settings, instructions or padding side) share one set of weights. Both forward paths end in the same
`Pipeline` steps: `forward_padded` (pad + mask) and `forward_packed` (texts back to back, varlen attention).
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from typing import Any

import torch

from evalkit.config import DType, ModelConfig
from evalkit.encoding.weights_fingerprint import weights_fingerprint
from evalkit.encoding.model import (check_model_folder, device_name, forward_padded, load_model, load_tokenizer,
                                    pick_device, token_ids)
from evalkit.encoding.packing import PackedDecoder
from evalkit.encoding.pipeline import Pipeline
from evalkit.encoding.varlen import Packed


class LoadedModel:
    """The weights and tokenizer `cfg` names, on `device`, and the steps after the backbone."""

    def __init__(self, cfg: ModelConfig, device: torch.device, tokenizer, backbone,
                 pipeline: Pipeline | None = None) -> None:
        self.cfg = cfg
        self.device = device
        self.tokenizer = tokenizer
        self.backbone = backbone
        self.pipeline = pipeline or Pipeline.from_config(cfg)
        self.pad_id = tokenizer.pad_token_id
        self.attn_implementation = str(backbone.config._attn_implementation)  # as loaded: auto resolved
        self.device_name = device_name(device)
        self._decoder: PackedDecoder | None = None  # built on the first packed batch
        self._fingerprints: dict[str, str] = {}
        self.prompt_tokens = 0  # the current call's prompt tokens pooling leaves out (include_prompt: false)

    runs_itself = False  # True: a model that batches its own texts (st_encode.SentenceTransformerModel, which
    # the Encoder loads for `encode_with: sentence_transformers`)

    @classmethod
    def load(cls, cfg: ModelConfig) -> LoadedModel:
        device = pick_device(cfg.device)
        check_model_folder(cfg)
        tokenizer = load_tokenizer(cfg)
        return cls(cfg, device, tokenizer, load_model(cfg, device))

    def with_config(self, cfg: ModelConfig) -> LoadedModel:
        """These weights and tokenizer under other settings of the same model (padding side, max length, ...)."""
        return LoadedModel(cfg, self.device, self.tokenizer, self.backbone)

    @property
    def hidden_size(self) -> int:
        return int(self.backbone.config.hidden_size)

    @property
    def dimension(self) -> int:
        """The embedding's width: the backbone's, or the last head's (a Dense layer)."""
        heads = self.pipeline.heads
        return int(heads[-1].weight.shape[0]) if heads and hasattr(heads[-1], "weight") else self.hidden_size

    def set_prompt(self, prompt, side: str | None) -> None:
        """The prompt the next texts were rendered with (`prompt.Resolved`) and mteb's side for them: pooling
        leaves the prompt's tokens out where the config says (include_prompt: false)."""
        self.prompt_tokens = 0
        if prompt is not None and prompt.prefix and not self.cfg.include_prompt:
            from evalkit.encoding.st_folder import prompt_token_count

            self.prompt_tokens = prompt_token_count(self.tokenizer, prompt.prefix)

    def cache_text(self, text: str) -> str:
        """What a text's cache key is computed from: with the prompt's token count where pooling leaves it out."""
        return f"{self.prompt_tokens}\x00{text}" if self.prompt_tokens else text

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the forward passes run in."""
        return next(self.backbone.parameters()).dtype

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """The token ids the model gets for `texts`; every embedding evalkit computes starts here."""
        return token_ids(self.tokenizer, texts, self.cfg)

    def forward_padded(self, ids: torch.Tensor, mask: torch.Tensor, use_mask: bool = True) -> torch.Tensor:
        """Padded ids and mask -> the pipeline's embeddings before normalization, float32 on the device."""
        return self.pipeline.head(forward_padded(self.backbone, ids, mask, self.pipeline.pooling, self.device,
                                                 use_mask, self.prompt_tokens))

    def forward_packed(self, batch: Packed, kernel: str, expand_kv: bool = False, fused: str = "none",
                       compiled: bool = False) -> torch.Tensor:
        """Texts packed back to back -> the same as `forward_padded` of them (the batch planner checks it)."""
        if self._decoder is None:
            self._decoder = PackedDecoder(self.backbone)
        return self.pipeline.head(self._decoder(batch.to(self.device), self.pipeline.pooling, kernel, expand_kv,
                                                fused, compiled))

    def storage_dtype(self) -> torch.dtype:
        """Pooling that picks one token is lossless in the forward dtype; a mean is kept in float32."""
        return self.dtype if self.pipeline.pooling in ("last", "cls") and not self.pipeline.heads else torch.float32

    def cast(self, dtype: torch.dtype) -> None:
        """Cast the weights in place (benchmarks/gpu_smoke.py: float16 paths of a model drawn in float32). The
        config follows, so the embedding cache and the remembered CPU budget key on the dtype the model now
        runs in; the packed decoder's fused matrices are views the cast would separate from the weights, so it
        is rebuilt from the cast weights on the next packed batch."""
        self.backbone.to(dtype)
        self.cfg = replace(self.cfg, dtype=DType(str(dtype).removeprefix("torch.")))
        self._decoder = None

    def weights_fingerprint(self) -> str:
        """`weights_fingerprint.weights_fingerprint` of these weights (hashed once per model)."""
        cfg = self.cfg
        which = json.dumps([cfg.name_or_path, cfg.revision, cfg.tokenizer, cfg.random_init and asdict(cfg.random_init)],
                           default=str)
        if which not in self._fingerprints:
            self._fingerprints[which] = weights_fingerprint(cfg, self.device.type)
        return self._fingerprints[which]

    def special_tokens(self) -> dict[str, Any]:
        tok = self.tokenizer
        return {name: {"token": getattr(tok, name), "id": getattr(tok, f"{name}_id")}
                for name in ("bos_token", "eos_token", "pad_token", "unk_token")}
