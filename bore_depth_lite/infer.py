"""Depth from images, folders or videos: ``python -m bore_depth_lite.infer`` (``bore-depth-infer``).

Examples::

    bore-depth-infer photo.jpg --checkpoint bore_nyu.ckpt --preset nyu
    bore-depth-infer frames/ clip.mp4 --checkpoint runs/stage2/last.pt --preset kitti --out depth_out
    bore-depth-infer photo.jpg --checkpoint runs/tiny/last.pt --preset nyu --size 96 160 --ply
    bore-depth-infer photo.jpg --random-weights tiny     # SMOKE TEST: random weights, meaningless depth

For every image (or GIF frame) it writes ``<name>.npy`` (float32 depth, H×W, at the
network resolution unless ``--keep-size``) and ``<name>.png`` (inverse depth, magma colours).
A video (.mp4 .avi .mov .mkv .webm; PyAV, the ``video`` extra) is decoded frame by frame into
``<out>/<video name>/``: ``depth/NNNNNN.npy``, ``side_by_side.mp4`` (RGB | depth, ≤ 640 px wide)
and, when the checkpoint holds a PoseNet, ``trajectory.tum``, ``trajectory.png`` and ``fused.ply``
(every ``--fuse-every``-th frame in the first camera's frame; all up to scale); ``--ply`` adds
``clouds/NNNNNN.ply``; ``--stride``/``--max-frames`` thin it. See :mod:`bore_depth_lite.video`.
With ``--ply`` it also writes ``<name>.ply``, a coloured point cloud (binary PLY: MeshLab,
CloudCompare, Open3D) back-projected with the preset's camera intrinsics (the released code's
NYUv2/KITTI/iBims-1 values) or yours (``--intrinsics FX FY CX CY``, in pixels of the input
image); a self-supervised network's depth has no metric scale, so neither has the cloud.
A file that cannot be read is reported and skipped; the rest of the batch goes on; the exit
status is 1 if any input failed. Weights: a checkpoint (ours, see ``bore_depth_lite.checkpoint``,
or a released BoRe-Depth ``.ckpt``) or ``released:nyu``/``released:kitti`` (from the cache).
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from PIL import Image
from tqdm import tqdm

from . import resolve_device
from .checkpoint import load_any_depthnet
from .pretrained import parse_released, released
from .models import DEPTHNET_CONFIGS, DepthNet
from .images import IMAGE_EXTENSIONS, ImageLoadError, image_size, load_image
from .plotting import colorize_depth
from .pointcloud import colours_at, depth_to_points, intrinsics_for, intrinsics_matrix, write_ply
from .preprocess import PRESETS, preprocess
from .video import VIDEO_EXTENSIONS, iter_frames, pose_function, process_video

__all__ = ["main", "depth_from_rgb", "VIDEO_EXTENSIONS"]

#: ``--preset none`` warns above this many pixels per image; memory measured at ~330 bytes/pixel
#: (tiny network, CPU, fp32): 6000x4000 took 7.6 GiB and 76 s.
LARGE_IMAGE_PIXELS = 4_000_000
BYTES_PER_PIXEL = 340
#: Animated images: their frames are written like photos, ``<name>_frameNNNNNN.npy``/``.png``.
ANIMATED_EXTENSIONS = (".gif",)


@torch.no_grad()
def depth_from_rgb(net: DepthNet, rgb: np.ndarray, preset: str | tuple[int, int] | None,
                   device: torch.device, keep_size: bool = False) -> np.ndarray:
    """RGB (H, W, 3) in 0–255 → depth (h, w) float32 at the network input size, or at (H, W)
    with ``keep_size`` (bilinear resize of the depth map)."""
    x = preprocess(rgb, preset)
    depth = net(x.to(device)) if isinstance(net, torch.nn.Module) else net(x)  # a deploy backend takes CPU tensors
    if keep_size and depth.shape[-2:] != rgb.shape[:2]:
        depth = F.interpolate(depth, size=rgb.shape[:2], mode="bilinear", align_corners=False)
    return depth[0, 0].float().cpu().numpy()


def _collect(inputs: list[Path]) -> tuple[list[tuple[Path, str]], list[str]]:
    """(file, output name) pairs, and messages about inputs that do not exist or were ignored."""
    items, notes = [], []
    for inp in inputs:
        if inp.is_dir():
            files = sorted(p for p in inp.rglob("*") if p.is_file())
            usable = [p for p in files if p.suffix.lower() in {*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS, *ANIMATED_EXTENSIONS}]
            if len(usable) < len(files):
                notes.append(f"{inp}: ignored {len(files) - len(usable)} file(s) without an image/video extension")
            items += [(p, "__".join(p.relative_to(inp).with_suffix("").parts)) for p in usable]
        elif inp.is_file():
            items.append((inp, inp.stem))
        else:
            notes.append(f"error: {inp}: no such file or folder")
    return items, notes


def _check_outputs(items: list[tuple[Path, str]], out: Path, overwrite: bool) -> str | None:
    """Why the batch cannot be written into ``out`` as given, or None: two inputs that would
    write the same ``<name>.npy``/``.png`` (x/photo.png and y/photo.png; a.png and a.jpg) or the
    same video folder ``<name>/``, or outputs already there (without ``overwrite``)."""
    if out.exists() and not out.is_dir():
        return f"--out {out}: expected a folder, found a file"
    seen: dict[str, tuple[Path, str]] = {}   # output name (animations: name pattern) -> (input, glob pattern)
    for path, name in items:
        suffix = path.suffix.lower()
        if suffix in VIDEO_EXTENSIONS:
            key = f"{name}/"
            if key in seen:
                return f"{seen[key][0]} and {path} would both write {out / name}/: rename one, or use another --out"
            seen[key] = (path, "")
            if not overwrite and (out / name).is_dir() and any((out / name).iterdir()):
                return (f"--out {out}: {name}/ (for {path}) exists; pass --overwrite to replace the results "
                        "there, or choose another --out")
            continue
        animated = suffix in ANIMATED_EXTENSIONS
        key = f"{path.stem}_frame*" if animated else name
        if key in seen:
            return (f"{seen[key][0]} and {path} would both write {out / key}.{{npy,png}}: rename one, or run "
                    "them with different --out folders")
        seen[key] = (path, glob.escape(path.stem) + "_frame*" if animated else glob.escape(name))
    if not overwrite and out.is_dir():
        for path, pattern in (v for k, v in seen.items() if not k.endswith("/")):
            existing = [p for ext in (".npy", ".png", ".ply") for p in sorted(out.glob(pattern + ext))]
            if existing:
                return (f"--out {out}: {existing[0].name} (for {path}) exists; pass --overwrite to replace the "
                        "depth maps there, or choose another --out")
    return None


def _warn_large(items: list[tuple[Path, str]]) -> None:
    """With ``--preset none`` the network runs at each image's own size: say up front when that is big."""
    for path, _ in items:
        if path.suffix.lower() in (*VIDEO_EXTENSIONS, *ANIMATED_EXTENSIONS):
            continue   # videos are downscaled while decoding (video.MAX_VIDEO_PIXELS)
        try:
            w, h = image_size(path)
        except ImageLoadError:  # unreadable files are reported when they are processed
            continue
        if w * h > LARGE_IMAGE_PIXELS:
            gib = w * h * BYTES_PER_PIXEL / 2 ** 30
            print(f"warning: {path} is {w}x{h} ({w * h / 1e6:.1f} MP) and --preset none runs the network at that "
                  f"size: expect about {gib:.0f} GiB of memory and minutes per image on a CPU (a 24 MP photo took "
                  "76 s and 7.6 GiB with the tiny network); use --preset nyu or kitti for speed", file=sys.stderr)


