"""torchrun support: ranks share the encoding of every call, rank 0 writes the result.

    torchrun --nproc-per-node 8 -m evalkit task=msmarco

Each rank runs the same mteb evaluation. Inside every `Encoder.embed` call rank 0 alone asks its cache
which texts are done and broadcasts the answer (the rows it found, their vectors, the rows still to
encode), so every rank works from one decision even when their caches differ (per-node caches, one
warm and one cold). The rows still to encode are split across ranks (by length, round robin, so the
work is even); each rank encodes its share, writes its own cache shards as it goes, and the ranks
exchange their embeddings so all hold the full matrix. The matrix starts as NaN and every row must
have been filled before it is scored (`Encoder.embed` checks). A rank that dies loses only its
unfinished shard: a re-run reads the others from the cache. NCCL on GPUs (one per rank,
LOCAL_RANK), gloo on CPUs.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np


def world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def init_from_env() -> None:
    """Join the process group torchrun describes in the environment (no-op for a single process)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")


def barrier() -> None:
    if world_size() > 1:
        import torch.distributed as dist

        dist.barrier()


def my_share(todo: list[int], lengths: list[int]) -> list[int]:
    """This rank's part of `todo`: longest first, dealt round robin."""
    order = sorted(todo, key=lambda i: -lengths[i])
    return sorted(order[rank()::world_size()])


def from_rank0(decide: Callable[[], Any]) -> Any:
    """decide() on rank 0, its result on every rank (one process: decide())."""
    if world_size() == 1:
        return decide()
    import torch.distributed as dist

    box = [decide() if rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def exchange(out: np.ndarray, mine: list[int]) -> list[int]:
    """Fill every rank's `out` with the rows each rank computed (all_gather of (rows, vectors));
    returns the rows that arrived, this rank's own included."""
    import torch.distributed as dist

    parts: list = [None] * world_size()
    dist.all_gather_object(parts, (mine, out[mine]))
    filled: list[int] = []
    for rows, vectors in parts:
        if rows:
            out[rows] = vectors
            filled.extend(rows)
    return filled
