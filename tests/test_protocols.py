"""bore_depth_lite.protocols: crops (§1.7, §2.4, §5.2), validity, scaling, clamp, resizing and the
full per-image pipeline against transcriptions of the reference evaluation code."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bore_depth_lite.boundary import depth_boundary_error
from bore_depth_lite.metrics import DEPTH_METRICS
from bore_depth_lite.reporting import aggregate_results
from bore_depth_lite.protocols import (PROTOCOLS, Protocol, crop_mask, evaluate_image, garg_crop_bounds,
                                       get_protocol, resize_prediction)

PRESETS = ("bore_kitti", "bore_nyu", "monodepth2_kitti", "monodepth2_kitti_benchmark", "ibims",
           "ibims_official", "synthetic_indoor", "synthetic_driving")


def test_presets_exist_and_describe_themselves():
    assert set(PRESETS) <= set(PROTOCOLS)
    for name in PRESETS:
        p = get_protocol(name)
        assert p.name == name and p.describe().startswith(name + " (")
    assert "median_lower" in PROTOCOLS["bore_kitti"].describe()
    assert "resize=disparity" in PROTOCOLS["monodepth2_kitti"].describe()
    with pytest.raises(ValueError, match="unknown protocol"):
        get_protocol("kitti")


# --- crops -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("w, h, expected", [
    (1242, 375, (153, 371, 44, 1197)),
    (1241, 376, (153, 372, 44, 1196)),
    (1238, 374, (152, 370, 44, 1193)),
    (1226, 370, (151, 366, 44, 1181)),
    (1224, 370, (151, 366, 43, 1180)),  # 0.03594771 * 1224 = 43.99999... truncates to 43
    (832, 256, (104, 253, 29, 802)),
    (640, 192, (78, 190, 23, 616)),
])
def test_garg_crop_table(w, h, expected):
    assert garg_crop_bounds(h, w) == expected
    mask = crop_mask((h, w), "garg")
    r0, r1, c0, c1 = expected
    assert mask.sum() == (r1 - r0) * (c1 - c0)
    assert mask[r0, c0] and mask[r1 - 1, c1 - 1] and not mask[r0 - 1, c0] and not mask[r1 - 1, c1]


def test_garg_crop_size_kitti():
    assert crop_mask((375, 1242), "garg").sum() == 218 * 1153 == 251354


def test_nyu_crops():
    assert crop_mask((480, 640), "nyu").sum() == 426 * 560 == 238560
    assert crop_mask((480, 640), "nyu_toolbox").sum() == 427 * 561 == 239547
    m = crop_mask((480, 640), "nyu")
    assert m[45, 41] and m[470, 600] and not m[44, 41] and not m[45, 40] and not m[471, 600]
    assert crop_mask((480, 640), "eigen_nyu").sum() == 440 * 592
    assert crop_mask((5, 7), "none").all()
    with pytest.raises(ValueError, match="480x640"):
        crop_mask((375, 1242), "nyu")
    with pytest.raises(ValueError, match="crop must be"):
        crop_mask((10, 10), "center")


# --- validity, scaling, clamp ----------------------------------------------------------------------
def _kitti_gt(values, pixels):
    gt = np.zeros((375, 1242))
    for v, (r, c) in zip(values, pixels):
        gt[r, c] = v
    return gt


INSIDE = [(200, 100), (200, 101), (250, 500), (300, 900), (360, 1100)]


def test_validity_bounds_are_strict():
    gt = _kitti_gt([0.1, 80.0, 5.0, 10.0], INSIDE)
    r = evaluate_image(np.ones((375, 1242)), gt, "bore_kitti")
    assert r["num_valid"] == 2
    gt_outside = _kitti_gt([5.0, 10.0, 20.0], [(10, 10), (200, 20), (250, 500)])  # two outside the crop
    assert evaluate_image(np.ones((375, 1242)), gt_outside, "bore_kitti")["num_valid"] == 1
    assert evaluate_image(np.ones((375, 1242)), gt_outside, "monodepth2_kitti_benchmark")["num_valid"] == 3


def test_median_rule_per_protocol():
    gt = _kitti_gt([1, 2, 3, 10], INSIDE)
    assert evaluate_image(np.ones((375, 1242)), gt, "bore_kitti")["scale"] == 2.0
    assert evaluate_image(np.ones((375, 1242)), gt, "monodepth2_kitti")["scale"] == 2.5


def test_clamp_per_protocol():
    gt = _kitti_gt([1.0, 1.0, 1.0], INSIDE)
    pred = np.ones((375, 1242))
    for (r, c), v in zip(INSIDE, [0.05, 1.0, 95.0]):
        pred[r, c] = v
    none_scale = {"scaling": "none"}
    bore = dataclasses.replace(PROTOCOLS["bore_kitti"], **none_scale)
    mono = dataclasses.replace(PROTOCOLS["monodepth2_kitti"], **none_scale)
    # after the clamp: bore p = [0.1, 1, 80]; monodepth2 p = [0.05, 1, 80]
    assert evaluate_image(pred, gt, bore)["abs_diff"] == pytest.approx((0.9 + 0 + 79) / 3)
    assert evaluate_image(pred, gt, mono)["abs_diff"] == pytest.approx((0.95 + 0 + 79) / 3)


# --- resizing ----------------------------------------------------------------------------------------
def _bilinear_half_pixel(img, out_h, out_w):
    """Independent numpy bilinear with half-pixel centres (cv2 INTER_LINEAR / align_corners=False)."""
    def axis(n_in, n_out):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
        return i0, np.minimum(i0 + 1, n_in - 1), src - i0
    r0, r1, wr = axis(img.shape[0], out_h)
    c0, c1, wc = axis(img.shape[1], out_w)
    top = img[r0][:, c0] * (1 - wc) + img[r0][:, c1] * wc
    bottom = img[r1][:, c0] * (1 - wc) + img[r1][:, c1] * wc
    return top * (1 - wr[:, None]) + bottom * wr[:, None]


def test_resize_matches_independent_bilinear():
    pred = np.random.default_rng(0).uniform(1, 50, size=(12, 40))
    np.testing.assert_allclose(resize_prediction(pred, (37, 124)), _bilinear_half_pixel(pred, 37, 124), rtol=1e-12)
    disp = resize_prediction(pred, (37, 124), "disparity")
    np.testing.assert_allclose(disp, 1 / _bilinear_half_pixel(1 / pred, 37, 124), rtol=1e-12)
    assert not np.allclose(disp, resize_prediction(pred, (37, 124)), rtol=1e-3)
    np.testing.assert_allclose(resize_prediction(np.full((4, 5), 2.0), (9, 11), "disparity"), 2.0, rtol=1e-15)


def test_resize_rejects_invalid_prediction():
    pred = np.ones((4, 4))
    pred[1, 1] = np.nan
    with pytest.raises(ValueError, match="1 NaN/inf or <= 0"):
        resize_prediction(pred, (8, 8))
    with pytest.raises(ValueError, match="quantity"):
        resize_prediction(np.ones((4, 4)), (8, 8), "log")


# --- full pipeline vs reference transcriptions -----------------------------------------------------
def _bore_compute_errors(gt, pred, dataset):
    """BoRe-Depth test.py compute_errors (the book's appendix "Reference"), batch of one, in float64."""
    _, h, w = gt.shape
    if pred.nelement() != gt.nelement():
        pred = F.interpolate(pred, [h, w], mode="bilinear", align_corners=False)
    pred = pred.view(1, h, w)
    crop = torch.zeros(h, w, dtype=torch.bool)
    if dataset == "kitti":
        crop[int(0.40810811 * h):int(0.99189189 * h), int(0.03594771 * w):int(0.96405229 * w)] = True
        max_depth = 80
    else:
        crop[45:471, 41:601] = True
        max_depth = 10
    g, p = gt[0], pred[0]
    valid = (g > 0.1) & (g < max_depth) & crop
    vg, vp = g[valid], p[valid]
    vp = (vp * torch.median(vg) / torch.median(vp)).clamp(0.1, max_depth)
    thresh = torch.max(vg / vp, vp / vg)
    d = vg - vp
    return {"abs_diff": d.abs().mean(), "abs_rel": (d.abs() / vg).mean(), "sq_rel": (d ** 2 / vg).mean(),
            "log10": (torch.log10(vg) - torch.log10(vp)).abs().mean(), "rmse": torch.sqrt((d ** 2).mean()),
            "rmse_log": torch.sqrt(((torch.log(vg) - torch.log(vp)) ** 2).mean()),
            "delta1": (thresh < 1.25).double().mean(), "delta2": (thresh < 1.25 ** 2).double().mean(),
            "delta3": (thresh < 1.25 ** 3).double().mean()}


def _sparse_gt(h, w, max_depth, seed):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.05, max_depth * 1.1, size=(h, w))
    gt[rng.random((h, w)) > 0.3] = 0
    return gt


