"""A chapter driven by papermill with non-default parameters, as readers run bigger experiments."""
from __future__ import annotations

import re

import nbformat
import pytest

from book_files import ROOT

papermill = pytest.importorskip("papermill", reason="papermill is part of the book extra")


@pytest.mark.slow
def test_chapter_runs_with_other_parameters_and_they_take_effect(tmp_path):
    out = tmp_path / "data_6_frames.ipynb"
    papermill.execute_notebook(str(ROOT / "book" / "01_data.ipynb"), str(out), parameters={"num_frames": 6, "width": 96},
                               kernel_name="python3", cwd=str(ROOT / "book"), progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "num_frames = 6" in injected[0].source
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    # the default run renders 16 frames of 128x160; the parameters must change what is rendered
    assert re.search(r"rendered 2 x 6 frames of 128x96", text), text[:500]
