"""PoseNet: ResNet-18 on two stacked frames → 6-DoF relative pose (SC-Depth's PoseNet).

``PoseNet()`` is the released architecture. ``PoseNet("small")`` swaps the ResNet-18 for a
plain five-layer convolutional encoder (SfMLearner-style, 0.4 M parameters instead of 11 M):
on a CPU the ResNet is most of a training step's cost at teaching resolutions, while a
frame pair's relative motion needs far less capacity than the depth network.
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet18

__all__ = ["PoseNet", "PoseDecoder", "SmallPoseEncoder", "POSE_ARCHS", "TRANSLATION_UNITS", "stack_conv1_weights"]
POSE_ARCHS = ("resnet18", "small")
#: What one unit of predicted translation is: "depth", the DepthNet's own unit (SC-Depth, the
#: release); "mean_depth", the mean depth of the target frame (a network trained with
#: ``normalise_depth``: multiply by that mean, :func:`bore_depth_lite.trajectory.translation_to_depth_units`).
TRANSLATION_UNITS = ("depth", "mean_depth")

POSE_SCALE = 0.01


def stack_conv1_weights(weight: Tensor, num_frames: int = 2) -> Tensor:
    """ImageNet conv1 weights (64, 3, k, k) → (64, 3·num_frames, k, k), repeated per frame and
    divided by ``num_frames`` so that identical frames give the pretrained response."""
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ValueError(f"expected a (C_out, 3, k, k) conv1 weight, got {tuple(weight.shape)}")
    return torch.cat([weight] * num_frames, dim=1) / num_frames


class PoseDecoder(nn.Module):
    """1×1 squeeze to 256 + ReLU, two 3×3 convs 256 + ReLU, 1×1 to 6, spatial mean, ×0.01."""

    def __init__(self, in_channels: int = 512):
        super().__init__()
        self.squeeze = nn.Conv2d(in_channels, 256, 1)
        self.conv1 = nn.Conv2d(256, 256, 3, 1, 1)
        self.conv2 = nn.Conv2d(256, 256, 3, 1, 1)
        self.to_pose = nn.Conv2d(256, 6, 1)

    def forward(self, feature: Tensor) -> Tensor:
        x = F.relu(self.squeeze(feature))
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return POSE_SCALE * self.to_pose(x).mean(dim=(2, 3))


class SmallPoseEncoder(nn.Module):
    """Five stride-2 3×3 conv-BN-ReLU layers, 6 → 16 → 32 → 64 → 128 → 256 channels (stride 32)."""

    def __init__(self, channels: tuple[int, ...] = (16, 32, 64, 128, 256)):
        super().__init__()
        layers, cin = [], 6
        for cout in channels:
            layers += [nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.out_channels = cin

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


class PoseNet(nn.Module):
    """Relative pose between a target and a source frame.

    ``forward(target, source)`` takes two ImageNet-normalised images (B, 3, H, W) and returns
    (B, 6): translation (tx, ty, tz) then Euler angles (rx, ry, rz) in radians, the SC-Depth
    convention (see ``bore_depth_lite.geometry.pose_vec_to_mat(..., convention="sc_depth")``),
    describing the target → source transform. 13,011,950 parameters (the ResNet's ``fc``,
    unused, is kept so released checkpoints load strictly).

    Args:
        arch: ``"resnet18"`` (the release) or ``"small"`` (:class:`SmallPoseEncoder`, for CPU
            teaching runs; same decoder and output convention).
        pretrained: start from torchvision's ImageNet ResNet-18 (DOWNLOADS the weights on first
            use, ~45 MB, into torch's cache), with conv1 repeated over the two frames and halved
            (:func:`stack_conv1_weights`). The default ``False`` never touches the network.
        translation_unit: one of :data:`TRANSLATION_UNITS`; recorded with the weights, it
            changes nothing in ``forward``, only how a trajectory reads the translation.
    """

    def __init__(self, arch: str = "resnet18", pretrained: bool = False, translation_unit: str = "depth"):
        super().__init__()
        if arch not in POSE_ARCHS:
            raise ValueError(f"unknown PoseNet arch {arch!r}; expected one of {POSE_ARCHS}")
        if translation_unit not in TRANSLATION_UNITS:
            raise ValueError(f"unknown translation_unit {translation_unit!r}; expected one of {TRANSLATION_UNITS}")
        self.arch, self.translation_unit = arch, translation_unit
        if arch == "small":
            if pretrained:
                raise ValueError("pretrained weights exist only for arch='resnet18'")
            self.encoder = SmallPoseEncoder()
            self.decoder = PoseDecoder(self.encoder.out_channels)
            return
        self.encoder = resnet18(weights=None)
        self.encoder.conv1 = nn.Conv2d(6, 64, 7, 2, 3, bias=False)
        if pretrained:
            from torchvision.models import ResNet18_Weights

            state = resnet18(weights=ResNet18_Weights.IMAGENET1K_V1).state_dict()
            state["conv1.weight"] = stack_conv1_weights(state["conv1.weight"], 2)
            self.encoder.load_state_dict(state)
        self.decoder = PoseDecoder(512)

    def features(self, x: Tensor) -> Tensor:
        if self.arch == "small":
            return self.encoder(x)
        e = self.encoder
        x = e.maxpool(e.relu(e.bn1(e.conv1(x))))
        return e.layer4(e.layer3(e.layer2(e.layer1(x))))

    def forward(self, target: Tensor, source: Tensor) -> Tensor:
        if target.shape != source.shape or target.ndim != 4 or target.shape[1] != 3:
            raise ValueError(f"PoseNet expects two (B, 3, H, W) images of equal shape, got "
                             f"{tuple(target.shape)} and {tuple(source.shape)}")
        return self.decoder(self.features(torch.cat([target, source], dim=1)))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
