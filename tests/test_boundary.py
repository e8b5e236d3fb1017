"""bore_depth_lite.boundary: ε_DBE (the book's appendix "Reference") and the iBims-1 directed depth error."""
from __future__ import annotations

import math

import numpy as np
import pytest
import skimage
import torch
from scipy import ndimage
from skimage import feature

from bore_depth_lite.boundary import (OFFICIAL_THRESHOLDS, chamfer_boundary_errors, depth_boundary_error,
                                      detect_depth_edges, normalise_depth_for_edges)
from bore_depth_lite.metrics import directed_depth_error

SKIMAGE_026 = skimage.__version__.startswith("0.26")


def _column_edges(h, w, col, rows=slice(None)):
    e = np.zeros((h, w), dtype=bool)
    e[rows, col] = True
    return e


def _step(h=480, w=640, col=320, near=2.0, far=4.0):
    p = np.full((h, w), near)
    p[:, col:] = far
    return p


# --- §5.4: chamfer part with edge maps given directly (20x20, GT = column 5) --------------
GT_COL5 = _column_edges(20, 20, 5)
_C = _column_edges(20, 20, 8, slice(0, 10)) | _column_edges(20, 20, 17, slice(10, 20))
_G = GT_COL5.copy()
_G[3, 9] = True
CHAMFER_CASES = {
    "A": (GT_COL5, _column_edges(20, 20, 8), 3.0, 3.0, 3.0),
    "B": (GT_COL5, _column_edges(20, 20, 17), 10.0, 10.0, 10.0),
    "C": (GT_COL5, _C, 3.0, 5.604906, 4.731827),
    "D": (GT_COL5, GT_COL5, 0.0, 0.0, 0.0),
    "E": (GT_COL5, _column_edges(20, 20, 5, slice(0, 10)), 0.0, 55 / 30, 55 / 20),
    "G": (GT_COL5, _G, 4 / 21, 4 / 41, 0.0),
}


@pytest.mark.parametrize("case", sorted(CHAMFER_CASES))
def test_chamfer_table(case):
    gt, est, acc, comp_sym, comp_dir = CHAMFER_CASES[case]
    a, c = chamfer_boundary_errors(gt, est)
    assert a == pytest.approx(acc, abs=1e-6) and c == pytest.approx(comp_sym, abs=1e-6)
    a, c = chamfer_boundary_errors(gt, est, completeness="directed")
    assert a == pytest.approx(acc, abs=1e-6) and c == pytest.approx(comp_dir, abs=1e-6)


def test_chamfer_case_c_by_hand():
    # GT rows 10..19 see the predicted pixel (9, 8) at sqrt(9 + k^2), k = 1..10; capped at 10 when symmetric
    far = [math.sqrt(9 + k * k) for k in range(1, 11)]
    directed = (10 * 3.0 + sum(far)) / 20
    symmetric = (10 * 3.0 + 10 * 10.0 + 10 * 3.0 + sum(min(d, 10.0) for d in far)) / 40
    _, sym = chamfer_boundary_errors(GT_COL5, _C)
    _, dire = chamfer_boundary_errors(GT_COL5, _C, completeness="directed")
    assert sym == pytest.approx(symmetric) and dire == pytest.approx(directed)


def test_chamfer_case_f_no_gt_edge_is_nan():
    for completeness in ("symmetric", "directed"):
        a, c = chamfer_boundary_errors(np.zeros((20, 20)), _column_edges(20, 20, 8), completeness=completeness)
        assert math.isnan(a) and math.isnan(c)


def test_truncation_is_strict():
    # predicted edge exactly theta = 10 px away is not retained; at 9 px it is
    assert chamfer_boundary_errors(GT_COL5, _column_edges(20, 20, 15)) == (10.0, 10.0)
    assert chamfer_boundary_errors(GT_COL5, _column_edges(20, 20, 14))[0] == pytest.approx(9.0)


def test_missing_edge_raises_completeness_not_accuracy():
    half = _column_edges(20, 20, 8, slice(0, 10))
    acc_full, comp_full = chamfer_boundary_errors(GT_COL5, _column_edges(20, 20, 8))
    acc_half, comp_half = chamfer_boundary_errors(GT_COL5, half)
    assert acc_half == acc_full == 3.0
    assert comp_half > comp_full


# --- §5.5: full pipeline with Canny ---------------------------------------------------------
@pytest.mark.parametrize("shift", range(1, 10))
def test_shifted_step_gives_shift_as_accuracy(shift):
    acc, _ = depth_boundary_error(_column_edges(480, 640, 319 + shift), _step())
    assert shift - 1 <= acc <= shift


def test_step_at_gt_edge_is_nearly_zero_and_far_step_is_max():
    acc, comp = depth_boundary_error(_column_edges(480, 640, 319), _step())
    assert 0 <= acc < 0.05 and 0 <= comp < 0.05
    assert depth_boundary_error(_column_edges(480, 640, 330), _step()) == (10.0, 10.0)


