"""Figures of depth: inverse-depth colouring and rows of image panels, in one place.

Used by ``bore-depth-infer`` (its PNGs), the trainer's sample figures and the chapters. Figures
are built without pyplot (``matplotlib.figure.Figure``), so they never change a notebook's or a
script's backend; in a notebook, ``display(fig)`` shows one.
"""
from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["NO_DEPTH_RGB", "inverse_depth_range", "colorize_depth", "edge_overlay", "crop_around", "Panel",
           "panel_figure"]

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


def edge_overlay(true_edges: np.ndarray, found_edges: np.ndarray) -> np.ndarray:
    """Two (H, W) edge masks → float RGB (H, W, 3): true edges red, found edges green, both yellow."""
    true_edges, found_edges = np.asarray(true_edges, dtype=bool), np.asarray(found_edges, dtype=bool)
    if true_edges.shape != found_edges.shape or true_edges.ndim != 2:
        raise ValueError(f"edge masks: expected two (H, W) maps of one shape, found {true_edges.shape} "
                         f"and {found_edges.shape}")
    overlay = np.zeros((*true_edges.shape, 3))
    overlay[true_edges, 0] = 1.0
    overlay[found_edges, 1] = 1.0
    return overlay


def crop_around(mask: np.ndarray, fraction: float = 0.5) -> tuple[slice, slice]:
    """A window of ``fraction`` of each side of an (H, W) mask, centred on the median of its
    pixels and kept inside the image (the whole image's centre when the mask is empty): index
    an image with it to zoom into where the edges are."""
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    ch, cw = max(1, round(h * fraction)), max(1, round(w * fraction))
    rows, cols = np.nonzero(mask)
    centre_r, centre_c = (np.median(rows), np.median(cols)) if rows.size else (h / 2, w / 2)
    r0 = int(np.clip(centre_r - ch // 2, 0, h - ch))
    c0 = int(np.clip(centre_c - cw // 2, 0, w - cw))
    return slice(r0, r0 + ch), slice(c0, c0 + cw)


@dataclass
class Panel:
    """One image of a figure: an RGB (H, W, 3) array or a map (H, W) drawn with ``cmap``."""

    image: Any
    title: str = ""
    cmap: str | None = None
    colorbar: bool = False
    kwargs: dict | None = None


@functools.cache
def _figure_class() -> type:
    from matplotlib.figure import Figure as _Figure

    class Figure(_Figure):
        """A Figure that shows itself as PNG in a notebook (``display(fig)``) even before any
        pyplot figure has loaded the inline backend, which is what registers matplotlib's own
        notebook formatter. Named like its parent so that its text form is a Figure's."""

        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png", bbox_inches="tight")
            return buffer.getvalue()

    return Figure


def panel_figure(rows: Sequence[Sequence[Panel]] | Sequence[Panel], panel_size: tuple[float, float] = (2.5, 2.0),
                 suptitle: str | None = None, fontsize: int = 8):
    """A grid of :class:`Panel` (a list is one row), axes off, titles above; returns the Figure."""
    grid = [list(rows)] if rows and isinstance(rows[0], Panel) else [list(r) for r in rows]
    ncols = max(len(r) for r in grid)
    fig = _figure_class()(figsize=(panel_size[0] * ncols, panel_size[1] * len(grid)), layout="constrained")
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
