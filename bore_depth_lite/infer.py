"""Depth from images, folders or videos: ``python -m bore_depth_lite.infer`` (``bore-depth-infer``).

Examples::

    bore-depth-infer photo.jpg --checkpoint bore_nyu.ckpt --preset nyu
    bore-depth-infer frames/ clip.mp4 --checkpoint runs/stage2/last.pt --preset kitti --out depth_out
    bore-depth-infer photo.jpg --random-weights tiny     # SMOKE TEST: random weights, meaningless depth

For every image (or video frame) it writes ``<name>.npy`` (float32 depth, H×W, at the
network resolution unless ``--keep-size``) and ``<name>.png`` (inverse depth, magma colours).
A file that cannot be read is reported and skipped; the rest of the batch goes on; the exit
status is 1 if any input failed. There are no weights to download: give a checkpoint (ours,
see ``bore_depth_lite.models.checkpoint``, or a released BoRe-Depth ``.ckpt``).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from PIL import Image
from tqdm import tqdm

from . import resolve_device
from .models import DEPTHNET_CONFIGS, DepthNet, load_any_depthnet
from .preprocess import PRESETS, ImageLoadError, load_image, preprocess

__all__ = ["main", "predict_depth", "colorize_depth", "IMAGE_EXTENSIONS", "VIDEO_EXTENSIONS"]

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif"}


@torch.no_grad()
def predict_depth(net: DepthNet, rgb: np.ndarray, preset: str | tuple[int, int] | None,
                  device: torch.device, keep_size: bool = False) -> np.ndarray:
    """RGB (H, W, 3) in 0–255 → depth (h, w) float32 at the network input size, or at (H, W)
    with ``keep_size`` (bilinear resize of the depth map)."""
    x = preprocess(rgb, preset)
    depth = net(x.to(device)) if isinstance(net, torch.nn.Module) else net(x)  # a deploy backend takes CPU tensors
    if keep_size and depth.shape[-2:] != rgb.shape[:2]:
        depth = F.interpolate(depth, size=rgb.shape[:2], mode="bilinear", align_corners=False)
    return depth[0, 0].float().cpu().numpy()


def colorize_depth(depth: np.ndarray, cmap: str = "magma") -> np.ndarray:
    """Depth (H, W) → uint8 RGB (H, W, 3): inverse depth, scaled to its 95th percentile
    (Monodepth2's display rule), so near is bright."""
    disp = 1.0 / np.maximum(depth, 1e-6)
    lo, hi = float(disp.min()), float(np.percentile(disp, 95))
    norm = np.clip((disp - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    return (colormaps[cmap](norm)[..., :3] * 255).astype(np.uint8)


def _iter_video(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    try:
        import imageio.v3 as iio
    except ImportError:  # pragma: no cover - imageio ships with scikit-image
        raise ImageLoadError(f"{path}: reading videos needs imageio (pip install imageio av)") from None
    try:
        with warnings.catch_warnings():  # imageio announces deprecated plugins while probing formats
            warnings.simplefilter("ignore", DeprecationWarning)
            frames = list(iio.imiter(path)) if path.suffix.lower() == ".gif" else iio.imiter(path)
        for i, frame in enumerate(frames):
            frame = np.asarray(frame)
            if frame.ndim == 2:
                frame = np.repeat(frame[..., None], 3, axis=2)
            yield f"{path.stem}_frame{i:06d}", frame[..., :3].astype(np.float32)
    except ImageLoadError:
        raise
    except Exception as err:  # imageio raises many kinds; all mean "cannot decode this here"
        raise ImageLoadError(f"{path}: cannot decode the video ({type(err).__name__}: {err}). For mp4/avi/mov "
                             "install a backend: pip install av (or imageio-ffmpeg).") from None


def _collect(inputs: list[Path]) -> tuple[list[tuple[Path, str]], list[str]]:
    """(file, output name) pairs, and messages about inputs that do not exist or were ignored."""
    items, notes = [], []
    for inp in inputs:
        if inp.is_dir():
            files = sorted(p for p in inp.rglob("*") if p.is_file())
            usable = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS | VIDEO_EXTENSIONS]
            if len(usable) < len(files):
                notes.append(f"{inp}: ignored {len(files) - len(usable)} file(s) without an image/video extension")
            items += [(p, "__".join(p.relative_to(inp).with_suffix("").parts)) for p in usable]
        elif inp.is_file():
            items.append((inp, inp.stem))
        else:
            notes.append(f"error: {inp}: no such file or folder")
    return items, notes


def _frames(path: Path, name: str) -> Iterator[tuple[str, np.ndarray]]:
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        yield from _iter_video(path)
    else:
        yield name, load_image(path)


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bore-depth-infer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", type=Path, help="images, folders of images, or videos")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", type=Path, help="our checkpoint or a released BoRe-Depth .ckpt")
    src.add_argument("--random-weights", choices=sorted(DEPTHNET_CONFIGS), metavar="CONFIG",
                     help="SMOKE TEST ONLY: a randomly initialised DepthNet of this config; the depth is meaningless")
    p.add_argument("--preset", default="nyu", choices=[*sorted(PRESETS), "none"],
                   help="network input size: kitti 256x832, nyu/ibims 256x320, none = the image's own size")
    p.add_argument("--out", type=Path, default=Path("depth_out"), help="output folder (default: depth_out)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "tensorrt"],
                   help="inference engine; onnxruntime/tensorrt export the network to ONNX first (same pre/post-processing)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    p.add_argument("--int8-keep-fp32", type=int, default=0, metavar="K",
                   help="onnxruntime int8: keep the K most error-prone convs in fp32 (ranked on the calibration "
                        "frames, one extra quantisation per conv; 5 took the shipped network from +10.8%% to +1.5%% AbsRel)")
    p.add_argument("--keep-size", action="store_true", help="resize the depth back to the input image size")
    p.add_argument("--cmap", default="magma", help="matplotlib colour map for the PNG")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.checkpoint is None and args.random_weights is None:
        print("error: no weights given. bore_depth_lite downloads nothing: pass --checkpoint PATH (a checkpoint "
              "written by bore_depth_lite training, or a released BoRe-Depth .ckpt), or --random-weights CONFIG "
              "for a smoke test with meaningless output.", file=sys.stderr)
        return 2
    try:
        device = resolve_device(args.device)
        if args.checkpoint is not None:
            net = load_any_depthnet(args.checkpoint, map_location="cpu")
        else:
            torch.manual_seed(0)
            net = DepthNet(args.random_weights)
            print(f"SMOKE TEST: random {args.random_weights} weights, the depth maps are meaningless", file=sys.stderr)
        if args.cmap not in colormaps:
            raise ValueError(f"unknown colour map {args.cmap!r}")
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    net = net.to(device).eval()
    preset = None if args.preset == "none" else args.preset
    if args.backend != "torch" or args.precision != "fp32":
        from .deploy import make_backend
        from .preprocess import preset_size

        try:
            net = make_backend(args.backend, net, size=None if preset is None else preset_size(preset),
                               precision=args.precision, device=device.type, int8_keep_fp32=args.int8_keep_fp32)
        except (ValueError, RuntimeError, ImportError) as err:
            print(f"error: --backend {args.backend} --precision {args.precision}: {err}", file=sys.stderr)
            return 2
    items, notes = _collect(args.inputs)
    failed = sum(n.startswith("error:") for n in notes)
    for n in notes:
        print(n, file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    done = 0
    for path, name in tqdm(items, desc="depth", unit="file"):
        try:
            for out_name, rgb in _frames(path, name):
                depth = predict_depth(net, rgb, preset, device, args.keep_size)
                np.save(args.out / f"{out_name}.npy", depth.astype(np.float32))
                Image.fromarray(colorize_depth(depth, args.cmap)).save(args.out / f"{out_name}.png")
                done += 1
        except (ImageLoadError, RuntimeError, ValueError) as err:
            failed += 1
            tqdm.write(f"error: {err}", file=sys.stderr)
    print(f"wrote {done} depth map(s) to {args.out}; {failed} input(s) failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
