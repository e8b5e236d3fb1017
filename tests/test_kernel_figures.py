"""The kernels that nbval and the executor start must draw figures inline.

CI once exported MPLBACKEND=Agg; every kernel inherited it, plt.show() displayed nothing, and
nbval failed 30 figure cells with "Missing output fields from running code: {'text/plain'}".
This test starts a kernel with the environment the test run has, as nbval does.
"""
from __future__ import annotations

import os

import pytest

nbclient = pytest.importorskip("nbclient", reason="nbclient comes with the book extra")
nbformat = pytest.importorskip("nbformat", reason="nbformat comes with the book extra")


def test_kernel_started_from_this_environment_shows_figures_inline():
    assert "MPLBACKEND" not in os.environ or "inline" in os.environ["MPLBACKEND"], (
        f"MPLBACKEND={os.environ['MPLBACKEND']!r} is set: notebook kernels inherit it and store no "
        "figures; unset it (the Makefile unexports it)")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import matplotlib.pyplot as plt\nplt.figure(figsize=(2, 1))\nplt.plot([0, 1])\nplt.show()")])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    assert [o.get("output_type") for o in outputs] == ["display_data"], outputs
    assert outputs[0]["data"]["text/plain"] == "<Figure size 200x100 with 1 Axes>"
    assert "image/png" in outputs[0]["data"]
