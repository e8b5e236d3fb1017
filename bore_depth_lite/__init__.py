"""bore_depth_lite: the package behind the BoRe-Depth book.

Every chapter imports it; researchers can use it on its own. Modules are small and flat,
named after what they compute (monodepth2 / SC-Depth style).
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

__version__ = "0.1.0"

__all__ = ["setup", "seed_everything", "resolve_device", "__version__"]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` into CUDA when present, else CPU; check an explicit request.

    Raises:
        ValueError: ``device`` names CUDA on a machine without it.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device={device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available on this machine; "
                         "use device='cpu' or 'auto'")
    return dev


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and torch's generators (what a training run does itself)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def setup(seed: int = 0, device: str | torch.device = "auto", threads: int | None = 1) -> torch.device:
    """Seed every generator, fix the CPU thread count, and return the resolved device.

    Chapters call this at the top of each computing cell so that outputs are the same on
    every run (nbval compares them). One CPU thread by default: a training run's numbers then
    do not depend on how many cores the machine has (parallel reductions sum in another
    order, and training amplifies the difference). ``threads=None`` leaves torch's default;
    the environment variable ``BORE_DEPTH_THREADS`` overrides ``threads`` for speed. Only
    chapters and command-line entry points call it: the thread count is the process's, not a
    library's, decision.
    """
    threads = int(os.environ["BORE_DEPTH_THREADS"]) if os.environ.get("BORE_DEPTH_THREADS") else threads
    seed_everything(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    return resolve_device(device)
