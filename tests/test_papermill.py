"""A chapter driven by papermill with non-default parameters, as readers run bigger experiments."""
from __future__ import annotations

import re

import nbformat
import pytest

from book_files import ROOT

papermill = pytest.importorskip("papermill", reason="papermill is part of the book extra")


@pytest.mark.slow
def test_chapter_runs_with_other_parameters_and_they_take_effect(tmp_path):
    out = tmp_path / "evaluation_4_images.ipynb"
    papermill.execute_notebook(str(ROOT / "book" / "07_evaluation.ipynb"), str(out), parameters={"eval_images": 4},
                               kernel_name="python3", cwd=str(ROOT / "book"), progress_bar=False,
                               execution_timeout=600)
    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "eval_images = 4" in injected[0].source
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    # the stored chapter evaluates 16 images per network; the parameter must change that
    assert re.search(r"trained\s+4\s+\d\.\d{4}", text), text[-1500:]
    assert not re.search(r"trained\s+16\s", text)
