"""bench/pose_gaps.py: trajectory error and fitted scale of a PoseNet read at several frame gaps."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bore_depth_lite.trajectory import straight_line_path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("pose_gaps", ROOT / "bench" / "pose_gaps.py")
pose_gaps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pose_gaps)


class GapBlindPoseNet(nn.Module):
    """Reads the same forward motion, ``step`` units along the optical axis, from any pair of frames."""

    def __init__(self, step: float):
        super().__init__()
        self.step = step

    def forward(self, target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        vector = torch.zeros(target.shape[0], 6)
        vector[:, 2] = self.step
        return vector


def test_a_gap_blind_posenet_fits_the_path_with_a_scale_that_grows_with_the_gap():
    """True path: 1 m per frame straight ahead. A PoseNet that reads 0.5 units per pair whatever the
    gap has the path's shape exactly (ATE 0), but its fitted scale is 2 m per unit at gap 1 and 8 at
    gap 4: the number the bench reports to expose it. The straight-line baseline is exact here."""
    true_poses = straight_line_path(13)
    frames = torch.zeros(13, 3, 8, 8)
    out = pose_gaps.gap_errors(None, GapBlindPoseNet(0.5), frames, true_poses, gaps=(1, 2, 4))
    assert set(out) == {"1", "2", "4"}
    for gap, entry in out.items():
        assert entry["ate_m"] == pytest.approx(0.0, abs=1e-6)
        assert abs(entry["scale"]) == pytest.approx(2.0 * int(gap))
        assert entry["straight_line_ate_m"] == pytest.approx(0.0, abs=1e-6)


def test_a_gap_that_leaves_too_few_frames_is_refused():
    with pytest.raises(ValueError, match="--gaps: 6 leaves fewer than 3"):
        pose_gaps.gap_errors(None, GapBlindPoseNet(1.0), torch.zeros(7, 3, 8, 8), straight_line_path(7), gaps=(6,))


def test_bad_arguments_get_one_line_errors(capsys):
    with pytest.raises(SystemExit):
        pose_gaps.main(["--gaps", "0"])
    assert "--gaps: every gap must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pose_gaps.main(["--gaps", "1", "13"])
    assert "--gaps: a gap above 12 leaves fewer than 3" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pose_gaps.main(["--speed", "0"])
    assert "--speed: expected a number > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pose_gaps.main(["no_such.pt"])
    assert "checkpoint no_such.pt: no such file" in capsys.readouterr().err


def test_shipped_network_end_to_end(tmp_path):
    out = tmp_path / "gaps.json"
    result = pose_gaps.main(["--gaps", "1", "2", "--out", str(out)])
    assert out.is_file()
    assert list(result["networks"]) == ["tiny-driving (shipped)"]
    (entry,) = result["networks"].values()
    assert set(entry) == {f"seed_{s}" for s in pose_gaps.CLIP_SEEDS}
    for clip in entry.values():
        assert set(clip) == {"1", "2"} and all(np.isfinite(v["ate_m"]) and v["ate_m"] >= 0 for v in clip.values())
