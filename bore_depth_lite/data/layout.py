"""The one on-disk layout shared by synthetic and real data (SC-Depth style).

::

    <root>/training/train.txt            scene folder names, one per line (each line ends with \\n)
    <root>/training/val.txt
    <root>/training/<scene>/000000.png    frames (.png or .jpg), sorted by name
    <root>/training/<scene>/cam.txt       K, 3x3 text (np.savetxt / np.loadtxt)
    <root>/training/<scene>/poses.txt     optional: N lines of 12 numbers, the 3x4 [R|t]
                                          camera-to-world, row-major (KITTI-odometry style)
    <root>/training/<scene>/depth/000000.npy        optional (val scenes): float32 metres
    <root>/training/<scene>/semantic/000000.png     optional: uint8 (or uint16) class index
    <root>/training/<scene>/pseudo_depth/000000.npy optional: (simulated) pseudo-depth
    <root>/testing/color/000000.png
    <root>/testing/depth/000000.npy       float32 metres, 0 = no ground truth
    <root>/testing/semantic/000000.png    optional
    <root>/testing/boundary/000000.png    optional: uint8, 255 = depth edge
    <root>/testing/cam/000000.txt or <root>/testing/cam.txt   optional intrinsics
    <root>/classes.txt                    optional: class names, one per line

Depth format: ``.npy`` float32 metres is the one we write, because it is lossless at any
range (the driving preset reaches 80 m; a 16-bit PNG in millimetres stops at 65.535 m and
quantises to 1 mm). Readers also accept 16-bit ``.png`` depth (value / ``png_depth_scale``:
1000 for BoRe-Depth's test layouts, 5000 for SC-Depth's NYU, 256 for KITTI's improved GT).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..fileio import atomic_write_bytes as _atomic_write_bytes
from ..fileio import safe_member_name
from ..images import ImageLoadError, decode

DEPTH_EXTENSIONS = (".npy", ".png")


class LayoutError(ValueError):
    """A file or folder of the data layout is missing or not what was expected."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same folder and ``os.replace`` (never half-written)."""
    _atomic_write_bytes(path, data)


# ----------------------------------------------------------------------------- images
def _decode_png_or_jpeg(path: Path, what: str, as_what: str, mode: str | None = None) -> np.ndarray:
    """Decode a label or depth map (converted to ``mode`` if given); LayoutError naming the file
    if it is missing or corrupt. RGB frames are read by :func:`bore_depth_lite.images.read_image`."""
    if not path.is_file():
        raise LayoutError(f"{path}: {what} file not found")
    try:
        return decode(path, mode)
    except ImageLoadError as err:
        raise LayoutError(f"{path}: could not decode as {as_what} {err.reason}") from None


def write_image(path: str | os.PathLike, rgb: np.ndarray, quality: int = 95) -> None:
    """Write RGB uint8 (H,W,3) as PNG (lossless, fast compression) or JPEG by extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(np.ascontiguousarray(rgb))
    if path.suffix.lower() == ".png":
        im.save(path, compress_level=1)
    else:
        im.save(path, quality=quality)


def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """An 8- or 16-bit single-channel PNG as an integer array (H,W)."""
    path = Path(path)
    arr = _decode_png_or_jpeg(path, "label", "a PNG label map")
    if arr.ndim != 2:
        raise LayoutError(f"{path}: expected a single-channel label PNG, got shape {arr.shape}")
    return arr


def write_label_png(path: str | os.PathLike, labels: np.ndarray) -> None:
    """uint8 or uint16 (H,W) label map as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8) * 255
    if labels.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: labels must be bool, uint8 or uint16, got {labels.dtype}")
    Image.fromarray(labels).save(path, compress_level=1)


# ----------------------------------------------------------------------------- depth
def read_depth(path: str | os.PathLike, png_depth_scale: float = 1000.0) -> np.ndarray:
    """Depth (H,W) float32 metres from ``.npy`` (metres) or 16-bit ``.png`` (÷ scale)."""
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"{path}: depth file not found")
    if path.suffix == ".npy":
        try:
            depth = np.load(path, allow_pickle=False)
        except Exception as err:
            raise LayoutError(f"{path}: could not read as a .npy float array ({err})") from err
        if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
            raise LayoutError(f"{path}: expected a 2-D float depth map in metres, got {depth.dtype} {depth.shape}")
        return depth.astype(np.float32, copy=False)
    if path.suffix == ".png":
        arr = read_label_png(path)
        if arr.dtype != np.uint16:
            raise LayoutError(f"{path}: expected a 16-bit PNG depth map, got {arr.dtype}")
        return arr.astype(np.float32) / np.float32(png_depth_scale)
    raise LayoutError(f"{path}: unknown depth format; expected one of {DEPTH_EXTENSIONS}")


