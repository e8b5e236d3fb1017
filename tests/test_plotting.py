"""The figure helpers the chapters, the trainer's samples and ``bore-depth-infer`` share."""
from __future__ import annotations

import numpy as np
import pytest

from bore_depth_lite.plotting import crop_around, edge_overlay


def test_edge_overlay_colours_true_red_found_green_both_yellow():
    true_edges = np.zeros((4, 5), bool)
    found = np.zeros((4, 5), bool)
    true_edges[0, 0] = true_edges[1, 1] = True
    found[1, 1] = found[2, 2] = True
    rgb = edge_overlay(true_edges, found)
    assert rgb.shape == (4, 5, 3)
    assert rgb[0, 0].tolist() == [1, 0, 0] and rgb[2, 2].tolist() == [0, 1, 0] and rgb[1, 1].tolist() == [1, 1, 0]
    assert rgb[3].sum() == 0
    with pytest.raises(ValueError, match="edge masks"):
        edge_overlay(true_edges, found[:3])


@pytest.mark.parametrize("shape", [(96, 160), (97, 161), (8, 8)])
def test_crop_around_is_inside_the_image_and_centred_on_the_mask(shape):
    h, w = shape
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = np.zeros(shape, bool)
        mask[rng.integers(0, h, 5), rng.integers(0, w, 5)] = True
        rows, cols = crop_around(mask)
        assert 0 <= rows.start < rows.stop <= h and 0 <= cols.start < cols.stop <= w
        assert rows.stop - rows.start == round(h / 2) and cols.stop - cols.start == round(w / 2)
        r, c = np.nonzero(mask)
        # centred on the median unless the border stops it (then it touches the border)
        centre_r = (rows.start + rows.stop) / 2
        assert abs(centre_r - np.median(r)) <= 1 or rows.start == 0 or rows.stop == h
    # the hand case: a single pixel in the middle of a 96x160 image gives the middle window
    mask = np.zeros((96, 160), bool)
    mask[48, 80] = True
    assert crop_around(mask) == (slice(24, 72), slice(40, 120))
    assert crop_around(np.zeros((96, 160), bool)) == (slice(24, 72), slice(40, 120))


def test_a_panel_figure_shows_itself_in_a_notebook_before_pyplot_has_drawn_anything():
    nbclient = pytest.importorskip("nbclient", reason="nbclient comes with the book extra")
    nbformat = pytest.importorskip("nbformat", reason="nbformat comes with the book extra")
    # A fresh kernel whose first figure is a panel figure: matplotlib's inline formatter is not
    # registered yet, and a plain Figure would display as text only.
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import numpy as np\nfrom bore_depth_lite.plotting import Panel, panel_figure\n"
        "display(panel_figure([Panel(np.zeros((4, 4)), 'a')]))")])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    (output,) = nb.cells[0].outputs
    assert output["data"]["image/png"] and output["data"]["text/plain"].startswith("<Figure size")
