"""The batch planner: packed or padded forward passes (and why), the tokens per batch, and the batches run.

Packing is used only where `packing.packable` allows it and, before the first packed batch of a kernel and
dtype, packed and padded embeddings of a few real texts agree (else padded, with a warning); the run record
says which ran and why (`EncodeStats.packing`, `packing_reason`). The budget comes from `calibrate.pick_budget`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from evalkit import EvalkitError
from evalkit.config import EncodeConfig, VarlenKernel
from evalkit.encoding.batching import PADDED_ROW_SLACK, Feeder, length_batches, packed_batches
from evalkit.encoding.calibrate import pick_budget
from evalkit.encoding.checks import PACK_CHECK_COSINE, PACK_CHECK_TEXTS, min_cosine
from evalkit.encoding.fused import check_fused
from evalkit.encoding.loaded import LoadedModel
from evalkit.encoding.model import mask_needed, pad_batch
from evalkit.encoding.packing import padding_reason
from evalkit.encoding.stats import EncodeStats
from evalkit.encoding.varlen import flash_takes_gqa, pack, pick_kernel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForwardPath:
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


class BatchPlanner:
    """Runs texts (or ready token ids) through `model` in batches, as `encode` settings allow."""

    def __init__(self, model: LoadedModel, encode: EncodeConfig, stats: EncodeStats) -> None:
        self.model = model
        self.encode = encode
        self.stats = stats
        self.checked: dict[str, str] = {}  # path/dtype -> packed = padded, checked on real texts
        self.failed: dict[str, str] = {}  # path/dtype -> how packed and padded differed: padded from then on
        self.warned = False  # packed-only options on a padded path: said once

    def path(self) -> tuple[ForwardPath, str]:
        """Packed where the model and `encode.packing` allow it (and no check failed), else padded; and why."""
        model, encode = self.model, self.encode
        reason = padding_reason(encode.packing, model.backbone, model.cfg)
        if reason is None:
            config = model.backbone.config
            kernel = pick_kernel(encode.varlen_kernel, model.device, model.dtype)
            grouped = config.num_key_value_heads != config.num_attention_heads
            expand = kernel == "flash" and grouped and not flash_takes_gqa(model.device, model.dtype)
            check_fused(encode.fused_ops, model.device)
            packed = ForwardPath(packed=True, kernel=kernel, expand_kv=expand, fused=str(encode.fused_ops),
                                 compiled=encode.compile)
            reason = self.failed.get(self.verdict_key(packed))
            if reason is None:
                return packed, self.checked.get(self.verdict_key(packed), "packed, not checked yet")
        if encode.packing == "packed":
            raise EvalkitError(f"encode.packing=packed is not possible: {reason}")
        return self.padded(), reason

    def padded(self) -> ForwardPath:
        cfg = self.model.cfg
        return ForwardPath(packed=False, use_mask=mask_needed(self.model.backbone, cfg.padding_side,
                                                              cfg.trust_remote_code))

    def verdict_key(self, path: ForwardPath) -> str:
        """What a packed-vs-padded verdict holds for: the kernel and the weights' dtype."""
        return f"{path.describe()}/{self.model.dtype}"

    def check_packing(self, path: ForwardPath, items: list, tokenize) -> tuple[ForwardPath, str]:
        """Once per kernel and dtype, before the first packed batch: packed and padded embeddings of the first
        few real texts must agree (cosine >= PACK_CHECK_COSINE); if not, padded from now on, with a warning.
        Attention that crosses from one text into the next shows only with two texts in the stream, so a call
        of one text is checked on that text twice; a call with nothing finite to compare runs padded."""
        model, cfg = self.model, self.model.cfg
        seqs = tokenize(items[:PACK_CHECK_TEXTS])
        if len(seqs) == 1:
            seqs = seqs * 2
        begin = time.perf_counter()
        packed = self.forward(path, pack(seqs))  # the first compiled call compiles: timed apart
        if path.compiled:
            self.stats.compile_seconds += time.perf_counter() - begin
        padded = model.forward_padded(*pad_batch(seqs, model.pad_id, cfg.padding_side))
        compared = min_cosine(packed, padded)
        if compared is None:  # nothing finite to compare: this call runs padded (the store refuses non-finite rows)
            if self.encode.packing == "packed":
                raise EvalkitError(f"encode.packing=packed cannot be checked for {cfg.name}: the first "
                                   f"{len(seqs)} texts gave no finite embedding both packed and padded")
            return self.padded(), "padded: packed vs padded not comparable on these texts (checked on the next call)"
        cosine, rows = compared
        if cosine >= PACK_CHECK_COSINE:
            note = f"packed = padded on the first {rows} texts (min cosine {cosine:.6f})"
            self.checked[self.verdict_key(path)] = note
            return path, note
        reason = f"packed and padded embeddings disagree on the first {len(seqs)} texts (min cosine {cosine:.4f})"
        if self.encode.packing == "packed":
            raise EvalkitError(f"encode.packing=packed is not exact for {cfg.name}: {reason}")
        log.warning("%s: %s; encoding padded instead", cfg.name, reason)
        self.failed[self.verdict_key(path)] = reason
        return self.path()

    def batching(self, path: ForwardPath):
        """(cut, build) of a path: cut(lengths, budget) -> batches of row positions; build(seqs) -> the batch's
        host tensors (pinned on CUDA). Packed sdpa gathers each text into an (N, longest) block, so there the
        block is held to the budget too (`max_block`): no batch's memory grows with max_length."""
        rows_cap, pin = self.encode.batch_size, self.model.device.type == "cuda"
        if path.packed:
            blocks = path.kernel == "sdpa"
            return ((lambda lengths, budget: packed_batches(lengths, budget, rows_cap, budget if blocks else None)),
                    lambda seqs: pack(seqs, pin))
        cfg = self.model.cfg
        return ((lambda lengths, budget: length_batches(lengths, rows_cap, budget, PADDED_ROW_SLACK)),
                lambda seqs: _pin(pad_batch(seqs, self.model.pad_id, cfg.padding_side), pin))

    def forward(self, path: ForwardPath, inputs) -> torch.Tensor:
        """One batch as `batching`'s build made it -> embeddings before normalization, float32 on the device."""
        if path.packed:
            return self.model.forward_packed(inputs, path.kernel, path.expand_kv, path.fused, path.compiled)
        return self.model.forward_padded(*inputs, use_mask=path.use_mask)

    def batches(self, items: list, tokenize: Callable[[list], list[list[int]]]
                ) -> Iterator[tuple[list[int], torch.Tensor]]:
        """(positions in `items`, their embeddings on the host) per forward pass, until every item is done."""
        if not items:
            return
        path, why = self.path()
        if path.packed and self.verdict_key(path) not in self.checked:
            path, why = self.check_packing(path, items, tokenize)
        if not path.packed and (self.encode.compile or self.encode.fused_ops != "none") and not self.warned:
            self.warned = True
            log.warning("%s: encode.compile and encode.fused_ops apply to packed batches only; these run padded (%s)",
                        self.model.cfg.name, why)
        cut, build = self.batching(path)
        budget, self.stats.budget_reason = pick_budget(self, path, items, tokenize)
        self.stats.packing, self.stats.packing_reason, self.stats.max_tokens_per_batch = path.describe(), why, budget
        feeder = Feeder(items, tokenize, lambda lengths: cut(lengths, budget), build, padded=not path.packed)
        bar = self._progress(len(items))
        for batch in feeder:
            begin = time.perf_counter()
            pooled = self.forward(path, batch.inputs).cpu()
            self.stats.forward_seconds += time.perf_counter() - begin
            self.stats.forward_passes += 1
            self.stats.tokens += batch.tokens
            self.stats.padded_tokens += batch.computed
            yield batch.rows, pooled
            if bar is not None:
                bar.update(len(batch.rows))
                bar.set_postfix_str(f"{self.stats.tokens / self.stats.forward_seconds:,.0f} tok/s", refresh=False)
        if bar is not None:
            bar.close()

    def embed_ids(self, seqs: list[list[int]]) -> np.ndarray:
        """Embeddings (N, H) before normalization of ready token id lists: no cache (benchmarks time this)."""
        out = np.full((len(seqs), self.model.dimension), np.nan, dtype=np.float32)
        for rows, pooled in self.batches(seqs, lambda part: part):
            out[rows] = pooled.numpy()
        self.stats.texts += len(seqs)
        return out

    def _progress(self, total: int):
        if not self.encode.show_progress or total < 1000:
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="encode", unit="text", mininterval=2.0)


def _pin(tensors: tuple[torch.Tensor, ...], pin: bool) -> tuple[torch.Tensor, ...]:
    return tuple(t.pin_memory() for t in tensors) if pin else tensors
