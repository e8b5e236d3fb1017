"""DepthNet: MPViT encoder + EFAF decoder, image → depth (BoRe-Depth's network)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .decoder import EFAFDecoder
from .mpvit import ENCODER_CONFIGS, EncoderConfig, MPViTEncoder

__all__ = ["DepthNetConfig", "DepthNet", "DEPTHNET_CONFIGS", "pad_to_multiple"]

#: Disparity range of the released head: disparity = MAX_DISP_SCALE · sigmoid(x) + MIN_DISP.
DISP_SCALE = 10.0
MIN_DISP = 0.01


@dataclass(frozen=True)
class DepthNetConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder_channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    build_unused_skip_sce: bool = False
    decoder: str = "efaf"   # "efaf" (SCE-enhanced, the paper) or "plain" (U-Net levels, for the ablation)

    def to_dict(self) -> dict:
        return {"encoder": self.encoder.to_dict(), "decoder_channels": list(self.decoder_channels),
                "build_unused_skip_sce": self.build_unused_skip_sce, "decoder": self.decoder}

    @classmethod
    def from_dict(cls, d: dict) -> "DepthNetConfig":
        return cls(encoder=EncoderConfig.from_dict(d["encoder"]), decoder_channels=tuple(d["decoder_channels"]),
                   build_unused_skip_sce=bool(d.get("build_unused_skip_sce", False)),
                   decoder=str(d.get("decoder", "efaf")))


DEPTHNET_CONFIGS: dict[str, DepthNetConfig] = {
    # The released network, including its one built-but-unused block: 8,664,945 parameters.
    "paper": DepthNetConfig(ENCODER_CONFIGS["paper"], (16, 32, 64, 128, 256), build_unused_skip_sce=True),
    # CPU teaching configurations: same code, fewer channels and layers.
    "small": DepthNetConfig(ENCODER_CONFIGS["small"], (16, 24, 32, 64, 128)),
    "tiny": DepthNetConfig(ENCODER_CONFIGS["tiny"], (8, 16, 16, 32, 64)),
}
# The ablation's baselines: the same networks with a plain U-Net decoder (no SCE blocks).
DEPTHNET_CONFIGS.update({f"{name}-plain": replace(DEPTHNET_CONFIGS[name], decoder="plain", build_unused_skip_sce=False)
                         for name in ("paper", "small", "tiny")})


def pad_to_multiple(x: Tensor, multiple: int = 32) -> tuple[Tensor, tuple[int, int]]:
    """Replicate-pad the bottom and right of (B, C, H, W) up to multiples of ``multiple``.

    Returns the padded tensor and the original (H, W). Replicate (not reflection) padding
    works for any size, even smaller than the padding itself.
    """
    H, W = x.shape[-2:]
    ph, pw = (-H) % multiple, (-W) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (H, W)


class DepthNet(nn.Module):
    """BoRe-Depth's depth network.

    ``DepthNet()`` builds the paper configuration (8,664,945 parameters, of which 8,380,041
    are used in forward). ``DepthNet("small")``/``DepthNet("tiny")`` build CPU teaching
    configurations; a :class:`DepthNetConfig` gives full control.

    ``forward(image)`` takes an ImageNet-normalised image (B, 3, H, W) (see
    :mod:`bore_depth_lite.preprocess`) and returns depth (B, 1, H, W) in [1/10.01, 100].
    Sizes that are not multiples of 32 are replicate-padded at the bottom/right to the next
    multiple of 32 and the output is cropped back (the network never sees a resized image;
    for multiples of 32 nothing is padded, which is exactly the released computation).
    """

    def __init__(self, config: str | DepthNetConfig = "paper"):
        super().__init__()
        if isinstance(config, str):
            if config not in DEPTHNET_CONFIGS:
                raise ValueError(f"unknown DepthNet config {config!r}; expected one of {sorted(DEPTHNET_CONFIGS)}")
            config = DEPTHNET_CONFIGS[config]
        self.config = config
        self.encoder = MPViTEncoder(config.encoder)
        if config.decoder not in ("efaf", "plain"):
            raise ValueError(f"DepthNetConfig.decoder must be 'efaf' or 'plain', got {config.decoder!r}")
        self.decoder = EFAFDecoder(self.encoder.out_channels, config.decoder_channels, config.build_unused_skip_sce,
                                   enhance=config.decoder == "efaf")

    @property
    def feature_channels(self) -> tuple[int, ...]:
        """Channels of the 5 encoder levels (strides 2, 4, 8, 16, 32)."""
        return self.encoder.out_channels

    def encode(self, image: Tensor) -> list[Tensor]:
        """The encoder's 5 feature levels (for feature distillation). Any size; see MPViTEncoder."""
        return self.encoder(image)

    def disparity_and_features(self, image: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Disparity 10·sigmoid(x) + 0.01 (B, 1, H, W) and the encoder's 5 feature levels of the
        same forward pass (of the padded image; stage 2's semantic loss needs them)."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"DepthNet expects an image batch of shape (B, 3, H, W), got {tuple(image.shape)}")
        x, (H, W) = pad_to_multiple(image, 32)
        features = self.encoder(x)
        logits = self.decoder(features)[..., :H, :W]
        return DISP_SCALE * torch.sigmoid(logits) + MIN_DISP, features

    def disparity(self, image: Tensor) -> Tensor:
        """Disparity 10·sigmoid(x) + 0.01, (B, 1, H, W); same padding rule as ``forward``."""
        return self.disparity_and_features(image)[0]

    def forward(self, image: Tensor) -> Tensor:
        return 1.0 / self.disparity(image)

    def num_parameters(self, used_in_forward: bool = False) -> int:
        """Parameter count; ``used_in_forward=True`` leaves out the unused skip SCE block."""
        total = sum(p.numel() for p in self.parameters())
        if used_in_forward and self.decoder.unused_skip_sce is not None:
            total -= sum(p.numel() for p in self.decoder.unused_skip_sce.parameters())
        return total
