"""Depth map + intrinsics → coloured 3-D points, and PLY files of them.

Pixel convention of the whole package (:mod:`bore_depth_lite.data.render`): the pixel in column
``c`` and row ``r`` is the ray ``K⁻¹ (c, r, 1)ᵀ``, and depth is the z coordinate, so a pixel's
point is ``depth · K⁻¹ (c, r, 1)ᵀ`` in the camera frame (x right, y down, z forward; metres when
the depth is metric, otherwise the depth's own unit).

The released code's intrinsics (``depth2pointcloud.py``) are :data:`INTRINSICS`, each given at
the image size it belongs to; :func:`intrinsics_for` rescales them to a depth map's size.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .fileio import atomic_write

__all__ = ["INTRINSICS", "intrinsics_matrix", "intrinsics_for", "depth_to_points", "colours_at", "write_ply", "read_ply"]

#: preset -> ((fx, fy, cx, cy) in pixels, (height, width) of the image they belong to).
#: KITTI: camera 02 of 2011_09_26 at 375×1242 (the released 832×256 values are these rescaled);
#: NYUv2: the values BoRe-Depth uses at 480×640; iBims-1: its calibration at 480×640.
INTRINSICS: dict[str, tuple[tuple[float, float, float, float], tuple[int, int]]] = {
    "kitti": ((721.5377, 721.5377, 609.5593, 172.8540), (375, 1242)),
    "nyu": ((518.8579, 519.46961, 325.58245, 253.73617), (480, 640)),
    "ibims": ((559.62, 558.14, 361.87, 241.99), (480, 640)),
}


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """(3, 3) float64 K."""
    values = np.array([fx, fy, cx, cy], dtype=np.float64)
    if not np.isfinite(values).all() or fx <= 0 or fy <= 0:
        raise ValueError(f"intrinsics: expected finite fx, fy > 0 and finite cx, cy; found {tuple(values)}")
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def intrinsics_for(preset_or_values: str | tuple[float, float, float, float], size: tuple[int, int],
                   image_size: tuple[int, int] | None = None) -> np.ndarray:
    """K for a depth map of ``size`` (H, W).

    ``preset_or_values``: a name in :data:`INTRINSICS`, or (fx, fy, cx, cy) in pixels of an
    image of ``image_size`` (H, W) (default: ``size``). Rescaled per axis, as a resize of the
    image does (the released code's KITTI values are exactly this rescaling to 832×256).
    """
    if isinstance(preset_or_values, str):
        if preset_or_values not in INTRINSICS:
            raise ValueError(f"intrinsics: unknown preset {preset_or_values!r}; expected one of {sorted(INTRINSICS)} "
                             "or fx fy cx cy")
        values, image_size = INTRINSICS[preset_or_values]
    else:
        values = tuple(float(v) for v in preset_or_values)
        if len(values) != 4:
            raise ValueError(f"intrinsics: expected 4 numbers fx fy cx cy, found {len(values)}")
        image_size = image_size or size
    sy, sx = size[0] / image_size[0], size[1] / image_size[1]
    fx, fy, cx, cy = values
    return intrinsics_matrix(fx * sx, fy * sy, cx * sx, cy * sy)


def depth_to_points(depth: np.ndarray, K: np.ndarray, rgb: np.ndarray | None = None,
                    valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Back-project the valid pixels of ``depth`` (H, W).

    Returns ``(points (N, 3) float32, colours (N, 3) uint8 or None)``; pixels without a finite
    positive depth, or outside ``valid``, are dropped. ``rgb`` (H, W, 3) uint8 gives the colours.
    """
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth: expected one (H, W) map, found shape {depth.shape}")
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K: expected a (3, 3) matrix, found shape {K.shape}")
    ok = np.isfinite(depth) & (depth > 0)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    rows, cols = np.nonzero(ok)
    z = depth[rows, cols]
    pixels = np.stack([cols, rows, np.ones_like(cols)]).astype(np.float64)     # (3, N): (c, r, 1)
    points = (np.linalg.inv(K) @ pixels * z).T.astype(np.float32)
    colours = None
    if rgb is not None:
        rgb = np.asarray(rgb)
        if rgb.shape != (*depth.shape, 3):
            raise ValueError(f"rgb: expected shape {(*depth.shape, 3)} (the depth map's size), found {rgb.shape}")
        colours = np.clip(np.rint(rgb[rows, cols].astype(np.float64)), 0, 255).astype(np.uint8)
    return points, colours


def colours_at(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An RGB image (any size, 0-255) resized bilinearly to ``size`` (H, W) as uint8 (H, W, 3): the
    colours of a depth map predicted at another size than the photo's, for :func:`depth_to_points`."""
    from PIL import Image

    h, w = size
    return np.asarray(Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).resize((w, h), Image.BILINEAR))


def write_ply(path: str | os.PathLike, points: np.ndarray, colours: np.ndarray | None = None) -> Path:
    """A binary little-endian PLY of ``points`` (N, 3) (float32 x, y, z) and, if given,
    ``colours`` (N, 3) uint8 (red, green, blue); written atomically. Viewers: MeshLab, CloudCompare, Open3D."""
    points = np.ascontiguousarray(points, dtype="<f4")
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points: expected shape (N, 3), found {points.shape}")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if colours is not None:
        colours = np.asarray(colours)
        if colours.shape != points.shape:
            raise ValueError(f"colours: expected shape {points.shape}, found {colours.shape}")
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    vertices = np.empty(len(points), dtype=fields)
    vertices["x"], vertices["y"], vertices["z"] = points.T
    if colours is not None:
        vertices["red"], vertices["green"], vertices["blue"] = colours.astype(np.uint8).T
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(points)}"]
    header += [f"property {'float' if kind == '<f4' else 'uchar'} {name}" for name, kind in fields]
    header += ["end_header"]
    data = ("\n".join(header) + "\n").encode("ascii") + vertices.tobytes()
    return atomic_write(path, lambda f: f.write(data))


def read_ply(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """Read what :func:`write_ply` writes (binary little-endian float xyz, optional uchar rgb)."""
    raw = Path(path).read_bytes()
    end = raw.find(b"end_header\n")
    if not raw.startswith(b"ply\n") or end < 0:
        raise ValueError(f"{path}: not a PLY file (no 'ply' magic or 'end_header')")
    header = raw[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise ValueError(f"{path}: only binary little-endian PLY is read here")
    count = next(int(line.split()[2]) for line in header if line.startswith("element vertex"))
    types = {"float": "<f4", "uchar": "u1"}
    fields = [(line.split()[2], types[line.split()[1]]) for line in header if line.startswith("property")]
    vertices = np.frombuffer(raw, dtype=fields, count=count, offset=end + len(b"end_header\n"))
    points = np.stack([vertices[k] for k in ("x", "y", "z")], axis=1)
    colours = np.stack([vertices[k] for k in ("red", "green", "blue")], axis=1) if "red" in vertices.dtype.names else None
    return points, colours
