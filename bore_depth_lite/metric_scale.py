"""Metric scale from a known camera height: fit the ground plane to the predicted points.

A self-supervised network predicts depth up to an unknown scale. A camera mounted at a known
height ``h`` above a flat road fixes it: back-project the predicted depth, fit the road plane
robustly (RANSAC, then least squares on its inliers), measure the camera's distance ``ĥ`` to
it in the prediction's units, and multiply the depth by ``h / ĥ``. Which pixels may be road:
the road (and sidewalk) class when a segmentation is known, otherwise the lower part of the
image, where a forward-looking car camera sees the road.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .pointcloud import depth_to_points

__all__ = ["PlaneFit", "fit_ground_plane", "ground_scale"]


@dataclass
class PlaneFit:
    """A plane ``n · X + d = 0`` (unit ``normal``, pointing from the plane towards the camera),
    the camera's height above it (``|d|``, in the depth's units), and the inliers' share."""

    normal: np.ndarray
    offset: float
    height: float
    inlier_fraction: float
    scale: float = float("nan")   # camera_height / height, set by ground_scale


def _plane_through(p: np.ndarray) -> tuple[np.ndarray, float] | None:
    n = np.cross(p[1] - p[0], p[2] - p[0])
    norm = np.linalg.norm(n)
    if norm < 1e-12:
        return None
    n = n / norm
    return n, -float(n @ p[0])


def fit_ground_plane(points: np.ndarray, iterations: int = 200, inlier_ratio: float = 0.01,
                     max_tilt_deg: float = 30.0, seed: int = 0) -> PlaneFit:
    """RANSAC plane through ``points`` (N, 3) in camera coordinates (x right, y down, z forward).

    Only planes whose normal is within ``max_tilt_deg`` of the camera's vertical (y) and that lie
    below the camera count as ground. A point is an inlier within ``inlier_ratio`` × the points'
    median distance (the threshold scales with the unknown scale of the depth). The best plane is
    refined by least squares (SVD) on its inliers.

    Raises:
        ValueError: fewer than 3 points, or no plane below the camera among the candidates.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < 3:
        raise ValueError(f"points: expected (N >= 3, 3) ground candidates, found shape {points.shape}")
    rng = np.random.default_rng(seed)
    threshold = inlier_ratio * float(np.median(np.linalg.norm(points, axis=1)))
    min_cos = np.cos(np.radians(max_tilt_deg))
    best, best_count = None, 0
    for _ in range(iterations):
        plane = _plane_through(points[rng.choice(len(points), 3, replace=False)])
        if plane is None:
            continue
        n, d = plane
        if n[1] > 0:                      # orient the normal upwards (towards -y, the camera's up)
            n, d = -n, -d
        if -n[1] < min_cos or d <= 0:     # not horizontal enough, or the camera is not above it
            continue
        count = int((np.abs(points @ n + d) < threshold).sum())
        if count > best_count:
            best, best_count = (n, d), count
    if best is None:
        raise ValueError("no ground plane below the camera among the candidate points (is the road visible?)")
    n, d = best
    inliers = points[np.abs(points @ n + d) < threshold]
    centre = inliers.mean(axis=0)
    n = np.linalg.svd(inliers - centre, full_matrices=False)[2][-1]
    n = n if n[1] < 0 else -n
    d = -float(n @ centre)
    return PlaneFit(n, d, abs(d), len(inliers) / len(points))


def ground_scale(depth: np.ndarray, K: np.ndarray, camera_height: float, ground_mask: np.ndarray | None = None,
                 lower_fraction: float = 0.35, **ransac) -> PlaneFit:
    """The factor that makes ``depth`` (H, W, any scale) metric, from the camera's height in metres.

    ``ground_mask``: (H, W) pixels that may be road (e.g. the road class); by default the lowest
    ``lower_fraction`` of the rows. Returns the :class:`PlaneFit` with ``scale`` = camera_height / ĥ.
    """
    if not (np.isfinite(camera_height) and camera_height > 0):
        raise ValueError(f"camera_height: expected a positive number of metres, found {camera_height}")
    depth = np.asarray(depth, dtype=np.float64)
    if ground_mask is None:
        ground_mask = np.zeros(depth.shape, dtype=bool)
        ground_mask[int(round(depth.shape[0] * (1 - lower_fraction))):] = True
    points, _ = depth_to_points(depth, K, valid=ground_mask)
    fit = fit_ground_plane(points, **ransac)
    fit.scale = camera_height / fit.height
    return fit