def write_depth(path: str | os.PathLike, depth: np.ndarray, png_depth_scale: float = 1000.0) -> None:
    """Write depth (H,W) metres as ``.npy`` float32, or as 16-bit ``.png`` (× scale; raises
    if a value would not fit in 16 bits)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, np.asarray(depth, np.float32))
        return
    scaled = np.round(np.asarray(depth, np.float64) * png_depth_scale)
    if scaled.max(initial=0) > 65535 or scaled.min(initial=0) < 0:
        raise ValueError(f"{path}: depth range [{depth.min()}, {depth.max()}] m does not fit a 16-bit PNG at "
                         f"scale {png_depth_scale}; write .npy instead")
    Image.fromarray(scaled.astype(np.uint16)).save(path)


# ----------------------------------------------------------------------------- text files
def read_intrinsics(path: str | os.PathLike) -> np.ndarray:
    """K (3,3) float64 from a text file of 9 numbers (``cam.txt``); checks it is a pinhole K."""
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"{path}: intrinsics file (cam.txt) not found")
    try:
        values = np.array(path.read_text().split(), dtype=np.float64)
    except ValueError as err:
        raise LayoutError(f"{path}: expected 9 numbers (a 3x3 K), could not parse ({err})") from err
    if values.size != 9:
        raise LayoutError(f"{path}: expected 9 numbers (a 3x3 K), found {values.size}")
    K = values.reshape(3, 3)
    if not (K[0, 0] > 0 and K[1, 1] > 0 and np.allclose(K[2], [0, 0, 1]) and K[1, 0] == 0):
        raise LayoutError(f"{path}: not a pinhole intrinsics matrix [[fx,s,cx],[0,fy,cy],[0,0,1]] with fx, fy > 0: {K.tolist()}")
    return K


def write_intrinsics(path: str | os.PathLike, K: np.ndarray) -> None:
    lines = "\n".join(" ".join(f"{v:.10g}" for v in row) for row in np.asarray(K, np.float64)) + "\n"
    atomic_write_bytes(Path(path), lines.encode())


def read_poses(path: str | os.PathLike) -> np.ndarray:
    """Camera-to-world poses (N,4,4) from N lines of 12 numbers (3x4 row-major)."""
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"{path}: poses file not found")
    try:
        rows = [np.array(line.split(), np.float64) for line in path.read_text().splitlines() if line.strip()]
    except ValueError as err:
        raise LayoutError(f"{path}: expected lines of 12 numbers ({err})") from err
    bad = [i for i, r in enumerate(rows) if r.size != 12]
    if bad:
        raise LayoutError(f"{path}: line {bad[0] + 1} has {rows[bad[0]].size} numbers, expected 12 (a 3x4 pose)")
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    if rows:
        poses[:, :3, :] = np.stack(rows).reshape(-1, 3, 4)
    return poses


def write_poses(path: str | os.PathLike, poses: np.ndarray) -> None:
    lines = "".join(" ".join(f"{v:.10g}" for v in p[:3].ravel()) + "\n" for p in np.asarray(poses))
    atomic_write_bytes(Path(path), lines.encode())


def read_name_list(path: str | os.PathLike, what: str, item: str) -> list[str]:
    """The non-blank lines of a text file, stripped; LayoutError if it is missing or empty.

    ``what`` names the file and ``item`` what each line holds, for the error messages.
    Every name must be one plain file or folder name (no path separator, no ``..``): the names
    become paths under an output (or data) folder, and must stay inside it.
    """
    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"{path}: {what} not found (expected one {item} per line)")
    lines = [(i, line.strip()) for i, line in enumerate(read_text(path, what).splitlines(), 1) if line.strip()]
    if not lines:
        raise LayoutError(f"{path}: {what} is empty (expected one {item} per line)")
    try:
        return [safe_member_name(name, f"{path}:{i}") for i, name in lines]
    except ValueError as err:
        raise LayoutError(str(err)) from None


def read_text(path: str | os.PathLike, what: str) -> str:
    """A text file's content; LayoutError naming the file if it is not UTF-8 text or unreadable."""
    path = Path(path)
    try:
        return path.read_text()
    except UnicodeDecodeError as err:
        raise LayoutError(f"{path}: {what} is not a text file (byte {err.start} is not UTF-8)") from None
    except OSError as err:
        raise LayoutError(f"{path}: {what} cannot be read ({err.strerror or err})") from None


