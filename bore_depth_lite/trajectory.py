"""Camera trajectories from PoseNet: chain relative poses, align the unknown scale, score.

PoseNet(target, source) predicts ``T_src_tgt``, which maps target-camera points into the
source camera. Chaining frame pairs (t, t+1) gives the camera path up to one unknown scale
(monocular video cannot tell a small room from a large one), so the path is compared with
the truth after the least-squares scale, as in SfMLearner's and SC-Depth's odometry tables.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .fileio import atomic_write, atomic_write_text
from .geometry import pose_vec_to_mat
from .preprocess import normalize_imagenet

__all__ = ["chain_relative_poses", "straight_line_path", "needs_target_depth", "translation_to_depth_units", "predict_trajectory", "align_scale", "ate_rmse", "write_tum", "read_tum",
           "plot_trajectory"]


def chain_relative_poses(T_next_from_current: np.ndarray) -> np.ndarray:
    """Camera-to-world poses (N+1, 4, 4) of a path from N relative poses ``T_{t+1←t}`` (N, 4, 4).

    The first camera defines the world frame: ``pose_{t+1} = pose_t @ inv(T_{t+1←t})``.
    """
    poses = [np.eye(4)]
    for T in np.asarray(T_next_from_current, dtype=np.float64):
        poses.append(poses[-1] @ np.linalg.inv(T))
    return np.stack(poses)


def straight_line_path(num_frames: int) -> np.ndarray:
    """Camera-to-world poses (N, 4, 4) moving one unit per frame along the first camera's optical
    axis, turning never: the constant-velocity guess a PoseNet's path has to beat (after
    :func:`ate_rmse`'s scale, the unit does not matter)."""
    poses = np.tile(np.eye(4), (num_frames, 1, 1))
    poses[:, 2, 3] = np.arange(num_frames)
    return poses


_NEEDS_DEPTH = ("this PoseNet predicts translation in units of the target's mean depth "
                "(trained with normalise_depth): pass the DepthNet, or the targets' depth, too")


def needs_target_depth(pose_net: nn.Module, depth_net: nn.Module | None) -> bool:
    """Whether ``pose_net``'s translation is in mean-depth units (then the targets' depth is needed);
    a one-line ValueError when it is and ``depth_net`` is None."""
    needed = getattr(pose_net, "translation_unit", "depth") == "mean_depth"
    if needed and depth_net is None:
        raise ValueError(_NEEDS_DEPTH)
    return needed


def translation_to_depth_units(pose_vectors: torch.Tensor, pose_net: nn.Module,
                               target_depth: torch.Tensor | None) -> torch.Tensor:
    """PoseNet's output (B, 6) with its translation in the DepthNet's units.

    A PoseNet trained with ``normalise_depth`` (``translation_unit == "mean_depth"``) predicts
    translation in units of the target frame's mean depth; this multiplies it by the mean of
    ``target_depth`` (B, 1, H, W), the DepthNet's depth of the targets that were given to PoseNet.
    Any other PoseNet's output is returned as it is, and ``target_depth`` may then be None.
    """
    if getattr(pose_net, "translation_unit", "depth") != "mean_depth":
        return pose_vectors
    if target_depth is None:
        raise ValueError(_NEEDS_DEPTH)
    mean = target_depth.mean(dim=(1, 2, 3)).to(pose_vectors)[:, None]
    return torch.cat([pose_vectors[:, :3] * mean, pose_vectors[:, 3:]], dim=1)


@torch.no_grad()
def predict_trajectory(pose_net: nn.Module, frames: torch.Tensor, convention: str = "sc_depth",
                       order: str = "forward", depth_net: nn.Module | None = None) -> np.ndarray:
    """Camera-to-world poses (N, 4, 4) of frames (N, 3, H, W) in [0, 1], first camera = world.

    ``order="forward"`` asks PoseNet(t, t+1) for ``T_{t+1←t}``; ``"backward"`` asks
    PoseNet(t+1, t) for ``T_{t←t+1}`` and inverts it. A well-trained PoseNet gives the same
    path both ways; early in training they can differ (see the training chapter). ``depth_net``
    is needed for a PoseNet whose translation is in mean-depth units
    (:func:`translation_to_depth_units`): the path is then in the DepthNet's units.
    """
    if frames.ndim != 4 or frames.shape[0] < 2:
        raise ValueError(f"frames must be (N>=2, 3, H, W), got {tuple(frames.shape)}")
    if order not in ("forward", "backward"):
        raise ValueError(f"order must be 'forward' or 'backward', got {order!r}")
    was_training = pose_net.training
    pose_net.eval()
    x = normalize_imagenet(frames)
    targets, sources = (x[:-1], x[1:]) if order == "forward" else (x[1:], x[:-1])
    target_depth = depth_net(targets) if needs_target_depth(pose_net, depth_net) else None
    vectors = translation_to_depth_units(pose_net(targets, sources), pose_net, target_depth)
    pose_net.train(was_training)
    T = pose_vec_to_mat(vectors.double().cpu(), convention).numpy()
    return chain_relative_poses(T if order == "forward" else np.linalg.inv(T))


