"""Standard depth metrics of one image, scale alignment, and iBims-1's directed depth error.

The formulas follow the book's appendix "Reference" (metrics: monodepth2, SC-Depth, BoRe-Depth, iBims-1):
for the ``n`` valid pixels of ONE image, with ground truth ``g`` and prediction ``p``
(already resized, masked, scaled and clamped):

=========  ====================================================
abs_rel    mean(|g - p| / g)
sq_rel     mean((g - p)^2 / g)            (divides by g, not g^2)
rmse       sqrt(mean((g - p)^2))          (square root per image)
rmse_log   sqrt(mean((ln g - ln p)^2))
log10      mean(|log10 g - log10 p|)
delta_k    mean(max(g/p, p/g) < 1.25^k)   (strict <), k = 1, 2, 3
abs_diff   mean(|g - p|)                  (SC-Depth / BoRe extra)
=========  ====================================================

The number a paper reports is the arithmetic mean of these per-image values over the
test set (:func:`bore_depth_lite.reporting.aggregate_results`), never a pooled mean over all pixels.

Error policy (decided once, used everywhere): the metric functions raise ``ValueError``
naming the argument for shape mismatches, empty inputs, NaN/inf values and depths <= 0
(a log or a ratio of them would be a silent NaN/inf). *Which* pixels are valid is the
caller's (or the :mod:`bore_depth_lite.protocols` pipeline's) decision, made before.
Everything is computed in float64; the released BoRe ``test.py`` runs in float32, which
moves results by ~1e-7 relative.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np

from .arrays import ArrayLike, as_numpy

Scaling = Literal["median_lower", "median_numpy", "lstsq", "none"]

DEPTH_METRICS: tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10",
                                  "delta1", "delta2", "delta3", "abs_diff")
DDE_METRICS: tuple[str, ...] = ("dde_0", "dde_m", "dde_p")
BOUNDARY_METRICS: tuple[str, ...] = ("dbe_acc", "dbe_comp")
#: Beside every ε_DBE: how many edge pixels were predicted and are true (a prediction with few
#: edges can score a low ε_acc; the counts show it), and Depth Pro's scale-invariant boundary F1
#: (:func:`bore_depth_lite.boundary_f1.boundary_f1`), which needs only dense depth.
EDGE_METRICS: tuple[str, ...] = ("dbe_edges_pred", "dbe_edges_gt", "boundary_f1")
ALL_METRICS: tuple[str, ...] = DEPTH_METRICS + DDE_METRICS + BOUNDARY_METRICS + EDGE_METRICS
#: What a result table shows unless asked for more (the edge diagnostics on request).
TABLE_METRICS: tuple[str, ...] = DEPTH_METRICS + DDE_METRICS + BOUNDARY_METRICS
HIGHER_IS_BETTER: frozenset[str] = frozenset({"delta1", "delta2", "delta3", "dde_0", "boundary_f1"})
#: Counts, not scores: no better direction.
NO_DIRECTION: frozenset[str] = frozenset({"dbe_edges_pred", "dbe_edges_gt"})
DISPLAY_NAMES: dict[str, str] = {
    "abs_rel": "AbsRel", "sq_rel": "SqRel", "rmse": "RMSE", "rmse_log": "RMSE-log",
    "log10": "log10", "delta1": "δ<1.25", "delta2": "δ<1.25²", "delta3": "δ<1.25³",
    "abs_diff": "AbsDiff", "dde_0": "DDE_0", "dde_m": "DDE_m", "dde_p": "DDE_p",
    "dbe_acc": "ε_acc", "dbe_comp": "ε_comp",
    "dbe_edges_pred": "edges pred", "dbe_edges_gt": "edges GT", "boundary_f1": "SI-bF1",
}
SCALINGS: tuple[str, ...] = ("median_lower", "median_numpy", "lstsq", "none")


# ----------------------------------------------------------------------------- inputs
def _check_pair(gt: ArrayLike, pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    g = as_numpy(gt, "gt")
    p = as_numpy(pred, "pred")
    if g.shape != p.shape:
        raise ValueError(f"gt and pred must have the same shape; got gt {g.shape} and pred {p.shape}")
    g, p = g.ravel(), p.ravel()
    if g.size == 0:
        raise ValueError("gt and pred are empty: no valid pixel to evaluate (empty valid mask?)")
    for arr, name in ((g, "gt"), (p, "pred")):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(f"{name} has {int(bad.sum())} NaN/inf value(s) among the {arr.size} "
                             "evaluated pixels; mask them out before computing metrics")
        nonpos = arr <= 0
        if nonpos.any():
            raise ValueError(f"{name} has {int(nonpos.sum())} value(s) <= 0 among the {arr.size} "
                             "evaluated pixels; depths must be > 0 (log and ratios are undefined)")
    return g, p


# ----------------------------------------------------------------------------- metrics
def compute_depth_metrics(gt: ArrayLike, pred: ArrayLike) -> dict[str, float]:
    """The standard metrics of ONE image over its valid pixels.

    Args:
        gt: (N,) or any shape: ground-truth depths of the valid pixels, all finite and > 0.
        pred: same shape as ``gt``: predicted depths, already scaled and clamped.

    Returns:
        ``{name: value}`` for every name in :data:`DEPTH_METRICS`.

    Raises:
        ValueError: shape mismatch, no pixel, NaN/inf, or a value <= 0 (naming the argument).
    """
    g, p = _check_pair(gt, pred)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        diff = g - p                                   # |g - p| <= max(g, p): finite
        abs_diff = np.abs(diff)
        log_diff = np.log(g) - np.log(p)               # ratios via logs: g / p may not fit a float64
        abs_log = np.abs(log_diff)
        rel = abs_diff / g
        metrics = {
            "abs_rel": _mean(rel),
            "sq_rel": _mean(rel * abs_diff),           # (g - p)^2 / g, without squaring first
            "rmse": _root_mean_square(diff),
            "rmse_log": _root_mean_square(log_diff),
            "log10": _mean(abs_log / np.log(10.0)),
            "delta1": float(np.mean(abs_log < np.log(1.25))),
            "delta2": float(np.mean(abs_log < np.log(1.25 ** 2))),
            "delta3": float(np.mean(abs_log < np.log(1.25 ** 3))),
            "abs_diff": _mean(abs_diff),
        }
    overflow = [k for k, v in metrics.items() if not math.isfinite(v)]
    if overflow:
        raise ValueError(f"{', '.join(overflow)} exceed(s) the float64 range: gt spans [{g.min():g}, {g.max():g}] "
                         f"and pred [{p.min():g}, {p.max():g}]; depths must be in a physical range (metres)")
    return metrics


def _mean(x: np.ndarray) -> float:
    """Mean of non-negative values without overflowing their sum (scaled by the largest)."""
    top = float(np.max(x))
    if top == 0.0 or not math.isfinite(top):
        return top
    return top * float(np.mean(x / top))


def _root_mean_square(x: np.ndarray) -> float:
    """sqrt(mean(x^2)) without overflowing the squares (scaled by the largest |x|)."""
    top = float(np.max(np.abs(x)))
    if top == 0.0 or not math.isfinite(top):
        return top
    return top * float(np.sqrt(np.mean((x / top) ** 2)))


def median_lower(x: ArrayLike) -> float:
    """torch.median's rule: the lower of the two middle values for an even count.

    Args:
        x: any shape, non-empty; flattened.
    """
    v = as_numpy(x, "x").ravel()
    if v.size == 0:
        raise ValueError("x is empty: the median of no values is undefined")
    k = (v.size - 1) // 2
    return float(np.partition(v, k)[k])


def compute_scale(gt: ArrayLike, pred: ArrayLike, scaling: Scaling = "median_lower") -> float:
    """The per-image factor s that aligns ``s * pred`` to ``gt``.

    Args:
        gt, pred: same shape, the valid pixels of one image (finite, > 0).
        scaling: ``"median_lower"`` median(gt)/median(pred) with torch.median's lower middle
            value (SC-Depth / BoRe ``compute_errors``); ``"median_numpy"`` the same with
            np.median, i.e. the mean of the two middle values (monodepth2, SC-Depth
            ``eval_depth.py``); ``"lstsq"`` the least-squares scale sum(g p)/sum(p^2)
            (no shift); ``"none"`` 1.0.
    """
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    g, p = _check_pair(gt, pred)
    if scaling == "none":
        return 1.0
    if scaling == "median_lower":
        return median_lower(g) / median_lower(p)
    if scaling == "median_numpy":
        return float(np.median(g) / np.median(p))
    return float(np.dot(g, p) / np.dot(p, p))


def scale_and_clamp(gt: ArrayLike, pred: ArrayLike, scaling: Scaling = "median_lower",
                    clamp: tuple[float, float] | None = None) -> tuple[np.ndarray, float]:
    """Scale ``pred`` by :func:`compute_scale`, then clip it to ``clamp`` = (lo, hi) if given.

    Returns:
        (scaled prediction with the shape of ``pred``, the scale factor).
    """
    scale = compute_scale(gt, pred, scaling)
    out = as_numpy(pred, "pred") * scale
    if clamp is not None:
        lo, hi = clamp
        if not 0 < lo < hi:
            raise ValueError(f"clamp must be (lo, hi) with 0 < lo < hi, got {clamp}")
        out = np.clip(out, lo, hi)
    return out, scale


def directed_depth_error(gt: ArrayLike, pred: ArrayLike, threshold: float = 3.0) -> dict[str, float]:
    """iBims-1 directed depth error over the valid pixels of one image (the book's appendix "Reference").

    Both maps are split at ``threshold`` metres into near (<= threshold) and far (> threshold).

    Args:
        gt: (N,) or any shape: valid GT depths (finite).
        pred: same shape: predicted depths of the same pixels (finite).
        threshold: near/far split in metres.

    Returns:
        ``dde_0`` (same side), ``dde_m`` (pred near, GT far: predicted too near) and
        ``dde_p`` (pred far, GT near: predicted too far) as fractions of the pixels. How they
        map onto the paper's ε_DDE^-/ε_DDE^+ is not confirmed.
    """
    g = as_numpy(gt, "gt").ravel()
    p = as_numpy(pred, "pred").ravel()
    if as_numpy(gt, "gt").shape != as_numpy(pred, "pred").shape:
        raise ValueError(f"gt {as_numpy(gt, 'gt').shape} and pred {as_numpy(pred, 'pred').shape} "
                         "must have the same shape")
    if g.size == 0:
        raise ValueError("gt and pred are empty: no valid pixel for the directed depth error")
    for arr, name in ((g, "gt"), (p, "pred")):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} has {int((~np.isfinite(arr)).sum())} NaN/inf value(s); mask them out")
    diff = (p <= threshold).astype(np.int8) - (g <= threshold).astype(np.int8)
    return {"dde_0": float(np.mean(diff == 0)), "dde_m": float(np.mean(diff == 1)),
            "dde_p": float(np.mean(diff == -1))}