@pytest.mark.skipif(not SKIMAGE_026, reason="exact §5.5 values were measured with scikit-image 0.26")
@pytest.mark.parametrize("thresholds", [(0.15, 0.30), OFFICIAL_THRESHOLDS])
def test_step_table_exact(thresholds):
    table = {0: (4 / 478, 0.011303, 0.014226), 1: (0.991632, 0.991649, 0.991667),
             3: (2.991632, 2.988101, 2.984586), 10: (9.0, 9.984689, 9.977775), 11: (10.0, 10.0, 10.0)}
    for s, (acc, sym, dire) in table.items():
        gt = _column_edges(480, 640, 319 + s)
        a, c = depth_boundary_error(gt, _step(), thresholds)
        assert a == pytest.approx(acc, abs=1e-6) and c == pytest.approx(sym, abs=1e-6), s
        a, c = depth_boundary_error(gt, _step(), thresholds, completeness="directed")
        assert a == pytest.approx(acc, abs=1e-6) and c == pytest.approx(dire, abs=1e-6), s


@pytest.mark.skipif(not SKIMAGE_026, reason="edge placement of §3.6 measured with scikit-image 0.26")
def test_canny_step_edge_placement():
    e = detect_depth_edges(_step(h=48, w=64, col=32))
    assert e[:, 31].sum() == 42 and e[:, 32].sum() == 4 and e.sum() == 46
    assert e[3:45, 31].all() and e[[1, 2, 45, 46], 32].all()


def test_no_edges_on_outer_frame_and_scale_invariance():
    p = np.random.default_rng(0).uniform(1, 5, size=(40, 50))
    e = detect_depth_edges(p)
    assert e.any()
    assert not (e[0].any() or e[-1].any() or e[:, 0].any() or e[:, -1].any())
    np.testing.assert_array_equal(detect_depth_edges(_step(48, 64, 32, 1, 2)),
                                  detect_depth_edges(_step(48, 64, 32, 2, 4)))


def test_zero_block_is_a_hole_not_an_edge():
    gt = _column_edges(480, 640, 322)
    holed = _step()
    holed[100:140, 100:140] = 0
    assert depth_boundary_error(gt, holed) == depth_boundary_error(gt, _step())
    nan_holed = _step()
    nan_holed[100:140, 100:140] = np.nan
    assert depth_boundary_error(gt, nan_holed) == depth_boundary_error(gt, _step())


def test_gt_all_zero_is_nan():
    acc, comp = depth_boundary_error(np.zeros((480, 640)), _step())
    assert math.isnan(acc) and math.isnan(comp)


def test_threshold_discrimination():
    p = np.zeros((40, 80))
    p[:, 20:] = 0.12
    p[:, 60:] = 1.0
    p += 1.0  # background must be > 0 (0 means missing); normalisation removes the offset
    small_step_cols = slice(17, 23)
    assert not detect_depth_edges(p, (0.15, 0.30))[:, small_step_cols].any()
    assert detect_depth_edges(p, (0.10, 0.20))[:, small_step_cols].any()
    assert detect_depth_edges(p, (0.15, 0.30))[:, 57:63].any()


def test_constant_or_empty_prediction_scores_theta():
    gt = _column_edges(48, 64, 30)
    assert depth_boundary_error(gt, np.full((48, 64), 3.0)) == (10.0, 10.0)
    assert depth_boundary_error(gt, np.zeros((48, 64))) == (10.0, 10.0)
    assert np.isnan(normalise_depth_for_edges(np.full((4, 4), 3.0))).all()


def test_torch_inputs_and_return_edges():
    gt = _column_edges(48, 64, 33)
    a = depth_boundary_error(gt, _step(48, 64, 32))
    acc, comp, edges = depth_boundary_error(torch.from_numpy(gt)[None, None],
                                            torch.from_numpy(_step(48, 64, 32)).float()[None], return_edges=True)
    assert (acc, comp) == pytest.approx(a)
    assert edges.shape == (48, 64) and edges.dtype == bool and edges.any()


def _reference_dbe(edges_gt, pred, lo, hi):
    """the book's appendix "Reference" as the TUM copy writes it (products of masks, symmetric truncated)."""
    if np.sum(edges_gt) == 0:
        return np.nan, np.nan
    p = pred.copy().astype("f")
    p[p == 0] = np.nan
    p = p - np.nanmin(p)
    p = p / np.nanmax(p)
    est = feature.canny(p, sigma=np.sqrt(2), low_threshold=lo, high_threshold=hi)
    d_gt = ndimage.distance_transform_edt(1 - edges_gt)
    d_est = ndimage.distance_transform_edt(1 - est)
    filt = est * (d_gt < 10.0)
    if np.sum(filt) == 0:
        return 10.0, 10.0
    acc = np.nansum(d_gt * filt) / np.nansum(filt)
    ch1 = d_gt * est
    ch1[ch1 > 10] = 10
    ch2 = d_est * edges_gt
    ch2[ch2 > 10] = 10
    return acc, np.nansum(ch1 + ch2) / (np.nansum(est) + np.nansum(edges_gt))


