"""Figures of depth: inverse-depth colouring and rows of image panels, in one place.

Used by ``bore-depth-infer`` (its PNGs), the trainer's sample figures and the chapters. Figures
are built without pyplot (``matplotlib.figure.Figure``), so they never change a notebook's or a
script's backend; in a notebook, ``display(fig)`` shows one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["NO_DEPTH_RGB", "inverse_depth_range", "colorize_depth", "Panel", "panel_figure"]

#: Colour of pixels without depth (sky, invalid): neutral grey, not the colour of "far" or "near".
NO_DEPTH_RGB = (128, 128, 128)


def inverse_depth_range(depth: np.ndarray, valid: np.ndarray | None = None) -> tuple[float, float]:
    """(low, high) inverse depth for display: the minimum and the 95th percentile of the valid
    pixels (Monodepth2's display rule, so a few very near pixels do not wash out the rest)."""
    ok = np.isfinite(depth) & (depth > 0) if valid is None else valid & np.isfinite(depth) & (depth > 0)
    if not ok.any():
        return 0.0, 1.0
    disp = 1.0 / depth[ok]
    return float(disp.min()), float(np.percentile(disp, 95))


def colorize_depth(depth: np.ndarray, cmap: str = "magma", valid: np.ndarray | None = None,
                   value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Depth (H, W) → uint8 RGB (H, W, 3): inverse depth, near is bright.

    ``value_range`` fixes the (low, high) inverse depth (to compare maps with one scale); by
    default :func:`inverse_depth_range`. Pixels outside ``valid``, or without a finite positive
    depth, are :data:`NO_DEPTH_RGB`.
    """
    from matplotlib import colormaps

    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"depth: expected one (H, W) map, found shape {depth.shape}")
    ok = np.isfinite(depth) & (depth > 0)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    lo, hi = value_range or inverse_depth_range(depth, ok)
    disp = np.where(ok, 1.0 / np.where(ok, depth, 1.0), lo)
    norm = np.clip((disp - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    rgb = (colormaps[cmap](norm)[..., :3] * 255).astype(np.uint8)
    rgb[~ok] = NO_DEPTH_RGB
    return rgb


@dataclass
class Panel:
    """One image of a figure: an RGB (H, W, 3) array or a map (H, W) drawn with ``cmap``."""

    image: Any
    title: str = ""
    cmap: str | None = None
    colorbar: bool = False
    kwargs: dict | None = None


def panel_figure(rows: Sequence[Sequence[Panel]] | Sequence[Panel], panel_size: tuple[float, float] = (2.5, 2.0),
                 suptitle: str | None = None, fontsize: int = 8):
    """A grid of :class:`Panel` (a list is one row), axes off, titles above; returns the Figure."""
    from matplotlib.figure import Figure

    grid = [list(rows)] if rows and isinstance(rows[0], Panel) else [list(r) for r in rows]
    ncols = max(len(r) for r in grid)
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * len(grid)), layout="constrained")
    axes = fig.subplots(len(grid), ncols, squeeze=False)
    for r, row in enumerate(grid):
        for c in range(ncols):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(row):
                continue
            panel = row[c]
            image = panel.image.numpy() if hasattr(panel.image, "numpy") else np.asarray(panel.image)
            shown = ax.imshow(image, cmap=panel.cmap, **(panel.kwargs or {}))
            ax.set_title(panel.title, fontsize=fontsize)
            if panel.colorbar:
                fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
    if suptitle:
        fig.suptitle(suptitle, fontsize=fontsize + 1)
    return fig
