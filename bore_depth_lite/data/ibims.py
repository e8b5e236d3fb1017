"""iBims-1 (100 indoor test images, laser-scanned GT, annotated depth edges): the ``.mat``
files of ``ibims1_core_mat``, ``imagelist.txt``, the raw 16-bit depth PNGs, and preparation
into the shared layout (the book's appendix "Reference"). Zero-shot only: there is no training split.

The two masks are named for what they remove but mark *valid* pixels: ``mask_invalid`` = 1
where the depth is valid, ``mask_transp`` = 1 where the surface is not transparent.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .layout import (LayoutError, load_mat_v5, read_label_png, read_name_list, write_depth, write_image, write_intrinsics,
                     write_label_png)

FIELDS = ("rgb", "depth", "edges", "calib", "mask_invalid", "mask_transp")
BORE_INTRINSICS = (559.62, 558.14, 361.87, 241.99)  # fx, fy, cx, cy used by BoRe-Depth (1-based)


def read_imagelist(path: str | os.PathLike) -> list[str]:
    return read_name_list(path, "iBims-1 imagelist.txt", "image name")


def calib_to_K(calib: np.ndarray, zero_based: bool = True) -> np.ndarray:
    """The stored ``calib`` is the *transposed* K ([[fx,0,0],[0,fy,0],[cx,cy,1]]) in 1-based
    pixel coordinates; return K (3,3) in the package's 0-based convention."""
    calib = np.asarray(calib, np.float64)
    K = calib.T.copy()
    if zero_based:
        K[0, 2] -= 1.0
        K[1, 2] -= 1.0
    return K


def load_mat(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """One ``ibims1_core_mat/<name>.mat``: ``rgb`` (H,W,3) uint8, ``depth`` (H,W) float32
    metres, ``edges`` (H,W) bool, ``K`` (3,3) 0-based, ``valid`` (H,W) bool (both masks and
    depth > 0), and the raw masks."""
    path = Path(path)
    mat = load_mat_v5(path, "iBims-1 .mat file")
    if "data" not in mat:
        raise LayoutError(f"{path}: no variable 'data' (expected the 1x1 struct of ibims1_core_mat)")
    data = mat["data"]
    names = data.dtype.names or ()
    missing = [f for f in FIELDS if f not in names]
    if missing:
        raise LayoutError(f"{path}: struct 'data' lacks fields {missing}; expected {list(FIELDS)}")
    get = {f: data[f][0][0] for f in names}
    rgb, depth = np.asarray(get["rgb"]), np.asarray(get["depth"], np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or depth.shape != rgb.shape[:2]:
        raise LayoutError(f"{path}: rgb {rgb.shape} and depth {depth.shape} do not match (expected (H,W,3) and (H,W))")
    if np.asarray(get["calib"]).shape != (3, 3):
        raise LayoutError(f"{path}: calib has shape {np.asarray(get['calib']).shape}, expected (3, 3)")
    for f in ("edges", "mask_invalid", "mask_transp"):
        if np.asarray(get[f]).shape != depth.shape:
            raise LayoutError(f"{path}: {f} has shape {np.asarray(get[f]).shape}, expected {depth.shape}")
    if rgb.dtype != np.uint8:
        if not (np.issubdtype(rgb.dtype, np.number) and np.isfinite(rgb).all() and rgb.min(initial=0) >= 0
                and rgb.max(initial=0) <= 255 and np.all(rgb == np.round(rgb))):
            raise LayoutError(f"{path}: rgb must hold whole numbers 0..255 (8-bit colour), found {rgb.dtype} "
                              f"values in [{rgb.min()}, {rgb.max()}]")
    out = {"rgb": rgb.astype(np.uint8), "depth": depth, "edges": np.asarray(get["edges"]) > 0,
           "K": calib_to_K(get["calib"]), "mask_invalid": np.asarray(get["mask_invalid"]) > 0,
           "mask_transp": np.asarray(get["mask_transp"]) > 0}
    out["valid"] = out["mask_invalid"] & out["mask_transp"] & np.isfinite(depth) & (depth > 0)
    for f in ("mask_wall", "mask_table", "mask_floor", "mask_wall_paras", "mask_table_paras", "mask_floor_paras"):
        if f in get:
            out[f] = np.asarray(get[f])
    return out


def read_raw_depth(path: str | os.PathLike) -> np.ndarray:
    """``ibims1_core_raw/depth/<name>.png``: uint16 × 50 / 65535 → metres, 0 = missing."""
    arr = read_label_png(path)
    if arr.dtype != np.uint16:
        raise LayoutError(f"{path}: expected a 16-bit PNG (iBims-1 raw depth), got {arr.dtype}")
    return arr.astype(np.float32) * np.float32(50.0 / 65535.0)


def prepare_ibims(mat_dir: str | os.PathLike, imagelist: str | os.PathLike, out: str | os.PathLike,
                  progress=None) -> dict:
    """Write iBims-1 as ``testing/``: colour PNG, depth ``.npy`` with invalid / transparent
    pixels set to 0, the annotated edges as ``boundary/``, per-image K in ``cam/``."""
    mat_dir, out = Path(mat_dir), Path(out)
    if not mat_dir.is_dir():
        raise LayoutError(f"{mat_dir}: folder of iBims-1 .mat files (ibims1_core_mat) not found")
    names = read_imagelist(imagelist)
    wrap = progress or (lambda x, **k: x)
    for name in wrap(names, desc="iBims-1"):
        sample = load_mat(mat_dir / f"{name}.mat")
        write_image(out / "testing" / "color" / f"{name}.png", sample["rgb"])
        write_depth(out / "testing" / "depth" / f"{name}.npy", np.where(sample["valid"], sample["depth"], 0))
        write_label_png(out / "testing" / "boundary" / f"{name}.png", sample["edges"])
        write_intrinsics(out / "testing" / "cam" / f"{name}.txt", sample["K"])
    return {"frames": len(names)}
