"""MPViT encoder (multi-path vision transformer) as used by BoRe-Depth's DepthNet.

MPViT (Lee et al., CVPR 2022) embeds the same feature map at several receptive fields at
once: a stage chains ``num_paths`` depth-wise separable 3×3 patch embeddings (path k embeds
path k-1's output, so path k sees a (2k+3)-pixel neighbourhood), runs an independent
transformer encoder on every path, adds a purely convolutional "local" path, and fuses the
concatenation with a 1×1 conv. The transformer is cheap because its attention is
*factorised* (linear in the number of tokens) and position comes from convolutions.

Layout of the BoRe-Depth variant (``paper`` config, 5,626,736 parameters):
stem (3→32 stride 2, 32→64 stride 1) then 4 stages with embed dims (64, 96, 176, 216),
paths (2, 3, 3, 3), layers (1, 2, 4, 1), 8 heads, MLP ratio 2. Five feature levels:
(64, H/2), (96, H/4), (176, H/8), (216, H/16), (216, H/32).

Module names here are ours (clearer than the released ones); ``official.py`` maps the
released checkpoint names onto them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["EncoderConfig", "MPViTEncoder", "ConvBN", "FactorizedAttention", "ENCODER_CONFIGS", "ENCODER_FORMS"]


@dataclass(frozen=True)
class EncoderConfig:
    """Hyper-parameters of the MPViT encoder.

    ``crpe_windows`` maps a relative-position kernel size to the number of heads that use it
    (in head order); the head counts must sum to ``num_heads``.
    """

    stem_channels: int = 64
    embed_dims: tuple[int, ...] = (64, 96, 176, 216)
    num_paths: tuple[int, ...] = (2, 3, 3, 3)
    num_layers: tuple[int, ...] = (1, 2, 4, 1)
    num_heads: int = 8
    mlp_ratio: float = 2.0
    crpe_windows: dict[int, int] = field(default_factory=lambda: {3: 2, 5: 3, 7: 3})

    def __post_init__(self) -> None:
        n = len(self.embed_dims)
        if not (len(self.num_paths) == len(self.num_layers) == n):
            raise ValueError(f"embed_dims, num_paths and num_layers need one entry per stage; got "
                             f"{self.embed_dims}, {self.num_paths}, {self.num_layers}")
        if sum(self.crpe_windows.values()) != self.num_heads:
            raise ValueError(f"crpe_windows {self.crpe_windows} must assign all {self.num_heads} heads")
        for d in self.embed_dims:
            if d % self.num_heads:
                raise ValueError(f"embed dim {d} is not divisible by num_heads={self.num_heads}")

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels of the five feature levels: stem, then each stage's aggregated output."""
        outs = list(self.embed_dims[1:]) + [self.embed_dims[-1]]
        return (self.stem_channels, *outs)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["crpe_windows"] = {int(k): int(v) for k, v in self.crpe_windows.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EncoderConfig":
        d = dict(d)
        for key in ("embed_dims", "num_paths", "num_layers"):
            d[key] = tuple(d[key])
        d["crpe_windows"] = {int(k): int(v) for k, v in d["crpe_windows"].items()}
        return cls(**d)


ENCODER_CONFIGS: dict[str, EncoderConfig] = {
    "paper": EncoderConfig(),
    # The stage-2 teacher of the release: the same topology with MLP ratio 4.
    "teacher": EncoderConfig(mlp_ratio=4.0),
    "small": EncoderConfig(stem_channels=32, embed_dims=(32, 48, 96, 128), num_paths=(2, 2, 2, 2),
                           num_layers=(1, 1, 2, 1), num_heads=8, mlp_ratio=2.0),
    "tiny": EncoderConfig(stem_channels=16, embed_dims=(16, 32, 48, 64), num_paths=(2, 2, 2, 2),
                          num_layers=(1, 1, 1, 1), num_heads=4, mlp_ratio=2.0,
                          crpe_windows={3: 2, 5: 1, 7: 1}),
}


class ConvBN(nn.Sequential):
    """Conv (no bias) → BatchNorm → optional Hardswish. Named ``conv``/``bn`` like the release."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        if act:
            self.act = nn.Hardswish()


class SeparablePatchEmbed(nn.Sequential):
    """One path of the multi-path patch embedding: depth-wise 3×3 → 1×1 → BN → Hardswish."""

    def __init__(self, channels: int, stride: int):
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False)
        self.pointwise = nn.Conv2d(channels, channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.Hardswish()


class LocalConvPath(nn.Module):
    """The convolutional path of a stage: 1×1 conv-BN-Hardswish → depth-wise 3×3 → BN →
    Hardswish → 1×1 conv-BN, plus the input (no activation after the sum)."""

    def __init__(self, channels: int):
        super().__init__()
        self.pointwise_in = ConvBN(channels, channels, 1, act=True)
        self.depthwise = nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.Hardswish()
        self.pointwise_out = ConvBN(channels, channels, 1, act=False)

    def forward(self, x: Tensor) -> Tensor:
        y = self.act(self.bn(self.depthwise(self.pointwise_in(x))))
        return x + self.pointwise_out(y)


class RelativePositionConvs(nn.Module):
    """Depth-wise convs over the value map, one kernel size per group of heads (CoaT's CRPE).

    The parameters are one conv per kernel size (as in the release). ``forward`` runs them as
    ONE depth-wise conv whose smaller kernels are zero-padded to the largest size: the same
    result (the extra taps multiply by exactly 0) with one kernel call instead of a channel
    split, three calls and a concatenation (about 1.4x faster on a CPU for this block, at the
    price of ~0.08 GFLOP of multiplications by zero at 256x320, which FLOP counters include).
    ``merged = False`` (per instance; :meth:`MPViTEncoder.set_form` sets it) runs the released
    per-group convs (e.g. to count its FLOPs).
    """

    def __init__(self, head_dim: int, windows: dict[int, int]):
        super().__init__()
        self.merged = True
        self.channel_splits = [heads * head_dim for heads in windows.values()]
        self.kernel = max(windows)
        self.convs = nn.ModuleList(
            nn.Conv2d(c, c, k, 1, k // 2, groups=c) for k, c in zip(windows.keys(), self.channel_splits))

    def merged_weight(self) -> tuple[Tensor, Tensor]:
        """(C, 1, K, K) weight and (C,) bias of the equivalent single depth-wise conv."""
        K = self.kernel
        weight = torch.cat([F.pad(c.weight, [(K - c.kernel_size[0]) // 2] * 4) for c in self.convs])
        return weight, torch.cat([c.bias for c in self.convs])

    def as_conv(self) -> nn.Conv2d:
        """A snapshot of :meth:`merged_weight` as a plain depth-wise ``nn.Conv2d`` (constant
        weights in an exported graph)."""
        weight, bias = (t.detach() for t in self.merged_weight())
        conv = nn.Conv2d(weight.shape[0], weight.shape[0], self.kernel, 1, self.kernel // 2, groups=weight.shape[0])
        with torch.no_grad():
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
        return conv.requires_grad_(False).to(weight.device)

    def forward(self, v_img: Tensor) -> Tensor:
        """(B, heads·head_dim, H, W) → same shape; channel order is head-major."""
        if not self.merged:
            parts = torch.split(v_img, self.channel_splits, dim=1)
            return torch.cat([conv(p) for conv, p in zip(self.convs, parts)], dim=1)
        weight, bias = self.merged_weight()
        return F.conv2d(v_img, weight, bias, padding=self.kernel // 2, groups=v_img.shape[1])


class FactorizedAttention(nn.Module):
    """Factorised attention with convolutional relative position encoding.

    Per head: ``scale · Q (softmax_tokens(K)ᵀ V) + Q ⊙ DWConv(V)``, then a linear projection.
    Computing ``softmax(K)ᵀ V`` first costs O(N·d²) instead of the O(N²·d) of softmax(QKᵀ)V.
    Everything except the two small per-head matrix products stays in the (B, N, C) token
    layout: the softmax over tokens is per channel anyway, and (B, N, C) seen as an image is
    channels-last, so no head permutes or copies are needed around it.
    """

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, size: tuple[int, int], relative_position: RelativePositionConvs) -> Tensor:
        """x: (B, N, C) tokens of an H×W map (row-major), returns (B, N, C)."""
        B, N, C = x.shape
        H, W = size
        h, d = self.num_heads, C // self.num_heads
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # (B, N, C) each; channel = head·d + i
        k = k.softmax(dim=1)
        context = k.view(B, N, h, d).permute(0, 2, 3, 1) @ v.view(B, N, h, d).transpose(1, 2)  # (B, h, d, d)
        factor_att = (q.view(B, N, h, d).transpose(1, 2) @ context).transpose(1, 2).reshape(B, N, C)
        conv_v = relative_position(v.reshape(B, H, W, C).permute(0, 3, 1, 2))
        out = self.scale * factor_att + q * conv_v.permute(0, 2, 3, 1).reshape(B, N, C)
        return self.proj(out)

    def forward_released(self, x: Tensor, size: tuple[int, int], relative_position: RelativePositionConvs) -> Tensor:
        """The same function computed as the released code does: per-head permuted copies of
        q, k, v and einsums (the ``released`` form; slower, same result to fp32 rounding)."""
        B, N, C = x.shape
        H, W = size
        h = self.num_heads
        qkv = self.qkv(x).reshape(B, N, 3, h, C // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        kv = torch.einsum("b h n k, b h n v -> b h k v", k.softmax(dim=2), v)
        factor_att = torch.einsum("b h n k, b h k v -> b h n v", q, kv)
        conv_v = relative_position(v.transpose(2, 3).reshape(B, C, H, W)).reshape(B, h, C // h, N).transpose(2, 3)
        out = self.scale * factor_att + q * conv_v
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


class TransformerBlock(nn.Module):
    """Pre-norm block: x += Attn(LN(x)); x += MLP(LN(x)). LayerNorm eps 1e-6, exact GELU."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attention = FactorizedAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential()
        self.mlp.fc1 = nn.Linear(dim, hidden)
        self.mlp.act = nn.GELU()
        self.mlp.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, size: tuple[int, int], relative_position: RelativePositionConvs) -> Tensor:
        x = x + self.attention(self.norm1(x), size, relative_position)
        return x + self.mlp(self.norm2(x))


#: The forms an encoder computes its attention in (same parameters, same function to fp32 rounding):
#: ``fast`` (the default: token layout, one merged relative-position conv), ``released`` (the
#: released code's order of operations: einsums, per-group convs; for FLOP counts and as the
#: benchmark's reference) and ``channels_first`` (the (B, C, N) layout that exports to a lean ONNX
#: graph; an export form: its merged conv is a snapshot of the weights when it was selected).
ENCODER_FORMS: tuple[str, ...] = ("fast", "released", "channels_first")


class PathEncoder(nn.Module):
    """The transformer encoder of one path: ``num_layers`` blocks that all share ONE positional
    conv (applied before every block) and ONE relative-position conv set."""

    def __init__(self, dim: int, num_layers: int, num_heads: int, mlp_ratio: float, windows: dict[int, int]):
        super().__init__()
        self.position_conv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.relative_position = RelativePositionConvs(dim // num_heads, windows)
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio) for _ in range(num_layers))
        self.form = "fast"
        self.snapshot_conv: nn.Conv2d | None = None

    def set_form(self, form: str) -> None:
        """Compute in another of :data:`ENCODER_FORMS`. ``fast`` and ``released`` keep the state
        dict as it is; ``channels_first`` adds its snapshot conv (``snapshot_conv.*``, frozen), so
        it is meant for a copy that is exported (:func:`bore_depth_lite.deploy.prepare_for_export`)."""
        if form not in ENCODER_FORMS:
            raise ValueError(f"form: expected one of {list(ENCODER_FORMS)}, found {form!r}")
        self.form = form
        self.relative_position.merged = form != "released"
        # A registered module, so that an exported graph holds its weights as initializers.
        self.snapshot_conv = self.relative_position.as_conv() if form == "channels_first" else None

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) → (B, C, H, W)."""
        if self.form == "channels_first":
            return self._forward_channels_first(x)
        if self.form == "released":
            return self._forward_released(x)
        B, C, H, W = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        for block in self.blocks:
            img = tokens.transpose(1, 2).reshape(B, C, H, W)
            tokens = (self.position_conv(img) + img).flatten(2).transpose(1, 2)
            tokens = block(tokens, (H, W), self.relative_position)
        return tokens.transpose(1, 2).reshape(B, C, H, W)

    def _forward_released(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        for block in self.blocks:
            feat = tokens.transpose(1, 2).contiguous().view(B, C, H, W)
            tokens = (self.position_conv(feat) + feat).flatten(2).transpose(1, 2)
            tokens = tokens + block.attention.forward_released(block.norm1(tokens), (H, W), self.relative_position)
            tokens = tokens + block.mlp(block.norm2(tokens))
        return tokens.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()

    @staticmethod
    def _linear_channels_first(linear: nn.Linear, x_tokens: Tensor) -> Tensor:
        """Linear on (B, N, Cin) tokens, returned channels-first (B, Cout, N)."""
        return torch.matmul(linear.weight, x_tokens.transpose(1, 2)) + linear.bias[:, None]

    def _forward_channels_first(self, x: Tensor) -> Tensor:
        """Per head with q, k, v as (d, N) matrices: ``context = softmax_N(k) vᵀ`` (d×d),
        ``factor = contextᵀ q`` (d×N), ``out = scale·factor + q ⊙ DWConv(v)``: the transpose of the
        (N, d) formulation, so no token-major copy is made except the one LayerNorm needs, and the
        softmax runs over the last axis."""
        conv = self.snapshot_conv
        if conv is None:
            raise RuntimeError("the channels_first form needs set_form('channels_first') (it snapshots the weights)")
        B, C, H, W = x.shape
        for block in self.blocks:
            att = block.attention
            h = att.num_heads
            x = self.position_conv(x) + x
            t = x.flatten(2)  # (B, C, N)
            qkv = self._linear_channels_first(att.qkv, block.norm1(t.transpose(1, 2)))  # (B, 3C, N)
            q, k, v = (z.reshape(B, h, C // h, H * W) for z in qkv.chunk(3, dim=1))
            context = k.softmax(dim=-1) @ v.transpose(-1, -2)  # (B, h, d_k, d_v)
            factor = context.transpose(-1, -2) @ q  # (B, h, d_v, N)
            conv_v = conv(v.reshape(B, C, H, W)).reshape(B, h, C // h, H * W)
            out = (att.scale * factor + q * conv_v).reshape(B, C, H * W)
            t = t + torch.matmul(att.proj.weight, out) + att.proj.bias[:, None]
            hidden = block.mlp.act(block.mlp.fc1(block.norm2(t.transpose(1, 2))))
            t = t + self._linear_channels_first(block.mlp.fc2, hidden)
            x = t.reshape(B, C, H, W)
        return x


class MultiPathStage(nn.Module):
    """One MPViT stage: chained patch embeddings (path 0 with stride 2), one transformer
    encoder per path, the local conv path on path 0, and a 1×1 aggregation."""

    def __init__(self, cin: int, dim: int, cout: int, num_paths: int, num_layers: int,
                 num_heads: int, mlp_ratio: float, windows: dict[int, int]):
        super().__init__()
        if cin != dim:
            raise ValueError(f"stage input channels {cin} must equal its embed dim {dim}")
        self.patch_embed = nn.ModuleList(SeparablePatchEmbed(dim, 2 if k == 0 else 1) for k in range(num_paths))
        self.path_encoders = nn.ModuleList(
            PathEncoder(dim, num_layers, num_heads, mlp_ratio, windows) for _ in range(num_paths))
        self.local_path = LocalConvPath(dim)
        self.aggregate = ConvBN(dim * (num_paths + 1), cout, 1, act=True)

    def forward(self, x: Tensor) -> Tensor:
        paths = []
        for embed in self.patch_embed:
            x = embed(x)
            paths.append(x)
        outs = [self.local_path(paths[0])] + [enc(p) for enc, p in zip(self.path_encoders, paths)]
        return self.aggregate(torch.cat(outs, dim=1))


class MPViTEncoder(nn.Module):
    """MPViT encoder returning five feature levels (strides 2, 4, 8, 16, 32).

    Example::

        enc = MPViTEncoder("paper")                 # 5,626,736 parameters
        teacher = MPViTEncoder("teacher")           # MLP ratio 4: 7,934,336 parameters
        feats = enc(torch.randn(1, 3, 256, 320))    # list of 5 tensors
        enc.out_channels                            # (64, 96, 176, 216, 216)

    Any input size works; level k has spatial size ceil(H / 2^(k+1)) (exactly H / 2^(k+1)
    when H and W are multiples of 32).
    """

    def __init__(self, config: str | EncoderConfig = "paper", **overrides):
        super().__init__()
        if isinstance(config, str):
            if config not in ENCODER_CONFIGS:
                raise ValueError(f"unknown encoder config {config!r}; expected one of {sorted(ENCODER_CONFIGS)}")
            config = ENCODER_CONFIGS[config]
        if overrides:
            config = replace(config, **overrides)
        self.config = config
        c = config
        self.stem = nn.Sequential(ConvBN(3, c.stem_channels // 2, 3, 2), ConvBN(c.stem_channels // 2, c.stem_channels, 3, 1))
        cins = (c.stem_channels, *c.out_channels[1:-1])
        self.stages = nn.ModuleList(
            MultiPathStage(cin, dim, cout, p, n, c.num_heads, c.mlp_ratio, c.crpe_windows)
            for cin, dim, cout, p, n in zip(cins, c.embed_dims, c.out_channels[1:], c.num_paths, c.num_layers))

    @property
    def out_channels(self) -> tuple[int, ...]:
        return self.config.out_channels

    def set_form(self, form: str) -> "MPViTEncoder":
        """Compute every path encoder in ``form`` (:data:`ENCODER_FORMS`); returns self.
        Export selects ``channels_first``, the benchmarks ``released`` as their reference."""
        for module in self.modules():
            if isinstance(module, PathEncoder):
                module.set_form(form)
        return self

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, 3, H, W) ImageNet-normalised image → 5 feature maps, fine to coarse."""
        x = self.stem(x)
        feats = [x]
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats
