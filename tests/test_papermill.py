"""Chapters driven by papermill with non-default parameters, as readers run bigger experiments."""
from __future__ import annotations

import re

import nbformat
import pytest

from book_files import ROOT

papermill = pytest.importorskip("papermill", reason="papermill is part of the book extra")


@pytest.mark.slow
@pytest.mark.parametrize("chapter, parameters, expected, forbidden", [
    # the stored chapter evaluates 16 images per network; the parameter must change that
    ("07_evaluation.ipynb", {"eval_images": 4}, r"trained\s+4\s+\d\.\d{4}", r"trained\s+16\s"),
    # the widget chapters: their slider cells must not stall papermill's client
    ("01_data.ipynb", {"num_frames": 6, "width": 96}, r"rendered 2 x 6 frames of 128x96", None),
    # the other world: the driving sky has no depth, which every cell must cope with
    ("02_view_synthesis.ipynb", {"preset": "driving", "height": 96, "width": 128},
     r"3 frames of 96x128; depth from 0\.0000 m .*identity warp, mean \|I - warped\|: consistent convention 0\.0000",
     None),
])
def test_chapter_runs_with_other_parameters_and_they_take_effect(tmp_path, chapter, parameters, expected, forbidden):
    out = tmp_path / chapter
    papermill.execute_notebook(str(ROOT / "book" / chapter), str(out), parameters=parameters, kernel_name="python3",
                               cwd=str(ROOT / "book"), progress_bar=False, execution_timeout=600)
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    for name, value in parameters.items():   # papermill writes strings in double quotes
        assert re.search(rf"^{name} = \"?{re.escape(str(value))}\"?$", injected[0].source, re.M), injected[0].source
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert re.search(expected, text, re.S), text[-1500:]
    assert forbidden is None or not re.search(forbidden, text)
