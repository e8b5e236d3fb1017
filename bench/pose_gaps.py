"""Does a PoseNet size every frame gap alike? Trajectory error on rendered clips read every k-th frame → JSON.

Usage: python bench/pose_gaps.py [CHECKPOINT ...] [--preset driving] [--gaps 1 2 4] [--out FILE]

A PoseNet trained on one frame gap can learn that gap's typical motion instead of reading the
motion from the pictures: trained on 4-frame gaps, it reads a one-frame motion as several times too
long (bench/results/learning_curves/README.md). For each checkpoint (default: the shipped network
of ``--preset``'s world) and each rendered clip, this predicts the path from every k-th frame
(``predict_trajectory``, backward order, as ``bore-depth-infer`` reads a video) and reports:

- ``ate_m``: absolute trajectory error after the least-squares scale (metres);
- ``scale``: that scale, metres per the network's depth unit. It should not depend on the gap;
  where it falls as the gap narrows, PoseNet over-reads narrow motions;
- the same for a constant-velocity straight line along the first camera's axis (a baseline a
  PoseNet has to beat).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from bore_depth_lite.checkpoint import load_depthnet, load_posenet
from bore_depth_lite.data.synthetic import render_sequence
from bore_depth_lite.fileio import atomic_write_text
from bore_depth_lite.pretrained import pretrained_path
from bore_depth_lite.trajectory import ate_rmse, predict_trajectory, straight_line_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import cpu_info  # noqa: E402  (bench/ is not a package)

CLIP_SEEDS = (5, 11)
CLIP_FRAMES = 25          # every gap in 1, 2, 3, 4, 6 reads whole steps of it
MIN_PATH_FRAMES = 3       # two poses always fit a path exactly: ATE needs at least three


@torch.no_grad()
def gap_errors(depth_net, pose_net, frames: torch.Tensor, true_poses: np.ndarray, gaps) -> dict:
    """{gap: {ate_m, scale, straight_line_ate_m}} for frames (N, 3, H, W) in [0, 1] and their poses (N, 4, 4)."""
    out = {}
    for gap in gaps:
        every = slice(None, None, gap)
        if len(true_poses[every]) < MIN_PATH_FRAMES:
            raise ValueError(f"--gaps: {gap} leaves fewer than {MIN_PATH_FRAMES} of the clip's {len(true_poses)} frames")
        poses = predict_trajectory(pose_net, frames[every], order="backward", depth_net=depth_net)
        ate, scale = ate_rmse(poses, true_poses[every])
        line, _ = ate_rmse(straight_line_path(len(poses)), true_poses[every])
        out[str(gap)] = {"ate_m": round(ate, 3), "scale": round(scale, 3), "straight_line_ate_m": round(line, 3)}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="*", type=Path, help="checkpoints of ours with a PoseNet "
                        "(default: the shipped network of --preset's world)")
    parser.add_argument("--preset", choices=("driving", "indoor"), default="driving")
    parser.add_argument("--gaps", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--size", type=int, nargs=2, default=[96, 160], metavar=("H", "W"))
    parser.add_argument("--speed", type=float, default=1.0, help="the clips' camera translates this many "
                        "times faster along the same path, turning no faster (render_sequence's speed)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the JSON here (atomically)")
    args = parser.parse_args(argv)
    if not args.speed > 0:
        parser.error(f"--speed: expected a number > 0, got {args.speed}")
    if any(gap < 1 for gap in args.gaps):
        parser.error(f"--gaps: every gap must be >= 1, got {args.gaps}")
    if any(len(range(0, CLIP_FRAMES, gap)) < MIN_PATH_FRAMES for gap in args.gaps):
        parser.error(f"--gaps: a gap above {(CLIP_FRAMES - 1) // (MIN_PATH_FRAMES - 1)} leaves fewer than "
                     f"{MIN_PATH_FRAMES} of the clips' {CLIP_FRAMES} frames, got {args.gaps}")
    torch.set_num_threads(args.threads)
    shipped = f"tiny-{args.preset}"
    checkpoints = args.checkpoints or [pretrained_path(shipped)]
    for path in checkpoints:
        if not path.is_file():
            parser.error(f"checkpoint {path}: no such file")
    clips = {}                                # seed -> (frames (N, 3, H, W) in [0, 1], true poses), once for all networks
    for seed in CLIP_SEEDS:
        clip = render_sequence(args.preset, CLIP_FRAMES, *args.size, seed=seed, speed=args.speed)
        clips[seed] = torch.from_numpy(clip.rgb).permute(0, 3, 1, 2).float() / 255.0, clip.poses
    result = {"cpu": cpu_info(), "preset": args.preset, "size": args.size, "speed": args.speed, "clip_frames": CLIP_FRAMES,
              "order": "backward", "networks": {}}
    for path in checkpoints:
        try:
            depth_net, pose_net = load_depthnet(path).float().eval(), load_posenet(path).float().eval()
        except ValueError as err:             # CheckpointError: not ours, or no PoseNet in it
            parser.error(str(err))
        label = f"{shipped} (shipped)" if path == pretrained_path(shipped) else str(path)
        result["networks"][label] = {f"seed_{seed}": gap_errors(depth_net, pose_net, frames, poses, args.gaps)
                                     for seed, (frames, poses) in clips.items()}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    return result


if __name__ == "__main__":
    main()
