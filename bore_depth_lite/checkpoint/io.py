"""Reading and writing checkpoint files: the package's one safe loader and one atomic writer.

A checkpoint is written to a temporary file in the same folder, flushed to disk, then renamed
over the old one (``os.replace`` is atomic on POSIX), so a crash mid-write leaves the previous
checkpoint intact (:func:`bore_depth_lite.fileio.atomic_write`). It is read with
``torch.load(weights_only=True)``: only tensors and plain Python containers, never arbitrary
pickled objects; every failure is one line naming the file and saying what is wrong.
"""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

import torch

from ..fileio import atomic_write

__all__ = ["CheckpointError", "atomic_save", "safe_load", "check_finite_state", "shorten_list"]


class CheckpointError(ValueError):
    """A file that is not a usable checkpoint: unreadable, of another format or layout, or holding
    NaN weights. The message names the file and what was expected."""


def shorten_list(items: list[str], limit: int = 8, sep: str = ", ") -> str:
    """The first ``limit`` items joined, then "... and N more": error messages stay short
    when a whole state dict (hundreds of keys) is wrong."""
    items = list(items)
    shown = sep.join(items[:limit])
    return shown + (f"{sep}... and {len(items) - limit} more" if len(items) > limit else "")


def check_finite_state(state_dict: dict, where: str) -> None:
    """CheckpointError naming the first tensors holding NaN or inf (a diverged run's
    checkpoint: every depth it predicts would be NaN)."""
    bad = [k for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{where}: {len(bad)} tensor(s) hold NaN or inf values ({shorten_list(bad, 3)}); "
                              "the run that wrote it diverged: use an earlier checkpoint")


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (temp file in the same folder + fsync + rename;
    temporaries of killed earlier writes are removed)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def _describe_load_failure(path: Path, err: Exception) -> str:
    """One line saying why ``torch.load(weights_only=True)`` failed on ``path``."""
    text = str(err)
    # torch >= 2.6 words a refused global in two ways (an unknown class, a blocked function).
    m = (re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
         or re.search(r"unsupported GLOBAL ([\w.]+)", text))
    if m:
        return (f"{path}: refused to unpickle {m.group(1)} (weights_only=True allows tensors, plain "
                "containers and argparse.Namespace only). If you trust this file, re-save its "
                "'state_dict' alone.")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        head = b""
    size = path.stat().st_size if path.exists() else 0
    if size == 0:
        return f"{path}: the file is empty, not a PyTorch checkpoint"
    if head.startswith(b"PK"):
        return (f"{path}: a damaged or truncated PyTorch checkpoint ({size} bytes; the zip archive "
                "cannot be read: re-download or re-save it)")
    if head[:1] == b"\x80":
        return (f"{path}: a pickle that weights_only=True cannot read safely (an unsupported "
                "instruction or object); if you trust it, re-save its 'state_dict' with torch.save")
    return f"{path}: not a PyTorch checkpoint (neither torch.save's zip archive nor a pickle; {size} bytes)"


def safe_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """``torch.load(weights_only=True)`` of a checkpoint dict; the package's one loader.

    Also allows ``argparse.Namespace`` (the hyper-parameters of a Lightning ``.ckpt``).

    Raises:
        FileNotFoundError: ``path`` is missing or a folder.
        CheckpointError: empty, truncated, not a checkpoint at all, holding a refused class or
            function (named), or not a dict.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"checkpoint {path} {what}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError (zip), EOFError, IndexError... on junk
        raise CheckpointError(_describe_load_failure(path, err)) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, found a {type(state).__name__}")
    return state
