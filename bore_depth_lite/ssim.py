"""Structural similarity (SSIM) as used by self-supervised depth losses.

Monodepth2 and SC-Depth compute SSIM with *box-filter* local means over a k×k window
(k = 3; SC-Depth v3 uses 7), reflection padding so the map keeps the image size, and the
constants C1 = 0.01², C2 = 0.03² of images in [0, 1]. The variances are the biased
(population) ones: E[x²] - E[x]². A Gaussian window (σ = 1.5, as in the SSIM paper and in
kornia) is offered as an option.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ssim", "ssim_loss"]


def _window_1d(kind: str, size: int, sigma: float, ref: torch.Tensor) -> torch.Tensor:
    """Normalised 1-D Gaussian taps; the 2-D window is their outer product (separable)."""
    if kind != "gaussian":
        raise ValueError(f"ssim: window must be 'box' or 'gaussian', got {kind!r}")
    x = torch.arange(size, dtype=ref.dtype, device=ref.device) - size // 2
    w1 = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return w1 / w1.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, window_size: int = 3, window: str = "box", sigma: float = 1.5,
         c1: float = 0.01 ** 2, c2: float = 0.03 ** 2) -> torch.Tensor:
    """Per-pixel, per-channel SSIM map of two images in [0, 1].

    ``SSIM = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))`` with local
    statistics over a ``window_size``² window, the images reflection-padded by
    ``window_size // 2`` so the output keeps their size.

    Args:
        x, y: (B,C,H,W) images with values in [0, 1]; H, W > window_size // 2.
        window_size: odd window side k (3 in Monodepth2/SC-Depth v1–v2, 7 in SC-Depth v3).
        window: ``"box"`` (uniform weights, the depth-loss convention) or ``"gaussian"``.
        sigma: standard deviation of the Gaussian window (ignored for ``"box"``).
        c1, c2: stabilising constants (0.01² and 0.03² for a data range of 1).

    Returns:
        (B,C,H,W) SSIM values in [-1, 1].
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim: x and y must both be (B,C,H,W) of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if window not in ("box", "gaussian"):
        raise ValueError(f"ssim: window must be 'box' or 'gaussian', got {window!r}")
    if window_size < 1 or window_size % 2 == 0:
        raise ValueError(f"ssim: window_size must be a positive odd integer, got {window_size}")
    pad = window_size // 2
    if pad >= min(x.shape[-2:]):
        raise ValueError(f"ssim: image {tuple(x.shape[-2:])} too small for reflection padding of window {window_size}")
    c = x.shape[1]
    # The five local means (x, y, x², y², xy) in one pass over the stacked maps.
    stacked = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    stacked = F.pad(stacked, (pad, pad, pad, pad), mode="reflect")
    # Autocast would run these convolutions in bf16/fp16, where E[x²] - E[x]² cancels badly: the
    # moments keep the inputs' dtype.
    with torch.autocast(x.device.type, enabled=False):
        if window == "box":
            # A depth-wise convolution with uniform weights, not avg_pool2d: the same means (to 4e-7), and
            # 4-9x faster forward + backward on the AVX2 Zen 3 where it was measured (bench/bench_ssim.py).
            n = stacked.shape[1]
            moments = F.conv2d(stacked, stacked.new_full((n, 1, window_size, window_size), 1.0 / window_size ** 2),
                               groups=n)
        else:
            w1 = _window_1d(window, window_size, sigma, x)
            n = stacked.shape[1]
            moments = F.conv2d(stacked, w1.view(1, 1, 1, -1).expand(n, 1, 1, window_size), groups=n)
            moments = F.conv2d(moments, w1.view(1, 1, -1, 1).expand(n, 1, window_size, 1), groups=n)
    mu_x, mu_y, e_xx, e_yy, e_xy = moments.split(c, dim=1)
    sigma_x = e_xx - mu_x * mu_x
    sigma_y = e_yy - mu_y * mu_y
    sigma_xy = e_xy - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (sigma_x + sigma_y + c2)
    return num / den


def ssim_loss(x: torch.Tensor, y: torch.Tensor, window_size: int = 3, window: str = "box") -> torch.Tensor:
    """Dissimilarity ``clamp((1 - SSIM) / 2, 0, 1)`` per pixel and channel: (B,C,H,W) in [0, 1]."""
    return ((1.0 - ssim(x, y, window_size, window)) / 2.0).clamp(0.0, 1.0)