def align_scale(pred_positions: np.ndarray, true_positions: np.ndarray) -> float:
    """The scale s minimising ‖s·pred − true‖² over (N, 3) positions (both start at the origin)."""
    p, t = np.asarray(pred_positions, np.float64), np.asarray(true_positions, np.float64)
    if p.shape != t.shape:
        raise ValueError(f"positions differ in shape: {p.shape} vs {t.shape}")
    denom = float((p * p).sum())
    if denom == 0.0:
        raise ValueError("the predicted path does not move: its scale is undefined")
    return float((p * t).sum() / denom)


def ate_rmse(pred_poses: np.ndarray, true_poses: np.ndarray) -> tuple[float, float]:
    """Absolute trajectory error (RMSE of positions, metres) after scale alignment, and the scale.

    Both paths are first expressed relative to their first camera.
    """
    def relative(poses):
        poses = np.asarray(poses, np.float64)
        return np.linalg.inv(poses[0]) @ poses

    p, t = relative(pred_poses)[:, :3, 3], relative(true_poses)[:, :3, 3]
    s = align_scale(p, t)
    return float(np.sqrt(((s * p - t) ** 2).sum(1).mean())), s


def write_tum(path: str | Path, timestamps: np.ndarray, poses: np.ndarray) -> Path:
    """TUM RGB-D format, one line per pose: ``timestamp tx ty tz qx qy qz qw`` (poses (N, 4, 4)
    camera-to-world, timestamps (N,) seconds). Written atomically."""
    from scipy.spatial.transform import Rotation

    poses = np.asarray(poses, np.float64)
    q = Rotation.from_matrix(poses[:, :3, :3]).as_quat()        # scalar last: (qx, qy, qz, qw)
    lines = ["# timestamp tx ty tz qx qy qz qw (camera-to-world, first camera = world, up to scale)"]
    lines += [" ".join(f"{v:.9g}" for v in (t, *T[:3, 3], *qi)) for t, T, qi in zip(timestamps, poses, q)]
    return atomic_write_text(path, "\n".join(lines) + "\n")


def read_tum(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(timestamps (N,), poses (N, 4, 4)) from a TUM file; ValueError naming the file and line if malformed."""
    from scipy.spatial.transform import Rotation

    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            values = line.split()
            if len(values) != 8:
                raise ValueError(f"{path}:{n}: expected 8 numbers 'timestamp tx ty tz qx qy qz qw', found {len(values)}")
            rows.append([float(v) for v in values])
    data = np.array(rows, np.float64).reshape(-1, 8)
    poses = np.tile(np.eye(4), (len(data), 1, 1))
    if len(data):
        poses[:, :3, :3] = Rotation.from_quat(data[:, 4:]).as_matrix()
        poses[:, :3, 3] = data[:, 1:4]
    return data[:, 0], poses


def plot_trajectory(path: str | Path, poses: np.ndarray, title: str = "") -> Path:
    """A top view (x right, z forward of the first camera) of camera-to-world ``poses`` (N, 4, 4), as PNG."""
    from matplotlib.figure import Figure

    xyz = np.asarray(poses)[:, :3, 3]
    fig = Figure(figsize=(4, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(xyz[:, 0], xyz[:, 2], "-", lw=1.5, color="tab:blue")
    ax.plot(xyz[:1, 0], xyz[:1, 2], "o", color="tab:green", label="start")
    ax.plot(xyz[-1:, 0], xyz[-1:, 2], "s", color="tab:red", label="end")
    ax.set(xlabel="x (right), up to scale", ylabel="z (forward), up to scale", title=title or f"{len(xyz)} poses")
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(fontsize=7)
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