def _frames(path: Path, name: str) -> Iterator[tuple[str, np.ndarray]]:
    if path.suffix.lower() in ANIMATED_EXTENSIONS:
        for frame in iter_frames(path):
            yield f"{path.stem}_frame{frame.index:06d}", frame.rgb.astype(np.float32)
    else:
        yield name, load_image(path)


def _pose_net(args: argparse.Namespace, device: torch.device):
    """(PoseNet or None, why there is none) for the video trajectory."""
    from .checkpoint import CheckpointError, load_posenet, load_released_posenet

    if args.checkpoint is None:
        return None, f"--random-weights {args.random_weights} has no PoseNet"
    try:
        name = parse_released(args.checkpoint)
        if name:
            from .pretrained import released_path

            return load_released_posenet(released_path(name)).to(device).eval(), ""
        return load_posenet(args.checkpoint).to(device).eval(), ""
    except (CheckpointError, KeyError, ValueError, RuntimeError, OSError) as err:
        return None, str(err).splitlines()[0] if str(err) else type(err).__name__


def _run_video(args: argparse.Namespace, path: Path, name: str, net, preset, device, pose_net,
               intrinsics) -> int:
    """One video into ``--out/<name>/``: the number of frames written (errors propagate)."""
    def K_fn(size: tuple[int, int], source: tuple[int, int]) -> np.ndarray:
        return intrinsics_for(intrinsics, size, image_size=source)

    summary = process_video(
        path, args.out / name, lambda rgb: depth_from_rgb(net, rgb, preset, device, args.keep_size),
        pose_function(pose_net, preset, device, args.pose_order, depth_net=net) if pose_net is not None else None,
        K_fn if intrinsics is not None else None, stride=args.stride, max_frames=args.max_frames,
        fuse_every=args.fuse_every, ply=args.ply, cmap=args.cmap, progress=not args.no_progress,
        notes=lambda m: tqdm.write(m, file=sys.stderr))
    tqdm.write(f"{path}: {summary.frames} frame(s) in {summary.seconds:.1f} s "
               f"({summary.frames / max(summary.seconds, 1e-9):.1f} frames/s) -> {args.out / name}", file=sys.stderr)
    return summary.frames


