"""The synthetic world's on-disk cache: a data set is rendered once per configuration and code version.

``BORE_DEPTH_DATA`` sets the cache folder (default ``~/.cache/bore_depth_lite``).
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from .generate import SyntheticConfig, write_synthetic_dataset

__all__ = ["data_cache_dir", "renderer_version", "ensure_synthetic"]


def data_cache_dir() -> Path:
    return Path(os.environ.get("BORE_DEPTH_DATA", Path.home() / ".cache" / "bore_depth_lite"))


def renderer_version() -> str:
    """A hash of the code that renders and writes the world: a changed renderer gets a new
    cache folder instead of silently reusing frames the current code would not produce."""
    from . import generate, layout, render, synthetic

    digest = hashlib.sha1()
    for module in (render, synthetic, generate, layout):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:8]


def ensure_synthetic(config: SyntheticConfig, cache: Path | None = None) -> Path:
    """Render ``config`` into the cache unless it is already there; return its root."""
    c = config
    name = (f"{c.preset}-{c.height}x{c.width}-seed{c.seed}-train{c.train_scenes}x{c.frames_per_scene}"
            f"-val{c.val_scenes}x{c.val_frames_per_scene}-test{c.test_scenes}x{c.test_frames_per_scene}"
            f"{'-pseudo' if c.pseudo_depth else ''}{f'-speed{c.train_speed:g}' if c.train_speed != 1 else ''}"
            f"-{renderer_version()}")
    root = (cache or data_cache_dir()) / "synthetic" / name
    if (root / "info.json").is_file():
        return root
    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_synthetic_dataset(tmp, config, workers=1)
    try:
        tmp.rename(root)
    except OSError:  # another process finished the same folder first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return root
