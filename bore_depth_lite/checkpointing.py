"""Training checkpoints that never lose work: atomic writes, safe loading, exact resume.

A checkpoint holds everything a killed run needs to continue as if it had never stopped:
model and optimiser states, the step, the configuration and every random generator's
state. It is written to a temporary file in the same folder, flushed to disk, then renamed
over the old one (``os.replace`` is atomic on POSIX), so a crash mid-write leaves the
previous checkpoint intact. Loading uses ``torch.load(weights_only=True)``: only tensors and
plain Python containers, never arbitrary pickled objects.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .fileio import atomic_write

__all__ = ["atomic_save", "safe_load", "rng_state", "set_rng_state"]


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (temp file in the same folder + fsync + rename;
    temporaries of killed earlier writes are removed: :func:`bore_depth_lite.fileio.atomic_write`)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def safe_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; the one loader of the package
    (:func:`bore_depth_lite.models.official.safe_torch_load`) explains what went wrong.

    Raises FileNotFoundError (no such file) or ValueError naming the file (not a checkpoint,
    truncated, pickled objects, not a dict).
    """
    from .models.official import safe_torch_load

    state = safe_torch_load(path, map_location)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a checkpoint dict, found a {type(state).__name__}")
    return state


def rng_state() -> dict[str, Any]:
    """The state of Python's, NumPy's and torch's generators, as tensors and plain values."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
