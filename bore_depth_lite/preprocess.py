"""Image loading and the released networks' preprocessing (shared by inference and deployment).

The released inference path: read RGB as float 0–255 → bilinear resize to the preset size
(half-pixel centres, no antialiasing: OpenCV ``INTER_LINEAR`` ≡ torch ``interpolate(mode=
"bilinear", align_corners=False, antialias=False)``) → ÷255 → ImageNet mean/std.
Reproducing it exactly is part of reproducing the released output on a real photo.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .images import load_image

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "PRESETS", "resize_bilinear",
           "normalize_imagenet", "denormalize_imagenet", "preprocess", "load_and_preprocess", "preset_size"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Released input sizes (H, W): KITTI 256×832; NYUv2 and iBims-1 256×320.
PRESETS: dict[str, tuple[int, int]] = {"kitti": (256, 832), "nyu": (256, 320), "ibims": (256, 320)}


def preset_size(preset: str | tuple[int, int]) -> tuple[int, int]:
    """``"kitti"``/``"nyu"``/``"ibims"`` or an explicit (H, W) → (H, W)."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)} or an (H, W) pair")
        return PRESETS[preset]
    h, w = (int(v) for v in preset)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {(h, w)}")
    return h, w


def resize_bilinear(image: Tensor, size: tuple[int, int]) -> Tensor:
    """(B, C, H, W) or (C, H, W) → same at ``size`` (H, W): bilinear, half-pixel centres, no
    antialiasing (OpenCV ``INTER_LINEAR``). Works on any value range (the release resizes 0–255)."""
    squeeze = image.ndim == 3
    x = image[None] if squeeze else image
    if x.shape[-2:] != tuple(size):
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=False)
    return x[0] if squeeze else x


def normalize_imagenet(image: Tensor) -> Tensor:
    """RGB in [0, 1], (..., 3, H, W) → ImageNet-normalised."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return (image - mean) / std


def denormalize_imagenet(image: Tensor) -> Tensor:
    """Inverse of :func:`normalize_imagenet`."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=image.dtype, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=image.dtype, device=image.device).view(3, 1, 1)
    return image * std + mean


def preprocess(image: np.ndarray | Tensor, preset: str | tuple[int, int] | None = "nyu") -> Tensor:
    """An RGB image (H, W, 3) numpy in 0–255 (uint8 or float) → network input (1, 3, h, w).

    Resizes to the preset size as the release does (on 0–255 values), then ÷255 and ImageNet
    normalisation. ``preset=None`` keeps the image's own size.
    """
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB array, got shape {image.shape}")
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
    else:
        x = image.float()
        if x.ndim != 3 or x.shape[0] != 3:
            raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(x.shape)}")
    if preset is not None:
        x = resize_bilinear(x, preset_size(preset))
    return normalize_imagenet(x / 255.0)[None]


def load_and_preprocess(path: str | Path, preset: str | tuple[int, int] | None = "nyu") -> tuple[Tensor, np.ndarray]:
    """Read a file and preprocess it: returns (network input (1, 3, h, w), original RGB 0–255)."""
    rgb = load_image(path)
    return preprocess(rgb, preset), rgb
