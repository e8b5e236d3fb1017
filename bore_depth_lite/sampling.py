"""Batches as a pure function of (seed, step), so that a resumed run sees the same data.

The sampler draws each step's sample indices and per-sample augmentation seeds from a
generator seeded with the step; the wrapper dataset seeds every generator with the sample's
seed before loading it. No sampler or worker state needs saving, and the number of
data-loading workers does not change what a run sees.
"""
from __future__ import annotations

import random
from typing import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

__all__ = ["StepBatchSampler", "SeededSamples"]


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches as a pure function of (seed, step): ``[(sample index, augmentation seed), ...]``.

    Sampling is with replacement, as SC-Depth's fixed-length epochs do. Under DDP each
    process takes its own contiguous slice of the global batch.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, start_step: int, steps: int,
                 rank: int = 0, world_size: int = 1):
        if num_samples < 1:
            raise ValueError("the training set is empty")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.start_step, self.steps, self.rank, self.world_size = start_step, steps, rank, world_size

    def global_batch(self, step: int) -> list[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        index = torch.randint(self.num_samples, (self.batch_size,), generator=g)
        aug = torch.randint(2**31 - 1, (self.batch_size,), generator=g)
        return list(zip(index.tolist(), aug.tolist()))

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        per_rank = self.batch_size // self.world_size
        for step in range(self.start_step, self.steps):
            yield self.global_batch(step)[self.rank * per_rank:(self.rank + 1) * per_rank]

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step)


class SeededSamples(Dataset):
    """Wraps a dataset so that item ``(index, seed)`` draws its augmentation from ``seed``."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]) -> dict[str, Tensor]:
        index, seed = item
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        return self.dataset[index]
