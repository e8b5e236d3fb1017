"""Image loading and the released networks' preprocessing (shared by inference and deployment).

The released inference path: read RGB as float 0–255 → bilinear resize to the preset size
(half-pixel centres, no antialiasing: OpenCV ``INTER_LINEAR`` ≡ torch ``interpolate(mode=
"bilinear", align_corners=False, antialias=False)``) → ÷255 → ImageNet mean/std.
Reproducing it exactly is part of reproducing the released output on a real photo.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

__all__ = ["MAX_IMAGE_PIXELS", "IMAGENET_MEAN", "IMAGENET_STD", "PRESETS", "ImageLoadError", "load_image", "resize_bilinear",
           "normalize_imagenet", "denormalize_imagenet", "preprocess", "load_and_preprocess", "preset_size"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Released input sizes (H, W): KITTI 256×832; NYUv2 and iBims-1 256×320.
PRESETS: dict[str, tuple[int, int]] = {"kitti": (256, 832), "nyu": (256, 320), "ibims": (256, 320)}


#: The largest image :func:`load_image` decodes: 100 megapixels (a 12000x8000 photo; 1.2 GB as
#: float32 RGB). Checked from the header, before any pixel is decoded, so a small file that
#: claims a huge size (a "decompression bomb") costs nothing. Pillow's own limit is 179 MP.
MAX_IMAGE_PIXELS = 100_000_000


class ImageLoadError(ValueError):
    """An image file that cannot be read as an RGB picture (message names the file)."""


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


def _to_rgb_float(img: Image.Image, path: Path) -> np.ndarray:
    """Any PIL mode → (H, W, 3) float32 in 0–255. 16-bit data is scaled by 255/65535."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img, dtype=np.float32)
        # "I" is how older Pillow versions open 16-bit PNGs; 8-bit data stored as I stays as is.
        scale = 255.0 / 65535.0 if (mode.startswith("I;16") or arr.max(initial=0) > 255) else 1.0
        arr = np.repeat((arr * scale)[..., None], 3, axis=2)
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        arr = np.repeat((arr * (255.0 if arr.max(initial=0) <= 1.0 else 1.0))[..., None], 3, axis=2)
    else:
        # RGBA/LA: alpha is dropped (as OpenCV's IMREAD_COLOR does); P, L, CMYK, YCbCr → RGB.
        arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageLoadError(f"{path}: decoded to an unexpected array of shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ImageLoadError(f"{path}: contains non-finite pixel values")
    return np.clip(arr, 0.0, 255.0)


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB float32 (H, W, 3) in 0–255.

    Handles grayscale (replicated to 3 channels), palette, RGBA (alpha dropped), 16-bit PNG
    (scaled to 0–255) and EXIF orientation (the pixels are rotated as a viewer shows them,
    like OpenCV's ``imread``). Raises :class:`ImageLoadError` naming the file otherwise.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():   # our own limit below replaces Pillow's bomb warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img_cm = Image.open(path)
        with img_cm as img:
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:
                raise ImageLoadError(f"{path}: {w}x{h} = {w * h / 1e6:.0f} megapixels is more than this package "
                                     f"decodes ({MAX_IMAGE_PIXELS / 1e6:.0f} MP, "
                                     "bore_depth_lite.preprocess.MAX_IMAGE_PIXELS); downscale it first")
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb_float(img, path)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as err:   # not an OSError: Pillow's own, lower-level limit
        raise ImageLoadError(f"{path}: its header claims more than 179 megapixels (Pillow's decompression-bomb "
                             f"limit); this package decodes at most {MAX_IMAGE_PIXELS / 1e6:.0f} MP") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, MemoryError) as err:
        raise ImageLoadError(f"{path}: cannot be read as an image ({type(err).__name__}: {err})") from None


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
