"""Load the released BoRe-Depth checkpoints (PyTorch-Lightning ``.ckpt``) into our networks.

Released tensor names (``official_state_dict_layout.txt``) → ours:

=====================================================================  ===========================================
released (after ``depth_net.``)                                         ours (``DepthNet``)
=====================================================================  ===========================================
``encoder.stem.{a}.{conv,bn}``                                          ``encoder.stem.{a}.{conv,bn}``
``encoder.patch_embed_stages.{s}.patch_embeds.{p}.patch_conv.dwconv``   ``encoder.stages.{s}.patch_embed.{p}.depthwise``
``… .patch_conv.pwconv`` / ``… .patch_conv.bn``                         ``… .pointwise`` / ``… .bn``
``encoder.mhca_stages.{s}.mhca_blks.{p}.cpe.proj``                      ``encoder.stages.{s}.path_encoders.{p}.position_conv``
``encoder.mhca_stages.{s}.mhca_blks.{p}.crpe.conv_list.{m}``            ``… .path_encoders.{p}.relative_position.convs.{m}``
``… .mhca_blks.{p}.MHCA_layers.{l}.factoratt_crpe.{qkv,proj}``          ``… .path_encoders.{p}.blocks.{l}.attention.{qkv,proj}``
``… .MHCA_layers.{l}.{norm1,norm2,mlp.fc1,mlp.fc2}``                    ``… .blocks.{l}.{norm1,norm2,mlp.fc1,mlp.fc2}``
``… .MHCA_layers.{l}.cpe.*``, ``.crpe.*``, ``.factoratt_crpe.crpe.*``   (copies of the shared modules: checked, dropped)
``encoder.mhca_stages.{s}.InvRes.{conv1,dwconv,norm,conv2}``            ``encoder.stages.{s}.local_path.{pointwise_in,depthwise,bn,pointwise_out}``
``encoder.mhca_stages.{s}.aggregate``                                   ``encoder.stages.{s}.aggregate``
``decoder.deconvs.{j}.conv``                                            ``decoder.blocks.{j}.reduce``
``decoder.localattentions.{j}.{conv_0.0,conv_0.1,conv_1}``              ``decoder.blocks.{j}.upsampled_sce.{depthwise,pointwise,project}``
``decoder.globalattentions.{j}`` (j < 4)                                ``decoder.blocks.{j}.skip_sce``
``decoder.globalattentions.4`` (built, never used in forward)           ``decoder.unused_skip_sce``
``decoder.upconvs3.{j}.conv.conv``                                      ``decoder.blocks.{j}.fuse``
``decoder.dispconvs.0.conv``                                            ``decoder.depth_head``
``encoder.encoder.*`` / ``decoder.conv_squeeze`` (after ``pose_net.``)  ``encoder.*`` / ``decoder.squeeze``
``decoder.convs_pose.{0,1,2}``                                          ``decoder.{conv1,conv2,to_pose}``
=====================================================================  ===========================================

In the release every layer of an MHCA encoder *refers to* the encoder's one positional conv
and one relative-position conv set, so a checkpoint stores each value up to 1 + 3·layers
times. We build them once; the loader checks that every stored copy equals the first.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from ..models.depth_net import DepthNet
from ..models.pose_net import PoseNet
from .io import CheckpointError, check_finite_state, safe_load, shorten_list

__all__ = ["LoadReport", "read_released_state_dict", "released_names", "convert_depthnet_state_dict",
           "convert_posenet_state_dict", "to_released_state_dict", "load_released_depthnet", "load_released_posenet"]

log = logging.getLogger(__name__)

UNUSED_PREFIX = "decoder.globalattentions.4."


@dataclass
class LoadReport:
    """What a strict load did."""

    network: str
    loaded: int = 0
    unused_in_forward: list[str] = field(default_factory=list)
    shared_copies_checked: int = 0

    def __str__(self) -> str:
        s = f"{self.network}: loaded {self.loaded} tensors strictly"
        if self.shared_copies_checked:
            s += f"; {self.shared_copies_checked} stored copies of shared cpe/crpe modules agree"
        if self.unused_in_forward:
            s += (f"; {len(self.unused_in_forward)} tensors of decoder.globalattentions.4 "
                  "(built by the release, never used in forward) accepted")
        return s


def read_released_state_dict(path: str | Path, network: str, map_location="cpu") -> dict[str, Tensor]:
    """The ``{network}.*`` tensors of a released ``.ckpt`` with the prefix removed.

    Accepts a Lightning checkpoint (``{'state_dict': {...}}``) or a bare state dict.
    """
    ckpt = safe_load(path, map_location)
    sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: expected a dict with a 'state_dict', got {type(ckpt).__name__}")
    prefix = network + "."
    out = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if not out:
        heads = sorted({k.split(".")[0] for k in sd})
        raise CheckpointError(f"{path}: no '{prefix}*' tensors in the checkpoint (top-level names: {heads})")
    return out


_DEPTH_RULES = [
    (r"encoder\.stages\.(\d+)\.patch_embed\.(\d+)\.depthwise\.(.+)",
     r"encoder.patch_embed_stages.\1.patch_embeds.\2.patch_conv.dwconv.\3"),
    (r"encoder\.stages\.(\d+)\.patch_embed\.(\d+)\.pointwise\.(.+)",
     r"encoder.patch_embed_stages.\1.patch_embeds.\2.patch_conv.pwconv.\3"),
    (r"encoder\.stages\.(\d+)\.patch_embed\.(\d+)\.bn\.(.+)", r"encoder.patch_embed_stages.\1.patch_embeds.\2.patch_conv.bn.\3"),
    (r"encoder\.stages\.(\d+)\.path_encoders\.(\d+)\.position_conv\.(.+)", r"encoder.mhca_stages.\1.mhca_blks.\2.cpe.proj.\3"),
    (r"encoder\.stages\.(\d+)\.path_encoders\.(\d+)\.relative_position\.convs\.(.+)",
     r"encoder.mhca_stages.\1.mhca_blks.\2.crpe.conv_list.\3"),
    (r"encoder\.stages\.(\d+)\.path_encoders\.(\d+)\.blocks\.(\d+)\.attention\.(.+)",
     r"encoder.mhca_stages.\1.mhca_blks.\2.MHCA_layers.\3.factoratt_crpe.\4"),
    (r"encoder\.stages\.(\d+)\.path_encoders\.(\d+)\.blocks\.(\d+)\.(.+)", r"encoder.mhca_stages.\1.mhca_blks.\2.MHCA_layers.\3.\4"),
    (r"encoder\.stages\.(\d+)\.local_path\.pointwise_in\.(.+)", r"encoder.mhca_stages.\1.InvRes.conv1.\2"),
    (r"encoder\.stages\.(\d+)\.local_path\.depthwise\.(.+)", r"encoder.mhca_stages.\1.InvRes.dwconv.\2"),
    (r"encoder\.stages\.(\d+)\.local_path\.bn\.(.+)", r"encoder.mhca_stages.\1.InvRes.norm.\2"),
    (r"encoder\.stages\.(\d+)\.local_path\.pointwise_out\.(.+)", r"encoder.mhca_stages.\1.InvRes.conv2.\2"),
    (r"encoder\.stages\.(\d+)\.aggregate\.(.+)", r"encoder.mhca_stages.\1.aggregate.\2"),
    (r"encoder\.stem\.(.+)", r"encoder.stem.\1"),
    (r"decoder\.blocks\.(\d+)\.reduce\.(.+)", r"decoder.deconvs.\1.conv.\2"),
    (r"decoder\.blocks\.(\d+)\.upsampled_sce\.(.+)", r"decoder.localattentions.\1.\2"),
    (r"decoder\.blocks\.(\d+)\.skip_sce\.(.+)", r"decoder.globalattentions.\1.\2"),
    (r"decoder\.unused_skip_sce\.(.+)", r"decoder.globalattentions.4.\1"),
    (r"decoder\.blocks\.(\d+)\.fuse\.(.+)", r"decoder.upconvs3.\1.conv.conv.\2"),
    (r"decoder\.depth_head\.(.+)", r"decoder.dispconvs.0.conv.\1"),
]
_SCE_RULES = [(r"(attentions\.\d+)\.depthwise\.", r"\1.conv_0.0."), (r"(attentions\.\d+)\.pointwise\.", r"\1.conv_0.1."),
              (r"(attentions\.\d+)\.project\.", r"\1.conv_1.")]
_POSE_RULES = [
    (r"encoder\.(.+)", r"encoder.encoder.\1"),
    (r"decoder\.squeeze\.(.+)", r"decoder.conv_squeeze.\1"),
    (r"decoder\.conv1\.(.+)", r"decoder.convs_pose.0.\1"),
    (r"decoder\.conv2\.(.+)", r"decoder.convs_pose.1.\1"),
    (r"decoder\.to_pose\.(.+)", r"decoder.convs_pose.2.\1"),
]


def released_names(our_key: str, network: str = "depth_net", num_layers: tuple[int, ...] = (1, 2, 4, 1)) -> list[str]:
    """Released name(s) of one of our tensors: the primary name first, then the stored copies
    of a shared module (positional/relative-position convs, once per layer of the encoder)."""
    rules = _DEPTH_RULES if network == "depth_net" else _POSE_RULES
    for pattern, repl in rules:
        if re.fullmatch(pattern, our_key):
            name = re.sub(pattern, repl, our_key)
            break
    else:
        raise KeyError(f"no released name for {network} tensor {our_key!r}")
    for pattern, repl in _SCE_RULES:
        name = re.sub(pattern, repl, name)
    m = re.fullmatch(r"(encoder\.mhca_stages\.(\d+)\.mhca_blks\.\d+)\.(cpe|crpe)\.(.+)", name)
    if not m:
        return [name]
    base, stage, kind, rest = m.groups()
    layers = range(num_layers[int(stage)])
    if kind == "cpe":
        return [name] + [f"{base}.MHCA_layers.{l}.cpe.{rest}" for l in layers]
    return [name] + [f"{base}.MHCA_layers.{l}.{where}.{rest}" for l in layers for where in ("crpe", "factoratt_crpe.crpe")]


def _convert(official: dict[str, Tensor], model: torch.nn.Module, network: str, source: str,
             num_layers: tuple[int, ...] = ()) -> tuple[dict[str, Tensor], LoadReport]:
    report = LoadReport(network)
    ours = model.state_dict()
    converted: dict[str, Tensor] = {}
    expected: set[str] = set()
    missing, mismatched, disagree = [], [], []
    for key, ref in ours.items():
        names = released_names(key, network, num_layers)
        expected.update(names)
        present = [n for n in names if n in official]
        missing += [n for n in names if n not in official]
        if not present:
            continue
        value = official[present[0]]
        if value.shape != ref.shape:
            mismatched.append(f"{present[0]}: checkpoint {tuple(value.shape)} vs network {tuple(ref.shape)}")
            continue
        for copy in present[1:]:
            report.shared_copies_checked += 1
            if not torch.equal(official[copy], value):
                disagree.append(f"{copy} != {present[0]}")
        converted[key] = value
        if network == "depth_net" and names[0].startswith(UNUSED_PREFIX):
            report.unused_in_forward.append(names[0])
    unknown = sorted(set(official) - expected)
    if network == "depth_net":  # a network built without the unused block still accepts it
        accepted = [k for k in unknown if k.startswith(UNUSED_PREFIX)]
        report.unused_in_forward += accepted
        unknown = [k for k in unknown if not k.startswith(UNUSED_PREFIX)]
    problems = []
    if unknown:
        problems.append(f"{len(unknown)} unknown key(s): {shorten_list(unknown)}")
    if missing:
        problems.append(f"{len(missing)} missing key(s): {shorten_list(sorted(missing))}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): {shorten_list(mismatched, sep='; ')}")
    if disagree:
        problems.append(f"{len(disagree)} stored copies of a shared cpe/crpe module disagree (a real "
                        f"checkpoint stores equal copies): {shorten_list(disagree)}")
    if problems:
        if len(official) and not converted:
            problems.insert(0, f"none of its {len(official)} tensors has a released name (another network?)")
        raise CheckpointError(f"{source}: not the released {network} layout: " + "; ".join(problems))
    report.loaded = len(converted)
    return converted, report


def convert_depthnet_state_dict(official: dict[str, Tensor], model, source: str = "state dict"):
    """Released ``depth_net`` tensors (prefix removed) → our state dict for ``model``, strictly.

    Returns ``(state_dict, LoadReport)``; raises :class:`CheckpointError` listing every
    unknown, missing, mis-shaped or disagreeing key.
    """
    return _convert(official, model, "depth_net", source, model.config.encoder.num_layers)


def convert_posenet_state_dict(official: dict[str, Tensor], model, source: str = "state dict"):
    """Released ``pose_net`` tensors (prefix removed) → our state dict, strictly."""
    return _convert(official, model, "pose_net", source)


def to_released_state_dict(model, network: str = "depth_net") -> dict[str, Tensor]:
    """Our state dict → released names (with every shared copy written), e.g. to compare with
    the released code or to write a checkpoint it can read."""
    layers = model.config.encoder.num_layers if network == "depth_net" else ()
    return {name: v.clone() for k, v in model.state_dict().items() for name in released_names(k, network, layers)}


def load_released_depthnet(path: str | Path, map_location="cpu"):
    net = DepthNet("paper")
    sd, report = convert_depthnet_state_dict(read_released_state_dict(path, "depth_net", map_location), net, str(path))
    check_finite_state(sd, f"{path}: {report.network}")
    net.load_state_dict(sd, strict=True)
    net.load_report = report
    log.info("%s", report)
    return net.eval()


def load_released_posenet(path: str | Path, map_location="cpu"):
    net = PoseNet(pretrained=False)
    sd, report = convert_posenet_state_dict(read_released_state_dict(path, "pose_net", map_location), net, str(path))
    check_finite_state(sd, f"{path}: {report.network}")
    net.load_state_dict(sd, strict=True)
    net.load_report = report
    log.info("%s", report)
    return net.eval()
