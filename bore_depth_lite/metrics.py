"""Standard depth metrics, scale alignment, per-image aggregation and result tables.

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
test set (:func:`aggregate_results`), never a pooled mean over all pixels.

Error policy (decided once, used everywhere): the metric functions raise ``ValueError``
naming the argument for shape mismatches, empty inputs, NaN/inf values and depths <= 0
(a log or a ratio of them would be a silent NaN/inf). *Which* pixels are valid is the
caller's (or the :mod:`bore_depth_lite.protocols` pipeline's) decision, made before.
Everything is computed in float64; the released BoRe ``test.py`` runs in float32, which
moves results by ~1e-7 relative.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[float]]
Scaling = Literal["median_lower", "median_numpy", "lstsq", "none"]

DEPTH_METRICS: tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10",
                                  "delta1", "delta2", "delta3", "abs_diff")
DDE_METRICS: tuple[str, ...] = ("dde_0", "dde_m", "dde_p")
BOUNDARY_METRICS: tuple[str, ...] = ("dbe_acc", "dbe_comp")
ALL_METRICS: tuple[str, ...] = DEPTH_METRICS + DDE_METRICS + BOUNDARY_METRICS
HIGHER_IS_BETTER: frozenset[str] = frozenset({"delta1", "delta2", "delta3", "dde_0"})
DISPLAY_NAMES: dict[str, str] = {
    "abs_rel": "AbsRel", "sq_rel": "SqRel", "rmse": "RMSE", "rmse_log": "RMSE-log",
    "log10": "log10", "delta1": "δ<1.25", "delta2": "δ<1.25²", "delta3": "δ<1.25³",
    "abs_diff": "AbsDiff", "dde_0": "DDE_0", "dde_m": "DDE_m", "dde_p": "DDE_p",
    "dbe_acc": "ε_acc", "dbe_comp": "ε_comp",
}
SCALINGS: tuple[str, ...] = ("median_lower", "median_numpy", "lstsq", "none")


# ----------------------------------------------------------------------------- inputs
def as_numpy(x: ArrayLike, name: str, dtype: Any = np.float64) -> np.ndarray:
    """Convert a numpy array, torch tensor or sequence to a numpy array of ``dtype``.

    Tensors are detached and moved to the CPU; this is the only place where torch enters.
    """
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise ValueError(f"{name} must hold real numbers, got a complex tensor ({x.dtype})")
        x = x.detach().cpu()
        x = x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
        x = x.numpy()
    if np.iscomplexobj(x):   # np.asarray(..., float64) would drop the imaginary part with a mere warning
        raise ValueError(f"{name} must hold real numbers, got complex values")
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of numbers, got {type(x).__name__}: {err}") from None


def as_image(x: ArrayLike, name: str, dtype: Any = np.float64) -> np.ndarray:
    """Return ONE image as an (H, W) array; accepts (H, W), (1, H, W) or (1, 1, H, W)."""
    arr = as_numpy(x, name, dtype)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be one image of shape (H, W), (1, H, W) or (1, 1, H, W); "
                         f"got shape {tuple(as_numpy(x, name, dtype).shape)}")
    return arr


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


# ----------------------------------------------------------------------------- aggregation
@dataclass(frozen=True)
class AggregateResult:
    """Mean of per-image metrics over a test set, with the protocol it was computed under.

    Attributes:
        protocol: protocol name (e.g. ``"bore_kitti"``); stored with every result.
        num_images: number of per-image results aggregated.
        means: metric name -> mean over images (nanmean for the keys in ``nan_skipped``).
        num_nan: metric name -> number of images whose value was NaN (skipped by nanmean, or
            making the plain mean NaN).
        nan_skipped: metric names averaged with nanmean.
    """

    protocol: str
    num_images: int
    means: dict[str, float]
    num_nan: dict[str, int]
    nan_skipped: tuple[str, ...] = field(default=BOUNDARY_METRICS)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN stays float('nan'); json.dump writes it as NaN)."""
        return {"protocol": self.protocol, "num_images": self.num_images,
                "means": dict(self.means), "num_nan": dict(self.num_nan),
                "nan_skipped": list(self.nan_skipped)}


