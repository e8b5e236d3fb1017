"""What every backend that runs an exported graph does with its input, in one place.

A backend maps an ImageNet-normalised (B, 3, H, W) float batch to depth (B, 1, H, W). Sizes that
are not multiples of 32 are replicate-padded and cropped back exactly as ``DepthNet.forward``
does; a graph exported at a static size accepts the sizes that pad to it; a graph exported for
batch 1 runs a larger batch one image at a time.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ..models import pad_to_multiple

__all__ = ["check_input", "run_padded"]


def check_input(image: Tensor) -> Tensor:
    """The batch as float32, or ValueError saying what was expected."""
    if not isinstance(image, Tensor) or image.ndim != 4 or image.shape[1] != 3:
        shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise ValueError(f"expected a normalised image batch (B, 3, H, W), got {shape}")
    if not image.is_floating_point():
        # uint8 0-255 or integer pixels are not ImageNet-normalised inputs: casting them would
        # run the network on garbage without a word.
        raise ValueError(f"expected a float ImageNet-normalised batch (see preprocess()), got dtype {image.dtype}")
    return image.float()


def run_padded(x: Tensor, run: Callable[[Tensor], Tensor], static_hw: tuple[int, int] | None,
               static_batch: int | None, graph_name: str) -> Tensor:
    """``run`` (the graph on a (b, 3, H', W') batch) on ``x`` (B, 3, H, W): padded to the graph's
    size, batch by batch if the graph has a fixed batch, cropped back to (B, 1, H, W)."""
    h, w = x.shape[-2:]
    if static_hw is None or (h, w) != static_hw:   # a static graph of its exact size runs unpadded
        x, (h, w) = pad_to_multiple(x, 32)
        if static_hw is not None and tuple(x.shape[-2:]) != static_hw:
            sh, sw = static_hw
            accepted = f"{sh}×{sw}" if sh % 32 or sw % 32 else f"{sh - 31}..{sh}×{sw - 31}..{sw}"
            raise ValueError(f"{graph_name} was exported for {sh}×{sw} inputs (accepts {accepted}), got {h}×{w} "
                             f"(padded to {x.shape[-2]}×{x.shape[-1]}); export with dynamic=True or at this size")
    if static_batch is not None and x.shape[0] != static_batch:
        return torch.cat([run(x[i:i + 1]) for i in range(x.shape[0])])[..., :h, :w]
    return run(x)[..., :h, :w]
