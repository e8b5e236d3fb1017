"""Scale-invariant boundary F1: hand-computable cases and an independent pixel-loop re-derivation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bore_depth_lite.boundary_f1 import DEFAULT_THRESHOLDS, boundary_f1, occluding_contours


def step(h=6, w=8, near=1.0, far=2.0, col=4):
    d = np.full((h, w), far)
    d[:, :col] = near
    return d


def loop_f1(gt, pred, t):
    """The definition, pixel pair by pixel pair (the oracle)."""
    h, w = gt.shape
    true = found = hits = 0
    for r in range(h):
        for c in range(w):
            for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                rr, cc = r + dr, c + dc
                if not (0 <= rr < h and 0 <= cc < w):
                    continue
                a = gt[rr, cc] / gt[r, c] > 1 + t
                b = pred[rr, cc] / pred[r, c] > 1 + t
                true, found, hits = true + a, found + b, hits + (a and b)
    if true == 0:
        return None
    p = hits / found if found else 0.0
    rec = hits / true
    return 2 * p * rec / (p + rec) if hits else 0.0


def test_the_default_thresholds_span_5_to_25_percent():
    assert DEFAULT_THRESHOLDS[0] == 0.05 and DEFAULT_THRESHOLDS[-1] == 0.25 and len(DEFAULT_THRESHOLDS) == 11


def test_a_step_has_one_contour_per_row_in_one_direction():
    right, left, down, up = occluding_contours(step(), 0.1)
    assert right.sum() == 6 and right[:, 3].all()          # near (col 3) -> far (col 4)
    assert left.sum() == 0 and down.sum() == 0 and up.sum() == 0


def test_perfect_and_scaled_predictions_score_one():
    gt = step()
    assert boundary_f1(gt, gt)["f1"] == 1.0
    assert boundary_f1(gt, 7.3 * gt)["f1"] == 1.0          # scale-invariant


def test_a_flat_prediction_scores_zero_and_a_swapped_step_too():
    gt = step()
    assert boundary_f1(gt, np.ones_like(gt)) == {"f1": 0.0, "precision": 0.0, "recall": 0.0,
                                                 "thresholds_used": len(DEFAULT_THRESHOLDS)}
    swapped = step(near=2.0, far=1.0)                       # the same edge, foreground and background swapped
    assert boundary_f1(gt, swapped)["f1"] == 0.0


def test_an_edge_one_pixel_off_halves_nothing_it_misses_it():
    # a contour one column away matches no pair: precision and recall are 0
    assert boundary_f1(step(col=4), step(col=5))["f1"] == 0.0


def test_half_the_contours_found():
    gt = np.array([[1.0, 1.0, 2.0, 2.0, 4.0, 4.0]])           # two steps along one row
    pred = np.array([[1.0, 1.0, 2.0, 2.0, 2.0, 2.0]])         # finds the first only
    r = boundary_f1(gt, pred)
    assert r["precision"] == 1.0 and r["recall"] == 0.5 and math.isclose(r["f1"], 2 / 3)


def test_a_small_step_counts_only_below_its_ratio():
    gt = step(near=1.0, far=1.1)                            # a 10 % step: thresholds 5..9 % see it
    r = boundary_f1(gt, gt)
    assert r["thresholds_used"] == sum(t < 0.1 - 1e-9 for t in DEFAULT_THRESHOLDS) == 3


def test_no_contour_in_the_ground_truth_gives_nan():
    r = boundary_f1(np.ones((4, 4)), step(4, 4))
    assert math.isnan(r["f1"]) and r["thresholds_used"] == 0


def test_invalid_pixels_take_no_part():
    gt = step()
    gt[:, 4] = 0.0                                          # the far side of the edge has no ground truth
    r = boundary_f1(gt, step())
    assert r["thresholds_used"] == 0                        # the only contour touched an invalid pixel


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_pixel_loop_definition(seed):
    rng = np.random.default_rng(seed)
    gt = np.exp(rng.normal(size=(9, 11)) * 0.3)
    pred = gt * np.exp(rng.normal(size=gt.shape) * 0.1)
    per_t = [loop_f1(gt, pred, t) for t in DEFAULT_THRESHOLDS]
    expected = np.mean([f for f in per_t if f is not None])
    assert boundary_f1(gt, pred)["f1"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, torch.float32, torch.float64])
def test_dtypes_and_tensors_agree(dtype):
    gt, pred = step(), step() * np.linspace(1, 1.3, 8)[None]
    ref = boundary_f1(gt, pred)
    cast = (lambda a: torch.tensor(a, dtype=dtype)) if isinstance(dtype, torch.dtype) else (lambda a: a.astype(dtype))
    assert boundary_f1(cast(gt), cast(pred)) == pytest.approx(ref)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="same shape"):
        boundary_f1(np.ones((4, 4)), np.ones((4, 5)))
    with pytest.raises(ValueError, match="pred must be finite and positive"):
        boundary_f1(step(), np.zeros((6, 8)))
    with pytest.raises(ValueError, match="threshold"):
        occluding_contours(step(), 0.0)