def aggregate_results(results: Sequence[Mapping[str, Any]], protocol: str | None = None,
                      nan_skipped: Sequence[str] | Literal["all"] = BOUNDARY_METRICS) -> AggregateResult:
    """Arithmetic mean of per-image metric dicts (never a pooled mean: the book's appendix "Reference", metrics).

    Args:
        results: one dict per image, as returned by
            :func:`bore_depth_lite.protocols.evaluate_image`; every dict carries the same
            metric keys and, unless ``protocol`` is given, a ``"protocol"`` key.
        protocol: protocol name for results that do not carry one.
        nan_skipped: metrics averaged with nanmean (default: the boundary errors, which are
            NaN for an image without GT edges, as iBims-1 does); ``"all"`` for every metric.
            Other metrics use the plain mean, so a NaN there makes the mean NaN.

    Raises:
        ValueError: no result, mixed protocols, missing protocol name, or inconsistent keys.
    """
    if len(results) == 0:
        raise ValueError("results is empty: nothing to aggregate")
    names = {r.get("protocol", protocol) for r in results}
    if None in names:
        raise ValueError("every result must carry its protocol name (key 'protocol') "
                         "or pass protocol=...")
    if len(names) != 1:
        raise ValueError(f"results mix protocols {sorted(names)}; aggregate each protocol separately")
    if protocol is not None and names != {protocol}:
        raise ValueError(f"protocol={protocol!r} but the results say {sorted(names)}")
    keys = [k for k in ALL_METRICS if k in results[0]]
    for i, r in enumerate(results):
        have = [k for k in ALL_METRICS if k in r]
        if have != keys:
            raise ValueError(f"results[{i}] has metrics {have}, results[0] has {keys}")
    skip = set(ALL_METRICS if nan_skipped == "all" else nan_skipped)
    means: dict[str, float] = {}
    num_nan: dict[str, int] = {}
    for k in keys:
        values = np.array([float(r[k]) for r in results], dtype=np.float64)
        nan = np.isnan(values)
        num_nan[k] = int(nan.sum())
        if k in skip:
            means[k] = float(np.mean(values[~nan])) if (~nan).any() else math.nan
        else:
            means[k] = float(np.mean(values))
    return AggregateResult(names.pop(), len(results), means, num_nan,
                           tuple(k for k in ALL_METRICS if k in skip))


def format_results_table(rows: AggregateResult | Mapping[str, AggregateResult],
                         metrics: Sequence[str] | None = None,
                         style: Literal["markdown", "text"] = "markdown", digits: int = 3) -> str:
    """A results table whose first line names the protocol(s).

    Args:
        rows: one :class:`AggregateResult`, or ``{row label: AggregateResult}`` (e.g. one row
            per model). Rows under different protocols get a ``protocol`` column.
        metrics: metric keys to show, in order (default: those present, in
            :data:`ALL_METRICS` order).
        style: ``"markdown"`` (pipe table) or ``"text"`` (aligned columns).
        digits: decimals printed.

    Returns:
        The table; a footnote lists metrics for which images were NaN.
    """
    if isinstance(rows, AggregateResult):
        rows = {"result": rows}
    if not rows:
        raise ValueError("rows is empty: nothing to format")
    if style not in ("markdown", "text"):
        raise ValueError(f"style must be 'markdown' or 'text', got {style!r}")
    results = list(rows.values())
    if metrics is None:
        metrics = [k for k in ALL_METRICS if any(k in r.means for r in results)]
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown:
        raise ValueError(f"metrics {unknown} are unknown; choose from {ALL_METRICS}")
    protocols = sorted({r.protocol for r in results})
    header = ["model"] + (["protocol"] if len(protocols) > 1 else []) + ["images"]
    header += [DISPLAY_NAMES[m] + ("↑" if m in HIGHER_IS_BETTER else "↓") for m in metrics]
    body = []
    for label, r in rows.items():
        line = [str(label)] + ([r.protocol] if len(protocols) > 1 else []) + [str(r.num_images)]
        line += [f"{r.means[m]:.{digits}f}" if m in r.means else "—" for m in metrics]
        body.append(line)
    title = "Protocol: " + "; ".join(_describe_protocol(p) for p in protocols)
    if style == "markdown":
        table = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        table += ["| " + " | ".join(line) + " |" for line in body]
    else:
        widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]
        table = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                 for row in [header] + body]
    notes = [f"{label}: {DISPLAY_NAMES[m]} NaN for {r.num_nan[m]}/{r.num_images} images"
             + (" (skipped by nanmean)" if m in r.nan_skipped else "")
             for label, r in rows.items() for m in metrics if r.num_nan.get(m, 0)]
    return "\n".join([title, ""] + table + ([""] + notes if notes else []))


def _describe_protocol(name: str) -> str:
    from .protocols import PROTOCOLS  # late import: protocols imports this module

    return PROTOCOLS[name].describe() if name in PROTOCOLS else name

