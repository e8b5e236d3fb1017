"""bench/error_by_depth.py: error by true distance and class, on the pixels AbsRel and δ1 are computed on."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("error_by_depth", ROOT / "bench" / "error_by_depth.py")
error_by_depth = importlib.util.module_from_spec(spec)
spec.loader.exec_module(error_by_depth)


def test_group_errors_hand_computed_case():
    """Group 0: ratios 1 and e^0.5 → bias 0.25, δ1 1/2 (e^0.5 ≈ 1.65 > 1.25), AbsRel (e^0.5 − 1)/2;
    group 1: one exact pixel; group 2 has no pixel and is omitted; group 7 is not asked for."""
    log_ratio = np.array([0.0, 0.5, 0.0, 3.0])
    groups = np.array([0, 0, 1, 7])
    out = error_by_depth.group_errors(log_ratio, groups, {0: "near", 1: "far", 2: "none"})
    assert set(out) == {"near", "far"}
    assert out["near"] == pytest.approx({"share": 0.5, "log_bias": 0.25, "delta1": 0.5,
                                         "abs_rel": round((math.exp(0.5) - 1) / 2, 4)})
    assert out["far"] == {"share": 0.25, "log_bias": 0.0, "delta1": 1.0, "abs_rel": 0.0}
    with pytest.raises(ValueError, match="same shape"):
        error_by_depth.group_errors(log_ratio, groups[:3], {0: "near"})


def test_a_depth_compressed_with_distance_shows_a_falling_bias():
    """pred = gt^0.5 (after median scaling: too far near, too near far): the bias falls bin to bin."""
    gt = np.geomspace(1, 64, 1000)
    log_ratio = np.log(np.sqrt(gt) * np.median(gt / np.sqrt(gt)) / gt)
    out = error_by_depth.group_errors(log_ratio, np.digitize(gt, [1, 4, 16, 65]) - 1, {0: "1-4", 1: "4-16", 2: "16-64"})
    biases = [out[k]["log_bias"] for k in ("1-4", "4-16", "16-64")]
    assert biases[0] > 0 > biases[2] and biases == sorted(biases, reverse=True)


def test_the_shipped_network_scores_as_its_record_says(tmp_path):
    """The overall AbsRel and δ1 over the split's pixels equal the recorded held-out metrics of the shipped
    tiny network (make_pretrained.py's evaluation, another code path), and the groups cover every pixel."""
    from bore_depth_lite.pretrained import pretrained_info

    out = tmp_path / "e.json"
    result = error_by_depth.main(["--networks", "tiny-driving", "--out", str(out)])
    assert json.loads(out.read_text()) == result
    info = pretrained_info("tiny-driving")
    for split, recorded in (("seed 7", info["metrics"]), ("seed 29", info["fresh"]["trained"])):
        entry = result["networks"]["tiny-driving"][split]
        # the record averages per image, this pools pixels: equal only for equal valid counts per image
        assert entry["overall"]["abs_rel"] == pytest.approx(recorded["abs_rel"], abs=0.01)
        assert entry["overall"]["delta1"] == pytest.approx(recorded["delta1"], abs=0.02)
        assert entry["raw_depth"]["units_per_metre"] > 0 and 0 <= entry["raw_depth"]["near_ceiling_share"] <= 1
        for groups in (entry["by_true_depth"], entry["by_class"]):
            assert sum(g["share"] for g in groups.values()) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(SystemExit):   # never overwrites an earlier result unasked
        error_by_depth.main(["--networks", "tiny-driving", "--out", str(out)])


def test_refuses_what_is_neither_a_network_nor_a_file(capsys):
    with pytest.raises(SystemExit):
        error_by_depth.main(["--networks", "no-such-net"])
    assert "neither a shipped network" in capsys.readouterr().err


@pytest.mark.parametrize("units", [10.0, 60.0])
def test_raw_depth_reports_the_chosen_scale_and_the_pixels_near_the_ceiling(units):
    """A constant depth of `units` everywhere: units per metre is units / median(gt) image by image, and
    every pixel is beyond half the 100-unit ceiling exactly when units > 50."""
    import sys
    from dataclasses import replace

    import torch

    sys.path.insert(0, str(ROOT / "data_scripts"))
    import make_pretrained as mp
    from bore_depth_lite.evaluate import ConstantDepth
    from bore_depth_lite.protocols import get_protocol, scored_pixels

    split = mp.test_split(replace(mp.TEST_SPLIT, test_scenes=1, test_frames_per_scene=3))

    class Constant(torch.nn.Module):
        def forward(self, image):
            return units * ConstantDepth()(image)

    *_, raw = error_by_depth.scaled_log_ratios(Constant(), split, "synthetic_driving")
    proto = get_protocol("synthetic_driving")
    medians = [np.median(g[scored_pixels(g, proto)]) for g in (split[i]["depth"][0].numpy() for i in range(len(split)))]
    assert raw["units_per_metre"] == pytest.approx(float(np.median([units / m for m in medians])), rel=1e-3)
    assert raw["near_ceiling_share"] == (1.0 if units > 50 else 0.0)
    assert raw["log_spread_ratio"] == 0.0          # a constant has no contrast


@pytest.mark.parametrize("power", [0.5, 1.0, 2.0])
def test_log_spread_ratio_is_the_contrast_of_the_prediction_against_the_truth(power):
    """A network that predicts c * gt**power (the split's own truth, image by image) has log(pred) =
    log c + power * log(gt): its log-depth spread is power times the truth's, whatever c."""
    import sys
    from dataclasses import replace

    import torch

    sys.path.insert(0, str(ROOT / "data_scripts"))
    import make_pretrained as mp

    split = mp.test_split(replace(mp.TEST_SPLIT, test_scenes=1, test_frames_per_scene=3))
    truths = iter([split[i]["depth"][0] for i in range(len(split))])

    class TruthToThePower(torch.nn.Module):      # scaled_log_ratios asks for the images in order
        def forward(self, image):
            gt = next(truths)
            return (7.0 * torch.where(gt > 0, gt, 80.0) ** power)[None, None]

    *_, raw = error_by_depth.scaled_log_ratios(TruthToThePower(), split, "synthetic_driving")
    assert raw["log_spread_ratio"] == pytest.approx(power, rel=1e-3)
