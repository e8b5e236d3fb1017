import numpy as np
import pytest
import torch

from bore_depth_lite.data.synthetic import render_sequence
from bore_depth_lite.trajectory import (align_scale, ate_rmse, chain_relative_poses, predict_trajectory,
                                       translation_to_depth_units)


def test_chaining_the_true_relative_poses_recovers_the_path():
    seq = render_sequence("driving", num_frames=6, height=32, width=32, seed=2)
    rel = np.stack([np.linalg.inv(seq.poses[t + 1]) @ seq.poses[t] for t in range(5)])   # T_{t+1<-t}
    path = chain_relative_poses(rel)
    expected = np.linalg.inv(seq.poses[0]) @ seq.poses
    np.testing.assert_allclose(path, expected, atol=1e-9)
    err, scale = ate_rmse(path, seq.poses)
    assert err < 1e-9 and scale == pytest.approx(1.0)


def test_scale_is_recovered_and_errors_are_in_metres():
    true = np.zeros((4, 4, 4)) + np.eye(4)
    true[:, 0, 3] = [0.0, 1.0, 2.0, 3.0]
    pred = true.copy()
    pred[:, 0, 3] *= 0.5                    # right shape, half the scale: no error after alignment
    err, scale = ate_rmse(pred, true)
    assert scale == pytest.approx(2.0) and err == pytest.approx(0.0, abs=1e-12)
    pred[3, 1, 3] = 0.5                     # one camera off the line: s = p·t / p·p = 7 / 3.75
    err, scale = ate_rmse(pred, true)
    s = 7 / 3.75
    residuals = [0.5 * s - 1, s - 2, 1.5 * s - 3, 0.5 * s]
    assert scale == pytest.approx(s) and err == pytest.approx(np.sqrt(np.sum(np.square(residuals)) / 4))
    with pytest.raises(ValueError, match="does not move"):
        align_scale(np.zeros((3, 3)), np.ones((3, 3)))


class _ConstantPose(torch.nn.Module):
    """A PoseNet stand-in: one unit forward (z) for every pair, no rotation."""

    def __init__(self, translation_unit: str):
        super().__init__()
        self.translation_unit = translation_unit

    def forward(self, target, source):
        return torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]]).repeat(target.shape[0], 1)


class _DepthOfFrame(torch.nn.Module):
    """Depth 2 + the frame's index everywhere (read off the image's first pixel)."""

    def forward(self, x):
        return torch.ones_like(x[:, :1]) * (2.0 + x[:, :1, :1, :1].round())


def test_translation_in_mean_depth_units_is_multiplied_by_the_targets_mean_depth():
    vectors = torch.tensor([[0.5, 0.0, 1.0, 0.1, 0.2, 0.3], [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]])
    depth = torch.stack([torch.full((1, 4, 4), 3.0), torch.arange(16.0).view(1, 4, 4)])   # means 3 and 7.5
    out = translation_to_depth_units(vectors, _ConstantPose("mean_depth"), depth)
    assert torch.equal(out, torch.tensor([[1.5, 0.0, 3.0, 0.1, 0.2, 0.3], [7.5, 7.5, 7.5, 0.0, 0.0, 0.0]]))
    assert translation_to_depth_units(vectors, _ConstantPose("depth"), None) is vectors
    with pytest.raises(ValueError, match="mean depth .* pass the DepthNet"):
        translation_to_depth_units(vectors, _ConstantPose("mean_depth"), None)


@pytest.mark.parametrize("order", ["forward", "backward"])
def test_a_mean_depth_posenets_path_is_in_depth_units(order):
    # frames whose ImageNet-normalised first pixel reads 0, 1, 2, 3 (see _DepthOfFrame)
    from bore_depth_lite.preprocess import normalize_imagenet

    frames = torch.rand(4, 3, 8, 8)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    for i in range(4):
        frames[i, :, 0, 0] = mean + std * i
    assert normalize_imagenet(frames)[:, 0, 0, 0].round().tolist() == [0, 1, 2, 3]
    path = predict_trajectory(_ConstantPose("mean_depth"), frames, order=order, depth_net=_DepthOfFrame())
    steps = np.abs(np.diff(path[:, 2, 3]))
    # forward: targets are frames 0..2 (depth 2, 3, 4); backward: frames 1..3 (depth 3, 4, 5)
    assert np.allclose(steps, [2, 3, 4] if order == "forward" else [3, 4, 5])
    plain = predict_trajectory(_ConstantPose("depth"), frames, order=order)
    assert np.allclose(np.abs(np.diff(plain[:, 2, 3])), 1)
    with pytest.raises(ValueError, match="pass the DepthNet"):
        predict_trajectory(_ConstantPose("mean_depth"), frames, order=order)


def test_the_translation_unit_travels_with_the_checkpoint(tmp_path):
    from bore_depth_lite.checkpoint import load_posenet, save_checkpoint
    from bore_depth_lite.models import PoseNet

    for unit in ("depth", "mean_depth"):
        save_checkpoint(tmp_path / f"{unit}.pt", pose_net=PoseNet("small", translation_unit=unit))
        assert load_posenet(tmp_path / f"{unit}.pt").translation_unit == unit
    with pytest.raises(ValueError, match="unknown translation_unit 'metres'"):
        PoseNet("small", translation_unit="metres")


def test_straight_line_path_moves_one_unit_per_frame_along_the_optical_axis():
    from bore_depth_lite.trajectory import straight_line_path

    path = straight_line_path(4)
    assert path.shape == (4, 4, 4)
    np.testing.assert_array_equal(path[:, :3, :3], np.broadcast_to(np.eye(3), (4, 3, 3)))
    np.testing.assert_array_equal(path[:, :3, 3], [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3]])
    true = straight_line_path(4)
    true[:, 2, 3] *= 0.8                       # the same path at 0.8 m per frame: exact after the scale
    error, scale = ate_rmse(path, true)
    assert error == pytest.approx(0.0, abs=1e-12) and scale == pytest.approx(0.8)
