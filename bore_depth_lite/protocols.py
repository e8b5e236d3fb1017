"""Evaluation protocols: crop, depth range, scaling, clamp and resizing, as named presets.

A :class:`Protocol` describes every choice that turns (prediction, GT) of one image into
metric values (the book's appendix "Reference": protocols). :func:`evaluate_image`
runs it:

1. resize the prediction to the GT size (bilinear, align_corners=False, no antialias), as
   depth (SC-Depth / BoRe) or as disparity (monodepth2: 1/depth is resized, then inverted);
   cv2.resize(INTER_LINEAR) computes the same interpolation;
2. valid pixels: finite GT, min_depth < gt < max_depth (both strict), inside the crop, and
   nonzero in every given validity mask (iBims: ``mask_invalid``, ``mask_transp``; both mark
   VALID pixels despite their names);
3. per-image scale (median with torch's lower-median rule, np.median, least squares, none);
4. clamp the scaled prediction; 5. metrics of :mod:`bore_depth_lite.metrics`, plus the iBims
   DDE and, when a GT edge map is given, ε_DBE of :mod:`bore_depth_lite.boundary`.

Input policy:
- GT: NaN/inf and values outside the depth range are *missing* pixels (not errors).
- Prediction: must be finite and > 0 on every valid pixel (and everywhere when it is resized,
  since interpolation would spread a bad value); otherwise ``ValueError`` with the count.
  Exception: protocols with ``exclude_invalid_pred`` (iBims) drop NaN/0 predictions from the
  valid mask, as the official iBims script does.
- Shapes: GT, masks and edges must share the GT shape (``ValueError`` naming the argument).
- Empty valid mask: ``ValueError`` by default; ``on_empty="nan"`` returns NaN metrics with
  ``num_valid = 0`` instead (then aggregate with ``nan_skipped="all"``; the count is reported).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from . import boundary
from .boundary_f1 import boundary_f1
from .arrays import ArrayLike, as_image
from .metrics import DEPTH_METRICS, Scaling, compute_depth_metrics, directed_depth_error, scale_and_clamp

Crop = Literal["none", "garg", "nyu", "nyu_toolbox", "eigen_nyu"]
GARG_FRACTIONS: tuple[float, float, float, float] = (0.40810811, 0.99189189, 0.03594771, 0.96405229)
# Fixed crops on 480x640 NYUv2-size images, as (row0, row1, col0, col1), exclusive ends.
FIXED_CROPS: dict[str, tuple[int, int, int, int]] = {
    "nyu": (45, 471, 41, 601),          # SC-Depth / BoRe / BTS: MATLAB 1-based start copied literally
    "nyu_toolbox": (44, 471, 40, 601),  # NYU toolbox get_projection_mask.m, 0-based
    "eigen_nyu": (20, 460, 24, 616),    # Eigen et al. predicted region (WaveletMonoDepth, DenseDepth)
}


@dataclass(frozen=True)
class Protocol:
    """Every choice of one evaluation protocol; ``name`` is stored with every result.

    Attributes:
        name: preset name, e.g. ``"bore_kitti"``.
        crop: ``"garg"`` (KITTI fractions, ``int()`` truncation), ``"nyu"`` (rows 45:471,
            cols 41:601 of 480x640), ``"nyu_toolbox"``, ``"eigen_nyu"`` or ``"none"``.
        min_depth: valid GT is strictly greater.
        max_depth: valid GT is strictly smaller; ``None`` for no cap.
        scaling: ``"median_lower"`` (torch.median), ``"median_numpy"``, ``"lstsq"``, ``"none"``.
        clamp: (lo, hi) applied to the scaled prediction, or ``None``.
        resize: quantity interpolated to the GT size: ``"depth"`` or ``"disparity"``.
        require_valid_masks: refuse to run without at least one validity mask (iBims).
        exclude_invalid_pred: drop NaN/inf/<=0 predictions from the valid mask (iBims).
        dde_threshold: iBims directed depth error threshold in metres, or ``None``.
        dbe_thresholds, dbe_completeness, dbe_theta: ε_DBE setting (used when GT edges are given).
        reference: where the protocol comes from.
    """

    name: str
    crop: Crop = "none"
    min_depth: float = 0.0
    max_depth: float | None = None
    scaling: Scaling = "median_lower"
    clamp: tuple[float, float] | None = None
    resize: Literal["depth", "disparity"] = "depth"
    require_valid_masks: bool = False
    exclude_invalid_pred: bool = False
    dde_threshold: float | None = None
    dbe_thresholds: tuple[float, float] = boundary.DEFAULT_THRESHOLDS
    dbe_completeness: boundary.Completeness = "symmetric"
    dbe_theta: float = boundary.DEFAULT_THETA
    reference: str = ""

    def describe(self) -> str:
        """One line naming every choice, printed with results."""
        hi = f"{self.max_depth:g}" if self.max_depth is not None else "inf"
        clamp = f"[{self.clamp[0]:g}, {self.clamp[1]:g}]" if self.clamp else "none"
        return (f"{self.name} (crop={self.crop}, {self.min_depth:g} < gt < {hi}, scale={self.scaling}, "
                f"clamp={clamp}, resize={self.resize}; "
                f"{boundary.boundary_setting(self.dbe_thresholds, self.dbe_completeness, self.dbe_theta)})")


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("bore_kitti", crop="garg", min_depth=0.1, max_depth=80.0, scaling="median_lower",
             clamp=(0.1, 80.0), reference="BoRe-Depth test.py / SC-Depth compute_errors, KITTI Eigen"),
    Protocol("bore_nyu", crop="nyu", min_depth=0.1, max_depth=10.0, scaling="median_lower",
             clamp=(0.1, 10.0), reference="BoRe-Depth test.py / SC-Depth compute_errors, NYUv2"),
    Protocol("monodepth2_kitti", crop="garg", min_depth=1e-3, max_depth=80.0, scaling="median_numpy",
             clamp=(1e-3, 80.0), resize="disparity", reference="monodepth2 evaluate_depth.py, eigen"),
    Protocol("monodepth2_kitti_benchmark", crop="none", min_depth=0.0, max_depth=None,
             scaling="median_numpy", clamp=(1e-3, 80.0), resize="disparity",
             reference="monodepth2 evaluate_depth.py, eigen_benchmark (improved GT)"),
    Protocol("ibims", min_depth=0.0, max_depth=None, scaling="median_lower", clamp=None,
             require_valid_masks=True, exclude_invalid_pred=True, dde_threshold=3.0,
             reference="ours: iBims-1 masks, per-image median scaling (relative predictions)"),
    Protocol("ibims_official", min_depth=0.0, max_depth=None, scaling="none", clamp=None,
             require_valid_masks=True, exclude_invalid_pred=True, dde_threshold=3.0,
             reference="iBims-1 evaluation script v0.9 (metric predictions, no scaling)"),
    Protocol("synthetic_indoor", min_depth=0.1, max_depth=10.0, scaling="median_lower",
             clamp=(0.1, 10.0), reference="ours: synthetic indoor world, NYU-like caps, no crop"),
    Protocol("synthetic_driving", min_depth=0.1, max_depth=80.0, scaling="median_lower",
             clamp=(0.1, 80.0), reference="ours: synthetic driving world, KITTI-like caps, no crop"),
)}


def get_protocol(protocol: str | Protocol) -> Protocol:
    """Return a preset by name (or the given :class:`Protocol` unchanged)."""
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {sorted(PROTOCOLS)}")
    return PROTOCOLS[protocol]


def garg_crop_bounds(height: int, width: int) -> tuple[int, int, int, int]:
    """Garg crop (row0, row1, col0, col1), exclusive ends, truncated with ``int()``.

    1224x370 gives cols 43:1180: 0.03594771 * 1224 = 43.99999... truncates to 43.
    """
    f0, f1, f2, f3 = GARG_FRACTIONS
    return int(f0 * height), int(f1 * height), int(f2 * width), int(f3 * width)


def crop_mask(shape: tuple[int, int], crop: Crop) -> np.ndarray:
    """(H, W) bool mask, True inside the evaluation crop.

    Raises:
        ValueError: unknown crop, or a fixed NYUv2 crop on an image that is not 480x640.
    """
    h, w = shape
    mask = np.zeros((h, w), dtype=bool)
    if crop == "none":
        mask[:] = True
    elif crop == "garg":
        r0, r1, c0, c1 = garg_crop_bounds(h, w)
        mask[r0:r1, c0:c1] = True
    elif crop in FIXED_CROPS:
        if (h, w) != (480, 640):
            raise ValueError(f"crop {crop!r} is defined on 480x640 NYUv2 images; gt has shape {(h, w)}")
        r0, r1, c0, c1 = FIXED_CROPS[crop]
        mask[r0:r1, c0:c1] = True
    else:
        raise ValueError(f"crop must be one of {('none', 'garg', *FIXED_CROPS)}, got {crop!r}")
    return mask


def scored_pixels(gt: np.ndarray, protocol: str | Protocol) -> np.ndarray:
    """(H, W) bool: the pixels of ``gt`` that ``protocol`` scores (finite, strictly inside its depth
    range, inside its crop), before any extra validity masks."""
    proto = get_protocol(protocol)
    valid = np.isfinite(gt) & (gt > proto.min_depth)
    if proto.max_depth is not None:
        valid &= gt < proto.max_depth
    return valid & crop_mask(gt.shape, proto.crop)


def resize_prediction(pred: ArrayLike, size: tuple[int, int],
                      quantity: Literal["depth", "disparity"] = "depth") -> np.ndarray:
    """Bilinearly resize a depth map to ``size`` = (H, W), interpolating depth or disparity.

    Args:
        pred: (h, w) depth, finite and > 0 everywhere.
        size: target (H, W).
        quantity: ``"depth"`` (SC-Depth / BoRe) or ``"disparity"`` (monodepth2: 1/depth is
            interpolated and the result inverted back to depth).

    Returns:
        (H, W) float64 depth.
    """
    p = as_image(pred, "pred")
    bad = ~np.isfinite(p) | (p <= 0)
    if bad.any():
        raise ValueError(f"pred has {int(bad.sum())} NaN/inf or <= 0 value(s); a prediction that is "
                         "resized must be valid everywhere (interpolation would spread them)")
    if quantity not in ("depth", "disparity"):
        raise ValueError(f"quantity must be 'depth' or 'disparity', got {quantity!r}")
    if p.shape == tuple(size):
        return p
    x = torch.from_numpy(1.0 / p if quantity == "disparity" else p)[None, None]
    out = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)[0, 0].numpy()
    return 1.0 / out if quantity == "disparity" else out


def evaluate_image(pred: ArrayLike, gt: ArrayLike, protocol: str | Protocol,
                   valid_masks: Sequence[ArrayLike] = (), edges_gt: ArrayLike | None = None,
                   on_empty: Literal["raise", "nan"] = "raise") -> dict[str, Any]:
    """Metrics of ONE image under a protocol.

    Args:
        pred: (h, w) predicted depth (also (1, h, w), (1, 1, h, w)); resized to the GT size
            when its shape differs.
        gt: (H, W) ground-truth depth in metres; 0, NaN, inf and out-of-range = missing.
        protocol: a preset name from :data:`PROTOCOLS` or a :class:`Protocol`.
        valid_masks: (H, W) arrays, nonzero = valid (e.g. iBims ``mask_invalid``,
            ``mask_transp``), AND-ed into the valid mask.
        edges_gt: (H, W) binary GT depth-edge map; adds ``dbe_acc`` and ``dbe_comp``, the
            numbers of predicted and true edge pixels, and the scale-invariant boundary F1.
        on_empty: ``"raise"`` or ``"nan"`` when no pixel is valid (see module docstring).

    Returns:
        ``{"protocol": name, <DEPTH_METRICS>, ["dde_0", "dde_m", "dde_p"], ["dbe_acc",
        "dbe_comp", "dbe_edges_pred", "dbe_edges_gt", "boundary_f1"], "scale": s, "num_valid": n}``.
    """
    proto = get_protocol(protocol)
    g = as_image(gt, "gt")
    p = as_image(pred, "pred")
    if on_empty not in ("raise", "nan"):
        raise ValueError(f"on_empty must be 'raise' or 'nan', got {on_empty!r}")
    if proto.require_valid_masks and len(valid_masks) == 0:
        raise ValueError(f"protocol {proto.name!r} needs valid_masks (iBims: mask_invalid, mask_transp)")
    valid = scored_pixels(g, proto)
    for i, m in enumerate(valid_masks):
        m = as_image(m, f"valid_masks[{i}]")
        if m.shape != g.shape:
            raise ValueError(f"valid_masks[{i}] has shape {m.shape}, gt has {g.shape}")
        valid &= m != 0
    if p.shape != g.shape:
        p = resize_prediction(p, g.shape, proto.resize)
    pred_ok = np.isfinite(p) & (p > 0)
    if proto.exclude_invalid_pred:
        valid &= pred_ok
    elif (valid & ~pred_ok).any():
        raise ValueError(f"pred has {int((valid & ~pred_ok).sum())} NaN/inf or <= 0 value(s) on valid "
                         f"pixels; protocol {proto.name!r} needs a positive finite prediction there")

    result: dict[str, Any] = {"protocol": proto.name}
    n = int(valid.sum())
    if n == 0:
        if on_empty == "raise":
            raise ValueError(f"no valid pixel in gt under protocol {proto.describe()}; "
                             "pass on_empty='nan' to record NaN metrics instead")
        result.update({k: float("nan") for k in DEPTH_METRICS})
        if proto.dde_threshold is not None:
            result.update({"dde_0": float("nan"), "dde_m": float("nan"), "dde_p": float("nan")})
        scale = float("nan")
    else:
        gt_valid = g[valid]
        pred_valid, scale = scale_and_clamp(gt_valid, p[valid], proto.scaling, proto.clamp)
        result.update(compute_depth_metrics(gt_valid, pred_valid))
        if proto.dde_threshold is not None:
            result.update(directed_depth_error(gt_valid, pred_valid, proto.dde_threshold))
    if edges_gt is not None:
        edges = as_image(edges_gt, "edges_gt", dtype=None)
        if edges.shape != g.shape:
            raise ValueError(f"edges_gt has shape {edges.shape}, gt has {g.shape}")
        # Unmasked and unscaled, as the iBims script does; 0/NaN are holes, inf/negative raise.
        result["dbe_acc"], result["dbe_comp"], found = boundary.depth_boundary_error(
            edges, p, proto.dbe_thresholds, proto.dbe_completeness, proto.dbe_theta, return_edges=True)
        result["dbe_edges_pred"] = float(np.count_nonzero(found))
        result["dbe_edges_gt"] = float(np.count_nonzero(edges))
        # Scale-invariant, so on the unscaled prediction; over the protocol's valid pixels.
        result["boundary_f1"] = boundary_f1(g, p, valid=valid)["f1"] if n else float("nan")
    result["scale"] = scale
    result["num_valid"] = n
    return result
