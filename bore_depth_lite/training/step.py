"""One training step, top to bottom: networks on the batch, the stage-1 objective, the semantic term.

Stage 1 learns depth and ego-motion from video alone (SC-Depth's objective,
:func:`bore_depth_lite.losses.stage1_loss`, optionally with SC-Depth v3's pseudo-depth terms).
Stage 2 starts from the stage-1 weights and adds the semantic information loss of a frozen
teacher (:mod:`bore_depth_lite.distill`). The loop around it is :mod:`.trainer`.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..losses import stage1_loss
from ..models import DepthNet, PoseNet
from ..models.depth_net import DISP_SCALE, MIN_DISP
from ..preprocess import normalize_imagenet
from .config import TrainConfig

if TYPE_CHECKING:
    from ..distill import SemanticGuide

__all__ = ["build_networks", "StudentModel", "training_step", "SCALE_ANCHOR_LOG_DEPTH"]

#: The middle of DepthNet's depth range [1 / (DISP_SCALE + MIN_DISP), 1 / MIN_DISP] in log units
#: (≈ log 3.16): where the scale anchor puts a normalised network's mean log depth, so that a scene
#: has the same room, a factor of about 30, towards the near and the far end of the range.
SCALE_ANCHOR_LOG_DEPTH = 0.5 * (math.log(1 / (DISP_SCALE + MIN_DISP)) + math.log(1 / MIN_DISP))


def build_networks(config: TrainConfig) -> tuple[DepthNet, PoseNet]:
    unit = "mean_depth" if config.normalise_depth else "depth"
    return DepthNet(config.model), PoseNet(arch=config.pose_arch, translation_unit=unit)


class StudentModel(nn.Module):
    """DepthNet as one module returning (depth, encoder features) through DepthNet's own head:
    the semantic loss needs the features of the very forward pass that produced the depth, and
    DDP needs one call."""

    def __init__(self, depth_net: DepthNet):
        super().__init__()
        self.net = depth_net

    def forward(self, image: Tensor) -> tuple[Tensor, list[Tensor]]:
        if image.shape[-2] % 32 or image.shape[-1] % 32:
            raise ValueError(f"training images must have sides that are multiples of 32, got {tuple(image.shape[-2:])}")
        disparity, features = self.net.disparity_and_features(image)
        return 1.0 / disparity, features


def training_step(depth_model: nn.Module, pose_net: nn.Module, batch: dict[str, Tensor], config: TrainConfig,
                  semantic: SemanticGuide | None = None) -> dict[str, Tensor]:
    """The losses of one batch, top to bottom (call ``losses["loss"].backward()`` after).

    ``depth_model`` is a :class:`StudentModel`. DepthNet runs on the target and every
    source in one batched call (the geometry term needs the sources' depths). PoseNet runs
    on (target, source) and (source, target) for every source, in one batched call too, so
    each pair is warped both ways. With any pseudo-depth weight > 0, the batch must hold the
    target's pseudo-depth ``tgt_pseudo_depth`` (B,1,H,W); the ranking terms draw their point
    pairs from torch's global generator, which the checkpoints save and restore.
    """
    tgt, K = batch["tgt"], batch["K"]
    pseudo_weights = dict(normal_weight=config.normal_weight, mask_rank_weight=config.mask_rank_weight,
                          normal_rank_weight=config.normal_rank_weight)
    pseudo_depth = batch.get("tgt_pseudo_depth") if any(pseudo_weights.values()) else None
    if any(pseudo_weights.values()) and pseudo_depth is None:
        on = ", ".join(f"{k}={v}" for k, v in pseudo_weights.items() if v)
        raise ValueError(f"{on} needs pseudo-depth maps, but the batch has none ('tgt_pseudo_depth'): "
                         "give the data set pseudo_depth/ folders or set these weights to 0")
    srcs = list(batch["srcs"].unbind(1))                               # S × (B, 3, H, W) in [0, 1]
    S = len(srcs)
    normalised = normalize_imagenet(torch.cat([tgt, *srcs]))
    depths, features = depth_model(normalised)
    tgt_depth, *src_depths = depths.chunk(1 + S)
    raw_tgt_depth = tgt_depth
    if config.normalise_depth:
        # The photometric, geometry and normal terms do not change when all depths and the
        # translations scale together, but the ranking terms' logistic margins grow with the
        # scale. Dividing by the target's mean (not detached) makes the whole loss blind to the
        # global scale, and PoseNet then predicts translation in units of the mean depth.
        mean_depth = tgt_depth.mean(dim=(1, 2, 3), keepdim=True)
        tgt_depth = tgt_depth / mean_depth
        src_depths = [d / mean_depth for d in src_depths]

    tgt_n, *src_n = normalised.chunk(1 + S)
    pose_vectors = pose_net(torch.cat([tgt_n] * S + src_n), torch.cat(src_n + [tgt_n] * S)).chunk(2 * S)
    poses, poses_inv = pose_vectors[:S], pose_vectors[S:]              # target→source, source→target

    losses = stage1_loss(tgt, srcs, tgt_depth, src_depths, poses, poses_inv, K,
                         photo_weight=config.photo_weight, geometry_weight=config.geometry_weight,
                         smooth_weight=config.smooth_weight, ssim_window=config.ssim_window,
                         use_ssim=config.use_ssim, use_auto_mask=config.use_auto_mask,
                         use_dynamic_mask=config.use_dynamic_mask, use_min=config.use_min,
                         use_geometric_mask=config.use_geometric_mask,
                         pseudo_depth=pseudo_depth, **pseudo_weights)
    if config.scale_anchor_weight:
        log_mean = torch.log(raw_tgt_depth).mean(dim=(1, 2, 3))
        losses["scale_anchor"] = ((log_mean - SCALE_ANCHOR_LOG_DEPTH) ** 2).mean()
        losses["loss"] = losses["loss"] + config.scale_anchor_weight * losses["scale_anchor"]
    if semantic is not None:
        tgt_features = [f[: tgt.shape[0]] for f in features]
        losses["semantic"] = semantic(tgt_features, tgt_n)
        losses["loss"] = losses["loss"] + config.semantic_weight * losses["semantic"]
    return losses