@pytest.mark.parametrize("dataset, protocol, shape, max_depth", [
    ("kitti", "bore_kitti", (375, 1242), 80.0), ("nyu", "bore_nyu", (480, 640), 10.0)])
def test_bore_protocol_matches_released_compute_errors(dataset, protocol, shape, max_depth):
    gt = _sparse_gt(*shape, max_depth, seed=1)
    pred = np.random.default_rng(2).uniform(0.5, 30, size=(shape[0] // 4 + 1, shape[1] // 4 + 3))
    ref = _bore_compute_errors(torch.from_numpy(gt)[None], torch.from_numpy(pred)[None, None], dataset)
    ours = evaluate_image(torch.from_numpy(pred)[None, None], gt, protocol)
    assert ours["protocol"] == protocol
    for k in DEPTH_METRICS:
        assert ours[k] == pytest.approx(ref[k].item(), rel=1e-10), k


def test_monodepth2_protocol_matches_transcription():
    gt = _sparse_gt(375, 1242, 80.0, seed=4)
    pred = np.random.default_rng(5).uniform(1, 60, size=(64, 208))
    depth = 1 / _bilinear_half_pixel(1 / pred, 375, 1242)  # cv2.resize of the disparity, then 1/disp
    r0, r1, c0, c1 = (np.array([0.40810811 * 375, 0.99189189 * 375, 0.03594771 * 1242, 0.96405229 * 1242])
                      .astype(np.int32))
    mask = (gt > 1e-3) & (gt < 80)
    crop = np.zeros_like(mask)
    crop[r0:r1, c0:c1] = True
    g, p = gt[mask & crop], depth[mask & crop]
    p = np.clip(p * np.median(g) / np.median(p), 1e-3, 80)
    thresh = np.maximum(g / p, p / g)
    expected = {"abs_rel": np.mean(np.abs(g - p) / g), "sq_rel": np.mean((g - p) ** 2 / g),
                "rmse": np.sqrt(np.mean((g - p) ** 2)), "rmse_log": np.sqrt(np.mean((np.log(g) - np.log(p)) ** 2)),
                "delta1": (thresh < 1.25).mean(), "delta2": (thresh < 1.25 ** 2).mean(),
                "delta3": (thresh < 1.25 ** 3).mean()}
    ours = evaluate_image(pred, gt, "monodepth2_kitti")
    for k, v in expected.items():
        assert ours[k] == pytest.approx(v, rel=1e-10), k


def _ibims_scene(seed=0):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.5, 8, size=(48, 64))
    gt[:5] = 0  # missing laser returns
    pred = gt * rng.uniform(0.8, 1.25, size=gt.shape)
    mask_invalid = np.ones_like(gt)
    mask_invalid[10:14] = 0
    mask_transp = np.ones_like(gt)
    mask_transp[:, :6] = 0
    return gt, pred, mask_invalid, mask_transp


def test_ibims_official_matches_script():
    gt, pred, mask_invalid, mask_transp = _ibims_scene()
    pred[20, 20] = np.nan  # the script turns NaN into 0, which excludes the pixel
    pred[21, 21] = 0.0
    valid = mask_transp * mask_invalid * (gt != 0) * (np.nan_to_num(pred) != 0)
    g = (gt * valid)[valid != 0]
    p = (np.nan_to_num(pred) * valid)[valid != 0]
    thresh = np.maximum(g / p, p / g)
    expected = {"abs_rel": np.mean(np.abs(g - p) / g), "sq_rel": np.mean((g - p) ** 2 / g),
                "rmse": np.sqrt(np.mean((g - p) ** 2)), "log10": np.mean(np.abs(np.log10(g) - np.log10(p))),
                "delta1": (thresh < 1.25).mean(), "delta2": (thresh < 1.25 ** 2).mean(),
                "delta3": (thresh < 1.25 ** 3).mean(),
                "dde_0": np.mean((p <= 3) == (g <= 3)), "dde_m": np.mean((p <= 3) & (g > 3)),
                "dde_p": np.mean((p > 3) & (g <= 3))}
    ours = evaluate_image(pred, gt, "ibims_official", valid_masks=(mask_invalid, mask_transp))
    assert ours["num_valid"] == g.size and ours["scale"] == 1.0
    for k, v in expected.items():
        assert ours[k] == pytest.approx(v, rel=1e-12), k


def test_ibims_median_scaling_removes_global_scale_and_needs_masks():
    gt, pred, mask_invalid, mask_transp = _ibims_scene(1)
    masks = (mask_invalid, mask_transp)
    a = evaluate_image(pred, gt, "ibims", valid_masks=masks)
    b = evaluate_image(7.0 * pred, gt, "ibims", valid_masks=masks)
    for k in DEPTH_METRICS:
        assert a[k] == pytest.approx(b[k], rel=1e-12)
    assert evaluate_image(7.0 * pred, gt, "ibims_official", valid_masks=masks)["abs_rel"] > 5
    with pytest.raises(ValueError, match="needs valid_masks"):
        evaluate_image(pred, gt, "ibims")


def test_ibims_dde_example():
    gt = np.array([[2.0, 2.0, 4.0, 4.0]])
    pred = np.array([[2.0, 4.0, 2.0, 4.0]])
    r = evaluate_image(pred, gt, "ibims_official", valid_masks=(np.ones((1, 4)),))
    assert (r["dde_0"], r["dde_m"], r["dde_p"]) == (0.5, 0.25, 0.25)
    masked = evaluate_image(pred, gt, "ibims_official", valid_masks=(np.array([[1, 1, 0, 1]]),))
    assert masked["num_valid"] == 3 and masked["dde_m"] == 0.0


def test_boundary_error_in_pipeline_uses_protocol_setting():
    gt = np.full((48, 64), 3.0)
    edges = np.zeros((48, 64), dtype=bool)
    edges[:, 33] = True
    pred = np.full((24, 32), 2.0)
    pred[:, 16:] = 4.0
    r = evaluate_image(pred, gt, "synthetic_indoor", edges_gt=edges)
    full = resize_prediction(pred, (48, 64))
    assert (r["dbe_acc"], r["dbe_comp"]) == depth_boundary_error(edges, full)
    directed = dataclasses.replace(PROTOCOLS["synthetic_indoor"], dbe_completeness="directed")
    assert evaluate_image(pred, gt, directed, edges_gt=edges)["dbe_comp"] == depth_boundary_error(
        edges, full, completeness="directed")[1]
    assert "dbe_acc" not in evaluate_image(pred, gt, "synthetic_indoor")
    no_edges = evaluate_image(pred, gt, "synthetic_indoor", edges_gt=np.zeros((48, 64)))
    assert math.isnan(no_edges["dbe_acc"])


def test_every_boundary_error_comes_with_edge_counts_and_boundary_f1():
    """A smooth blob finds no edge: its ε_acc is undefined and its counts and SI boundary F1 say why;
    the true depth finds every edge (F1 = 1); the counts are those of the edge maps compared."""
    from bore_depth_lite.boundary import detect_depth_edges

    gt = np.full((48, 64), 2.0)
    gt[:, 32:] = 6.0                                     # one occluding contour
    edges = np.zeros((48, 64), dtype=bool)
    edges[:, 31:33] = True
    exact = evaluate_image(gt, gt, "synthetic_indoor", edges_gt=edges)
    assert exact["boundary_f1"] == 1.0
    assert exact["dbe_edges_gt"] == 96.0 and exact["dbe_edges_pred"] == float(detect_depth_edges(gt).sum()) > 0
    blob = 2.0 + 4.0 * np.linspace(0, 1, 64)[None].repeat(48, 0)   # a smooth ramp: no contour anywhere
    smooth = evaluate_image(blob, gt, "synthetic_indoor", edges_gt=edges)
    assert smooth["dbe_edges_pred"] < exact["dbe_edges_pred"] and smooth["boundary_f1"] == 0.0
    scaled = evaluate_image(3.7 * gt, gt, "synthetic_indoor", edges_gt=edges)   # scale-invariant
    assert scaled["boundary_f1"] == 1.0
    from bore_depth_lite.reporting import aggregate_results, format_results_table

    table = format_results_table(aggregate_results([exact, smooth]))
    assert "SI-bF1" not in table and "ε_acc" in table                  # diagnostics only on request
    wide = format_results_table(aggregate_results([exact, smooth]), metrics=["dbe_acc", "dbe_edges_pred", "boundary_f1"])
    assert "edges pred " in wide and "SI-bF1↑" in wide


# --- edge cases ---------------------------------------------------------------------------------------
def test_empty_valid_mask_raises_or_records_nan():
    gt = np.zeros((8, 8))
    with pytest.raises(ValueError, match="no valid pixel"):
        evaluate_image(np.ones((8, 8)), gt, "synthetic_indoor")
    r = evaluate_image(np.ones((8, 8)), gt, "synthetic_indoor", on_empty="nan")
    assert r["num_valid"] == 0 and all(math.isnan(r[k]) for k in DEPTH_METRICS)
    good = evaluate_image(np.ones((8, 8)), np.full((8, 8), 2.0), "synthetic_indoor")
    agg = aggregate_results([r, good], nan_skipped="all")
    assert agg.means["abs_rel"] == 0.0 and agg.num_nan["abs_rel"] == 1
    with pytest.raises(ValueError, match="on_empty"):
        evaluate_image(np.ones((8, 8)), gt, "synthetic_indoor", on_empty="skip")


def test_nonfinite_gt_is_missing_but_bad_prediction_raises():
    gt = np.full((6, 6), 2.0)
    gt[0, 0], gt[0, 1], gt[0, 2] = np.nan, np.inf, -1.0
    assert evaluate_image(np.ones((6, 6)), gt, "synthetic_indoor")["num_valid"] == 33
    pred = np.ones((6, 6))
    pred[3, 3] = np.nan
    with pytest.raises(ValueError, match="pred has 1 NaN/inf or <= 0 value"):
        evaluate_image(pred, np.full((6, 6), 2.0), "synthetic_indoor")
    pred[3, 3] = 0.0
    with pytest.raises(ValueError, match="pred has 1 NaN/inf or <= 0 value"):
        evaluate_image(pred, np.full((6, 6), 2.0), "synthetic_indoor")
    gt_hole = np.full((6, 6), 2.0)
    gt_hole[3, 3] = 0.0  # a bad prediction on a missing-GT pixel is harmless
    assert evaluate_image(pred, gt_hole, "synthetic_indoor")["num_valid"] == 35


def test_shape_errors_name_the_argument():
    gt = np.full((6, 6), 2.0)
    with pytest.raises(ValueError, match=r"valid_masks\[1\] has shape \(6, 5\)"):
        evaluate_image(np.ones((6, 6)), gt, "ibims", valid_masks=(np.ones((6, 6)), np.ones((6, 5))))
    with pytest.raises(ValueError, match=r"edges_gt has shape \(5, 6\)"):
        evaluate_image(np.ones((6, 6)), gt, "synthetic_indoor", edges_gt=np.zeros((5, 6)))
    with pytest.raises(ValueError, match=r"gt must be one image"):
        evaluate_image(np.ones((6, 6)), np.ones((2, 6, 6)), "synthetic_indoor")
    with pytest.raises(ValueError, match=r"pred must be one image"):
        evaluate_image(np.ones((2, 1, 6, 6)), gt, "synthetic_indoor")


def test_custom_protocol_runs():
    custom = Protocol("lstsq_demo", scaling="lstsq", min_depth=0.0)
    r = evaluate_image(np.full((4, 4), 0.5), np.full((4, 4), 2.0), custom)
    assert r["protocol"] == "lstsq_demo" and r["scale"] == pytest.approx(4.0) and r["abs_rel"] == pytest.approx(0)
