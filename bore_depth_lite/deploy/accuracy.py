"""What a deployment precision costs in accuracy: every backend on the synthetic test split.

The test split is rendered in memory with the same scene seeds and camera speed as
``bore_depth_lite.data.generate`` writes to ``testing/`` (so numbers agree with the files on
disk), at a size the caller picks. For each backend we report AbsRel, δ1 and the depth
boundary error ε_acc (the protocol's metrics, mean over images), their change relative to
fp32, and the mean per-pixel relative change of the depth map itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import torch

from ..data.generate import SyntheticConfig, _scene_seed
from ..data.synthetic import render_sequence
from ..reporting import aggregate_results
from ..preprocess import preprocess
from ..protocols import evaluate_image

__all__ = ["TestFrames", "synthetic_test_split", "predict_all", "precision_table", "format_precision_table"]


@dataclass
class TestFrames:
    """Network inputs (N, 3, H, W) normalised, GT depth (N, H, W) metres, GT edges (N, H, W)."""

    images: torch.Tensor
    depth: np.ndarray
    boundary: np.ndarray
    protocol: str

    def __len__(self) -> int:
        return len(self.images)


def synthetic_test_split(num_scenes: int = 2, frames_per_scene: int = 2, size: tuple[int, int] = (256, 320),
                         preset: str = "indoor", seed: int = 0) -> TestFrames:
    """The first ``num_scenes`` × ``frames_per_scene`` frames of the synthetic test split.

    Scene ``i`` uses the seed ``generate`` uses for test scene ``i`` (group 2) and its test
    camera speed; with ``size`` = the data set's size these are its test frames.
    """
    if num_scenes < 1 or frames_per_scene < 1:
        raise ValueError(f"num_scenes={num_scenes}, frames_per_scene={frames_per_scene}: need ≥ 1 each")
    speed = SyntheticConfig().test_speed
    images, depth, edges = [], [], []
    for i in range(num_scenes):
        seq = render_sequence(preset, frames_per_scene, size[0], size[1], seed=_scene_seed(seed, 2, i), speed=speed)
        images += [preprocess(rgb, None)[0] for rgb in seq.rgb]
        depth.append(seq.depth)
        edges.append(seq.boundary)
    return TestFrames(torch.stack(images), np.concatenate(depth), np.concatenate(edges), f"synthetic_{preset}")


def predict_all(backend: Callable[[torch.Tensor], torch.Tensor], frames: TestFrames) -> np.ndarray:
    """Depth (N, H, W) from a backend, one image at a time (batch 1, as deployed)."""
    return np.stack([backend(frames.images[i:i + 1])[0, 0].numpy() for i in range(len(frames))])


def _metrics(pred: np.ndarray, frames: TestFrames) -> dict[str, float]:
    results = [evaluate_image(pred[i], frames.depth[i], frames.protocol, edges_gt=frames.boundary[i])
               for i in range(len(frames))]
    means = aggregate_results(results).means
    return {"abs_rel": means["abs_rel"], "delta1": means["delta1"], "dbe_acc": means["dbe_acc"]}


def precision_table(backends: Mapping[str, Callable[[torch.Tensor], torch.Tensor]], frames: TestFrames,
                    reference: str | None = None) -> dict[str, dict[str, float]]:
    """Metrics of every backend and their change against ``reference`` (default: the first).

    Returns ``{name: {"abs_rel", "delta1", "dbe_acc", "abs_rel_change" (relative, e.g.
    0.01 = +1 %), "delta1_change" (absolute), "dbe_acc_change" (absolute, pixels),
    "depth_change" (mean |Δdepth| / depth against the reference's depth maps)}}``.
    """
    if not backends:
        raise ValueError("backends is empty")
    reference = reference or next(iter(backends))
    if reference not in backends:
        raise ValueError(f"reference {reference!r} is not one of {list(backends)}")
    preds = {name: predict_all(b, frames) for name, b in backends.items()}
    rows = {name: _metrics(p, frames) for name, p in preds.items()}
    ref_row, ref_pred = rows[reference], preds[reference]
    for name, row in rows.items():
        row["abs_rel_change"] = row["abs_rel"] / ref_row["abs_rel"] - 1.0
        row["delta1_change"] = row["delta1"] - ref_row["delta1"]
        row["dbe_acc_change"] = row["dbe_acc"] - ref_row["dbe_acc"]
        row["depth_change"] = float(np.mean(np.abs(preds[name] - ref_pred) / ref_pred))
    return rows


def format_precision_table(rows: Mapping[str, Mapping[str, float]]) -> str:
    """A fixed-width text table of :func:`precision_table` (4 decimals)."""
    head = f"{'backend':<18}{'AbsRel':>9}{'δ1':>9}{'ε_acc':>9}{'ΔAbsRel':>10}{'Δδ1':>9}{'Δε_acc':>9}{'Δdepth':>9}"
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        lines.append(f"{name:<18}{r['abs_rel']:9.4f}{r['delta1']:9.4f}{r['dbe_acc']:9.4f}"
                     f"{100 * r['abs_rel_change']:9.2f}%{r['delta1_change']:9.4f}{r['dbe_acc_change']:9.4f}"
                     f"{100 * r['depth_change']:8.2f}%")
    return "\n".join(lines)
