"""What one encoder did, for the run record: texts, tokens, forward passes, cache hits, time, memory, path."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
