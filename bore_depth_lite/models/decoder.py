"""EFAF decoder (Enhanced Feature Adaptive Fusion) with SCE blocks, as in BoRe-Depth.

A plain U-Net/Monodepth2 decoder upsamples the deeper feature and concatenates the encoder
skip as it is. EFAF first *enhances* both inputs with an SCE (spatial-channel enhancement)
block: a depth-wise 3×3 that doubles the channels (spatial context per channel), a 1×1 that
mixes channels, GELU, and a 1×1 back, added to the input. Only then are the two fused by a
3×3 conv. The enhancement is what sharpens object boundaries in the paper.

Decoder block j = 0…4 serves level i = 4 − j (coarse to fine):
``reduce`` (1×1 conv + ELU to dec_ch[i]) → ×2 bilinear upsample → ``upsampled_sce`` →
concat with ``skip_sce(encoder level i−1)`` (for i > 0) → ``fuse`` (3×3 reflection-padded
conv + ELU). A 3×3 reflection-padded ``depth_head`` gives x; disparity = 10·sigmoid(x) + 0.01.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SCEBlock", "DecoderBlock", "EFAFDecoder"]


class SCEBlock(nn.Module):
    """Spatial-channel enhancement: ``x + project(GELU(pointwise(depthwise(x))))``.

    depthwise: 3×3, C → 2C, groups C, zero padding, bias; pointwise: 1×1, 2C → 2C;
    project: 1×1, 2C → C. No normalisation, no activation between the first two convs.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.depthwise = nn.Conv2d(channels, 2 * channels, 3, 1, 1, groups=channels)
        self.pointwise = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.act = nn.GELU()
        self.project = nn.Conv2d(2 * channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) → (B, C, H, W)."""
        return x + self.project(self.act(self.pointwise(self.expand(x))))

    def expand(self, x: Tensor) -> Tensor:
        """The depth-wise C → 2C conv. Computed as a channel-multiplier-1 depth-wise conv on the
        input with every channel repeated twice: output 2c+k reads input c with weight 2c+k in
        both forms, but PyTorch's CPU kernels for multiplier 2 are several times slower (their
        backward most of all)."""
        conv = self.depthwise
        return F.conv2d(x.repeat_interleave(2, dim=1), conv.weight, conv.bias, padding=1, groups=2 * x.shape[1])


class DecoderBlock(nn.Module):
    """One level of the EFAF decoder (see the module docstring).

    ``enhance=False`` gives the plain U-Net level the ablation compares with: the same
    upsampling, skip concatenation and fusion conv, without the two SCE blocks.
    """

    def __init__(self, cin: int, cout: int, skip_channels: int, enhance: bool = True):
        super().__init__()
        self.reduce = nn.Conv2d(cin, cout, 1)
        self.upsampled_sce = SCEBlock(cout) if enhance else nn.Identity()
        self.skip_sce = (SCEBlock(skip_channels) if enhance else nn.Identity()) if skip_channels else None
        self.fuse = nn.Conv2d(cout + skip_channels, cout, 3, 1, 1, padding_mode="reflect")

    def forward(self, x: Tensor, skip: Tensor | None) -> Tensor:
        x = F.elu(self.reduce(x))
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = self.upsampled_sce(x)
        if self.skip_sce is not None:
            x = torch.cat([x, self.skip_sce(skip)], dim=1)
        return F.elu(self.fuse(x))


class EFAFDecoder(nn.Module):
    """Five encoder levels (fine to coarse) → disparity logits at the input resolution.

    Args:
        encoder_channels: channels of the 5 encoder levels, e.g. (64, 96, 176, 216, 216).
        decoder_channels: dec_ch[0..4], e.g. (16, 32, 64, 128, 256).
        build_unused_skip_sce: build the SCE block that the released network creates for a
            level-0 skip but never calls (284,904 parameters in the paper config); only so
            that the parameter count and checkpoints match the release.
        enhance: SCE blocks on both branches (EFAF); ``False`` is a plain U-Net decoder.
    """

    def __init__(self, encoder_channels: tuple[int, ...], decoder_channels: tuple[int, ...],
                 build_unused_skip_sce: bool = False, enhance: bool = True):
        super().__init__()
        enc, dec = tuple(encoder_channels), tuple(decoder_channels)
        if len(enc) != 5 or len(dec) != 5:
            raise ValueError(f"need 5 encoder and 5 decoder channel counts, got {enc} and {dec}")
        self.blocks = nn.ModuleList()
        cin = enc[4]
        for j in range(5):
            i = 4 - j
            self.blocks.append(DecoderBlock(cin, dec[i], enc[i - 1] if i > 0 else 0, enhance))
            cin = dec[i]
        self.depth_head = nn.Conv2d(dec[0], 1, 3, 1, 1, padding_mode="reflect")
        # Built by the release (as the skip SCE of block 4, on the deepest channel count) but
        # never used in forward. Kept apart so nobody mistakes it for a working part.
        self.unused_skip_sce = SCEBlock(enc[4]) if build_unused_skip_sce else None

    def forward(self, features: list[Tensor]) -> Tensor:
        """features: 5 maps at strides 2…32 → logits (B, 1, H, W) at stride 1."""
        x = features[4]
        for j, block in enumerate(self.blocks):
            x = block(x, features[3 - j] if j < 4 else None)
        return self.depth_head(x)
