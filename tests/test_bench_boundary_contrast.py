"""bench/boundary_contrast.py: a boundary F1 near 0 from edges in place but too flat, told apart from missing ones."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("boundary_contrast", ROOT / "bench" / "boundary_contrast.py")
boundary_contrast = importlib.util.module_from_spec(spec)
spec.loader.exec_module(boundary_contrast)


def _step(near: float, far: float, width: int = 8) -> np.ndarray:
    depth = np.full((8, width), near)
    depth[:, width // 2:] = far
    return depth


def test_a_flattened_step_has_no_contour_and_the_power_restores_it():
    """A 10 % step (1 m | 1.1 m) is a contour at the thresholds 5, 7 and 9 %. Predicted as gt**0.5 it is a
    4.9 % step, below every threshold: F1 0 and half the contrast. Raised to the power 2 it is the truth again."""
    gt = _step(1.0, 1.1)
    valid = np.ones_like(gt, dtype=bool)
    flat = [(gt, gt ** 0.5, valid)]
    assert boundary_contrast.contrast_and_f1(flat) == {"boundary_f1": 0.0, "log_spread_ratio": 0.5}
    assert boundary_contrast.contrast_and_f1(flat, power=2.0) == {"boundary_f1": 1.0, "log_spread_ratio": 1.0}


def test_a_soft_edge_loses_f1_but_not_contrast():
    """The truth blurred by 2 px keeps its range of depths (far from the edge, on a wide image) and loses
    most of its one-pixel jumps."""
    gt = _step(1.0, 2.0, width=64)
    soft = boundary_contrast.stand_ins()["truth, 2 px blur"](gt)
    out = boundary_contrast.contrast_and_f1([(gt, soft, np.ones_like(gt, dtype=bool))])
    assert out["log_spread_ratio"] > 0.8 and out["boundary_f1"] < 0.5


def test_the_shipped_indoor_network_scores_its_recorded_f1(tmp_path):
    """pred**1 reproduces the boundary F1 that make_pretrained.py's evaluation recorded (another code path),
    and the contrast grows with the power exactly."""
    from bore_depth_lite.pretrained import pretrained_info

    out = tmp_path / "c.json"
    result = boundary_contrast.main(["--world", "indoor", "--networks", "tiny-indoor", "--powers", "1", "2",
                                     "--out", str(out)])
    assert json.loads(out.read_text()) == result
    entry = result["networks"]["tiny-indoor"]
    assert entry["pred**1"]["boundary_f1"] == pytest.approx(pretrained_info("tiny-indoor")["metrics"]["boundary_f1"], abs=2e-3)
    assert entry["pred**2"]["log_spread_ratio"] == pytest.approx(2 * entry["pred**1"]["log_spread_ratio"], abs=2e-3)
    assert result["stand_ins"]["truth, 0.5 px blur"]["boundary_f1"] > result["stand_ins"]["truth, 2 px blur"]["boundary_f1"]
    with pytest.raises(SystemExit):   # never overwrites an earlier result unasked
        boundary_contrast.main(["--world", "indoor", "--networks", "tiny-indoor", "--out", str(out)])


@pytest.mark.parametrize("args, message", [(["--networks", "no-such-net"], "neither a shipped network"),
                                           (["--powers", "0"], "positive exponents")])
def test_bad_arguments_are_refused(capsys, args, message):
    with pytest.raises(SystemExit):
        boundary_contrast.main(args)
    assert message in capsys.readouterr().err
