"""Slider explorers for the chapters: sliders that redraw a matplotlib figure.

Each slider change calls ``draw(**values)``, renders the figure it returns to PNG bytes and
sets them as the ``value`` of an ``ipywidgets.Image`` shown under the sliders. This works the
same in Jupyter, on Colab and under a notebook runner (nbclient, papermill, nbval).

Why not an ``Output`` widget with ``clear_output(wait=True)`` (or ``interact``, which uses one):
a front end must capture what the kernel prints into such a widget. nbclient (under papermill
and nbval too) mimics that by sending the captured outputs back to the kernel as a ``comm_msg``
on the shell socket while it awaits the cell's ``execute_reply`` on that same socket. In 8 of
28 papermill runs of chapter 2 that await was not woken although the reply had arrived, and the
cell only finished when the execution timeout expired (never, without one; jupyter/nbclient#312).
An ``Image`` widget only sends state from the kernel to the front end, so the runner never
writes to the kernel during a cell.

ipywidgets is imported only when an explorer is built; it comes with the ``widgets`` extra
(``pip install "bore_depth_lite[widgets]"``, also part of the ``book`` extra).
"""
from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ipywidgets
    from matplotlib.figure import Figure

__all__ = ["figure_to_png", "slider_explorer"]

_INSTALL_HINT = ('bore_depth_lite.explore.slider_explorer needs ipywidgets: '
                 'pip install "bore_depth_lite[widgets]" (the "book" extra includes it)')


def figure_to_png(fig: Figure, dpi: float | None = None, close: bool = True) -> bytes:
    """Render ``fig`` to PNG bytes of exactly its size: ``figsize x dpi`` pixels.

    The whole canvas is saved (no tight bounding box), so successive redraws of one figure
    layout give images of one size and the explorer does not jump. The background is opaque
    white, readable on dark themes too.

    Args:
        fig: the figure to render.
        dpi: pixels per inch; ``None`` uses the figure's own (what ``plt.show()`` would use).
        close: close the figure afterwards (``plt.close``), so pyplot neither keeps it nor
            shows it again at the end of a notebook cell.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi if dpi is None else dpi, bbox_inches=None,
                facecolor="white")
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return buffer.getvalue()


def slider_explorer(draw: Callable[..., Figure], sliders: Mapping[str, Any],
                    dpi: float | None = None) -> ipywidgets.VBox:
    """Sliders above an image that ``draw`` redraws whenever a slider's value changes.

    Args:
        draw: called as ``draw(**{name: slider.value})``; returns a new matplotlib figure
            (which :func:`figure_to_png` then closes). It must not call ``plt.show()``.
        sliders: keyword name -> widget with a ``value`` trait (``IntSlider``,
            ``FloatSlider``, ``Dropdown``, ...), shown in this order.
        dpi: resolution of the image; ``None`` uses each figure's own.

    Returns:
        ``VBox([*sliders.values(), image])``, already drawn once with the sliders' current
        values; the last child is the ``ipywidgets.Image`` holding the PNG.

    Raises:
        ImportError: ipywidgets is not installed (it comes with the ``widgets`` extra).
    """
    try:
        import ipywidgets
    except ImportError as err:
        raise ImportError(_INSTALL_HINT) from err

    image = ipywidgets.Image(format="png", layout=ipywidgets.Layout(max_width="100%"))

    def redraw(change: Any = None) -> None:
        image.value = figure_to_png(draw(**{name: s.value for name, s in sliders.items()}), dpi=dpi)

    for slider in sliders.values():
        slider.observe(redraw, names="value")
    redraw()
    return ipywidgets.VBox([*sliders.values(), image])
