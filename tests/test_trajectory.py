import numpy as np
import pytest

from bore_depth_lite.data.synthetic import render_sequence
from bore_depth_lite.trajectory import align_scale, ate_rmse, chain_relative_poses


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