@pytest.mark.parametrize("thresholds", [(0.15, 0.30), (0.10, 0.20)])
def test_matches_reference_on_a_cluttered_scene(thresholds):
    rng = np.random.default_rng(3)
    pred = np.full((120, 160), 5.0)
    pred[30:90, 40:100] = 2.0
    pred[60:110, 120:150] = 3.5
    pred += rng.normal(0, 0.05, pred.shape)
    pred[5:15, 5:25] = 0
    gt_edges = np.zeros((120, 160), dtype=np.uint8)
    gt_edges[30:90, 42] = 1
    gt_edges[31, 40:100] = 1
    gt_edges[60:110, 118] = 1
    ours = depth_boundary_error(gt_edges, pred, thresholds)
    assert ours[0] < 10
    assert ours == pytest.approx(_reference_dbe(gt_edges, pred, *thresholds), rel=1e-12)


def test_bad_inputs_raise():
    gt = _column_edges(20, 20, 5)
    with pytest.raises(ValueError, match="edges_gt must be a binary"):
        depth_boundary_error(gt * 0.5, np.ones((20, 20)))
    with pytest.raises(ValueError, match="same shape"):
        depth_boundary_error(gt, np.ones((20, 21)))
    with pytest.raises(ValueError, match="inf"):
        depth_boundary_error(gt, np.where(gt, np.inf, 1.0))
    with pytest.raises(ValueError, match="negative"):
        depth_boundary_error(gt, -np.ones((20, 20)))
    with pytest.raises(ValueError, match="completeness"):
        chamfer_boundary_errors(gt, gt, completeness="both")
    with pytest.raises(ValueError, match="thresholds"):
        detect_depth_edges(np.ones((20, 20)), (0.3, 0.15))
    with pytest.raises(ValueError, match=r"shape \(H, W\)"):
        depth_boundary_error(gt, np.ones((2, 20, 20)))


# --- §5.6: directed depth error ----------------------------------------------------------------
def test_dde_example():
    d = directed_depth_error([2, 2, 4, 4], [2, 4, 2, 4])
    assert d == {"dde_0": 0.5, "dde_m": 0.25, "dde_p": 0.25}
    # asymmetric: pred near where gt is far counts as dde_m ("predicted too near")
    too_near = directed_depth_error(np.array([2.0, 4.0, 4.0]), torch.tensor([2.0, 2.0, 2.0]))
    assert too_near == pytest.approx({"dde_0": 1 / 3, "dde_m": 2 / 3, "dde_p": 0.0})


def test_dde_threshold_is_inclusive_near():
    # 3.0 counts as near (<= threshold) on both sides
    assert directed_depth_error([3.0], [3.0])["dde_0"] == 1.0
    assert directed_depth_error([3.0], [3.0001])["dde_p"] == 1.0


def test_dde_bad_inputs():
    with pytest.raises(ValueError, match="empty"):
        directed_depth_error([], [])
    with pytest.raises(ValueError, match="same shape"):
        directed_depth_error([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="pred has 1 NaN"):
        directed_depth_error([1.0, 2.0], [1.0, np.nan])


def test_boundary_ceiling_bench_the_sky_sets_what_the_truth_scores(tmp_path):
    """bench/boundary_ceiling.py: the true depth scored as a prediction on a street finds few edges
    while its sky is missing (a hole creates no edge), far more with the sky at the far limit, and
    fewer again with the sky farther (every jump a smaller share of the range); indoors, with no
    sky, the three agree. On 2 images of each world (recorded on 32: 117 / 366 / 224 edge pixels)."""
    import importlib.util
    from pathlib import Path

    from bore_depth_lite.data.cache import ensure_synthetic
    from bore_depth_lite.data.datasets import TestDataset
    from bore_depth_lite.data.generate import SyntheticConfig

    spec = importlib.util.spec_from_file_location(
        "boundary_ceiling", Path(__file__).resolve().parents[1] / "bench" / "boundary_ceiling.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    scores = {}
    for preset in ("driving", "indoor"):
        config = SyntheticConfig(preset=preset, height=96, width=160, seed=7, train_scenes=0, val_scenes=0,
                                 test_scenes=1, test_frames_per_scene=2)
        scores[preset] = bench.oracle_scores(TestDataset(ensure_synthetic(config, tmp_path / preset)))
    street = scores["driving"]
    missing, at_80, at_200 = (street[f"truth, sky {s}"] for s in ("missing", "at 80 m", "at 200 m"))
    assert missing["dbe_edges_pred"] < 0.6 * at_80["dbe_edges_pred"] and missing["dbe_comp"] > at_80["dbe_comp"] + 1
    assert at_200["dbe_edges_pred"] < 0.9 * at_80["dbe_edges_pred"] and at_200["dbe_comp"] > at_80["dbe_comp"]
    room = scores["indoor"]
    assert room["truth, sky missing"] == room["truth, sky at 80 m"] == room["truth, sky at 200 m"]
    assert room["truth, sky missing"]["dbe_edges_pred"] > 0.8 * room["truth, sky missing"]["dbe_edges_gt"]
