"""BoRe-Depth networks: DepthNet (MPViT encoder + EFAF decoder) and PoseNet (ResNet-18).

Public API: ``DepthNet(config="paper"|"small"|"tiny"|DepthNetConfig)``, ``PoseNet()``,
``MPViTEncoder`` (also the stage-2 teacher: ``MPViTEncoder("teacher")``). Networks know nothing
of files: reading and writing them, ours or the authors' released ones, is
:mod:`bore_depth_lite.checkpoint`.
"""
from .decoder import EFAFDecoder, SCEBlock
from .depth_net import DEPTHNET_CONFIGS, DepthNet, DepthNetConfig, pad_to_multiple
from .mpvit import ENCODER_CONFIGS, EncoderConfig, MPViTEncoder
from .pose_net import PoseNet, stack_conv1_weights

__all__ = ["DepthNet", "DepthNetConfig", "DEPTHNET_CONFIGS", "PoseNet", "MPViTEncoder", "EncoderConfig",
           "ENCODER_CONFIGS", "EFAFDecoder", "SCEBlock", "pad_to_multiple", "stack_conv1_weights"]
