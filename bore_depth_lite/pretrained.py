"""The package's own trained DepthNet, small enough to ship inside it.

``make pretrained`` (``data_scripts/make_pretrained.py``) trains it on the synthetic world
with the recipe stored in the checkpoint, evaluates it and the trivial baselines on the
synthetic test split, and writes ``bore_depth_lite/assets/<name>.pt``. The evaluation and
deployment chapters load it so that their numbers describe a network that learnt something.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_depthnet, safe_load
from .models import DepthNet

__all__ = ["ASSETS", "RESULTS", "PRETRAINED", "pretrained_path", "load_pretrained", "pretrained_info"]

ASSETS = Path(__file__).resolve().parent / "assets"
#: Results of long runs that the chapters read (the ablation sweep, the deployment benchmark),
#: shipped with the package so that a chapter runs from any folder, Colab included.
RESULTS = ASSETS / "results"
#: name -> file in ASSETS
PRETRAINED: dict[str, str] = {"tiny-driving": "depthnet_tiny_driving.pt"}
DEFAULT = "tiny-driving"


def pretrained_path(name: str = DEFAULT) -> Path:
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained network {name!r}; available: {sorted(PRETRAINED)}")
    path = ASSETS / PRETRAINED[name]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make pretrained` to train and write it")
    return path


def load_pretrained(name: str = DEFAULT, map_location: str | torch.device = "cpu") -> DepthNet:
    """The shipped DepthNet in eval mode (fp32)."""
    return load_depthnet(pretrained_path(name), map_location=map_location).float().eval()


def pretrained_info(name: str = DEFAULT) -> dict[str, Any]:
    """What ``make pretrained`` recorded: the recipe, the metrics, the baselines' metrics."""
    return dict(safe_load(pretrained_path(name))["extra"])
