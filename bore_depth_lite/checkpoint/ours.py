"""Our checkpoint format, its one writer, and loading any DepthNet checkpoint (ours or released).

Format (a plain dict saved with ``torch.save``, loadable with ``weights_only=True``)::

    {
      "format": "bore_depth_lite.checkpoint",
      "version": 1,
      "depth_net": {"config": DepthNetConfig.to_dict(), "state_dict": {...}},   # optional
      "pose_net":  {"config": {"arch", "translation_unit"}, "state_dict": {...}},  # optional
      "extra": {...},   # plain Python values only: epoch, step, metrics, notes...
      "training": {...},  # optional: optimiser, scaler and RNG states of a run that can resume
    }

Files are written atomically (temporary file in the same folder, then ``os.replace``), so an
interrupted training run never leaves a half-written checkpoint under the final name.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..models.depth_net import DepthNet, DepthNetConfig
from ..models.pose_net import PoseNet
from .io import CheckpointError, atomic_save, check_finite_state, safe_load, shorten_list
from .released import load_released_depthnet, load_released_posenet

__all__ = ["FORMAT", "VERSION", "checkpoint_dict", "save_checkpoint", "read_checkpoint", "save_depthnet", "load_depthnet", "load_posenet", "load_any_depthnet"]

FORMAT = "bore_depth_lite.checkpoint"
VERSION = 1


def _cpu(state_dict: dict) -> dict:
    return {k: v.detach().cpu() for k, v in state_dict.items()}


def checkpoint_dict(depth_net: DepthNet | None = None, pose_net: PoseNet | None = None, extra: dict | None = None,
                    training: dict | None = None) -> dict:
    """The checkpoint as a dict in our format (what :func:`save_checkpoint` writes)."""
    if depth_net is None and pose_net is None:
        raise ValueError("a checkpoint needs depth_net, pose_net or both")
    ckpt: dict = {"format": FORMAT, "version": VERSION, "extra": dict(extra or {})}
    if depth_net is not None:
        ckpt["depth_net"] = {"config": depth_net.config.to_dict(), "state_dict": _cpu(depth_net.state_dict())}
    if pose_net is not None:
        config = {"arch": pose_net.arch, "translation_unit": getattr(pose_net, "translation_unit", "depth")}
        ckpt["pose_net"] = {"config": config, "state_dict": _cpu(pose_net.state_dict())}
    if training is not None:
        ckpt["training"] = training
    return ckpt


def save_checkpoint(path: str | Path, depth_net: DepthNet | None = None, pose_net: PoseNet | None = None,
                    extra: dict | None = None, training: dict | None = None) -> Path:
    """Write networks (either or both), plain ``extra`` values and, for a run that can resume,
    its ``training`` state (optimiser, scaler, RNG) in our format, atomically. The package's
    one checkpoint writer."""
    return atomic_save(checkpoint_dict(depth_net, pose_net, extra, training), path)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", hint: str = "") -> dict:
    """A whole checkpoint of ours (networks, extra, training state); CheckpointError otherwise.
    ``hint`` is appended to the error for a file of another format (what the caller expected)."""
    ckpt = safe_load(path, map_location)
    if ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a bore_depth_lite checkpoint (format {ckpt.get('format')!r}, "
                              f"expected {FORMAT!r}){'; ' + hint if hint else ''}")
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ckpt['version']} is newer than this package ({VERSION})")
    return ckpt


def save_depthnet(path: str | Path, net: DepthNet, **extra) -> Path:
    """Shorthand for ``save_checkpoint(path, depth_net=net, extra=extra)``."""
    return save_checkpoint(path, depth_net=net, extra=extra)


def _read_ours(path: str | Path, network: str, map_location) -> dict:
    ckpt = read_checkpoint(path, map_location)
    if network not in ckpt or not isinstance(ckpt[network], dict):
        raise CheckpointError(f"{path}: holds no {network} (it has: {sorted(k for k in ckpt if k.endswith('_net'))})")
    return ckpt[network]


def load_depthnet(path: str | Path, map_location: str | torch.device = "cpu") -> DepthNet:
    """A DepthNet from our checkpoint format (strict), in eval mode."""
    entry = _read_ours(path, "depth_net", map_location)
    net = _build(path, "depth_net", lambda: DepthNet(DepthNetConfig.from_dict(entry["config"])))
    _load_strict(path, "depth_net", net, entry)
    return net.eval()


def _build(path, network: str, make):
    try:
        return make()
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: the {network} config it holds cannot build a network "
                                      f"({type(err).__name__}: {err})") from None


def _load_strict(path, network: str, net, entry) -> None:
    """Load ``entry['state_dict']`` strictly; one short message (first keys only) if it does not
    match, and refuse NaN/inf weights (they make every depth NaN, silently)."""
    sd = entry.get("state_dict") if isinstance(entry, dict) else None
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: {network} holds no state_dict of tensors")
    ours = net.state_dict()
    missing, unexpected = sorted(set(ours) - set(sd)), sorted(set(sd) - set(ours))
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs network {tuple(v.shape)}"
              for k, v in ours.items() if k in sd and sd[k].shape != v.shape]
    problems = ([f"{len(missing)} missing key(s): {shorten_list(missing)}"] if missing else []) + \
               ([f"{len(unexpected)} unexpected key(s): {shorten_list(unexpected)}"] if unexpected else []) + \
               ([f"{len(shapes)} shape mismatch(es): {shorten_list(shapes, sep='; ')}"] if shapes else [])
    if problems:
        raise CheckpointError(f"{path}: {network} state_dict does not match its own config: "
                                      + "; ".join(problems))
    check_finite_state(sd, f"{path}: {network}")
    net.load_state_dict(sd, strict=True)



def load_posenet(path: str | Path, map_location: str | torch.device = "cpu") -> PoseNet:
    """A PoseNet from our checkpoint format or a released ``.ckpt`` (strict), in eval mode."""
    ckpt = safe_load(path, map_location)
    if isinstance(ckpt, dict) and ckpt.get("format") != FORMAT:
        return load_released_posenet(path, map_location)
    entry = _read_ours(path, "pose_net", map_location)
    config = entry.get("config", {})
    net = _build(path, "pose_net", lambda: PoseNet(arch=config.get("arch", "resnet18"),
                                                   translation_unit=config.get("translation_unit", "depth")))
    _load_strict(path, "pose_net", net, entry)
    return net.eval()


def load_any_depthnet(path: str | Path, map_location: str | torch.device = "cpu") -> DepthNet:
    """Our format or a released Lightning ``.ckpt`` (recognised by its ``depth_net.*`` keys)."""
    ckpt = safe_load(path, map_location)
    if isinstance(ckpt, dict) and ckpt.get("format") == FORMAT:
        return load_depthnet(path, map_location)
    sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if isinstance(sd, dict) and any(str(k).startswith("depth_net.") for k in sd):
        return load_released_depthnet(path, map_location)
    raise CheckpointError(f"{path}: neither a bore_depth_lite checkpoint nor a released BoRe-Depth "
                                  "checkpoint (no 'format' key and no 'depth_net.*' tensors)")
