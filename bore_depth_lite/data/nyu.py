"""NYU Depth v2 labeled set: the v7.3 (HDF5) ``.mat``, ``splits.mat``, the camera, and
preparation of the 654-image test split into the shared layout (the book's appendix "Reference").

h5py shows MATLAB's column-major arrays with every dimension reversed: ``images`` is
(N, 3, W, H), ``depths`` (N, W, H). The plain full transpose restores (H, W[, 3]); rotations or
``swapaxes`` variants seen in the wild can silently mirror the image.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..protocols import FIXED_CROPS
from .layout import LayoutError, frame_name, load_mat_v5, write_depth, write_image, write_intrinsics, write_label_png

# RGB camera of the NYU toolbox (camera_params.m), in its 1-based pixel coordinates.
TOOLBOX_RGB = (5.1885790117450188e02, 5.1946961112127485e02, 3.2558244941119034e02, 2.5373616633400465e02)
# The values BoRe-Depth uses (the same, rounded).
BORE_RGB = (518.8579, 519.46961, 325.58245, 253.73617)
# The evaluation crops as slices of a 480x640 map; defined once, in protocols.FIXED_CROPS.
BORE_CROP = (slice(*FIXED_CROPS["nyu"][:2]), slice(*FIXED_CROPS["nyu"][2:]))                 # SC-Depth / BoRe
TOOLBOX_CROP = (slice(*FIXED_CROPS["nyu_toolbox"][:2]), slice(*FIXED_CROPS["nyu_toolbox"][2:]))  # NYU toolbox
REQUIRED_KEYS = ("images", "depths")


def intrinsics(zero_based: bool = True, values: tuple = TOOLBOX_RGB) -> np.ndarray:
    """K (3,3) of the 640x480 RGB camera; ``zero_based`` shifts the toolbox's 1-based
    principal point by −1 into the package's convention (pixel (col,row) = (u,v))."""
    fx, fy, cx, cy = values
    shift = 1.0 if zero_based else 0.0
    return np.array([[fx, 0, cx - shift], [0, fy, cy - shift], [0, 0, 1.0]])


