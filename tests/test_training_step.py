"""The training step's depth normalisation: with it the loss cannot see the global depth scale."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from bore_depth_lite.models import DepthNet, PoseNet
from bore_depth_lite.training import TrainConfig, training_step
from bore_depth_lite.training.step import StudentModel


class _Scaled(nn.Module):
    """The student with every depth multiplied by ``factor``: another global scale, same scene."""

    def __init__(self, student: nn.Module, factor: float):
        super().__init__()
        self.student, self.factor = student, factor

    def forward(self, image):
        depth, features = self.student(image)
        return depth * self.factor, features


@pytest.fixture(scope="module")
def batch():
    synthetic = pytest.importorskip("bore_depth_lite.data.synthetic")
    seq = synthetic.render_sequence("driving", num_frames=3, height=64, width=96, seed=3, pseudo_depth=True,
                                    speed=4.0)
    rgb = torch.as_tensor(seq.rgb / 255.0, dtype=torch.float32).permute(0, 3, 1, 2)
    pseudo = torch.as_tensor(np.asarray(seq.pseudo_depth), dtype=torch.float32)[1][None, None]
    return {"tgt": rgb[1:2], "srcs": torch.stack([rgb[0], rgb[2]])[None],
            "K": torch.as_tensor(seq.K, dtype=torch.float32)[None], "tgt_pseudo_depth": pseudo}


def _loss(batch, factor: float, normalise: bool, anchor: float = 0.0) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    student, pose_net = StudentModel(DepthNet("tiny")), PoseNet(arch="small")
    config = TrainConfig(model="tiny", smooth_weight=0.0, normal_weight=0.1, mask_rank_weight=0.1,
                         normal_rank_weight=0.1, normalise_depth=normalise, scale_anchor_weight=anchor)
    torch.manual_seed(1)                     # the ranking terms draw their pairs from the global generator
    with torch.no_grad():
        return training_step(_Scaled(student, factor), pose_net, batch, config)


def test_normalised_depth_makes_every_term_blind_to_the_global_scale(batch):
    # Powers of two scale floats exactly, so d / mean(d) is bit-identical and so must be every
    # term: the auto-mask and the in-view check are thresholds on near-ties (an untrained
    # PoseNet barely moves the sources), which other factors' rounding would flip.
    base = _loss(batch, 1.0, True)
    for factor in (8.0, 0.25):
        scaled = _loss(batch, factor, True)
        for key in ("loss", "photo", "geometry", "normal", "mask_rank", "normal_rank", "valid_fraction"):
            assert torch.equal(base[key], scaled[key]), (factor, key)


def test_without_it_the_scale_changes_the_loss(batch):
    # The same change without normalisation moves the loss: PoseNet's translation is not scaled
    # with the depth, and the ranking margins grow with it (what drags the scale upwards).
    base, scaled = _loss(batch, 1.0, False), _loss(batch, 8.0, False)
    assert abs(float(base["loss"] - scaled["loss"])) > 1e-3 * float(base["loss"])
    assert float(scaled["mask_rank"]) < float(base["mask_rank"])


def test_the_scale_anchor_is_the_squared_distance_of_the_mean_log_depth_from_the_range_middle(batch):
    # Only the anchor sees the scale: multiplying every depth by 8 moves the mean log depth m by
    # log 8 and the total loss by exactly w·((m + log 8 − a)² − (m − a)²).
    from bore_depth_lite.models.depth_net import DISP_SCALE, MIN_DISP
    from bore_depth_lite.training.step import SCALE_ANCHOR_LOG_DEPTH

    a = SCALE_ANCHOR_LOG_DEPTH
    assert math.exp(a) == pytest.approx(math.sqrt(100 / (DISP_SCALE + MIN_DISP) / 1), rel=1e-12)
    torch.manual_seed(0)
    student = StudentModel(DepthNet("tiny"))
    with torch.no_grad():
        from bore_depth_lite.preprocess import normalize_imagenet
        # the same batch as the step (target and sources: BatchNorm in training mode sees all three)
        images = torch.cat([batch["tgt"], *batch["srcs"].unbind(1)])
        m = float(torch.log(student(normalize_imagenet(images))[0][:1]).mean())
    w = 0.1
    base, scaled = _loss(batch, 1.0, True, anchor=w), _loss(batch, 8.0, True, anchor=w)
    assert float(base["scale_anchor"]) == pytest.approx((m - a) ** 2, rel=1e-5)
    expected = w * ((m + math.log(8) - a) ** 2 - (m - a) ** 2)
    assert float(scaled["loss"] - base["loss"]) == pytest.approx(expected, rel=1e-4)
    assert torch.equal(base["photo"], scaled["photo"])


def test_the_anchor_needs_normalised_depth():
    with pytest.raises(ValueError, match="--scale-anchor-weight: needs --normalise-depth"):
        TrainConfig(scale_anchor_weight=0.1).check()
