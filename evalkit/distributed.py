"""torchrun support: ranks share the encoding of every call, rank 0 writes the result.

    torchrun --nproc-per-node 8 -m evalkit task=msmarco

Each rank runs the same mteb evaluation. Inside every `Encoder.embed` call the texts the cache lacks
are split across ranks (by length, round robin, so the work is even); each rank encodes its share,
writes its cache shards as it goes, and the ranks exchange their embeddings so all hold the full
matrix. A rank that dies loses only its unfinished shard: a re-run reads the others from the cache.
NCCL on GPUs (one per rank, LOCAL_RANK), gloo on CPUs.
"""

from __future__ import annotations

import os

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


def exchange(out: np.ndarray, mine: list[int]) -> None:
    """Fill every rank's `out` with the rows each rank computed (all_gather of (rows, vectors))."""
    import torch.distributed as dist

    parts: list = [None] * world_size()
    dist.all_gather_object(parts, (mine, out[mine]))
    for rows, vectors in parts:
        if rows:
            out[rows] = vectors
