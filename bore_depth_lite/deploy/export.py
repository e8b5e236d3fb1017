"""DepthNet → ONNX: export-time rewrites, the export itself, and parity checks.

A straight ``torch.onnx.export`` of DepthNet is correct (parity ~1e-6) but runs slowly in
ONNX Runtime and hands TensorRT operators that old versions cannot take. The rewrites below
change the *graph*, never the function: each one computes the same depth to float rounding
(checked by :func:`check_parity`), on a deep copy of the network, so training code and
checkpoints are untouched.

- ``sce_concat_depthwise`` — the SCE depth-wise conv expands C → 2C with ``groups=C``
  (channel multiplier 2). CPU kernels (ORT's MLAS, oneDNN) only have fast depth-wise paths
  for multiplier 1, so it falls back to a slow grouped conv; written as
  ``repeat_interleave`` + depth-wise it exports as Unsqueeze/Expand/Reshape around a
  strided copy. We feed ``cat([x, x])`` (one Concat) to a multiplier-1 depth-wise conv with
  permuted weights, and permute the following 1×1's input columns to match.
- ``attention_channels_first`` — the released attention keeps tokens as (B, N, C) and
  converts to image layout for every depth-wise conv; its ``softmax`` runs over the token
  axis, which is *not* the last axis, so ORT wraps it in two transposes. We keep each path
  encoder in (B, C, N) layout: the depth-wise convs see a free reshape, the softmax runs over
  the last axis, the q/k/v split is a plain Split, and only LayerNorm needs (B, N, C).
  The three relative-position convs become one depth-wise conv with constant, zero-padded
  weights (one kernel call instead of Split + 3 convs + Concat). This is the encoder's own
  ``channels_first`` form (:meth:`bore_depth_lite.models.MPViTEncoder.set_form`).
- ``reflection_pad_slices`` — ``Pad(mode="reflect")`` is not accepted by TensorRT before
  8.5 (and some DLA paths); a 1-pixel reflection pad is the same as concatenating rows 1 and
  H−2 (columns 1 and W−2), which every backend takes.

``bench/ort_profile.py`` measures what each rewrite changes in ONNX Runtime (per-operator
profile, and interleaved timing against the export without it: variant ``no_<rewrite>``).
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from ..models import DepthNet, SCEBlock
from ..models.mpvit import PathEncoder

__all__ = ["REWRITES", "ExportReport", "prepare_for_export", "export_onnx", "check_parity", "rewrites_parity",
           "onnx_operator_counts",
           "ConcatDepthwiseSCE", "SliceReflectConv2d"]

#: Export-time rewrites, in the order they are applied, with the operator each one removes.
REWRITES: dict[str, str] = {
    "sce_concat_depthwise": "SCE's C→2C expansion (grouped Conv with channel multiplier 2, or "
                            "repeat_interleave + depth-wise) → Concat + depth-wise Conv",
    "attention_channels_first": "Softmax over a non-last axis and the Transpose chains around attention → "
                                "channels-first attention (Softmax on the last axis)",
    "reflection_pad_slices": "Pad(mode=reflect) → Slice + Concat (TensorRT < 8.5 rejects reflect padding)",
}


class ConcatDepthwiseSCE(nn.Module):
    """SCE block with the C→2C grouped conv written as ``cat([x, x])`` + a depth-wise conv.

    Original output channel ``o = 2c + m`` (m ∈ {0, 1}) filters input channel ``c``. In
    ``cat([x, x])`` channel ``k`` holds ``x[k mod C]``, so new channel ``k < C`` must carry
    original channel ``2k`` and ``k ≥ C`` original ``2(k−C)+1``; the 1×1 that follows reads
    its inputs in the same permuted order.
    """

    def __init__(self, sce: SCEBlock):
        super().__init__()
        dw, pw = sce.depthwise, sce.pointwise
        c = dw.in_channels
        if dw.groups != c or dw.out_channels != 2 * c:
            raise ValueError(f"expected a C→2C conv with groups=C, got {dw}")
        perm = torch.cat([torch.arange(0, 2 * c, 2), torch.arange(1, 2 * c, 2)])
        self.depthwise = nn.Conv2d(2 * c, 2 * c, dw.kernel_size, dw.stride, dw.padding, groups=2 * c,
                                   bias=dw.bias is not None)
        self.pointwise = nn.Conv2d(2 * c, pw.out_channels, 1, bias=pw.bias is not None)
        with torch.no_grad():
            self.depthwise.weight.copy_(dw.weight[perm])
            if dw.bias is not None:
                self.depthwise.bias.copy_(dw.bias[perm])
            self.pointwise.weight.copy_(pw.weight[:, perm])
            if pw.bias is not None:
                self.pointwise.bias.copy_(pw.bias)
        self.act = sce.act
        self.project = sce.project

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) → (B, C, H, W)."""
        y = self.depthwise(torch.cat([x, x], dim=1))
        return x + self.project(self.act(self.pointwise(y)))


