"""Video pipeline benchmark: frames/s, peak memory against clip length, trajectory error → JSON.

Usage: python bench/video.py [--threads 1] [--pose-checkpoint PATH] [--long 600] [--out bench/results/video.json]

- ``speed``: :func:`bore_depth_lite.video.process_video` end to end (decode, DepthNet, PoseNet,
  depth ``.npy``, side_by_side.mp4, TUM, fused.ply) on rendered driving clips: the shipped tiny
  network at 96×160 (depth only, and with a small PoseNet), the ``paper`` DepthNet at 256×320
  (random weights: speed does not depend on them; with and without the release's ResNet-18
  PoseNet). Wall-clock and process CPU time per frame; a shared machine inflates wall-clock.
- ``memory``: the tiny network with a PoseNet on a 256×320 clip (a few rendered frames rolled
  sideways, so rendering stays cheap), in a fresh process per length: peak RSS
  (VmHWM) for ``--long``/4 and ``--long`` frames, and the RSS after 10 % and after 100 % of one run.
- ``ate``: absolute trajectory error (m, after the least-squares scale) of the TUM file against
  the rendered poses of a 24-frame driving clip (a scene seed no training split uses), for the
  shipped checkpoint's PoseNet (if it has one), an untrained small PoseNet, ``--pose-checkpoint``
  if given, and a constant-velocity straight line along the first camera's axis (a baseline).

Prints the JSON and writes it (atomically) to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bore_depth_lite.fileio import atomic_write_text
from bore_depth_lite.video import write_video

ROOT = Path(__file__).resolve().parents[1]


sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import cpu_info  # noqa: E402  (bench/ is not a package)


def _machine() -> dict:
    return {**cpu_info(), "load_average_at_start": [round(v, 2) for v in os.getloadavg()]}


def rolled(frames: np.ndarray, n: int):
    """``n`` frames from a few: cycle through them, shifted sideways a little more each cycle (a
    different picture every frame, rendered once)."""
    for i in range(n):
        yield np.roll(frames[i % len(frames)], 4 * (i // len(frames)), axis=1)


def _run(path: Path, depth_net, pose_net, preset, K, out: Path, fuse_every: int = 10,
         order: str = "backward") -> tuple[dict, object]:
    from bore_depth_lite.infer import depth_from_rgb
    from bore_depth_lite.video import pose_function, process_video

    cpu = torch.device("cpu")
    wall, proc = time.perf_counter(), time.process_time()
    summary = process_video(path, out, lambda rgb: depth_from_rgb(depth_net, rgb, preset, cpu),
                            pose_function(pose_net, preset, cpu, order, depth_net=depth_net) if pose_net is not None else None,
                            lambda size, source: K, fuse_every=fuse_every, progress=False)
    wall, proc = time.perf_counter() - wall, time.process_time() - proc
    return {"frames": summary.frames, "frames_per_s": round(summary.frames / wall, 2),
            "ms_per_frame_wall": round(1000 * wall / summary.frames, 1),
            "ms_per_frame_cpu": round(1000 * proc / summary.frames, 1)}, summary


def speed(tmp: Path) -> dict:
    from bore_depth_lite.data.synthetic import render_sequence
    from bore_depth_lite.models import DepthNet, PoseNet
    from bore_depth_lite.pretrained import load_pretrained

    out = {}
    small = render_sequence("driving", 8, 96, 160, seed=10_001)
    clip = write_video(tmp / "small.mp4", rolled(small.rgb, 48), quality=23)
    tiny = load_pretrained().eval()
    torch.manual_seed(0)
    out["tiny_96x160_depth_only"], _ = _run(clip, tiny, None, None, small.K, tmp / "a")
    out["tiny_96x160_with_small_posenet"], _ = _run(clip, tiny, PoseNet("small").eval(), None, small.K, tmp / "b")
    big = render_sequence("driving", 4, 256, 320, seed=10_002)
    clip = write_video(tmp / "big.mp4", rolled(big.rgb, 12), quality=23)
    paper = DepthNet("paper").eval()
    out["paper_256x320_depth_only"], _ = _run(clip, paper, None, None, big.K, tmp / "c")
    out["paper_256x320_with_resnet18_posenet"], _ = _run(clip, paper, PoseNet("resnet18").eval(), None, big.K, tmp / "d")
    out["note"] = ("end to end per processed frame: decode, DepthNet at the clip's size (--preset none), PoseNet, "
                   ".npy, side_by_side.mp4, fused.ply every 10th frame; random weights except the shipped tiny net")
    return out


_MEMORY_CHILD = r"""
import json, sys, torch
import numpy as np
torch.set_num_threads(int(sys.argv[3]))
from bore_depth_lite.infer import depth_from_rgb
from bore_depth_lite.models import PoseNet
from bore_depth_lite.pretrained import load_pretrained
from bore_depth_lite.video import pose_function, probe, process_video
tiny, cpu = load_pretrained().eval(), torch.device("cpu")
torch.manual_seed(0)
pose = PoseNet("small").eval()
total = probe(sys.argv[1])[1]
rss = {}
def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
def depth(rgb, n=[0]):
    n[0] += 1
    if n[0] in (max(1, total // 10), total):
        rss[n[0]] = round(rss_mb(), 1)
    return depth_from_rgb(tiny, rgb, None, cpu)
K = np.array([[0.58 * 320, 0, 159.5], [0, 0.58 * 320, 127.5], [0, 0, 1.0]])
s = process_video(sys.argv[1], sys.argv[2], depth, pose_function(pose, None, cpu), lambda a, b: K, progress=False)
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({"frames": s.frames, "peak_rss_mb": round(hwm / 1024, 1),
                  "rss_mb_at_frame": rss, "seconds": round(s.seconds, 1)}))
"""


def memory(tmp: Path, long: int, threads: int) -> dict:
    from bore_depth_lite.data.synthetic import render_sequence

    seq = render_sequence("driving", 6, 256, 320, seed=10_003)
    out = {}
    for n in (long // 4, long):
        clip = write_video(tmp / f"long{n}.mp4", rolled(seq.rgb, n), quality=23)
        result = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(clip), str(tmp / f"m{n}"), str(threads)],
                                capture_output=True, text=True, cwd=ROOT, check=True)
        out[f"{n}_frames"] = json.loads(result.stdout.strip().splitlines()[-1])
        out[f"{n}_frames"]["clip_mb"] = round(clip.stat().st_size / 2**20, 2)
    out["note"] = ("tiny network + small PoseNet at 256x320, fused.ply every 10th frame (each fused frame keeps "
                   "<= 20000 points, ~0.3 MB, until the end); one fresh process per length")
    return out


def ate(tmp: Path, pose_checkpoint: str | None) -> dict:
    from bore_depth_lite.checkpoint import CheckpointError, load_depthnet, load_posenet, read_checkpoint
    from bore_depth_lite.data.synthetic import render_sequence
    from bore_depth_lite.models import PoseNet
    from bore_depth_lite.pretrained import load_pretrained, pretrained_path
    from bore_depth_lite.trajectory import ate_rmse, read_tum, straight_line_path

    seq = render_sequence("driving", 24, 96, 160, seed=10_004)
    clip = write_video(tmp / "ate.mp4", seq.rgb, quality=23)
    path_length = float(np.linalg.norm(np.diff(seq.poses[:, :3, 3], axis=0), axis=1).sum())
    out = {"frames": 24, "size": [96, 160], "true_path_length_m": round(path_length, 2)}
    torch.manual_seed(0)
    runs = {"untrained_small_posenet": (load_pretrained().eval(), PoseNet("small").eval())}
    try:
        runs["shipped_tiny_driving"] = (load_pretrained().eval(), load_posenet(pretrained_path()))
        out["shipped_checkpoint_training_steps"] = read_checkpoint(pretrained_path())["extra"].get("recipe", {}).get("steps")
    except CheckpointError:
        out["shipped_tiny_driving"] = "the shipped checkpoint holds no PoseNet"
    if pose_checkpoint:
        runs["checkpoint"] = (load_depthnet(pose_checkpoint), load_posenet(pose_checkpoint))
        out["checkpoint"] = pose_checkpoint
    for name, (depth_net, pose_net) in runs.items():
        out[name] = {}
        for order in ("backward", "forward"):
            _run(clip, depth_net, pose_net, None, seq.K, tmp / name, order=order)
            _, poses = read_tum(tmp / name / "trajectory.tum")
            error, scale = ate_rmse(poses, seq.poses)
            out[name][order] = {"ate_m": round(error, 3), "scale": round(scale, 3)}
    out["note"] = "a negative scale: the path runs backwards (chapter 5); backward is the CLI's default order"
    out["constant_velocity_straight_line"] = {"ate_m": round(ate_rmse(straight_line_path(24), seq.poses)[0], 3)}
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pose-checkpoint", default=None, help="a checkpoint of ours with a PoseNet (96x160 driving)")
    p.add_argument("--long", type=int, default=600, help="frames of the long clip for the memory measurement")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "video.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    import av

    result = {"cpu": _machine(), "threads": args.threads, "torch": torch.__version__, "av": av.__version__,
              "encoder": "libx264" if "libx264" in av.codecs_available else "mpeg4"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        result["ate"] = ate(tmp, args.pose_checkpoint)
        result["speed"] = speed(tmp)
        result["memory"] = memory(tmp, args.long, args.threads)
    result["peak_rss_mb_this_process"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text + "\n")
    return result


if __name__ == "__main__":
    main()
