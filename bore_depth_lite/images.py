"""Reading images: the package's one image reader and its one list of extensions.

Photos (:func:`load_image`: any mode, 16-bit, EXIF orientation, a size limit checked before
decoding), data-set frames (:func:`read_image`: the same pixels as uint8) and label or depth
maps stored as PNG (:func:`decode`: the stored array) all go through Pillow here, and every
failure is an :class:`ImageLoadError` naming the file.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["IMAGE_EXTENSIONS", "MAX_IMAGE_PIXELS", "ImageLoadError", "decode", "image_size", "load_image", "read_image"]

#: Extensions read as images (what Pillow decodes; lower case, compared case-insensitively).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

#: The largest image :func:`load_image` decodes: 100 megapixels (a 12000x8000 photo; 1.2 GB as
#: float32 RGB). Checked from the header, before any pixel is decoded, so a small file that
#: claims a huge size (a "decompression bomb") costs nothing. Pillow's own limit is 179 MP.
MAX_IMAGE_PIXELS = 100_000_000


class ImageLoadError(ValueError):
    """An image file that cannot be read as an RGB picture (message names the file).

    ``reason`` is the message without the file's name, for callers that name the file their own
    way (the data-set layout says which kind of map it expected)."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason if reason is not None else message


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
                                     "bore_depth_lite.images.MAX_IMAGE_PIXELS); downscale it first")
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb_float(img, path)
    except ImageLoadError:
        raise
    except Image.DecompressionBombError:   # not an OSError: Pillow's own, lower-level limit
        raise ImageLoadError(f"{path}: its header claims more than 179 megapixels (Pillow's decompression-bomb "
                             f"limit); this package decodes at most {MAX_IMAGE_PIXELS / 1e6:.0f} MP") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, MemoryError) as err:
        why = f"({type(err).__name__}: {err})"
        raise ImageLoadError(f"{path}: cannot be read as an image {why}", reason=why) from None


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A data-set frame as RGB uint8 (H, W, 3): :func:`load_image`'s pixels, exact for 8-bit files."""
    return np.rint(load_image(path)).astype(np.uint8)


def decode(path: str | os.PathLike, mode: str | None = None) -> np.ndarray:
    """The array a PNG/JPEG file stores (converted to PIL ``mode`` if given): label maps, 16-bit
    depth. ImageLoadError naming the file if it is missing or cannot be decoded."""
    path = Path(path)
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            return np.array(im.convert(mode) if mode else im)
    except Exception as err:  # Pillow raises several types for truncated/corrupt data
        why = f"({type(err).__name__}: {err})"
        raise ImageLoadError(f"{path}: cannot be read as an image {why}", reason=why) from None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding a pixel; ImageLoadError if unreadable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as img:
                return img.size
    except Exception as err:
        why = f"({type(err).__name__}: {err})"
        raise ImageLoadError(f"{path}: cannot be read as an image {why}", reason=why) from None
