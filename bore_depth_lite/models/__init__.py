"""BoRe-Depth networks: DepthNet (MPViT encoder + EFAF decoder) and PoseNet (ResNet-18).

Public API: ``DepthNet(config="paper"|"small"|"tiny"|DepthNetConfig)``, ``PoseNet()``,
``MPViTEncoder`` (also the stage-2 teacher: ``MPViTEncoder("teacher")``), the checkpoint
helpers ``save_checkpoint``/``save_depthnet``/``load_depthnet``/``load_posenet``/
``load_any_depthnet`` and ``DepthNet.from_official_checkpoint``/``PoseNet.from_official_checkpoint``.
"""
from .checkpoint import load_any_depthnet, load_depthnet, load_posenet, save_checkpoint, save_depthnet
from .decoder import EFAFDecoder, SCEBlock
from .depth_net import DEPTHNET_CONFIGS, DepthNet, DepthNetConfig, pad_to_multiple
from .mpvit import ENCODER_CONFIGS, EncoderConfig, MPViTEncoder
from .official import OfficialCheckpointError, to_official_state_dict
from .pose_net import PoseNet, stack_conv1_weights

__all__ = ["DepthNet", "DepthNetConfig", "DEPTHNET_CONFIGS", "PoseNet", "MPViTEncoder", "EncoderConfig",
           "ENCODER_CONFIGS", "EFAFDecoder", "SCEBlock", "pad_to_multiple", "stack_conv1_weights",
           "save_checkpoint", "save_depthnet", "load_depthnet", "load_posenet", "load_any_depthnet",
           "OfficialCheckpointError", "to_official_state_dict"]
