"""The mteb-protocol adapter: mteb's `encode` calls in, rendered texts to the embedding store, arrays out.

`Encoder.encode` is what `mteb.evaluate` calls. Which prompt each input gets is decided by
`prompt.resolve_prompt` from the model config (an instruction template, or a prompts dict) and the task spec;
nothing task-specific is in code; `prompts_used` records each task side's prompt and its source. The
work is done by the parts the encoder holds: `loaded` (`loaded.LoadedModel`: tokenizer, weights, pooling and
head steps), `planner` (`planner.BatchPlanner`: packed or padded, tokens per batch), `store`
(`store.EmbeddingStore`: cache, duplicates, torchrun ranks, refusing holes) and `prompts`
(`prompt.TaskPrompts`: each task's instruction); normalization, per task type, is the last step
(`pipeline.Normalize`). `Encoder(loaded_model, ...)` or `encoder.fresh(...)` builds another adapter over
weights already loaded.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch

from evalkit.config import EncodeConfig, ModelConfig, TaskSpec, load_model_config
from evalkit.encoding.cache import check_cache_writable
from evalkit.encoding.loaded import LoadedModel
from evalkit.encoding.model import pick_device
from evalkit.encoding.planner import BatchPlanner
from evalkit.encoding.prompt import Resolved, TaskPrompts, resolve_prompt
from evalkit.encoding.stats import EncodeStats
from evalkit.encoding.store import EmbeddingStore, cache_root

if TYPE_CHECKING:
    from mteb.abstasks.task_metadata import TaskMetadata
    from mteb.types import Array, BatchedInput, PromptType
    from torch.utils.data import DataLoader

__all__ = ["Encoder", "load_encoder", "loader_rows", "loader_texts"]


class Encoder:
    """Implements mteb v2's EncoderProtocol for a Hugging Face backbone. `model`: a ModelConfig (loaded
    here, after checking that a configured embedding cache can be written) or a LoadedModel (shared);
    `instructions`: mteb task name -> spec (default: every task file; other tasks: `evalkit.instructions`)."""

    def __init__(self, model: ModelConfig | LoadedModel, instructions: Mapping[str, TaskSpec] | None = None,
                 encode: EncodeConfig | None = None, strict_instructions: bool = False) -> None:
        encode = encode or EncodeConfig()
        if instructions is None:
            from evalkit.tasks import specs_by_mteb_name

            instructions = specs_by_mteb_name()
        if not isinstance(model, LoadedModel):
            if encode.cache:  # before any work: a cache that cannot be written fails now, not hours later
                check_cache_writable(cache_root(encode))
            if model.encode_with == "sentence_transformers":  # modules evalkit does not implement: st_encode
                from evalkit.encoding.st_encode import SentenceTransformerModel

                model = SentenceTransformerModel.load(model, pick_device(model.device))
            else:
                model = LoadedModel.load(model)
        self.loaded = model
        self.prompts = TaskPrompts(instructions, strict_instructions)
        self.stats = EncodeStats(attn_implementation=model.attn_implementation, device=model.device_name)
        self.planner = BatchPlanner(model, encode, self.stats)
        self.store = EmbeddingStore(self.planner, encode, self.stats)
        self.prompts_used: dict[str, dict] = {}  # "<mteb task>/<side>" -> the prompt and where it came from
        if encode.cache:
            model.weights_fingerprint()  # hash a local checkpoint now, before any encoding

    def fresh(self, *, model: LoadedModel | None = None, instructions: Mapping[str, TaskSpec] | None = None,
              encode: EncodeConfig | None = None, strict_instructions: bool | None = None) -> Encoder:
        """Another encoder over the same loaded weights (or `model`), with its own stats, packing checks and
        resolved instructions; what is not given is as this encoder was built."""
        return Encoder(model or self.loaded, self.prompts.given if instructions is None else instructions,
                       encode or self.encode_cfg,
                       self.prompts.strict if strict_instructions is None else strict_instructions)

    # -- the parts, read-only -----------------------------------------------------------------
    cfg = property(lambda self: self.loaded.cfg, doc="the model config as it runs (after `cast`, its dtype)")
    model = property(lambda self: self.loaded.backbone, doc="the transformers model")
    tokenizer = property(lambda self: self.loaded.tokenizer)
    device = property(lambda self: self.loaded.device)
    pad_id = property(lambda self: self.loaded.pad_id)
    encode_cfg = property(lambda self: self.planner.encode, doc="the encode settings")
    instructions = property(lambda self: self.prompts.specs, doc="mteb task name -> spec, resolved ones included")
    instruction_sources = property(lambda self: self.prompts.sources, doc="task -> where its instruction came from")

    # -- mteb protocol -------------------------------------------------------------------
    def encode(self, inputs: DataLoader[BatchedInput], *, task_metadata: TaskMetadata, hf_split: str,
               hf_subset: str, prompt_type: PromptType | None = None, **kwargs: Any) -> Array:
        texts, ids = loader_rows(inputs)
        given = getattr(prompt_type, "value", prompt_type)  # query, document, or None (mteb gives no side)
        side = "document" if given == "document" else "query"
        resolved = self.resolve(task_metadata.name, task_metadata.type, given, task_metadata)
        rendered = [resolved.apply(t) for t in texts] if resolved.template or resolved.prefix else texts
        counts = self.stats.inputs.setdefault(side, {"texts": 0, "instructed": 0})
        counts["texts"] += len(texts)
        counts["instructed"] += sum(r != t for r, t in zip(rendered, texts))
        return self.embed(rendered, normalize=self.normalizes(task_metadata.type), side=side, ids=ids,
                          prompt=resolved, prompt_side=given)

    def similarity(self, embeddings1: Array, embeddings2: Array) -> Array:
        from mteb.models.model_meta import ScoringFunction
        from mteb.similarity_functions import select_similarity

        return select_similarity(embeddings1, embeddings2, ScoringFunction(str(self.cfg.similarity)))

    def similarity_pairwise(self, embeddings1: Array, embeddings2: Array) -> Array:
        from mteb.models.model_meta import ScoringFunction
        from mteb.similarity_functions import select_pairwise_similarity

        return select_pairwise_similarity(embeddings1, embeddings2, ScoringFunction(str(self.cfg.similarity)))

    @property
    def mteb_model_meta(self):
        from evalkit.encoding.meta import model_meta

        return model_meta(self.cfg, self.model if self.model is not None else self.loaded.st, self.loaded.dimension)

    # -- the protocol's steps, usable on their own -----------------------------------------
    def render(self, texts: list[str], mteb_task: str, task_type: str, side: str | None, task_metadata=None
               ) -> list[str]:
        """Texts with the prompt `prompt.resolve_prompt` gives them."""
        resolved = self.resolve(mteb_task, task_type, side, task_metadata)
        return [resolved.apply(t) for t in texts] if resolved.template or resolved.prefix else texts

    def resolve(self, mteb_task: str, task_type: str, side: str | None, task_metadata=None) -> Resolved:
        """The prompt of one side of a task (`prompt.resolve_prompt`), recorded in `prompts_used`."""
        if self.cfg.prompt is None and self.cfg.prompts is None:
            resolved = Resolved()
        else:
            spec = self.task_spec(mteb_task, task_metadata) if self.cfg.prompt is not None else TaskSpec(
                name=mteb_task, mteb_task=mteb_task, type=task_type)
            resolved = resolve_prompt(self.cfg, spec, task_type, side)
        self.prompts_used[f"{mteb_task}/{side or 'no side'}"] = resolved.record()
        return resolved

    def task_spec(self, mteb_task: str, task_metadata=None) -> TaskSpec:
        """The spec (instruction, symmetric) of a task: from the mapping, else resolved once, as a run would."""
        return self.prompts.spec(mteb_task, task_metadata)

    def normalizes(self, task_type: str) -> bool:
        """Whether embeddings of this task type are L2-normalized (classification's are not, for e5)."""
        return self.loaded.pipeline.normalize.applies(task_type)

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """The token ids the model gets for `texts`; every embedding evalkit computes starts here."""
        return self.loaded.tokenize(texts)

    def embed(self, texts: list[str], normalize: bool = True, side: str = "query", ids: list | None = None,
              prompt: Resolved | None = None, prompt_side: str | None = None) -> np.ndarray:
        """Embeddings (N, H) float32, in the order of `texts`, from `store.embed` (cached ones are read, not
        computed; holes and non-finite rows refused), L2-normalized where `normalize`. `prompt`: the prompt the
        texts were rendered with, and `prompt_side` mteb's side, where pooling leaves the prompt out
        (include_prompt: false) or sentence-transformers places it itself."""
        start, sample = time.perf_counter(), None
        self.loaded.set_prompt(prompt, prompt_side)
        if texts and side not in self.stats.samples:
            sample = self.stats.samples[side] = {"text": texts[0], "token_ids": self.tokenize(texts[:1])[0]}
        raw = self.store.embed(texts, side, ids)
        self.stats.wall_seconds += time.perf_counter() - start
        out = self.loaded.pipeline.finish(raw, normalize)
        if sample is not None:
            sample["norm"] = float(np.linalg.norm(out[0]))  # 1.0 where normalized: the record shows which applied
        return out

    def embed_ids(self, seqs: list[list[int]]) -> np.ndarray:
        """Embeddings (N, H) before normalization of ready token id lists, batched and packed as configured, no
        cache: what benchmarks/encode_throughput.py and gpu_smoke.py time and compare."""
        return self.planner.embed_ids(seqs)

    def cast(self, dtype: torch.dtype) -> None:
        """Cast the loaded weights in place (benchmarks/gpu_smoke.py): `LoadedModel.cast`."""
        self.loaded.cast(dtype)

    def special_tokens(self) -> dict[str, Any]:
        return self.loaded.special_tokens()


def loader_rows(inputs) -> tuple[list[str], list | None]:
    """The texts of an mteb data loader, in order (the encoder joins mteb's batches and cuts its own), and
    their ids where the loader carries an `id` column (retrieval corpora and queries), else None."""
    texts: list[str] = []
    ids: list | None = []
    for batch in inputs:
        texts.extend(batch["text"])
        if ids is not None and "id" in batch:
            ids.extend(batch["id"])
        else:
            ids = None
    return texts, ids if ids is not None and len(ids) == len(texts) else None


def loader_texts(inputs) -> list[str]:
    return loader_rows(inputs)[0]


def load_encoder(model: str = "e5_mistral_7b", instructions: Mapping[str, TaskSpec] | None = None,
                 encode: EncodeConfig | None = None, strict_instructions: bool = False, **overrides: Any) -> Encoder:
    return Encoder(load_model_config(model, **overrides), instructions=instructions, encode=encode,
                   strict_instructions=strict_instructions)
