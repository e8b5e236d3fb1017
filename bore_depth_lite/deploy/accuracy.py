"""What a deployment precision costs in accuracy: every backend on the synthetic test split.

Each backend is evaluated by :func:`bore_depth_lite.evaluate.evaluate_depth_net`, the package's
one evaluation path, on the synthetic test split rendered in memory
(:class:`bore_depth_lite.data.generate.RenderedTestSet`: the scenes written to ``testing/``, at a
size the caller picks). For each backend we report AbsRel, δ1 and the depth boundary error ε_acc
(the protocol's metrics, mean over images), their change relative to fp32, and the mean
per-pixel relative change of the depth map itself.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np
from torch import nn

from ..data.generate import RenderedTestSet
from ..evaluate import DepthModel, evaluate_depth_net
from .backends import OnnxRuntimeBackend, make_backend
from .onnxruntime_backend import convert_to_fp16, quantize_int8

__all__ = ["synthetic_test_split", "precision_backends", "precision_table", "format_precision_table"]


def synthetic_test_split(num_scenes: int = 2, frames_per_scene: int = 2, size: tuple[int, int] = (256, 320),
                         preset: str = "indoor", seed: int = 0) -> RenderedTestSet:
    """The first ``num_scenes`` × ``frames_per_scene`` frames of the synthetic test split at ``size``."""
    return RenderedTestSet(num_scenes, frames_per_scene, size, preset, seed)


def precision_backends(net: nn.Module, onnx_path: str | os.PathLike,
                       calibration_images: np.ndarray) -> dict[str, DepthModel]:
    """The backends a precision table compares: PyTorch fp32 (``net``, on the CPU, with torch's thread
    count left as it is), and ONNX Runtime fp32, fp16 and INT8 of ``onnx_path``, the export of ``net``.
    INT8 is :func:`quantize_int8` with its defaults (every convolution except the depth-wise ones),
    calibrated on ``calibration_images``, (N, 3, H, W). The fp16 and INT8 models are written beside
    the export (``<stem>_fp16.onnx``, ``<stem>_int8.onnx``)."""
    onnx_path = Path(onnx_path)
    beside = lambda suffix: onnx_path.with_name(f"{onnx_path.stem}_{suffix}.onnx")  # noqa: E731
    return {"PyTorch fp32": make_backend("torch", net, threads=None),
            "ORT fp32": OnnxRuntimeBackend(onnx_path),
            "ORT fp16": OnnxRuntimeBackend(convert_to_fp16(onnx_path, beside("fp16"))),
            "ORT int8": OnnxRuntimeBackend(quantize_int8(onnx_path, beside("int8"), calibration_images))}


def precision_table(backends: Mapping[str, DepthModel], frames: RenderedTestSet,
                    reference: str | None = None) -> dict[str, dict[str, float]]:
    """Metrics of every backend and their change against ``reference`` (default: the first).

    Returns ``{name: {"abs_rel", "delta1", "dbe_acc", "abs_rel_change" (relative, e.g.
    0.01 = +1 %), "delta1_change" (absolute), "dbe_acc_change" (absolute, pixels),
    "depth_change" (mean |Δdepth| / depth against the reference's depth maps),
    "depth_change_median" (its median over pixels: robust to a few far-off pixels)}}``.
    """
    if not backends:
        raise ValueError("backends is empty")
    reference = reference or next(iter(backends))
    if reference not in backends:
        raise ValueError(f"reference {reference!r} is not one of {list(backends)}")
    rows, preds = {}, {}
    for name, backend in backends.items():   # batch 1, as deployed
        result = evaluate_depth_net(backend, frames, frames.protocol, progress=False, keep_predictions=True)
        rows[name] = {k: result[k] for k in ("abs_rel", "delta1", "dbe_acc")}
        preds[name] = np.stack(result["predictions"])
    ref_row, ref_pred = rows[reference], preds[reference]
    for name, row in rows.items():
        row["abs_rel_change"] = row["abs_rel"] / ref_row["abs_rel"] - 1.0
        row["delta1_change"] = row["delta1"] - ref_row["delta1"]
        row["dbe_acc_change"] = row["dbe_acc"] - ref_row["dbe_acc"]
        change = np.abs(preds[name] - ref_pred) / ref_pred
        row["depth_change"] = float(np.mean(change))
        row["depth_change_median"] = float(np.median(change))
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