def _write_outputs(out: Path, name: str, depth: np.ndarray, cmap: str, rgb: np.ndarray,
                   intrinsics: str | tuple[float, float, float, float] | None) -> None:
    """``<name>.npy`` and ``<name>.png`` (and ``<name>.ply`` with ``intrinsics``), each written atomically."""
    from .fileio import atomic_write

    atomic_write(out / f"{name}.npy", lambda f: np.save(f, depth.astype(np.float32)))
    atomic_write(out / f"{name}.png", lambda f: Image.fromarray(colorize_depth(depth, cmap)).save(f, format="PNG"))
    if intrinsics is not None:
        h, w = depth.shape
        K = intrinsics_for(intrinsics, (h, w), image_size=rgb.shape[:2])
        write_ply(out / f"{name}.ply", *depth_to_points(depth, K, colours_at(rgb, (h, w))))


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bore-depth-infer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", type=Path, help="images, folders of images, or videos")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, help="our checkpoint, a released BoRe-Depth .ckpt, or "
                     "released:nyu / released:kitti (the authors' weights from the cache, downloaded on first use)")
    src.add_argument("--random-weights", choices=sorted(DEPTHNET_CONFIGS), metavar="CONFIG",
                     help="SMOKE TEST ONLY: a randomly initialised DepthNet of this config; the depth is meaningless")
    p.add_argument("--preset", default="nyu", choices=[*sorted(PRESETS), "none"],
                   help="camera and network input size: kitti 256x832, nyu/ibims 256x320, none = the image's own size "
                        "(no camera)")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                   help="network input size instead of the preset's, e.g. 96 160 for the book's shipped network "
                        "(the preset still gives the camera for --ply)")
    p.add_argument("--out", type=Path, default=Path("depth_out"), help="output folder (default: depth_out)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "openvino", "tensorrt"],
                   help="inference engine; onnxruntime/openvino/tensorrt export the network to ONNX first (same pre/post-processing)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16", "int8", "int8_bf16"],
                   help="bf16, int8_bf16 (INT8 with the rest in bf16): --backend openvino on a CPU with "
                        "avx512_bf16 or amx_bf16")
    p.add_argument("--int8-keep-fp32", type=int, default=0, metavar="K",
                   help="onnxruntime int8: keep the K most error-prone convs in fp32 (ranked on the calibration "
                        "frames, one extra quantisation per conv; chapter 8 measures what it buys)")
    p.add_argument("--keep-size", action="store_true", help="resize the depth back to the input image size")
    p.add_argument("--overwrite", action="store_true", help="replace depth maps already in --out")
    p.add_argument("--cmap", default="magma", help="matplotlib colour map for the PNG")
    p.add_argument("--ply", action="store_true", help="also write <name>.ply, a coloured point cloud")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs, notebooks); messages stay")
    p.add_argument("--intrinsics", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"),
                   help="camera intrinsics in pixels of the input image for --ply and a video's fused.ply "
                        "(default: the preset's camera)")
    video = p.add_argument_group("videos (.mp4 .avi .mov .mkv .webm, read with PyAV)")
    video.add_argument("--stride", type=int, default=1, help="process every N-th frame (default 1)")
    video.add_argument("--max-frames", type=int, default=None, help="stop after this many processed frames")
    video.add_argument("--fuse-every", type=int, default=10, metavar="N",
                       help="fused.ply holds every N-th processed frame's points (default 10; 0: no fused.ply)")
    video.add_argument("--pose-order", default="backward", choices=["backward", "forward"],
                       help="ask PoseNet(t+1, t) and invert (default: the order stage-1 training learns first) "
                            "or PoseNet(t, t+1)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.checkpoint is None and args.random_weights is None:
        print("error: no weights given: pass --checkpoint PATH (a checkpoint written by bore_depth_lite training, "
              "or a released BoRe-Depth .ckpt), --checkpoint released:nyu|released:kitti, or --random-weights CONFIG "
              "for a smoke test with meaningless output.", file=sys.stderr)
        return 2
    if args.int8_keep_fp32 < 0 or (args.int8_keep_fp32 and (args.backend, args.precision) != ("onnxruntime", "int8")):
        print(f"error: --int8-keep-fp32 {args.int8_keep_fp32}: expected a count >= 0, used with --backend onnxruntime "
              "--precision int8 only", file=sys.stderr)
        return 2
    # the camera of the point clouds: yours, else the preset's (--preset none names none)
    camera = tuple(args.intrinsics) if args.intrinsics else None if args.preset == "none" else args.preset
    intrinsics = camera if args.ply else None
    if args.ply and camera is None:
        print("error: --ply with --preset none needs --intrinsics FX FY CX CY (there is no preset camera)", file=sys.stderr)
        return 2
    if args.stride < 1 or (args.max_frames is not None and args.max_frames < 1) or args.fuse_every < 0:
        print(f"error: --stride {args.stride} --max-frames {args.max_frames} --fuse-every {args.fuse_every}: expected "
              "stride >= 1, max-frames >= 1, fuse-every >= 0", file=sys.stderr)
        return 2
    if args.size is not None and min(args.size) < 1:
        print(f"error: --size {args.size[0]} {args.size[1]}: expected a positive height and width in pixels",
              file=sys.stderr)
        return 2
    if args.intrinsics:
        try:
            intrinsics_matrix(*args.intrinsics)
        except ValueError as err:
            print(f"error: --{err}", file=sys.stderr)
            return 2
    items, notes = _collect(args.inputs)
    videos = any(path.suffix.lower() in VIDEO_EXTENSIONS for path, _ in items)
    if args.intrinsics and not args.ply and not videos:
        print("error: --intrinsics is used by --ply only (and by a video's fused.ply); add --ply", file=sys.stderr)
        return 2
    problem = _check_outputs(items, args.out, args.overwrite)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        try:
            device = resolve_device(args.device)
        except ValueError as err:
            raise ValueError(f"--device: {err}") from None
        if args.checkpoint is not None and parse_released(args.checkpoint):
            net = released(parse_released(args.checkpoint), map_location="cpu")
        elif args.checkpoint is not None:
            net = load_any_depthnet(args.checkpoint, map_location="cpu")
        else:
            torch.manual_seed(0)
            net = DepthNet(args.random_weights)
            print(f"SMOKE TEST: random {args.random_weights} weights, the depth maps are meaningless", file=sys.stderr)
        if args.cmap not in colormaps:
            raise ValueError(f"unknown colour map {args.cmap!r}")
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"error: {str(err).splitlines()[0] if str(err) else type(err).__name__}", file=sys.stderr)
        return 2
    net = net.to(device).eval()
    preset = tuple(args.size) if args.size else None if args.preset == "none" else args.preset
    if args.backend != "torch" or args.precision != "fp32":
        from .deploy import make_backend
        from .preprocess import preset_size

        try:
            net = make_backend(args.backend, net, size=None if preset is None else preset_size(preset),
                               precision=args.precision, int8_keep_fp32=args.int8_keep_fp32,
                               # OpenVINO runs on the CPU whatever --device chose for the network
                               device="cpu" if args.backend == "openvino" else device.type)
        except (ValueError, RuntimeError, ImportError) as err:
            print(f"error: --backend {args.backend} --precision {args.precision}: {err}", file=sys.stderr)
            return 2
    failed = sum(n.startswith("error:") for n in notes)
    for n in notes:
        print(n, file=sys.stderr)
    if preset is None:
        _warn_large(items)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        if not os.access(args.out, os.W_OK | os.X_OK):
            raise PermissionError("not writable")
    except OSError as err:
        print(f"error: --out {args.out}: cannot write there ({type(err).__name__}: {err.strerror or err}); "
              "expected a writable folder", file=sys.stderr)
        return 2
    pose_net, video_intrinsics = None, camera
    if videos:
        pose_net, why = _pose_net(args, device)
        if pose_net is None:
            print(f"note: no trajectory.tum/.png or fused.ply for videos: {why} (depth maps, side_by_side.mp4 and "
                  "--ply clouds are still written)", file=sys.stderr)
        if video_intrinsics is None:
            print("note: --preset none without --intrinsics: no point clouds for videos", file=sys.stderr)
    done = 0
    for path, name in tqdm(items, desc="depth", unit="file", disable=args.no_progress):
        try:
            if path.suffix.lower() in VIDEO_EXTENSIONS:
                done += _run_video(args, path, name, net, preset, device, pose_net, video_intrinsics)
                continue
            for out_name, rgb in _frames(path, name):
                depth = depth_from_rgb(net, rgb, preset, device, args.keep_size)
                bad = ~np.isfinite(depth)
                if bad.any():
                    raise ValueError(f"{path}: the network predicted NaN/inf depth at {int(bad.sum())} of "
                                     f"{depth.size} pixels; nothing written for it")
                _write_outputs(args.out, out_name, depth, args.cmap, rgb, intrinsics)
                done += 1
        except (ImageLoadError, RuntimeError, ValueError, MemoryError, OSError) as err:
            failed += 1
            tqdm.write(f"error: {err}", file=sys.stderr)
    print(f"wrote {done} depth map(s) to {args.out}; {failed} input(s) failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
