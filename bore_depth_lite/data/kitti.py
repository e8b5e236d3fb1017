"""KITTI raw: calibration, velodyne, Eigen-split parsing, GT depth, and preparation into the
shared layout. Formats and reference behaviour: the book's appendix "Reference" (KITTI protocol).

GT depth reproduces monodepth2's ``generate_depth_map`` (the Eigen export), including the
duplicate-resolution quirk of its ported MATLAB ``sub2ind`` (linear index row·(W−1) + col − 1
instead of row·W + col): with ``reproduce_sub2ind_quirk=True`` (default) the maps equal the
``gt_depths.npz`` everybody evaluates against; ``False`` gives the intended behaviour (each
pixel keeps its own nearest point). The two differ only when pixel (r, W−1) and (r+1, 0)
both receive points.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..images import read_image
from .layout import LayoutError, read_label_png, read_text

CALIB_SHAPES = {"calib_cam_to_cam.txt": {"S_rect_0{cam}": 2, "R_rect_00": 9, "P_rect_0{cam}": 12},
                "calib_velo_to_cam.txt": {"R": 9, "T": 3}}
MAX_SIDE = 20_000   # pixels: KITTI's rectified images are 1242x375; a larger S_rect is a damaged file
SIDE_TO_CAMERA = {"l": 2, "2": 2, "r": 3, "3": 3}
EIGEN_TEST_DRIVES = (
    "2011_09_26_drive_0002", "2011_09_26_drive_0009", "2011_09_26_drive_0013", "2011_09_26_drive_0020",
    "2011_09_26_drive_0023", "2011_09_26_drive_0027", "2011_09_26_drive_0029", "2011_09_26_drive_0036",
    "2011_09_26_drive_0046", "2011_09_26_drive_0048", "2011_09_26_drive_0052", "2011_09_26_drive_0056",
    "2011_09_26_drive_0059", "2011_09_26_drive_0064", "2011_09_26_drive_0084", "2011_09_26_drive_0086",
    "2011_09_26_drive_0093", "2011_09_26_drive_0096", "2011_09_26_drive_0101", "2011_09_26_drive_0106",
    "2011_09_26_drive_0117", "2011_09_28_drive_0002", "2011_09_29_drive_0071", "2011_09_30_drive_0016",
    "2011_09_30_drive_0018", "2011_09_30_drive_0027", "2011_10_03_drive_0027", "2011_10_03_drive_0047")


def read_calib_file(path: str | os.PathLike) -> dict[str, np.ndarray | str]:
    """``key: v1 v2 ...`` lines; split on the first colon; non-numeric values stay strings
    (e.g. ``calib_time: 09-Jan-2012 13:57:47``)."""
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"{path}: KITTI calibration file not found")
    data: dict[str, np.ndarray | str] = {}
    for line in read_text(path, "KITTI calibration file").splitlines():
        if ":" not in line:
            continue
        key, value = line.split(":", 1)
        value = value.strip()
        try:
            data[key.strip()] = np.array([float(v) for v in value.split()])
        except ValueError:
            data[key.strip()] = value
    return data


def _checked(calib: dict, path: Path, cam: int) -> dict[str, np.ndarray]:
    out = {}
    for key_t, size in CALIB_SHAPES[path.name].items():
        key = key_t.format(cam=cam)
        value = calib.get(key)
        if not isinstance(value, np.ndarray) or value.size != size:
            found = "missing" if value is None else f"{getattr(value, 'size', 'non-numeric')} values"
            raise LayoutError(f"{path}: key {key!r} must hold {size} numbers ({found})")
        if not np.isfinite(value).all():
            raise LayoutError(f"{path}: key {key!r} must hold {size} finite numbers (found NaN or inf)")
        out[key_t] = value
    return out


def load_calibration(calib_dir: str | os.PathLike, cam: int = 2) -> dict[str, np.ndarray]:
    """Checked arrays: ``size`` (H, W) ints, ``R_rect`` (4,4), ``P_rect`` (3,4), ``velo2cam`` (4,4)."""
    calib_dir = Path(calib_dir)
    c2c = _checked(read_calib_file(calib_dir / "calib_cam_to_cam.txt"), calib_dir / "calib_cam_to_cam.txt", cam)
    v2c = _checked(read_calib_file(calib_dir / "calib_velo_to_cam.txt"), calib_dir / "calib_velo_to_cam.txt", cam)
    velo2cam = np.eye(4)
    velo2cam[:3, :3], velo2cam[:3, 3] = v2c["R"].reshape(3, 3), v2c["T"]
    R_rect = np.eye(4)
    R_rect[:3, :3] = c2c["R_rect_00"].reshape(3, 3)
    width, height = c2c["S_rect_0{cam}"]
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE and width == int(width) and height == int(height)):
        raise LayoutError(f"{calib_dir / 'calib_cam_to_cam.txt'}: S_rect_0{cam} must be a whole-pixel image size "
                          f"(W, H) between 1 and {MAX_SIDE}, got {width:g} {height:g}")
    return {"size": (int(height), int(width)), "R_rect": R_rect, "P_rect": c2c["P_rect_0{cam}"].reshape(3, 4),
            "velo2cam": velo2cam}


def load_velodyne_points(path: str | os.PathLike) -> np.ndarray:
    """(N,4) float32 (x forward, y left, z up, reflectance) from a headerless float32 .bin."""
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"{path}: velodyne scan not found")
    size = path.stat().st_size
    if size % 16:
        raise LayoutError(f"{path}: {size} bytes is not a whole number of (x, y, z, r) float32 records "
                          "(16 bytes each); the file is truncated or not a velodyne scan")
    return np.fromfile(path, dtype="<f4").reshape(-1, 4)


def generate_depth_map(calib_dir: str | os.PathLike, velo_path: str | os.PathLike, cam: int = 2,
                       vel_depth: bool = False, reproduce_sub2ind_quirk: bool = True) -> np.ndarray:
    """Sparse GT depth (H,W) float64 at the rectified size of ``S_rect_0{cam}``; 0 = no GT.

    ``vel_depth=True`` stores the velodyne x (what the Eigen export uses); ``False`` stores
    the projected third coordinate (rectified camera z + P[2,3]).
    """
    calib = load_calibration(calib_dir, cam)
    height, width = calib["size"]
    P_velo2im = calib["P_rect"] @ calib["R_rect"] @ calib["velo2cam"]
    velo = load_velodyne_points(velo_path).astype(np.float64)
    velo = velo[velo[:, 0] >= 0]
    velo[:, 3] = 1.0
    p = velo @ P_velo2im.T
    u, v = p[:, 0] / p[:, 2], p[:, 1] / p[:, 2]
    value = velo[:, 0] if vel_depth else p[:, 2]
    col = np.round(u) - 1  # the reference's 1-based -> 0-based step (np.round: half to even)
    row = np.round(v) - 1
    keep = (col >= 0) & (row >= 0) & (col < width) & (row < height)
    col, row, value = col[keep].astype(np.int64), row[keep].astype(np.int64), value[keep]
    depth = np.zeros((height, width))
    depth[row, col] = value  # with duplicates, the last write wins
    if reproduce_sub2ind_quirk:
        index = row * (width - 1) + col - 1
    else:
        index = row * width + col
    unique, counts = np.unique(index, return_counts=True)
    for dup in unique[counts > 1]:
        points = np.flatnonzero(index == dup)
        first = points[0]
        depth[row[first], col[first]] = value[points].min()
    depth[depth < 0] = 0
    return depth


def read_improved_gt(path: str | os.PathLike) -> np.ndarray:
    """KITTI depth-completion ("improved") GT: uint16 PNG / 256 → metres, 0 = invalid."""
    arr = read_label_png(path)
    if arr.dtype != np.uint16:
        raise LayoutError(f"{path}: expected a 16-bit PNG (KITTI improved GT), got {arr.dtype}")
    return arr.astype(np.float32) / 256.0


def parse_split_line(line: str, where: str = "split line") -> tuple[str, int, str]:
    """``<date>/<drive>_sync <frame> <side>`` → (folder, frame index, side)."""
    parts = line.split()
    if len(parts) != 3 or parts[2] not in SIDE_TO_CAMERA:
        raise LayoutError(f"{where}: expected '<date>/<date>_drive_<NNNN>_sync <frame> <l|r>', got {line!r}")
    try:
        frame = int(parts[1])
    except ValueError as err:
        raise LayoutError(f"{where}: frame index {parts[1]!r} is not an integer") from err
    if frame < 0:
        raise LayoutError(f"{where}: frame index must be >= 0, got {frame}")
    folder = parts[0].split("/")
    if len(folder) != 2 or any(p in ("", ".", "..") or "\\" in p for p in folder):
        raise LayoutError(f"{where}: expected '<date>/<date>_drive_<NNNN>_sync' as the folder, got {parts[0]!r}")
    return parts[0], frame, parts[2]


def read_split_file(path: str | os.PathLike) -> list[tuple[str, int, str]]:
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"{path}: KITTI split file not found")
    lines = [(i, l) for i, l in enumerate(read_text(path, "KITTI split file").splitlines(), 1) if l.strip()]
    if not lines:
        raise LayoutError(f"{path}: split file is empty")
    return [parse_split_line(l, f"{path}:{i}") for i, l in lines]


def frame_paths(root: str | os.PathLike, folder: str, frame: int, side: str = "l", image_ext: str = ".png") -> dict:
    """Paths of one split entry: ``image``, ``velodyne``, ``calib_dir``, ``cam``."""
    root = Path(root)
    cam = SIDE_TO_CAMERA[side]
    drive = root / folder
    return {"image": drive / f"image_0{cam}" / "data" / f"{frame:010d}{image_ext}",
            "velodyne": drive / "velodyne_points" / "data" / f"{frame:010d}.bin",
            "calib_dir": root / folder.split("/")[0], "cam": cam}


def intrinsics(calib_dir: str | os.PathLike, cam: int = 2, size: tuple[int, int] | None = None) -> np.ndarray:
    """K (3,3) of the rectified camera in the package's 0-based pixel-centre convention.

    P_rect's image coordinates are 1-based (the GT export places (u, v) at pixel
    (round(u) − 1, round(v) − 1)), so cx, cy are shifted by −1; then, if ``size`` = (H, W)
    is given, K is rescaled for a half-pixel resize to that size.
    """
    calib = load_calibration(calib_dir, cam)
    K = calib["P_rect"][:, :3].copy()
    K[0, 2] -= 1.0
    K[1, 2] -= 1.0
    if size is not None:
        h0, w0 = calib["size"]
        sx, sy = size[1] / w0, size[0] / h0
        K[0, 0] *= sx
        K[0, 2] = sx * (K[0, 2] + 0.5) - 0.5
        K[1, 1] *= sy
        K[1, 2] = sy * (K[1, 2] + 0.5) - 0.5
    return K


def load_test_frame(root: str | os.PathLike, folder: str, frame: int, side: str = "l", image_ext: str = ".png",
                    vel_depth: bool = True, reproduce_sub2ind_quirk: bool = True) -> dict:
    """Image (H,W,3), GT depth (H,W) float32 (Eigen export: ``vel_depth=True``), K (3,3);
    checks that the image has the rectified size given by the calibration."""
    paths = frame_paths(root, folder, frame, side, image_ext)
    rgb = read_image(paths["image"])
    depth = generate_depth_map(paths["calib_dir"], paths["velodyne"], paths["cam"], vel_depth,
                               reproduce_sub2ind_quirk).astype(np.float32)
    if rgb.shape[:2] != depth.shape:
        raise LayoutError(f"{paths['image']}: image is {rgb.shape[1]}x{rgb.shape[0]} but "
                          f"{paths['calib_dir'] / 'calib_cam_to_cam.txt'} says S_rect_0{paths['cam']} = "
                          f"{depth.shape[1]}x{depth.shape[0]}: wrong calibration for this drive?")
    return {"image": rgb, "depth": depth, "K": intrinsics(paths["calib_dir"], paths["cam"])}


def drive_frames(drive_dir: str | os.PathLike, cam: int = 2, image_ext: str = ".png") -> list[Path]:
    folder = Path(drive_dir) / f"image_0{cam}" / "data"
    if not folder.is_dir():
        raise LayoutError(f"{folder}: KITTI image folder not found")
    frames = sorted(folder.glob(f"*{image_ext}"))
    if not frames:
        raise LayoutError(f"{folder}: no *{image_ext} frames")
    return frames


def prepare_kitti(raw_root: str | os.PathLike, out: str | os.PathLike, test_split: str | os.PathLike | None = None,
                  train_drives: list[str] | None = None, size: tuple[int, int] = (256, 832), image_ext: str = ".png",
                  val_fraction: float = 0.1, seed: int = 8964, reproduce_sub2ind_quirk: bool = True,
                  progress=None) -> dict:
    """Write KITTI raw into the shared layout.

    - ``testing/``: one frame per line of ``test_split`` (Eigen ``test_files.txt``), image at
      native size, GT depth from velodyne (Eigen export: velodyne x), per-frame K in ``cam/``.
    - ``training/``: each drive folder of ``train_drives`` (``<date>/<drive>_sync``; default:
      every drive under ``raw_root`` except the 28 Eigen test drives) becomes a scene
      ``<drive>_sync_02`` with frames resized to ``size`` (H, W) and a matching ``cam.txt``;
      scenes are split train/val at random (``val_fraction``, ``seed``).
    Static-frame filtering (SfMLearner's OXTS speed test) is not applied.
    """
    import torch
    import torch.nn.functional as F

    from .layout import frame_name, write_depth, write_image, write_intrinsics, write_split

    raw_root, out = Path(raw_root), Path(out)
    if not raw_root.is_dir():
        raise LayoutError(f"{raw_root}: KITTI raw root not found (expected <root>/<date>/<date>_drive_NNNN_sync/)")
    wrap = progress or (lambda x, **k: x)
    summary = {"test_frames": 0, "train_scenes": 0, "val_scenes": 0, "train_frames": 0}
    if test_split is not None:
        entries = read_split_file(test_split)
        for i, (folder, frame, side) in enumerate(wrap(entries, desc="KITTI test")):
            sample = load_test_frame(raw_root, folder, frame, side, image_ext, True, reproduce_sub2ind_quirk)
            name = frame_name(i)
            write_image(out / "testing" / "color" / f"{name}.png", sample["image"])
            write_depth(out / "testing" / "depth" / f"{name}.npy", sample["depth"])
            write_intrinsics(out / "testing" / "cam" / f"{name}.txt", sample["K"])
        summary["test_frames"] = len(entries)
    if train_drives is None and test_split is None:
        train_drives = sorted(f"{d.parent.name}/{d.name}" for d in raw_root.glob("*/*_sync")
                              if not d.name.startswith(EIGEN_TEST_DRIVES))
    if train_drives:
        scenes = []
        for folder in wrap(train_drives, desc="KITTI train"):
            if not (raw_root / folder).is_dir():
                raise LayoutError(f"{raw_root / folder}: drive folder not found")
            scene = f"{folder.split('/')[-1]}_02"
            K = intrinsics(raw_root / folder.split("/")[0], 2, size)
            for j, path in enumerate(drive_frames(raw_root / folder, 2)):
                img = torch.from_numpy(read_image(path)).permute(2, 0, 1)[None].float()
                img = F.interpolate(img, size=size, mode="bilinear", align_corners=False, antialias=True)
                rgb = img[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
                write_image(out / "training" / scene / f"{frame_name(j)}{image_ext}", rgb)
                summary["train_frames"] += 1
            write_intrinsics(out / "training" / scene / "cam.txt", K)
            scenes.append(scene)
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(scenes))
        n_val = int(round(val_fraction * len(scenes))) if len(scenes) > 1 else 0
        val = sorted(scenes[i] for i in order[:n_val])
        train = sorted(scenes[i] for i in order[n_val:])
        write_split(out / "training" / "train.txt", train)
        if val:
            write_split(out / "training" / "val.txt", val)
        summary["train_scenes"], summary["val_scenes"] = len(train), len(val)
    return summary
