"""Batches cut by tokens, tokenized and built on a background thread ahead of the forward passes.

Texts are taken in windows; within a window they are sorted longest first (a text too long for
the device fails at once, not after an hour) and cut into batches of at most `max_tokens`
tokens (real tokens when packed, rows x longest row when padded) and, with `encode.batch_size`, at most
that many texts. A worker thread tokenizes
the next window and builds each batch's tensors (pinned on CUDA) while the device runs.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

CPU_TOKEN_BUDGET = 16_384  # tokens per batch on a CPU until calibrated (calibrate.py measures the best budget)
GPU_TOKEN_CAP = 65_536  # enough to saturate the matrix units; larger only delays the first result
WINDOW_TEXTS = 16_384  # texts tokenized and sorted together
PADDED_ROW_SLACK = 0.1  # padded batches: no row more than 10% padding (large budgets would mix lengths)


def length_batches(lengths: list[int], max_rows: int | None, max_tokens: int | None,
                   max_padding: float | None = None) -> Iterator[list[int]]:
    """Indices sorted longest first, cut into batches of at most max_rows rows and max_tokens padded
    tokens, and (with max_padding) before a row that would be more than that fraction padding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for i in order:
        width = lengths[batch[0]] if batch else lengths[i]
        full = (max_rows is not None and len(batch) >= max_rows) or (
            max_tokens is not None and (len(batch) + 1) * width > max_tokens) or (
            max_padding is not None and lengths[i] < (1 - max_padding) * width)
        if batch and full:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def packed_batches(lengths: list[int], max_tokens: int, max_rows: int | None = None,
                   max_block: int | None = None) -> Iterator[list[int]]:
    """Indices sorted longest first, cut into batches of at most max_tokens real tokens (and max_rows texts,
    and with max_block at most that many rows x longest text: what a kernel that gathers texts into a padded
    block holds)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    total = 0
    for i in order:
        if batch and (total + lengths[i] > max_tokens or (max_rows is not None and len(batch) >= max_rows) or (
                max_block is not None and (len(batch) + 1) * lengths[batch[0]] > max_block)):
            yield batch
            batch, total = [], 0
        batch.append(i)
        total += lengths[i]
    if batch:
        yield batch


def activation_bytes_per_token(config, dtype_bytes: int, scores_len: int = 0) -> int:
    """A generous bound on the activations one token holds at the peak of a decoder layer: the MLP's gate|up,
    activation and product (4 x intermediate), the residual stream and norm outputs, q/k/v, float32 norm
    statistics. `scores_len`: attention that materialises a row of scores per head per token
    (eager attention over rows of that length) holds them too, in the dtype and as float32 softmax."""
    hidden = config.hidden_size
    inter = getattr(config, "intermediate_size", None) or 4 * hidden
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    scores = heads * scores_len * (dtype_bytes + 4)
    layer = max(4 * inter, 3 * inter + 6 * hidden) + (heads + 2 * kv) * head_dim
    return dtype_bytes * layer + 4 * 2 * hidden + scores


def gpu_budget(config, dtype_bytes: int, free_bytes: int, max_length: int, cap: int = GPU_TOKEN_CAP,
               scores_len: int = 0) -> int:
    """Tokens per batch that half of `free_bytes` holds at `activation_bytes_per_token`, at most `cap`, never less
    than max_length (a text longer than the budget goes through alone; one that does not fit at all is a
    model too large for the card)."""
    per_token = activation_bytes_per_token(config, dtype_bytes, scores_len)
    return max(max_length, min(cap, int(0.5 * free_bytes / per_token)))


def token_budget(model, device, max_length: int, fixed: int | None = None, cap: int = GPU_TOKEN_CAP,
                 scores: bool = False) -> int:
    """Tokens per batch: `fixed` when set, else on CUDA `gpu_budget` of the free device memory (`scores`: the
    attention materialises its scores), else the CPU default (calibrate.py measures a better one)."""
    if fixed is not None:
        return fixed
    if device.type != "cuda":
        return max(CPU_TOKEN_BUDGET, max_length)
    import torch

    free, _ = torch.cuda.mem_get_info(device)
    return gpu_budget(model.config, next(model.parameters()).element_size(), free, max_length, cap,
                      max_length if scores else 0)


@dataclass
class Batch:
    rows: list[int]  # positions in the caller's text list
    tokens: int  # real tokens
    computed: int  # tokens the linear layers compute (padding included)
    inputs: Any  # what `build` made of the rows' token ids


class Feeder:
    """Iterates Batches; a daemon thread tokenizes, groups and builds them up to `depth` ahead."""

    def __init__(self, texts: list[str], tokenize: Callable[[list[str]], list[list[int]]],
                 batch_indices: Callable[[list[int]], Iterator[list[int]]], build: Callable[[list[list[int]]], Any],
                 padded: bool, window: int = WINDOW_TEXTS, depth: int = 4) -> None:
        self.texts, self.tokenize, self.batch_indices, self.build = texts, tokenize, batch_indices, build
        self.padded, self.window = padded, window
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._work, name="evalkit-feeder", daemon=True)
        self.thread.start()

    def _windows(self) -> Iterator[range]:
        start, size = 0, min(self.window, 1024)  # a small first window gets the device going sooner
        while start < len(self.texts):
            yield range(start, min(start + size, len(self.texts)))
            start, size = start + size, self.window

    def _work(self) -> None:
        try:
            for span in self._windows():
                ids = self.tokenize(self.texts[span.start:span.stop])
                lengths = [len(s) for s in ids]
                for local in self.batch_indices(lengths):
                    seqs = [ids[i] for i in local]
                    width = max(lengths[i] for i in local)
                    computed = len(local) * width if self.padded else sum(lengths[i] for i in local)
                    batch = Batch([span.start + i for i in local], sum(lengths[i] for i in local), computed,
                                  self.build(seqs))
                    if not self._put(batch):
                        return
            self._put(None)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Batch]:
        try:
            while True:
                item = self.queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.stop.set()