class SliceReflectConv2d(nn.Module):
    """A ``padding_mode="reflect"``, padding-1 Conv2d with the padding done by Slice + Concat."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.padding_mode != "reflect" or tuple(conv.padding) != (1, 1):
            raise ValueError(f"expected a reflection-padded conv with padding 1, got {conv}")
        self.conv = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0,
                              conv.dilation, conv.groups, conv.bias is not None)
        self.conv.load_state_dict(conv.state_dict())

    def forward(self, x: Tensor) -> Tensor:
        x = torch.cat([x[:, :, 1:2], x, x[:, :, -2:-1]], dim=2)
        x = torch.cat([x[:, :, :, 1:2], x, x[:, :, :, -2:-1]], dim=3)
        return self.conv(x)


def _swap_children(root: nn.Module, predicate, make) -> int:
    """Replace every submodule for which ``predicate`` holds by ``make(module)``; returns the count."""
    count = 0
    for name, child in list(root.named_children()):
        if predicate(child):
            setattr(root, name, make(child))
            count += 1
        else:
            count += _swap_children(child, predicate, make)
    return count


def prepare_for_export(net: nn.Module, rewrites: tuple[str, ...] | None = None) -> tuple[nn.Module, dict[str, int]]:
    """A deep copy of ``net`` in eval mode with the export rewrites applied.

    Args:
        net: a DepthNet (or any module holding its parts).
        rewrites: names from :data:`REWRITES`; ``None`` = all, ``()`` = none.
    Returns:
        (the rewritten copy, {rewrite name: number of modules replaced}).
    """
    names = tuple(REWRITES) if rewrites is None else tuple(rewrites)
    unknown = set(names) - set(REWRITES)
    if unknown:
        raise ValueError(f"unknown rewrites {sorted(unknown)}; expected names from {list(REWRITES)}")
    net = copy.deepcopy(net).eval()
    for module in net.modules():
        # Modules that build their weights in forward (e.g. a merged relative-position conv)
        # export as weights of unknown shape with the TorchScript exporter: use their
        # parameter-for-parameter form; the attention rewrite merges them as constants instead.
        if hasattr(module, "merged") and hasattr(module, "convs"):
            module.merged = False
    counts: dict[str, int] = {}
    for name in names:
        if name == "sce_concat_depthwise":
            counts[name] = _swap_children(net, lambda m: isinstance(m, SCEBlock), ConcatDepthwiseSCE)
        elif name == "attention_channels_first":   # the encoder's own export form
            encoders = [m for m in net.modules() if isinstance(m, PathEncoder)]
            for encoder in encoders:
                encoder.set_form("channels_first")
            counts[name] = len(encoders)
        elif name == "reflection_pad_slices":
            counts[name] = _swap_children(
                net, lambda m: isinstance(m, nn.Conv2d) and m.padding_mode == "reflect", SliceReflectConv2d)
    return net, counts


@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote and changed."""

    path: Path
    opset: int
    input_shape: tuple
    dynamic: bool
    rewrites: dict[str, int]
    operators: dict[str, int] = field(default_factory=dict)
    checker_ok: bool = False

    def summary(self) -> str:
        shape = "×".join(str(s) for s in self.input_shape)
        lines = [f"ONNX opset {self.opset}, input {shape}{' (dynamic B, H, W)' if self.dynamic else ''}, "
                 f"onnx.checker {'clean' if self.checker_ok else 'FAILED'}"]
        for name, n in self.rewrites.items():
            lines.append(f"  replaced {n:3d}× {REWRITES[name]}")
        if not self.rewrites:
            lines.append("  no operator replaced (plain export)")
        return "\n".join(lines)


