"""Videos in and out: streaming decoding (PyAV), the side-by-side video, TUM trajectories, fused clouds.

:func:`iter_frames` decodes one frame at a time (memory does not grow with the video's length);
:func:`process_video` runs a depth function (and a PoseNet, when there is one) on every
``stride``-th frame and writes, into one folder per video::

    depth/NNNNNN.npy     float32 depth per processed frame (NNNNNN = the frame's index in the video)
    clouds/NNNNNN.ply    per-frame coloured clouds (``ply=True`` only)
    side_by_side.mp4     RGB | colourised inverse depth, at most MAX_PREVIEW_WIDTH px wide
    trajectory.tum       camera-to-world poses, first camera = world (PoseNet only)
    trajectory.png       the path seen from above (PoseNet only)
    fused.ply            every ``fuse_every``-th frame's points in the first camera's frame (PoseNet only)

Frames larger than :data:`MAX_VIDEO_PIXELS` (a 4K video) are downscaled by FFmpeg's scaler while
decoding, with one note on stderr: the network sees a resized frame anyway, and a 4K frame at
``--preset none`` would need ~3 GB per frame. A self-supervised network's depth and PoseNet's
translations share one unknown scale, so the trajectory and the fused cloud are up to scale.
PyAV (``pip install 'av>=12'``, the ``video`` extra) is imported only when a video is read.
"""
from __future__ import annotations

import itertools
import math
import shutil
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from .fileio import atomic_write
from .geometry import pose_vec_to_mat
from .images import ImageLoadError
from .plotting import colorize_depth, inverse_depth_range
from .pointcloud import colours_at, depth_to_points, write_ply
from .preprocess import preprocess
from .trajectory import (chain_relative_poses, needs_target_depth, plot_trajectory, translation_to_depth_units,
                         write_tum)

__all__ = ["VIDEO_EXTENSIONS", "MAX_VIDEO_PIXELS", "MAX_PREVIEW_WIDTH", "VideoError", "Frame", "iter_frames",
           "SideBySideWriter", "write_video", "probe", "process_video", "VideoSummary"]

#: Containers read as videos (anything FFmpeg demuxes; these extensions select the video path).
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm")
#: Frames above this many pixels (1920x1080) are downscaled while decoding.
MAX_VIDEO_PIXELS = 1920 * 1080
#: Width cap of side_by_side.mp4 (both panels): the preview stays small whatever the input.
MAX_PREVIEW_WIDTH = 640
#: Each fused frame gives at most this many points (a regular pixel grid): fused.ply stays viewable.
MAX_FUSED_POINTS_PER_FRAME = 20_000


class VideoError(ImageLoadError):
    """A video that cannot be read (message names the file and what was expected)."""


@dataclass
class Frame:
    """One decoded frame: ``rgb`` (H, W, 3) uint8; ``index`` in the video (0-based, before the
    stride); ``time`` in seconds (pts × the stream's time base); ``source_size`` (H, W) as stored."""

    index: int
    time: float
    rgb: np.ndarray
    source_size: tuple[int, int]


def _av(path: Path):
    try:
        import av
    except ImportError:
        raise VideoError(f"{path}: reading videos needs PyAV: pip install 'av>=12' "
                         "(or the package's video extra)") from None
    return av


