"""Scale-invariant boundary F1 of dense depth (Depth Pro's boundary metric, from its definition).

ε_DBE needs a ground-truth *edge map* and looks at Canny edges of the prediction; the
boundary F1 of Depth Pro (Bochkovskii et al., 2024) needs only two dense depth maps. An
*occluding contour* lies between two neighbouring pixels i and j when one is clearly in front
of the other: ``d_j / d_i > 1 + t`` for a relative threshold t. Because it is a ratio, the
contour map of ``s · d`` is that of ``d`` for every scale s > 0: the metric needs no scaling.

For one threshold t, with c(i, j) the contour indicator of the prediction (ĉ) and of the
ground truth (c) over every ordered pair of 4-neighbours that both have ground truth::

    precision(t) = Σ ĉ ∧ c / Σ ĉ        recall(t) = Σ ĉ ∧ c / Σ c
    F1(t) = 2 · precision · recall / (precision + recall)

The ordered pairs count the direction of the step too: a contour predicted on the right
pixel pair but with foreground and background swapped is not a match. The reported number is
the mean of F1(t) over thresholds t from 5 % to 25 % (``DEFAULT_THRESHOLDS``: 11 thresholds,
2 % apart, equal weights; the paper states the range, the spacing is our choice).

Edge cases, all explicit: a threshold at which the ground truth has no contour is left out of
the mean (recall undefined); with no contour at any threshold the result is NaN. A threshold
where the prediction has no contour has precision 0 by convention (F1 = 0): predicting no
edge at all scores 0, not NaN.
"""
from __future__ import annotations

import numpy as np

from .arrays import ArrayLike, as_image

__all__ = ["DEFAULT_THRESHOLDS", "occluding_contours", "boundary_f1"]

#: relative depth steps t (d_j / d_i > 1 + t) at which F1 is averaged
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(np.round(np.linspace(0.05, 0.25, 11), 4).tolist())


def _pairs(depth: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(d_i, d_j) for the four neighbour directions: right, left, down, up."""
    return [(depth[:, :-1], depth[:, 1:]), (depth[:, 1:], depth[:, :-1]),
            (depth[:-1, :], depth[1:, :]), (depth[1:, :], depth[:-1, :])]


def occluding_contours(depth: ArrayLike, threshold: float, valid: ArrayLike | None = None) -> list[np.ndarray]:
    """Contour indicators ``d_j / d_i > 1 + threshold`` of the four neighbour directions.

    Args:
        depth: (H, W) positive depth (any scale).
        threshold: relative step t > 0.
        valid: (H, W) bool, pixels that take part; a pair counts only if both pixels do.

    Returns:
        Four bool arrays, for the right (H, W-1), left (H, W-1), down (H-1, W) and up (H-1, W)
        neighbour of each pixel, True where that neighbour is farther by more than ``t``.
    """
    d = as_image(depth, "depth")
    if not threshold > 0:
        raise ValueError(f"threshold must be a positive relative step, got {threshold}")
    ok = np.isfinite(d) & (d > 0) if valid is None else as_image(valid, "valid", dtype=bool) & np.isfinite(d) & (d > 0)
    if ok.shape != d.shape:
        raise ValueError(f"valid {ok.shape} and depth {d.shape} must have the same shape")
    safe = np.where(ok, d, 1.0)
    return [(dj / di > 1.0 + threshold) & vi & vj
            for (di, dj), (vi, vj) in zip(_pairs(safe), _pairs(ok))]


def boundary_f1(gt: ArrayLike, pred: ArrayLike, thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
                valid: ArrayLike | None = None) -> dict[str, float]:
    """Scale-invariant boundary F1, precision and recall, averaged over ``thresholds``.

    Args:
        gt: (H, W) true depth; pixels that are not finite and positive have no ground truth.
        pred: (H, W) predicted depth (any scale; must be positive where ``gt`` is valid).
        thresholds: relative steps t over which the metrics are averaged.
        valid: optional (H, W) bool mask of the pixels to evaluate (e.g. a protocol's crop).

    Returns:
        ``f1``, ``precision``, ``recall`` (means over the thresholds at which the ground truth
        has a contour; NaN if it has none at any), and ``thresholds_used`` (how many).
    """
    g, p = as_image(gt, "gt"), as_image(pred, "pred")
    if g.shape != p.shape:
        raise ValueError(f"gt {g.shape} and pred {p.shape} must have the same shape")
    mask = np.isfinite(g) & (g > 0)
    if valid is not None:
        mask &= as_image(valid, "valid", dtype=bool)
    bad = mask & ~(np.isfinite(p) & (p > 0))
    if bad.any():
        raise ValueError(f"pred must be finite and positive wherever gt is valid; {int(bad.sum())} pixel(s) are not")
    scores = []
    for t in thresholds:
        true = occluding_contours(g, t, mask)
        found = occluding_contours(p, t, mask)
        n_true = sum(int(c.sum()) for c in true)
        if n_true == 0:
            continue
        n_found = sum(int(c.sum()) for c in found)
        hits = sum(int((a & b).sum()) for a, b in zip(true, found))
        precision = hits / n_found if n_found else 0.0
        recall = hits / n_true
        f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
        scores.append((f1, precision, recall))
    if not scores:
        return {"f1": float("nan"), "precision": float("nan"), "recall": float("nan"), "thresholds_used": 0}
    f1, precision, recall = np.mean(scores, axis=0)
    return {"f1": float(f1), "precision": float(precision), "recall": float(recall), "thresholds_used": len(scores)}