def read_split(path: str | os.PathLike) -> list[str]:
    """Scene names of a split file (``train.txt``/``val.txt``); an empty split is an error."""
    return read_name_list(path, "split file", "scene folder name")


def load_mat_v5(path: str | os.PathLike, what: str) -> dict:
    """``scipy.io.loadmat`` of a MATLAB v5 file; LayoutError naming ``what`` if it is missing
    or unreadable."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise LayoutError(f"{path}: {what} not found")
    try:
        return loadmat(path)
    except Exception as err:
        raise LayoutError(f"{path}: could not read as a MATLAB v5 .mat ({err})") from err


def write_split(path: str | os.PathLike, names: list[str]) -> None:
    """One name per line, every line (the last too) ending with a newline, as SC-Depth expects."""
    atomic_write_bytes(Path(path), "".join(f"{n}\n" for n in names).encode())


def list_files(folder: str | os.PathLike, extensions: tuple[str, ...], what: str) -> list[Path]:
    """Sorted files with the given extensions in ``folder`` (not recursive); raises if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LayoutError(f"{folder}: folder of {what} not found")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in extensions)
    if not files:
        raise LayoutError(f"{folder}: no {what} found (expected files ending in {', '.join(extensions)})")
    return files


# ----------------------------------------------------------------------------- writers
def frame_name(index: int) -> str:
    return f"{index:06d}"


def write_training_scene(scene_dir: str | os.PathLike, rgb: np.ndarray, K: np.ndarray, *,
                         poses: np.ndarray | None = None, depth: np.ndarray | None = None,
                         semantic: np.ndarray | None = None, pseudo_depth: np.ndarray | None = None,
                         image_ext: str = ".png") -> Path:
    """Write one training scene: frames (N,H,W,3) uint8, ``cam.txt``, optional extras."""
    scene_dir = Path(scene_dir)
    scene_dir.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(rgb):
        write_image(scene_dir / f"{frame_name(i)}{image_ext}", frame)
        if depth is not None:
            write_depth(scene_dir / "depth" / f"{frame_name(i)}.npy", depth[i])
        if semantic is not None:
            write_label_png(scene_dir / "semantic" / f"{frame_name(i)}.png", semantic[i])
        if pseudo_depth is not None:
            write_depth(scene_dir / "pseudo_depth" / f"{frame_name(i)}.npy", pseudo_depth[i])
    write_intrinsics(scene_dir / "cam.txt", K)
    if poses is not None:
        write_poses(scene_dir / "poses.txt", poses)
    return scene_dir


def write_test_frames(testing_dir: str | os.PathLike, start: int, rgb: np.ndarray, depth: np.ndarray, *,
                      semantic: np.ndarray | None = None, boundary: np.ndarray | None = None,
                      K: np.ndarray | None = None, image_ext: str = ".png") -> int:
    """Append frames to ``testing/``, numbered from ``start``; returns the next free index."""
    testing_dir = Path(testing_dir)
    if len(rgb) != len(depth):
        raise ValueError(f"{testing_dir}: {len(rgb)} images but {len(depth)} depth maps")
    for i in range(len(rgb)):
        name = frame_name(start + i)
        write_image(testing_dir / "color" / f"{name}{image_ext}", rgb[i])
        write_depth(testing_dir / "depth" / f"{name}.npy", depth[i])
        if semantic is not None:
            write_label_png(testing_dir / "semantic" / f"{name}.png", semantic[i])
        if boundary is not None:
            write_label_png(testing_dir / "boundary" / f"{name}.png", np.asarray(boundary[i], bool))
        if K is not None:
            write_intrinsics(testing_dir / "cam" / f"{name}.txt", K[i] if np.ndim(K) == 3 else K)
    return start + len(rgb)


def folder_size(path: str | os.PathLike) -> int:
    """Total bytes of the files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