def onnx_operator_counts(model) -> dict[str, int]:
    """{op_type: count} of an ``onnx.ModelProto`` or a path to one."""
    import onnx

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def export_onnx(net: nn.Module, path: str | Path, size: tuple[int, int] = (256, 320), *, batch: int = 1,
                dynamic: bool = False, opset: int = 17, rewrites: tuple[str, ...] | None = None) -> ExportReport:
    """Export a DepthNet to ONNX and check the file with ``onnx.checker``.

    Args:
        net: the network (not modified; the rewrites act on a copy).
        path: output ``.onnx`` file (written atomically).
        size: (H, W) of the example input; multiples of 32 (the released 256×320 / 256×832).
        batch: example batch size.
        dynamic: make batch, height and width dynamic (inputs must stay multiples of 32;
            :class:`~bore_depth_lite.deploy.backends.OnnxRuntimeBackend` pads others).
        opset: ONNX opset, ≥ 17 (LayerNormalization is a single operator from 17 on).
        rewrites: see :func:`prepare_for_export`; ``()`` for the plain export.
    Input ``image`` (B, 3, H, W) float32 ImageNet-normalised; output ``depth`` (B, 1, H, W).
    """
    import onnx

    if opset < 17:
        raise ValueError(f"opset={opset}: need ≥ 17 (LayerNormalization)")
    h, w = (int(s) for s in size)
    if h % 32 or w % 32 or h < 32 or w < 32:
        raise ValueError(f"size={size}: export at multiples of 32 (the network pads other sizes itself, "
                         "which a static graph would freeze)")
    export_net, counts = prepare_for_export(net, rewrites)
    example = torch.randn(batch, 3, h, w)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    dynamic_axes = {"image": {0: "batch", 2: "height", 3: "width"},
                    "depth": {0: "batch", 2: "height", 3: "width"}} if dynamic else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer/deprecation chatter; parity is checked instead
        torch.onnx.export(export_net, (example,), str(tmp), input_names=["image"], output_names=["depth"],
                          opset_version=opset, dynamic_axes=dynamic_axes, do_constant_folding=True, dynamo=False)
    model = onnx.load(str(tmp))
    onnx.checker.check_model(model, full_check=True)
    tmp.replace(path)
    return ExportReport(path, opset, (batch, 3, h, w), dynamic, counts, onnx_operator_counts(model), True)


def check_parity(reference: Tensor | np.ndarray, candidate: Tensor | np.ndarray) -> dict[str, float]:
    """Relative errors of ``candidate`` against ``reference`` (same shape).

    Returns ``max_rel`` = max|Δ| / max|ref| (the parity tolerance is on this), ``mean_rel``
    = mean(|Δ| / |ref|) (the mean pixel-wise relative change) and ``max_abs``.
    """
    ref = np.asarray(reference.detach().cpu() if isinstance(reference, Tensor) else reference, np.float64)
    cand = np.asarray(candidate.detach().cpu() if isinstance(candidate, Tensor) else candidate, np.float64)
    if ref.shape != cand.shape:
        raise ValueError(f"shapes differ: reference {ref.shape}, candidate {cand.shape}")
    diff = np.abs(cand - ref)
    return {"max_rel": float(diff.max() / max(np.abs(ref).max(), 1e-12)),
            "mean_rel": float(np.mean(diff / np.maximum(np.abs(ref), 1e-12))),
            "max_abs": float(diff.max())}


def rewrites_parity(net: DepthNet, image: Tensor, rewrites: tuple[str, ...] | None = None) -> dict[str, float]:
    """Parity of the rewritten PyTorch copy against ``net`` on ``image`` (no ONNX involved)."""
    rewritten, _ = prepare_for_export(net, rewrites)
    with torch.no_grad():
        return check_parity(net.eval()(image), rewritten(image))