def _mat_header(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(128)


def open_labeled(path: str | os.PathLike):
    """Open ``nyu_depth_v2_labeled.mat`` with h5py after checking what kind of file it is."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"{path}: NYUv2 labeled .mat not found")
    header = _mat_header(path)
    if not h5py.is_hdf5(path):
        kind = "a MATLAB v5 .mat" if header.startswith(b"MATLAB 5.0") else "not an HDF5 file"
        raise LayoutError(f"{path}: {kind}; expected the MATLAB v7.3 (HDF5) nyu_depth_v2_labeled.mat")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise LayoutError(f"{path}: a damaged or truncated HDF5 file, h5py cannot open it "
                          f"({str(err).splitlines()[0][:160]})") from None
    missing = [k for k in REQUIRED_KEYS if k not in f]
    if missing:
        f.close()
        raise LayoutError(f"{path}: missing datasets {missing}; expected at least {list(REQUIRED_KEYS)}")
    n_img, n_dep = f["images"].shape[0], f["depths"].shape[0]
    if f["images"].ndim != 4 or f["images"].shape[1] != 3 or f["depths"].ndim != 3 or n_img != n_dep \
            or f["images"].shape[2:] != f["depths"].shape[1:]:
        shapes = (f["images"].shape, f["depths"].shape)
        f.close()
        raise LayoutError(f"{path}: images {shapes[0]} / depths {shapes[1]} do not match the v7.3 layout "
                          "(N, 3, W, H) / (N, W, H)")
    return f


def decode_strings(f, key: str) -> list[str]:
    """A MATLAB cell of char arrays (HDF5 object references to uint16 codes) as Python strings."""
    refs = f[key][()].ravel()
    return ["".join(map(chr, f[r][()].ravel())) for r in refs]


def _reading(path):
    """OSError while reading datasets of a truncated file → LayoutError naming the file."""
    import contextlib

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except OSError as err:
            raise LayoutError(f"{path}: a damaged or truncated HDF5 file, reading it failed "
                              f"({str(err).splitlines()[0][:160]})") from None
    return guard()


def load_labeled(path: str | os.PathLike, indices=None, with_labels: bool = False) -> dict:
    """Images (n,H,W,3) uint8 and depths (n,H,W) float32 metres (+ labels (n,H,W) uint16 and
    class ``names`` when ``with_labels``) for the given 0-based indices (default: all)."""
    with _reading(path), open_labeled(path) as f:
        n = f["images"].shape[0]
        idx = np.arange(n) if indices is None else np.asarray(indices, int).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise LayoutError(f"{path}: index {int(idx.max())} out of range for {n} images")
        images = np.stack([f["images"][i].transpose(2, 1, 0) for i in idx]) if idx.size else np.zeros((0, 0, 0, 3), np.uint8)
        depths = np.stack([f["depths"][i].T for i in idx]).astype(np.float32) if idx.size else np.zeros((0, 0, 0), np.float32)
        out = {"images": images, "depths": depths}
        if with_labels:
            if "labels" not in f:
                raise LayoutError(f"{path}: no 'labels' dataset")
            out["labels"] = np.stack([f["labels"][i].T for i in idx]) if idx.size else np.zeros((0, 0, 0), np.uint16)
            out["names"] = decode_strings(f, "names") if "names" in f else []
        return out


def read_splits(path: str | os.PathLike, num_images: int | None = None) -> dict[str, np.ndarray]:
    """``splits.mat`` (MATLAB v5): 0-based ``train`` and ``test`` index arrays."""
    path = Path(path)
    mat = load_mat_v5(path, "NYUv2 splits.mat")
    missing = [k for k in ("trainNdxs", "testNdxs") if k not in mat]
    if missing:
        raise LayoutError(f"{path}: missing {missing}; expected trainNdxs and testNdxs (1-based indices)")
    out = {"train": mat["trainNdxs"].astype(int).ravel() - 1, "test": mat["testNdxs"].astype(int).ravel() - 1}
    for key, idx in out.items():
        if idx.size and (idx.min() < 0 or (num_images is not None and idx.max() >= num_images)):
            raise LayoutError(f"{path}: {key} indices outside 1..{num_images or 'N'}")
    return out


def prepare_nyu(mat_path: str | os.PathLike, splits_path: str | os.PathLike, out: str | os.PathLike,
                split: str = "test", semantic: bool = True, progress=None) -> dict:
    """Write the NYUv2 labeled ``split`` (default the 654 test images) as ``testing/``:
    colour PNG, depth ``.npy`` (float32 metres), 16-bit semantic labels (the 894 NYU classes,
    0 = unlabeled) and ``cam.txt`` (0-based toolbox K). Reads one image at a time."""
    out = Path(out)
    with _reading(mat_path), open_labeled(mat_path) as f:
        n = f["images"].shape[0]
        idx = read_splits(splits_path, n)[split]
        if idx.size == 0:
            raise LayoutError(f"{splits_path}: the {split} split is empty")
        semantic = semantic and "labels" in f
        wrap = progress or (lambda x, **k: x)
        for j, i in enumerate(wrap(idx, desc=f"NYUv2 {split}")):
            name = frame_name(j)
            write_image(out / "testing" / "color" / f"{name}.png", f["images"][i].transpose(2, 1, 0))
            write_depth(out / "testing" / "depth" / f"{name}.npy", f["depths"][i].T)
            if semantic:
                write_label_png(out / "testing" / "semantic" / f"{name}.png", f["labels"][i].T.astype(np.uint16))
        if semantic and "names" in f:
            (out / "classes.txt").write_text("unlabeled\n" + "".join(f"{c}\n" for c in decode_strings(f, "names")))
    write_intrinsics(out / "testing" / "cam.txt", intrinsics())
    return {"frames": int(idx.size), "split": split}
