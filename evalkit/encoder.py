"""The mteb-protocol adapter: instruction placement, batching, pooling, normalization.

`Encoder.encode` is what `mteb.evaluate` calls. Which inputs get the instruction is read from
the model config (`prompt`) and the task spec (`symmetric`); nothing task-specific is in code.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Mapping

import numpy as np
import torch

from evalkit import EvalkitError
from evalkit.config import EncodeConfig, ModelConfig, TaskSpec, load_model_config
from evalkit.model import forward_pooled, load_model, load_tokenizer, pick_device, token_ids


@dataclass
class EncodeStats:
    texts: int = 0
    tokens: int = 0  # real tokens, special tokens included
    padded_tokens: int = 0  # tokens the forward pass computed, padding included
    forward_seconds: float = 0.0
    samples: dict[str, Any] = field(default_factory=dict)  # first rendered input per side

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["tokens_per_second"] = self.tokens / self.forward_seconds if self.forward_seconds else None
        record["padding_fraction"] = 1 - self.tokens / self.padded_tokens if self.padded_tokens else 0.0
        return record


def length_batches(lengths: list[int], batch_size: int, max_tokens: int | None) -> Iterator[list[int]]:
    """Indices sorted longest first, cut into batches of at most batch_size rows and max_tokens padded tokens."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for i in order:
        width = lengths[batch[0]] if batch else lengths[i]
        full = len(batch) >= batch_size or (max_tokens is not None and (len(batch) + 1) * width > max_tokens)
        if batch and full:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


class Encoder:
    """Implements mteb v2's EncoderProtocol for a Hugging Face backbone."""

    def __init__(self, cfg: ModelConfig, instructions: Mapping[str, TaskSpec] | None = None,
                 encode: EncodeConfig | None = None) -> None:
        self.cfg = cfg
        self.encode_cfg = encode or EncodeConfig()
        if instructions is None:
            from evalkit.tasks import specs_by_mteb_name

            instructions = specs_by_mteb_name()
        self.instructions = dict(instructions)
        self.device = pick_device(cfg.device)
        self.tokenizer = load_tokenizer(cfg)
        self.model = load_model(cfg, self.device)
        self.pad_id = self.tokenizer.pad_token_id
        self.stats = EncodeStats()

    # -- mteb protocol -------------------------------------------------------------------
    def encode(self, inputs, *, task_metadata, hf_split: str, hf_subset: str, prompt_type=None, **kwargs) -> np.ndarray:
        texts = [text for batch in inputs for text in batch["text"]]
        side = "document" if getattr(prompt_type, "value", prompt_type) == "document" else "query"
        rendered = self.render(texts, task_metadata.name, task_metadata.type, side)
        normalize = self.cfg.normalize and task_metadata.type not in self.cfg.unnormalized_types
        return self.embed(rendered, normalize=normalize, side=side)

    def similarity(self, embeddings1, embeddings2):
        from mteb.similarity_functions import cos_sim

        return cos_sim(embeddings1, embeddings2)

    def similarity_pairwise(self, embeddings1, embeddings2):
        from mteb.similarity_functions import pairwise_cos_sim

        return pairwise_cos_sim(embeddings1, embeddings2)

    @property
    def mteb_model_meta(self):
        from mteb.models.model_meta import ModelMeta, ScoringFunction

        return ModelMeta.create_empty(overwrites={
            "name": self.cfg.name,
            "revision": self.cfg.revision or "no_revision_available",
            "embed_dim": self.model.config.hidden_size,
            "max_tokens": self.cfg.max_length,
            "similarity_fn_name": ScoringFunction.COSINE,
            "use_instructions": self.cfg.prompt is not None,
            "open_weights": True,
            "framework": ["PyTorch", "Transformers"],
        })

    # -- the protocol's parts, usable on their own -----------------------------------------
    def render(self, texts: list[str], mteb_task: str, task_type: str, side: str) -> list[str]:
        """Texts with the instruction where the config says it goes."""
        prompt = self.cfg.prompt
        if prompt is None:
            return texts
        spec = self.instructions.get(mteb_task)
        if spec is None:
            raise EvalkitError(f"no instruction for mteb task {mteb_task!r}: add tasks/{mteb_task}.yaml")
        instruct = side == "query" or spec.symmetric or task_type in prompt.instruct_documents_for
        if not instruct:
            return texts
        return [prompt.template.format(instruction=spec.instruction, text=text) for text in texts]

    def embed(self, texts: list[str], normalize: bool = True, side: str = "query") -> np.ndarray:
        """Embeddings (N, H) float32, in the order of `texts`."""
        ids = token_ids(self.tokenizer, texts, self.cfg)
        if ids and side not in self.stats.samples:
            self.stats.samples[side] = {"text": texts[0], "token_ids": ids[0]}
        out = torch.empty((len(ids), self.model.config.hidden_size), dtype=torch.float32)
        lengths = [len(s) for s in ids]
        batches = list(length_batches(lengths, self.encode_cfg.batch_size, self.encode_cfg.max_tokens_per_batch))
        for batch in self._progress(batches, len(ids)):
            start = time.perf_counter()
            out[batch] = forward_pooled(self.model, [ids[i] for i in batch], self.cfg, self.pad_id, self.device)
            self.stats.forward_seconds += time.perf_counter() - start
            self.stats.padded_tokens += len(batch) * max(lengths[i] for i in batch)
        self.stats.texts += len(ids)
        self.stats.tokens += sum(lengths)
        if normalize:
            out = torch.nn.functional.normalize(out, p=2, dim=-1)
        return out.numpy()

    def _progress(self, batches: list[list[int]], total: int):
        if not self.encode_cfg.show_progress or total < 1000:
            return batches
        from tqdm.auto import tqdm

        return tqdm(batches, desc=f"encode {total} texts", unit="batch")

    def special_tokens(self) -> dict[str, Any]:
        tok = self.tokenizer
        return {name: {"token": getattr(tok, name), "id": getattr(tok, f"{name}_id")}
                for name in ("bos_token", "eos_token", "pad_token", "unk_token")}


def load_encoder(model: str = "e5_mistral_7b", instructions: Mapping[str, TaskSpec] | None = None,
                 encode: EncodeConfig | None = None, **overrides: Any) -> Encoder:
    return Encoder(load_model_config(model, **overrides), instructions=instructions, encode=encode)