def _detail(err: BaseException) -> str:
    # FFmpeg's errors repeat the file name in str(err); strerror is the reason alone
    text = getattr(err, "strerror", None) or (str(err).splitlines()[0][:160] if str(err) else "")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _fit(h: int, w: int, max_pixels: int) -> tuple[int, int]:
    """(h, w) scaled down to at most ``max_pixels``, aspect kept, even sides (what yuv420p needs)."""
    if h * w <= max_pixels:
        return h, w
    s = math.sqrt(max_pixels / (h * w))
    return max(2, int(h * s) // 2 * 2), max(2, int(w * s) // 2 * 2)


def _open(path: Path):
    """(container, its first video stream), or VideoError naming the file. The caller closes the container."""
    av = _av(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise VideoError(f"{path}: cannot decode the video ({_detail(err)}); expected an FFmpeg-readable video: "
                         "the file is damaged, truncated or not a video") from None
    if not container.streams.video:
        kinds = [s.type for s in container.streams]
        container.close()
        raise VideoError(f"{path}: no video stream (found: {', '.join(kinds) or 'no streams'}); "
                         "expected a file with a video track")
    return container, container.streams.video[0]


def _rate(stream) -> Fraction:
    """Frames per second as stored (30 where the container does not say)."""
    return Fraction(stream.average_rate or stream.guessed_rate or 30)


def probe(path: str | Path, stride: int = 1, max_frames: int | None = None) -> tuple[Fraction, int | None]:
    """(frames per second, number of frames ``iter_frames`` will give, or None where the container
    does not record it), from the header only; VideoError as :func:`iter_frames`."""
    container, stream = _open(Path(path))
    with container:
        total = (stream.frames + stride - 1) // stride if stream.frames else None
        if total is not None and max_frames is not None:
            total = min(total, max_frames)
        return _rate(stream), total


def iter_frames(path: str | Path, stride: int = 1, max_frames: int | None = None,
                max_pixels: int = MAX_VIDEO_PIXELS, notes: Callable[[str], None] | None = None) -> Iterator[Frame]:
    """Decode every ``stride``-th frame of ``path``, at most ``max_frames`` of them, one at a time.

    Raises :class:`VideoError` naming the file when it cannot be opened (truncated, corrupt, not a
    video), has no video stream, or decodes to zero frames; a decoding error after some frames
    says how many were decoded. ``notes`` receives the one-line downscaling note.
    """
    path = Path(path)
    if stride < 1 or (max_frames is not None and max_frames < 1):
        raise ValueError(f"stride={stride}, max_frames={max_frames}: expected stride >= 1 and max_frames >= 1")
    av = _av(path)
    container, stream = _open(path)
    with container:
        stream.thread_type = "AUTO"   # frame threads: decoding keeps up with a 2-core network
        rate = _rate(stream)
        decoded = kept = 0
        size = None
        try:
            for frame in container.decode(stream):
                index, decoded = decoded, decoded + 1
                if index % stride:
                    continue
                if size is None:
                    size = _fit(frame.height, frame.width, max_pixels)
                    if size != (frame.height, frame.width) and notes:
                        notes(f"note: {path}: {frame.width}x{frame.height} frames downscaled to {size[1]}x{size[0]} "
                              f"while decoding (bore_depth_lite.video.MAX_VIDEO_PIXELS)")
                rgb = frame.to_ndarray(format="rgb24", width=size[1], height=size[0], interpolation="AREA") \
                    if size != (frame.height, frame.width) else frame.to_ndarray(format="rgb24")
                seconds = float(frame.time) if frame.time is not None else float(index / rate)
                yield Frame(index, seconds, rgb, (frame.height, frame.width))
                kept += 1
                if max_frames is not None and kept >= max_frames:
                    return
        except (av.error.FFmpegError, ValueError) as err:
            if isinstance(err, VideoError):
                raise
            raise VideoError(f"{path}: decoding stopped after {decoded} frame(s) ({_detail(err)}); "
                             "expected a complete video: the file is truncated or corrupt") from None
        if decoded == 0:
            raise VideoError(f"{path}: zero frames decoded; expected a video with at least one frame")


class SideBySideWriter:
    """``side_by_side.mp4``: RGB | colourised inverse depth, written frame by frame (H.264, or
    MPEG-4 Part 2 where FFmpeg lacks libx264), at most ``max_width`` px wide, even sides.

    The colour range follows a running average of each frame's display range, so the colours do
    not flicker from frame to frame as per-frame normalisation makes them.
    """

    def __init__(self, path: str | Path, fps: Fraction | float, cmap: str = "magma",
                 max_width: int = MAX_PREVIEW_WIDTH):
        self.path, self.fps, self.cmap, self.max_width = Path(path), Fraction(fps).limit_denominator(100000), cmap, max_width
        self.container = self.stream = None
        self.count, self.range = 0, None

    def __enter__(self) -> "SideBySideWriter":
        return self

    def _open(self, h: int, w: int) -> None:
        import av

        self.av = av
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self.container = av.open(str(self.path), "w")
        self.stream = self.container.add_stream(codec, rate=self.fps)
        self.stream.width, self.stream.height, self.stream.pix_fmt = w, h, "yuv420p"
        if codec == "libx264":
            self.stream.options = {"crf": "23", "preset": "veryfast"}

    def write(self, rgb: np.ndarray, depth: np.ndarray) -> None:
        """Append one frame: ``rgb`` (H, W, 3) uint8 and ``depth`` (h, w) at any size."""
        h, w = depth.shape
        lo, hi = inverse_depth_range(depth)
        self.range = (lo, hi) if self.range is None else tuple(0.9 * a + 0.1 * b for a, b in zip(self.range, (lo, hi)))
        panel_w = min(w, self.max_width // 2)
        panel_h = max(2, round(h * panel_w / w) // 2 * 2)
        panel_w = panel_w // 2 * 2
        left = np.asarray(Image.fromarray(rgb).resize((panel_w, panel_h), Image.BILINEAR))
        right = np.asarray(Image.fromarray(colorize_depth(depth, self.cmap, value_range=self.range))
                           .resize((panel_w, panel_h), Image.BILINEAR))
        if self.container is None:
            self._open(panel_h, 2 * panel_w)
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(np.concatenate([left, right], axis=1)), format="rgb24")
        frame.pts, frame.time_base = self.count, 1 / self.fps
        self.container.mux(self.stream.encode(frame))
        self.count += 1

    def close(self) -> None:
        if self.container is not None:
            self.container.mux(self.stream.encode())
            self.container.close()
            self.container = None

    def __exit__(self, *exc) -> None:
        self.close()


def write_video(path: str | Path, frames, fps: float = 10, codec: str = "libx264", quality: int = 10) -> Path:
    """Frames ((N, H, W, 3) uint8, or any iterable of them) → a video file at ``path``.

    H.264 at constant quality ``quality`` (CRF: 0 lossless, 23 FFmpeg's default); MPEG-4 Part 2
    at about the same quality where FFmpeg lacks ``codec``. Sides must be even (yuv420p).
    """
    frames = iter(frames)
    first = next(frames, None)
    if first is None or first.ndim != 3 or first.shape[2] != 3 or first.shape[0] % 2 or first.shape[1] % 2:
        raise ValueError(f"{path}: expected frames (H, W, 3) uint8 with even H and W, "
                         f"found {'no frame' if first is None else first.shape}")
    av = _av(Path(path))
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec if codec in av.codecs_available else "mpeg4",
                                      rate=Fraction(fps).limit_denominator(100000))
        stream.height, stream.width, stream.pix_fmt = *first.shape[:2], "yuv420p"
        stream.options = {"crf": str(quality)} if stream.codec_context.name == "libx264" else {"qscale": str(max(2, quality // 5))}
        for rgb in itertools.chain([first], frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")))
        container.mux(stream.encode())
    return Path(path)


@dataclass
class VideoSummary:
    """What :func:`process_video` wrote: ``frames`` processed, ``poses`` (N, 4, 4) or None, ``seconds``."""

    frames: int
    poses: np.ndarray | None
    timestamps: np.ndarray
    seconds: float


#: What process_video writes into a video's folder (and, with overwrite, clears first).
OUTPUTS = ("depth", "clouds", "side_by_side.mp4", "trajectory.tum", "trajectory.png", "fused.ply")


def process_video(path: str | Path, out_dir: str | Path, depth_fn: Callable[[np.ndarray], np.ndarray],
                  pose_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                  K_fn: Callable[[tuple[int, int], tuple[int, int]], np.ndarray] | None = None,
                  stride: int = 1, max_frames: int | None = None, fuse_every: int = 10, ply: bool = False,
                  cmap: str = "magma", progress: bool = True, notes: Callable[[str], None] | None = None) -> VideoSummary:
    """Depth (and poses) for every ``stride``-th frame of ``path``, written into ``out_dir``.

    ``depth_fn(rgb (H, W, 3) uint8) -> depth (h, w)``; ``pose_fn(rgb_t, rgb_t+1) -> T_{t+1←t}``
    (4, 4) (PoseNet's forward pair), or None for a depth-only network; ``K_fn(depth size, frame
    source size) -> (3, 3)`` intrinsics for the clouds, or None for no clouds. Only the previous
    frame and the fused frames' subsampled points are kept, so memory grows by at most
    ~0.3 MB per fused frame, not with the number of frames.
    """
    path, out_dir = Path(path), Path(out_dir)
    start = time.perf_counter()
    fps, total = probe(path, stride, max_frames)      # a file that cannot be opened fails before anything is touched
    for name in OUTPUTS:    # only what this function writes, so that an old run's extra frames never linger
        target = out_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    rate = fps / stride
    relative, stamps, fused = [], [], []
    previous = None
    bar = tqdm(desc=path.name, unit="frame", leave=False, disable=not progress, total=total)
    with SideBySideWriter(out_dir / "side_by_side.mp4", rate, cmap) as preview, bar:
        for n, frame in enumerate(iter_frames(path, stride, max_frames, notes=notes)):
            depth = np.asarray(depth_fn(frame.rgb), np.float32)
            bad = ~np.isfinite(depth)
            if bad.any():
                raise ValueError(f"{path}: frame {frame.index}: the network predicted NaN/inf depth at "
                                 f"{int(bad.sum())} of {depth.size} pixels; stopped there")
            stem = f"{frame.index:06d}"
            if n == 0:     # only now: a video without a single frame leaves no empty folder behind
                (out_dir / "depth").mkdir(parents=True, exist_ok=True)
                if ply and K_fn is not None:
                    (out_dir / "clouds").mkdir(exist_ok=True)
            atomic_write(out_dir / "depth" / f"{stem}.npy", lambda f: np.save(f, depth))
            preview.write(frame.rgb, depth)
            if pose_fn is not None and previous is not None:
                relative.append(np.asarray(pose_fn(previous, frame.rgb), np.float64))
            previous = frame.rgb
            stamps.append(frame.time)
            if K_fn is not None and (ply or (pose_fn is not None and fuse_every and n % fuse_every == 0)):
                h, w = depth.shape
                colours = colours_at(frame.rgb, (h, w))
                K = K_fn((h, w), frame.source_size)
                if ply:
                    write_ply(out_dir / "clouds" / f"{stem}.ply", *depth_to_points(depth, K, colours))
                if pose_fn is not None and fuse_every and n % fuse_every == 0:
                    step = max(1, math.ceil(math.sqrt(h * w / MAX_FUSED_POINTS_PER_FRAME)))
                    grid = np.zeros((h, w), bool)
                    grid[::step, ::step] = True
                    fused.append((n, *depth_to_points(depth, K, colours, valid=grid)))
            bar.update(1)
    poses = None
    if pose_fn is not None:
        poses = chain_relative_poses(np.array(relative).reshape(-1, 4, 4))
        write_tum(out_dir / "trajectory.tum", np.array(stamps), poses)
        plot_trajectory(out_dir / "trajectory.png", poses, title=f"{path.name}: {len(poses)} poses (up to scale)")
        if fused:
            points = [p @ poses[n][:3, :3].T.astype(np.float32) + poses[n][:3, 3].astype(np.float32)
                      for n, p, _ in fused]
            write_ply(out_dir / "fused.ply", np.concatenate(points), np.concatenate([c for _, _, c in fused]))
    return VideoSummary(len(stamps), poses, np.array(stamps), time.perf_counter() - start)


def pose_function(pose_net, preset: str | tuple[int, int] | None, device, order: str = "backward",
                  depth_net=None) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``(rgb_t, rgb_t+1) -> T_{t+1←t}`` (4, 4) float64 from a PoseNet, its frames preprocessed
    as the DepthNet's (``preset`` size, ImageNet normalisation); each frame is preprocessed once.

    ``order`` as in :func:`bore_depth_lite.trajectory.predict_trajectory`: ``"forward"`` asks
    PoseNet(t, t+1), ``"backward"`` asks PoseNet(t+1, t) and inverts it. Backward is the default
    because the stage-1 loss lets PoseNet learn that order first (chapter 5): on a rendered
    24-frame driving clip the shipped network's path has ATE 0.11 m backward and 2.68 m,
    mirrored (negative scale), forward. ``depth_net`` is needed for a PoseNet whose translation
    is in mean-depth units (:func:`bore_depth_lite.trajectory.translation_to_depth_units`).
    """
    if order not in ("forward", "backward"):
        raise ValueError(f"order must be 'forward' or 'backward', got {order!r}")
    needs_depth = needs_target_depth(pose_net, depth_net)   # before the first frame, not at it
    cache: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def pose(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
        x_prev = cache.pop(id(previous), None)
        if x_prev is None:
            x_prev = preprocess(previous, preset).to(device)
        x = preprocess(current, preset).to(device)
        cache.clear()
        cache[id(current)] = x
        # PoseNet(target, source) gives T_{source←target}: (t, t+1) gives T_{t+1←t}, (t+1, t) its inverse
        target, source = (x_prev, x) if order == "forward" else (x, x_prev)
        vector = translation_to_depth_units(pose_net(target, source), pose_net,
                                            depth_net(target) if needs_depth else None)
        T = pose_vec_to_mat(vector.double().cpu(), "sc_depth")[0].numpy()
        return T if order == "forward" else np.linalg.inv(T)

    return pose
