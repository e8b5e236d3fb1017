"""Data-parallel training on an existing engine: torch.distributed, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m bore_depth_lite.train ...`` starts N processes and sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; each process trains on its slice of the global batch
and DistributedDataParallel averages the gradients (NCCL on GPUs, gloo on CPUs). Because
the gradient of a mean over slices is the mean of the slices' gradients, N processes with a
global batch B take the same optimiser steps as one process that accumulates the gradients
of the same N slices (``grad_chunks=N``): that is what the DDP test checks.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "init_distributed"]


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def shutdown(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the process group that ``torchrun`` describes in the environment (or run alone)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank)
