"""bore_depth_lite.metrics: the hand-computable cases of the book's appendix "Reference", scaling, aggregation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bore_depth_lite.metrics import DEPTH_METRICS, compute_depth_metrics, compute_scale, median_lower, scale_and_clamp
from bore_depth_lite.reporting import AggregateResult, aggregate_results, format_results_table


def test_case_1_hand_computed():
    m = compute_depth_metrics([1, 1, 1, 1], [1.2, 1.5, 1.9, 3.0])
    assert m["abs_rel"] == pytest.approx(0.9)
    assert m["sq_rel"] == pytest.approx(1.275)
    assert m["rmse"] == pytest.approx(math.sqrt(1.275))
    assert m["rmse"] == pytest.approx(1.129159, abs=1e-6)
    assert m["rmse_log"] == pytest.approx(0.673901, abs=1e-6)
    assert m["log10"] == pytest.approx(0.252787, abs=1e-6)
    assert (m["delta1"], m["delta2"], m["delta3"]) == (0.25, 0.5, 0.75)
    assert m["abs_diff"] == pytest.approx(0.9)


def test_case_2_hand_computed():
    m = compute_depth_metrics(np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.0, 2.0]))
    assert m["abs_rel"] == pytest.approx(0.5)
    assert m["sq_rel"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert m["rmse"] == pytest.approx(1.290994, abs=1e-6)
    assert m["rmse_log"] == pytest.approx(math.log(2) * math.sqrt(2 / 3))
    assert m["rmse_log"] == pytest.approx(0.565952, abs=1e-6)
    assert m["log10"] == pytest.approx(0.200687, abs=1e-6)
    for k in ("delta1", "delta2", "delta3"):
        assert m[k] == pytest.approx(1 / 3)


def test_delta_thresholds_are_strict():
    # ratio exactly 1.25**k does not count (strict <); 1.25**2 = 1.5625 and 1.25**3 = 1.953125 are exact in binary
    m = compute_depth_metrics([1.0, 1.0, 1.0], [1.25, 1.5625, 1.953125])
    assert (m["delta1"], m["delta2"], m["delta3"]) == (0.0, 1 / 3, 2 / 3)


def test_metrics_accept_torch_and_match_numpy():
    rng = np.random.default_rng(0)
    g = rng.uniform(0.5, 10, size=(7, 9))
    p = g * rng.uniform(0.7, 1.4, size=(7, 9))
    a = compute_depth_metrics(g, p)
    b = compute_depth_metrics(torch.from_numpy(g).float(), torch.from_numpy(p).float())
    assert a.keys() == b.keys() == set(DEPTH_METRICS)
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-5)


def test_per_image_mean_not_pooled():
    results = [dict(compute_depth_metrics([1, 1], [3, 3]), protocol="t"),
               dict(compute_depth_metrics([1, 1], [1, 1]), protocol="t")]
    agg = aggregate_results(results)
    assert agg.means["rmse"] == pytest.approx(1.0)
    pooled = compute_depth_metrics([1, 1, 1, 1], [3, 3, 1, 1])["rmse"]
    assert pooled == pytest.approx(math.sqrt(2))
    assert agg.protocol == "t" and agg.num_images == 2


def test_median_rules():
    g, p = [1, 2, 3, 10], [1, 1, 1, 1]
    assert compute_scale(g, p, "median_numpy") == 2.5
    assert compute_scale(g, p, "median_lower") == 2.0
    assert compute_scale(g, p, "none") == 1.0


@pytest.mark.parametrize("n", [1, 2, 5, 6, 101, 1000])
def test_median_lower_matches_torch_median(n):
    x = np.random.default_rng(n).normal(size=n)
    assert median_lower(x) == torch.median(torch.from_numpy(x)).item()


def test_lstsq_scale_matches_numpy_lstsq():
    rng = np.random.default_rng(1)
    p = rng.uniform(1, 5, 50)
    g = 3.0 * p + rng.normal(0, 0.1, 50)
    expected = np.linalg.lstsq(p[:, None], g, rcond=None)[0][0]
    assert compute_scale(g, p, "lstsq") == pytest.approx(expected, rel=1e-12)
    assert compute_scale(2 * p, p, "lstsq") == pytest.approx(2.0)


def test_clamp_after_scaling():
    g = np.array([1.0, 1.0, 1.0])
    p = np.array([0.05, 1.0, 95.0])
    bore, _ = scale_and_clamp(g, p, "none", (0.1, 80.0))
    mono, _ = scale_and_clamp(g, p, "none", (1e-3, 80.0))
    np.testing.assert_array_equal(bore, [0.1, 1.0, 80.0])
    np.testing.assert_array_equal(mono, [0.05, 1.0, 80.0])
    scaled, s = scale_and_clamp([2.0, 4.0, 6.0], [1.0, 2.0, 3.0], "median_lower", (0.1, 5.0))
    assert s == 2.0
    np.testing.assert_array_equal(scaled, [2.0, 4.0, 5.0])


@pytest.mark.parametrize("gt, pred, match", [
    ([1.0, 2.0], [1.0], "same shape"),
    ([], [], "empty"),
    ([1.0, np.nan], [1.0, 1.0], "gt has 1 NaN/inf"),
    ([1.0, 1.0], [np.inf, 1.0], "pred has 1 NaN/inf"),
    ([0.0, 1.0], [1.0, 1.0], "gt has 1 value"),
    ([1.0, 1.0], [1.0, -2.0], "pred has 1 value"),
])
def test_bad_inputs_raise(gt, pred, match):
    with pytest.raises(ValueError, match=match):
        compute_depth_metrics(gt, pred)


def test_bad_scaling_and_clamp_raise():
    with pytest.raises(ValueError, match="scaling must be"):
        compute_scale([1.0], [1.0], "mean")
    with pytest.raises(ValueError, match="clamp"):
        scale_and_clamp([1.0], [1.0], "none", (5.0, 1.0))
    with pytest.raises(ValueError, match="empty"):
        median_lower([])


def _result(protocol="bore_kitti", acc=1.0, rmse=1.0):
    return {"protocol": protocol, **compute_depth_metrics([1.0], [rmse + 1.0]), "dbe_acc": acc, "dbe_comp": acc}


def test_aggregate_nanmean_for_boundary_and_counts():
    agg = aggregate_results([_result(acc=2.0), _result(acc=float("nan")), _result(acc=4.0)])
    assert agg.means["dbe_acc"] == pytest.approx(3.0)
    assert agg.num_nan["dbe_acc"] == 1 and agg.num_nan["rmse"] == 0
    assert agg.means["rmse"] == pytest.approx(1.0)
    d = agg.to_dict()
    assert d["protocol"] == "bore_kitti" and d["num_nan"]["dbe_comp"] == 1


def test_aggregate_plain_mean_propagates_nan_unless_asked():
    bad = _result()
    bad["rmse"] = float("nan")
    agg = aggregate_results([_result(), bad])
    assert math.isnan(agg.means["rmse"]) and agg.num_nan["rmse"] == 1
    agg = aggregate_results([_result(), bad], nan_skipped="all")
    assert agg.means["rmse"] == pytest.approx(1.0) and agg.num_nan["rmse"] == 1


def test_aggregate_all_nan_boundary_is_nan():
    agg = aggregate_results([_result(acc=float("nan"))] * 2)
    assert math.isnan(agg.means["dbe_acc"]) and agg.num_nan["dbe_acc"] == 2


def test_aggregate_errors():
    with pytest.raises(ValueError, match="empty"):
        aggregate_results([])
    with pytest.raises(ValueError, match="mix protocols"):
        aggregate_results([_result("bore_kitti"), _result("bore_nyu")])
    no_name = compute_depth_metrics([1.0], [1.0])
    with pytest.raises(ValueError, match="protocol name"):
        aggregate_results([no_name])
    assert aggregate_results([no_name], protocol="x").protocol == "x"
    partial = _result()
    del partial["dbe_acc"]
    with pytest.raises(ValueError, match=r"results\[1\]"):
        aggregate_results([_result(), partial])


def test_format_markdown_names_protocol_and_values():
    agg = aggregate_results([_result(acc=2.0), _result(acc=float("nan"))])
    text = format_results_table({"ours": agg}, metrics=["abs_rel", "delta1", "dbe_acc"])
    lines = text.splitlines()
    assert lines[0].startswith("Protocol: bore_kitti (crop=garg, 0.1 < gt < 80")
    assert lines[2] == "| model | images | AbsRel↓ | δ<1.25↑ | ε_acc↓ |"
    assert lines[3] == "|---|---|---|---|---|"
    assert lines[4] == "| ours | 2 | 1.000 | 0.000 | 2.000 |"  # g = 1, p = 2
    assert "ε_acc NaN for 1/2 images (skipped by nanmean)" in text


def test_format_text_and_mixed_protocols():
    rows = {"a": aggregate_results([_result("bore_kitti")]), "b": aggregate_results([_result("bore_nyu")])}
    text = format_results_table(rows, metrics=["rmse"], style="text", digits=2)
    lines = text.splitlines()
    assert "bore_kitti" in lines[0] and "bore_nyu" in lines[0]
    assert lines[2].split() == ["model", "protocol", "images", "RMSE↓"]
    assert lines[3].split() == ["a", "bore_kitti", "1", "1.00"]
    single = AggregateResult("custom", 1, {"rmse": 0.5}, {"rmse": 0})
    assert format_results_table(single).splitlines()[0] == "Protocol: custom"
    with pytest.raises(ValueError, match="unknown"):
        format_results_table(single, metrics=["psnr"])
    with pytest.raises(ValueError, match="style"):
        format_results_table(single, style="latex")
