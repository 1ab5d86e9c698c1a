"""The mteb-protocol adapter: instruction placement, batching, pooling, normalization.

`Encoder.encode` is what `mteb.evaluate` calls. Which inputs get the instruction is read from
the model config (`prompt`) and the task spec (`symmetric`) by `prompt.render`; nothing
task-specific is in code. Token ids come from one method, `Encoder.tokenize`, whatever path
(packed or padded, cached or not) the embeddings then take.

No embedding is returned unchecked: `embed` starts from a NaN matrix, and refuses (one line, so no result
is written) a row that was never filled or that is not finite, whether it came from the model or the cache.
Packing is used only where `packing.packable` allows it and, before the first packed batch, packed and
padded embeddings of a few real texts agree (else padded, with a warning); the run record says which ran
and why (`EncodeStats.packing_reason`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from evalkit import EvalkitError
from evalkit.config import DType, EncodeConfig, ModelConfig, TaskSpec, VarlenKernel, load_model_config
from evalkit.distributed import exchange, from_rank0, my_share, world_size
from evalkit.encoding.batching import PADDED_ROW_SLACK, Feeder, length_batches, packed_batches
from evalkit.encoding.calibrate import pick_budget
from evalkit.encoding.cache import (EmbeddingCache, ShardBuffer, check_cache_writable, embeddings_root,
                                    model_identity, still_to_encode, text_key)
from evalkit.encoding.checks import PACK_CHECK_COSINE, PACK_CHECK_TEXTS, min_cosine, refuse_holes
from evalkit.encoding.fingerprint import model_fingerprint
from evalkit.encoding.fused import check_fused
from evalkit.encoding.model import (check_model_folder, device_name, forward_padded, load_model, load_tokenizer,
                                    mask_needed, pad_batch, peak_memory_bytes, pick_device, token_ids)
from evalkit.encoding.packing import PackedDecoder, flash_takes_gqa, pack, padding_reason, pick_kernel
from evalkit.encoding.head import apply_head, load_head
from evalkit.encoding.prompt import Resolved, resolve_prompt

__all__ = ["Encoder", "EncodeStats", "Plan", "load_encoder"]

log = logging.getLogger(__name__)


@dataclass
class EncodeStats:
    texts: int = 0  # texts asked for, cache hits included
    tokens: int = 0  # real tokens through the model, special tokens included
    padded_tokens: int = 0  # tokens the forward passes computed, padding included
    forward_seconds: float = 0.0  # forward passes, host-device copies included
    wall_seconds: float = 0.0  # whole embed calls: cache, tokenization and forward passes
    forward_passes: int = 0
    cache_hits: int = 0  # texts served from the embedding cache
    peak_memory_bytes: int = 0  # CUDA allocator peak on a GPU, peak resident memory on a CPU
    packing: str = ""  # how the last call ran: packed/<kernel>[+liger][+compile] or padded[/no-mask]
    packing_reason: str = ""  # why: the packed-vs-padded check, or what ruled packing out
    max_tokens_per_batch: int = 0
    budget_reason: str = ""  # where max_tokens_per_batch came from: set, free memory, calibrated, remembered
    compile_seconds: float = 0.0  # encode.compile: the first compiled call (not in forward_seconds)
    attn_implementation: str = ""  # the one the model was loaded with (padded forward passes)
    device: str = ""  # the device's name: the GPU's model, or the CPU's
    by_side: dict[str, dict[str, int]] = field(default_factory=dict)  # query/document: texts, cache_hits,
    # forward_passes, tokens (a corpus another task encoded shows cache_hits == texts, forward_passes == 0)
    samples: dict[str, Any] = field(default_factory=dict)  # first rendered input per side, its embedding's norm
    inputs: dict[str, dict[str, int]] = field(default_factory=dict)  # side -> texts mteb gave, and how many instructed

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["tokens_per_second"] = self.tokens / self.forward_seconds if self.forward_seconds else None
        record["padding_fraction"] = 1 - self.tokens / self.padded_tokens if self.padded_tokens else 0.0
        return record


@dataclass(frozen=True)
class Plan:
    """How the forward passes run: packed through a varlen attention kernel, or in padded batches."""

    packed: bool
    kernel: VarlenKernel | None = None  # packed: the attention kernel inside the stream
    expand_kv: bool = False  # packed flash: this build's kernel takes no grouped-query heads
    use_mask: bool = True  # padded: False for a right-padded causal decoder (no real token sees a pad)
    fused: str = "none"  # packed: encode.fused_ops
    compiled: bool = False  # packed: encode.compile

    def describe(self) -> str:
        if self.packed:
            return f"packed/{self.kernel}" + (f"+{self.fused}" if self.fused != "none" else "") + (
                "+compile" if self.compiled else "")
        return "padded" if self.use_mask else "padded/no-mask"


class Encoder:
    """Implements mteb v2's EncoderProtocol for a Hugging Face backbone."""

    def __init__(self, cfg: ModelConfig, instructions: Mapping[str, TaskSpec] | None = None,
                 encode: EncodeConfig | None = None, strict_instructions: bool = False) -> None:
        self.cfg = cfg
        self.encode_cfg = encode or EncodeConfig()
        if instructions is None:
            from evalkit.tasks import specs_by_mteb_name

            instructions = specs_by_mteb_name()
        self.instructions = dict(instructions)  # mteb task name -> spec; other tasks: evalkit.instructions
        self.strict_instructions = strict_instructions
        self.instruction_sources: dict[str, str] = {}  # tasks whose instruction this encoder resolved
        self.device = pick_device(cfg.device)
        if self.encode_cfg.cache:  # before any work: a cache that cannot be written fails now, not hours later
            check_cache_writable(self.cache_root())
        self.st = None  # encode_with: sentence_transformers: SentenceTransformer.encode is the forward pass
        if cfg.encode_with == "sentence_transformers":
            from evalkit.encoding.st_encode import load_sentence_transformer

            self.st = load_sentence_transformer(cfg, self.device)
            self.tokenizer, self.model = getattr(self.st, "tokenizer", None), None
        else:
            check_model_folder(cfg)
            self.tokenizer = load_tokenizer(cfg)
            self.model = load_model(cfg, self.device)
        self.pad_id = getattr(self.tokenizer, "pad_token_id", None)
        self.head = load_head(cfg)  # a sentence-transformers folder's Dense layers after pooling
        self.prompts_used: dict[str, dict] = {}  # "<mteb task>/<side>" -> the prompt and where it came from
        self._prompt_tokens = 0  # include_prompt: false: the current call's prompt tokens, left out of pooling
        self._call = (None, None)  # the current call's (prompt prefix, mteb side): what the sentence-transformers path needs
        attn = "sentence-transformers" if self.st is not None else str(self.model.config._attn_implementation)
        self.stats = EncodeStats(attn_implementation=attn, device=device_name(self.device))
        self._caches: dict[str, EmbeddingCache] = {}
        self._fingerprints: dict[str, str] = {}  # weights the cache key names, by what loads them
        self._packed: PackedDecoder | None = None  # built on the first packed batch
        self._pack_checked: dict[str, str] = {}  # packed/<kernel>/<dtype> -> packed = padded, checked on real texts
        self._pack_failed: dict[str, str] = {}  # packed/<kernel>/<dtype> -> how they differed: padded from then on
        self._warned = False  # packed-only options on a padded path: said once
        if self.encode_cfg.cache:
            self.weights_fingerprint()  # hash a local checkpoint now, before any encoding

    # -- mteb protocol -------------------------------------------------------------------
    def encode(self, inputs, *, task_metadata, hf_split: str, hf_subset: str, prompt_type=None, **kwargs) -> np.ndarray:
        texts, ids = loader_rows(inputs)
        given = getattr(prompt_type, "value", prompt_type)
        side = "document" if given == "document" else "query"
        resolved = self.resolve(task_metadata.name, task_metadata.type, given, task_metadata)
        rendered = texts if resolved.template is None and not resolved.prefix else [resolved.apply(t) for t in texts]
        counts = self.stats.inputs.setdefault(side, {"texts": 0, "instructed": 0})
        counts["texts"] += len(texts)
        counts["instructed"] += sum(r != t for r, t in zip(rendered, texts))
        return self.embed(rendered, normalize=self.normalizes(task_metadata.type), side=side, ids=ids,
                          prompt=resolved, prompt_side=given)

    def similarity(self, embeddings1, embeddings2):
        from mteb.models.model_meta import ScoringFunction
        from mteb.similarity_functions import select_similarity

        return select_similarity(embeddings1, embeddings2, ScoringFunction(str(self.cfg.similarity)))

    def similarity_pairwise(self, embeddings1, embeddings2):
        from mteb.models.model_meta import ScoringFunction
        from mteb.similarity_functions import select_pairwise_similarity

        return select_pairwise_similarity(embeddings1, embeddings2, ScoringFunction(str(self.cfg.similarity)))

    @property
    def mteb_model_meta(self):
        from evalkit.encoding.meta import model_meta

        return model_meta(self.cfg, self.model if self.st is None else self.st, self.dimension())

    # -- the protocol's parts, usable on their own -----------------------------------------
    def render(self, texts: list[str], mteb_task: str, task_type: str, side: str | None, task_metadata=None
               ) -> list[str]:
        """Texts with the prompt `prompt.resolve_prompt` gives them."""
        resolved = self.resolve(mteb_task, task_type, side, task_metadata)
        return texts if resolved.template is None and not resolved.prefix else [resolved.apply(t) for t in texts]

    def resolve(self, mteb_task: str, task_type: str, side: str | None, task_metadata=None) -> Resolved:
        """The prompt of one side of a task (`prompt.resolve_prompt`), recorded in `prompts_used`."""
        if self.cfg.prompt is None and self.cfg.prompts is None:
            resolved = Resolved()
        else:
            spec = self.task_spec(mteb_task, task_metadata) if self.cfg.prompt is not None else TaskSpec(
                name=mteb_task, mteb_task=mteb_task, type=task_type, split="", metric="")
            resolved = resolve_prompt(self.cfg, spec, task_type, side)
        self.prompts_used[f"{mteb_task}/{side or 'no side'}"] = resolved.record()
        return resolved

    def prompt_tokens(self, resolved: Resolved) -> int:
        """Tokens of the prompt that pooling leaves out (include_prompt: false), as sentence-transformers counts
        them; 0 where pooling counts every token."""
        if self.cfg.include_prompt or not resolved.prefix or self.st is not None:  # sentence-transformers counts its own
            return 0
        from evalkit.encoding.st_folder import prompt_token_count

        return prompt_token_count(self.tokenizer, resolved.prefix)

    def task_spec(self, mteb_task: str, task_metadata=None) -> TaskSpec:
        """The spec (instruction, symmetric) of a task: from the mapping, else resolved once, as a run would."""
        spec = self.instructions.get(mteb_task)
        if spec is None or spec.instruction is None:
            from evalkit.instructions import resolve_instruction
            from evalkit.tasks import spec_for_metadata

            if spec is None:
                task_metadata = task_metadata or _mteb_metadata(mteb_task)
                spec = spec_for_metadata(task_metadata)
            spec, self.instruction_sources[mteb_task] = resolve_instruction(spec, self.strict_instructions,
                                                                            task_metadata)
            self.instructions[mteb_task] = spec
        return spec

    def normalizes(self, task_type: str) -> bool:
        """Whether embeddings of this task type are L2-normalized (classification's are not, for e5)."""
        return self.cfg.normalize and task_type not in self.cfg.unnormalized_types

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """The token ids the model gets for `texts`; every embedding evalkit computes starts here (none recorded
        where sentence-transformers tokenizes itself)."""
        if self.st is not None:
            return [[] for _ in texts]
        return token_ids(self.tokenizer, texts, self.cfg)

    def embed(self, texts: list[str], normalize: bool = True, side: str = "query", ids: list | None = None,
              prompt: Resolved | None = None, prompt_side: str | None = None) -> np.ndarray:
        """Embeddings (N, H) float32, in the order of `texts`; cached ones are read, not computed. A row
        that is not finite or was never filled is refused with one line naming the first such text (by
        its id in `ids` where given, else its position and start). `prompt`: the prompt the texts were rendered
        with and `prompt_side` mteb's side, where pooling leaves the prompt out (include_prompt: false; the
        prompt's token count is then part of each text's cache key) or sentence-transformers places it itself."""
        start = time.perf_counter()
        sample = None
        if texts and side not in self.stats.samples:
            sample = self.stats.samples[side] = {"text": texts[0], "token_ids": self.tokenize(texts[:1])[0]}
        out = np.full((len(texts), self.dimension()), np.nan, dtype=np.float32)
        filled = np.zeros(len(texts), dtype=bool)
        cache = self._open_cache()
        prompt_tokens = self._prompt_tokens = self.prompt_tokens(prompt) if prompt is not None else 0
        self._call = (prompt.prefix if prompt is not None else None, prompt_side)
        keyed = texts if not prompt_tokens else [f"{prompt_tokens}\x00{t}" for t in texts]
        keys = [text_key(t) for t in keyed] if cache is not None else None
        # with a cache, decided once by rank 0's for every rank: ranks whose caches differ still agree on the work
        decide = lambda: still_to_encode(cache, keys, len(texts))  # noqa: E731
        found, vectors, todo, copies = from_rank0(decide) if cache is not None else decide()
        if vectors is not None:
            out[found] = vectors
            filled[found] = True
        self.stats.cache_hits += len(texts) - len(todo)
        before = (self.stats.forward_passes, self.stats.tokens)
        if world_size() > 1:  # torchrun: this rank encodes its share, then the ranks swap results
            mine = my_share(todo, [len(t) for t in texts])
            done = self._run_model([texts[i] for i in mine], self.tokenize, mine, out, cache, keys)
            filled[exchange(out, done)] = True
        else:
            filled[self._run_model([texts[i] for i in todo], self.tokenize, todo, out, cache, keys)] = True
        for i, j in copies:  # the same text twice in one call: computed once
            out[i], filled[i] = out[j], filled[j]
        self.stats.texts += len(texts)
        self.stats.wall_seconds += time.perf_counter() - start
        count = self.stats.by_side.setdefault(side, dict.fromkeys(("texts", "cache_hits", "forward_passes", "tokens"), 0))
        for key, value in (("texts", len(texts)), ("cache_hits", len(texts) - len(todo)),
                           ("forward_passes", self.stats.forward_passes - before[0]),
                           ("tokens", self.stats.tokens - before[1])):
            count[key] += value
        self.stats.peak_memory_bytes = max(self.stats.peak_memory_bytes, peak_memory_bytes(self.device))
        refuse_holes(out, filled, found, texts, ids, side, self.cfg.name, self.cache_root())
        if normalize:
            out = torch.nn.functional.normalize(torch.from_numpy(out), p=2, dim=-1).numpy()
        if sample is not None:
            sample["norm"] = float(np.linalg.norm(out[0]))  # 1.0 where normalized: the record shows which applied
        return out

    def dimension(self) -> int:
        """The embedding's width: the backbone's, or the last Dense layer's (or sentence-transformers')."""
        if self.st is not None:
            measure = getattr(self.st, "get_embedding_dimension", None) or self.st.get_sentence_embedding_dimension
            return int(measure())
        return int(self.head[-1].weight.shape[0]) if self.head else int(self.model.config.hidden_size)

    def cast(self, dtype: torch.dtype) -> None:
        """Cast the loaded weights (smoke tests, benchmarks). The config follows, so the embedding cache and the
        remembered CPU budget key on the dtype the model now runs in; the packed decoder's fused matrices are
        views the cast would separate from the model, so it is rebuilt from the cast weights on the next batch."""
        self.model.to(dtype)
        self.cfg = replace(self.cfg, dtype=DType(str(dtype).removeprefix("torch.")))
        self._packed = None

    def plan(self) -> Plan:
        """Packed where the model and `encode.packing` allow it, else padded."""
        return self._decide()[0]

    def _decide(self) -> tuple[Plan, str]:
        """The plan and why: what ruled packing out, or the packed-vs-padded check it passed."""
        reason = padding_reason(self.encode_cfg.packing, self.model, self.cfg)
        if reason is None and (self.cfg.pooling not in ("last", "cls", "mean") or not self.cfg.include_prompt):
            reason = f"pooling {self.cfg.pooling}" + ("" if self.cfg.include_prompt else " without the prompt") + \
                " runs padded only"
        if reason is None:
            dtype = next(self.model.parameters()).dtype
            kernel = pick_kernel(self.encode_cfg.varlen_kernel, self.device, dtype)
            grouped = self.model.config.num_key_value_heads != self.model.config.num_attention_heads
            expand = kernel == "flash" and grouped and not flash_takes_gqa(self.device, dtype)
            check_fused(self.encode_cfg.fused_ops, self.device)
            packed = Plan(packed=True, kernel=kernel, expand_kv=expand, fused=str(self.encode_cfg.fused_ops),
                          compiled=self.encode_cfg.compile)
            reason = self._pack_failed.get(self._pack_key(packed))
            if reason is None:
                return packed, self._pack_checked.get(self._pack_key(packed), "packed, not checked yet")
        if self.encode_cfg.packing == "packed":
            raise EvalkitError(f"encode.packing=packed is not possible: {reason}")
        return self._padded(), reason

    def _padded(self) -> Plan:
        return Plan(packed=False, use_mask=mask_needed(self.model, self.cfg.padding_side, self.cfg.trust_remote_code))

    def _check_packing(self, plan: Plan, items: list, tokenize) -> tuple[Plan, str]:
        """Once per model and kernel, before the first packed batch: packed and padded embeddings of the first
        few real texts must agree (cosine >= PACK_CHECK_COSINE); if not, padded from now on, with a warning.
        Attention that crosses from one text into the next shows only with two texts in the stream, so a call
        of one text is checked on that text twice; a call with nothing finite to compare runs padded."""
        seqs = tokenize(items[:PACK_CHECK_TEXTS])
        if len(seqs) == 1:
            seqs = seqs * 2
        begin = time.perf_counter()
        packed = self._forward(plan, pack(seqs))  # the first compiled call compiles: timed apart
        if plan.compiled:
            self.stats.compile_seconds += time.perf_counter() - begin
        padded = apply_head(forward_padded(self.model, *pad_batch(seqs, self.pad_id, self.cfg.padding_side),
                                           self.cfg.pooling, self.device), self.head)
        compared = min_cosine(packed, padded)
        if compared is None:  # nothing finite to compare: this call runs padded (embed refuses non-finite rows)
            if self.encode_cfg.packing == "packed":
                raise EvalkitError(f"encode.packing=packed cannot be checked for {self.cfg.name}: the first "
                                   f"{len(seqs)} texts gave no finite embedding both packed and padded")
            return self._padded(), "padded: packed vs padded not comparable on these texts (checked on the next call)"
        cosine, rows = compared
        if cosine >= PACK_CHECK_COSINE:
            note = f"packed = padded on the first {rows} texts (min cosine {cosine:.6f})"
            self._pack_checked = {**self._pack_checked, self._pack_key(plan): note}  # new dicts: copies never share
            return plan, note
        reason = f"packed and padded embeddings disagree on the first {len(seqs)} texts (min cosine {cosine:.4f})"
        if self.encode_cfg.packing == "packed":
            raise EvalkitError(f"encode.packing=packed is not exact for {self.cfg.name}: {reason}")
        log.warning("%s: %s; encoding padded instead", self.cfg.name, reason)
        self._pack_failed = {**self._pack_failed, self._pack_key(plan): reason}
        return self._decide()

    def _pack_key(self, plan: Plan) -> str:
        """What a packed-vs-padded verdict holds for: the kernel and the weights' dtype."""
        return f"{plan.describe()}/{next(self.model.parameters()).dtype}"

    def embed_ids(self, seqs: list[list[int]]) -> np.ndarray:
        """Raw pooled embeddings (N, H) of ready token id lists: no cache, no normalization (benchmarks)."""
        out = np.full((len(seqs), self.dimension()), np.nan, dtype=np.float32)
        self._run_model(seqs, lambda part: part, list(range(len(seqs))), out, None, None)
        self.stats.texts += len(seqs)
        return out

    def _run_model(self, items: list, tokenize, todo: list[int], out: np.ndarray, cache, keys) -> list[int]:
        """Encode `items` (texts, or whatever `tokenize` turns into token ids) into out[todo]; returns the
        rows of `out` written."""
        written: list[int] = []
        if not todo:
            return written
        if self.st is not None:
            return self._run_sentence_transformer(items, todo, out, cache, keys)
        plan, why = self._decide()
        if plan.packed and self._packed is None:
            self._packed = PackedDecoder(self.model)
        if plan.packed and self._pack_key(plan) not in self._pack_checked:
            plan, why = self._check_packing(plan, items, tokenize)
        if not plan.packed and (self.encode_cfg.compile or self.encode_cfg.fused_ops != "none") and not self._warned:
            self._warned = True
            log.warning("%s: encode.compile and encode.fused_ops apply to packed batches only; these run padded (%s)",
                        self.cfg.name, why)
        cut, build = self._batching(plan)
        budget, self.stats.budget_reason = pick_budget(self, plan, items, tokenize, cut, build)
        self.stats.packing = plan.describe()
        self.stats.packing_reason = why
        self.stats.max_tokens_per_batch = budget
        feeder = Feeder(items, tokenize, lambda lengths: cut(lengths, budget), build, padded=not plan.packed)
        shard = ShardBuffer(cache, self.encode_cfg.cache_shard_texts, self._storage_dtype())
        bar = self._progress(len(todo))
        for batch in feeder:
            begin = time.perf_counter()
            pooled = self._forward(plan, batch.inputs).cpu()
            self.stats.forward_seconds += time.perf_counter() - begin
            self.stats.forward_passes += 1
            self.stats.tokens += batch.tokens
            self.stats.padded_tokens += batch.computed
            rows = [todo[r] for r in batch.rows]
            out[rows] = pooled.numpy()
            written.extend(rows)
            if cache is not None:
                shard.add([keys[r] for r in rows], pooled)
            if bar is not None:
                bar.update(len(rows))
                bar.set_postfix_str(f"{self.stats.tokens / self.stats.forward_seconds:,.0f} tok/s", refresh=False)
        shard.flush()
        if bar is not None:
            bar.close()
        return written

    def _run_sentence_transformer(self, items: list[str], todo: list[int], out: np.ndarray, cache, keys) -> list[int]:
        """`_run_model` through SentenceTransformer.encode (evalkit.encoding.st_encode), a cache shard at a time."""
        from evalkit.encoding.st_encode import BATCH, encode_texts

        prefix, side = self._call
        self.stats.packing, self.stats.packing_reason = "sentence-transformers", "modules evalkit does not implement"
        shard = ShardBuffer(cache, self.encode_cfg.cache_shard_texts, torch.float32)
        step = self.encode_cfg.cache_shard_texts
        for start in range(0, len(items), step):
            begin = time.perf_counter()
            vectors = encode_texts(self.st, items[start:start + step], prefix, side)
            self.stats.forward_seconds += time.perf_counter() - begin
            self.stats.forward_passes += -(-len(vectors) // BATCH)
            rows = todo[start:start + step]
            out[rows] = vectors
            if cache is not None:
                shard.add([keys[r] for r in rows], torch.from_numpy(vectors))
        shard.flush()
        return list(todo)

    def _batching(self, plan: Plan):
        """(cut, build) of the plan: cut(lengths, budget) -> batches of row positions; build(seqs) -> the
        batch's host tensors (pinned on CUDA). Packed sdpa gathers each text into an (N, longest) block, so
        there the block is held to the budget too (`max_block`): no batch's memory grows with max_length."""
        rows_cap, pin = self.encode_cfg.batch_size, self.device.type == "cuda"
        if plan.packed:
            blocks = plan.kernel == "sdpa"
            return ((lambda lengths, budget: packed_batches(lengths, budget, rows_cap, budget if blocks else None)),
                    lambda seqs: pack(seqs, pin))
        return ((lambda lengths, budget: length_batches(lengths, rows_cap, budget, PADDED_ROW_SLACK)),
                lambda seqs: _pin(pad_batch(seqs, self.pad_id, self.cfg.padding_side), pin))

    def _forward(self, plan: Plan, inputs) -> torch.Tensor:
        """One batch as `_batching`'s build made it -> pooled float32 embeddings on the device."""
        if plan.packed:
            pooled = self._packed(inputs.to(self.device), self.cfg.pooling, plan.kernel, plan.expand_kv, plan.fused,
                                  plan.compiled)
        else:
            pooled = forward_padded(self.model, *inputs, self.cfg.pooling, self.device, plan.use_mask,
                                    self._prompt_tokens)
        return apply_head(pooled, self.head)

    def _storage_dtype(self) -> torch.dtype:
        """Pooling that picks one token is lossless in the forward dtype; a mean is kept in float32."""
        picks_one = self.cfg.pooling in ("last", "cls") and not self.head
        return next(self.model.parameters()).dtype if picks_one else torch.float32

    def cache_root(self) -> Path:
        return Path(self.encode_cfg.cache_dir or embeddings_root())

    def weights_fingerprint(self) -> str:
        """`fingerprint.model_fingerprint` of what this encoder loaded (hashed once per model)."""
        cfg = self.cfg
        which = json.dumps([cfg.name_or_path, cfg.revision, cfg.tokenizer, cfg.random_init and asdict(cfg.random_init)],
                           default=str)
        if which not in self._fingerprints:
            self._fingerprints[which] = model_fingerprint(cfg, self.device.type)
        return self._fingerprints[which]

    def _open_cache(self) -> EmbeddingCache | None:
        if not self.encode_cfg.cache:
            return None
        identity = model_identity(self.cfg, self.device.type, self.weights_fingerprint())
        name = json.dumps(identity, sort_keys=True)
        if name not in self._caches:
            limit = self.encode_cfg.cache_max_gb
            self._caches[name] = EmbeddingCache(self.cache_root(), identity, int(limit * 1e9) if limit else None)
        return self._caches[name]

    def _progress(self, total: int):
        if not self.encode_cfg.show_progress or total < 1000:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="encode", unit="text", mininterval=2.0)

    def special_tokens(self) -> dict[str, Any]:
        tok = self.tokenizer
        if not hasattr(tok, "bos_token"):  # no transformers tokenizer (a StaticEmbedding's)
            return {}
        return {name: {"token": getattr(tok, name), "id": getattr(tok, f"{name}_id")}
                for name in ("bos_token", "eos_token", "pad_token", "unk_token")}


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


def _mteb_metadata(mteb_task: str):
    import mteb

    try:
        return mteb.get_task(mteb_task).metadata
    except KeyError:
        raise EvalkitError(f"no instruction for mteb task {mteb_task!r}: mteb knows no such task; pass "
                           f"instructions= or add conf/tasks/{mteb_task}.yaml") from None


def load_encoder(model: str = "e5_mistral_7b", instructions: Mapping[str, TaskSpec] | None = None,
                 encode: EncodeConfig | None = None, strict_instructions: bool = False, **overrides: Any) -> Encoder:
    return Encoder(load_model_config(model, **overrides), instructions=instructions, encode=encode,
                   strict_instructions=strict_instructions)


def _pin(tensors: tuple[torch.Tensor, ...], pin: bool) -> tuple[torch.Tensor, ...]:
    return tuple(t.pin_memory() for t in tensors) if pin else tensors
