"""Augmentations that keep the geometry consistent: every transform that moves pixels also
updates the intrinsics K, and one random draw is applied to all frames of a sample.

Pixel-centre convention (as everywhere in the package): pixel (col, row) is the image point
(u, v) = (col, row). Hence:

- horizontal flip: u' = (W − 1) − u, so cx' = (W − 1) − cx (SC-Depth writes W − cx, which
  is the half-pixel convention's formula);
- resize from W to W' with half-pixel sampling (``align_corners=False``): the continuous
  coordinate u + ½ scales by s = W'/W, so fx' = s·fx and cx' = s·(cx + ½) − ½;
- crop at (top, left): cx' = cx − left, cy' = cy − top.

A sample is a dict: ``images`` (T,3,H,W) float in [0,1], ``K`` (3,3), and optionally
``maps``: a dict of (M,1,H,W) per-pixel maps (depth, pseudo-depth) that move with the
pixels but whose values do not change (nearest-neighbour resampling; depth is a property
of the 3-D point, which zooming does not move).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

Sample = dict


def flip_intrinsics(K: torch.Tensor, width: int) -> torch.Tensor:
    """K (...,3,3) of the horizontally flipped image (mirrored world)."""
    K = K.clone()
    K[..., 0, 2] = (width - 1) - K[..., 0, 2]
    K[..., 0, 1] = -K[..., 0, 1]
    return K


def resize_intrinsics(K: torch.Tensor, scale_x: float, scale_y: float) -> torch.Tensor:
    """K (...,3,3) after resizing by (scale_x, scale_y) with half-pixel sampling."""
    K = K.clone()
    K[..., 0, 0] = K[..., 0, 0] * scale_x
    K[..., 0, 1] = K[..., 0, 1] * scale_x
    K[..., 0, 2] = scale_x * (K[..., 0, 2] + 0.5) - 0.5
    K[..., 1, 1] = K[..., 1, 1] * scale_y
    K[..., 1, 2] = scale_y * (K[..., 1, 2] + 0.5) - 0.5
    return K


def crop_intrinsics(K: torch.Tensor, top: int, left: int) -> torch.Tensor:
    K = K.clone()
    K[..., 0, 2] = K[..., 0, 2] - left
    K[..., 1, 2] = K[..., 1, 2] - top
    return K


def _resize(sample: Sample, height: int, width: int) -> Sample:
    images = sample["images"]
    h0, w0 = images.shape[-2:]
    out = dict(sample)
    out["images"] = F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False, antialias=False)
    out["K"] = resize_intrinsics(sample["K"], width / w0, height / h0)
    if "maps" in sample:
        out["maps"] = {k: F.interpolate(v, size=(height, width), mode="nearest-exact") for k, v in sample["maps"].items()}
    return out


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return float(low + (high - low) * torch.rand((), generator=generator))


class Compose:
    def __init__(self, transforms: list):
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for t in self.transforms:
            sample = t(sample)
        return sample


class Resize:
    """Resize every frame to (height, width) (bilinear, half-pixel) and update K."""

    def __init__(self, height: int, width: int):
        self.size = (height, width)

    def __call__(self, sample: Sample) -> Sample:
        return _resize(sample, *self.size)


class RandomHorizontalFlip:
    """Flip all frames with probability p; K becomes the flipped camera's K."""

    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None):
        self.p, self.generator = p, generator

    def __call__(self, sample: Sample) -> Sample:
        if float(torch.rand((), generator=self.generator)) >= self.p:
            return sample
        out = dict(sample)
        out["images"] = sample["images"].flip(-1)
        out["K"] = flip_intrinsics(sample["K"], sample["images"].shape[-1])
        if "maps" in sample:
            out["maps"] = {k: v.flip(-1) for k, v in sample["maps"].items()}
        return out


class RandomScaleCrop:
    """SC-Depth's zoom: scale each axis by U(1, max_scale), then crop back to the input size
    at a random offset; K follows both steps exactly."""

    def __init__(self, max_scale: float = 1.15, generator: torch.Generator | None = None):
        if max_scale < 1:
            raise ValueError(f"max_scale={max_scale}: expected ≥ 1")
        self.max_scale, self.generator = max_scale, generator

    def __call__(self, sample: Sample) -> Sample:
        h, w = sample["images"].shape[-2:]
        sx, sy = _uniform(1, self.max_scale, self.generator), _uniform(1, self.max_scale, self.generator)
        hs, ws = int(round(h * sy)), int(round(w * sx))
        scaled = _resize(sample, hs, ws)
        top = int(torch.randint(0, hs - h + 1, (), generator=self.generator))
        left = int(torch.randint(0, ws - w + 1, (), generator=self.generator))
        out = dict(scaled)
        out["images"] = scaled["images"][..., top:top + h, left:left + w]
        out["K"] = crop_intrinsics(scaled["K"], top, left)
        if "maps" in scaled:
            out["maps"] = {k: v[..., top:top + h, left:left + w] for k, v in scaled["maps"].items()}
        return out


class ColorJitter:
    """Brightness, contrast and saturation factors drawn once and applied identically to every
    frame (so the photometric assumption between frames still holds). Contrast blends with a
    constant 0.5 grey, not each frame's own mean, for the same reason."""

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, saturation: float = 0.2,
                 generator: torch.Generator | None = None):
        self.b, self.c, self.s, self.generator = brightness, contrast, saturation, generator

    def __call__(self, sample: Sample) -> Sample:
        g = self.generator
        b = _uniform(1 - self.b, 1 + self.b, g)
        c = _uniform(1 - self.c, 1 + self.c, g)
        s = _uniform(1 - self.s, 1 + self.s, g)
        x = sample["images"] * b
        x = (x - 0.5) * c + 0.5
        grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        x = grey + (x - grey) * s
        return {**sample, "images": x.clamp(0.0, 1.0)}


def train_augmentation(generator: torch.Generator | None = None, max_scale: float = 1.15,
                       color_jitter: bool = False) -> Compose:
    """SC-Depth's training augmentation (flip + scale-crop), with optional colour jitter."""
    steps = [RandomHorizontalFlip(0.5, generator), RandomScaleCrop(max_scale, generator)]
    if color_jitter:
        steps.append(ColorJitter(generator=generator))
    return Compose(steps)
