"""The stored notebooks are what the website shows: check they are complete and follow the convention.

nbval re-executes them and compares outputs; these checks catch what nbval cannot see
(an unexecuted notebook passes nbval, a missing widget state renders as nothing).
"""
from __future__ import annotations

import json

import nbformat
import pytest

from book_files import REPOSITORY_URL, ROOT, chapter_notebooks, toc_notebooks

NOTEBOOKS = chapter_notebooks()
IDS = [p.name for p in NOTEBOOKS]


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def test_every_notebook_is_a_chapter_in_the_toc():
    assert set(NOTEBOOKS) == set(toc_notebooks()), "book/*.ipynb and _toc.yml disagree"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_kernel_and_lexer(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert nb.metadata["language_info"]["pygments_lexer"] == "ipython3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_executed_in_order_with_outputs(path):
    nb = nbformat.read(path, as_version=4)
    counts = [c.execution_count for c in _code_cells(nb)]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: run `make notebooks` (counts {counts})"
    assert any(c.outputs for c in _code_cells(nb)), f"{path.name} has no stored outputs"
    for cell in _code_cells(nb):
        for out in cell.outputs:
            assert out.output_type != "error", f"{path.name}: stored error output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_colab_cell_installs_from_the_configured_repository(path):
    first = _code_cells(nbformat.read(path, as_version=4))[0]
    assert "remove-cell" in first.metadata.get("tags", [])
    assert 'find_spec("bore_depth_lite") is None' in first.source
    assert f"git+{REPOSITORY_URL}.git" in first.source, "install URL differs from _config.yml repository.url"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_parameters_cell_has_seed_and_device(path):
    cells = [c for c in _code_cells(nbformat.read(path, as_version=4))
             if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: exactly one cell tagged 'parameters'"
    namespace: dict = {}
    exec(cells[0].source, namespace)  # a parameters cell holds plain assignments only
    assert "seed" in namespace and namespace.get("device") == "auto"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_widget_outputs_have_stored_state(path):
    nb = nbformat.read(path, as_version=4)
    views = [o for c in _code_cells(nb) for o in c.outputs
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    if views:
        state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
        assert state.get("state"), f"{path.name}: widget views without widget state render as nothing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_machine_paths_in_outputs(path):
    text = json.dumps([c.get("outputs", []) for c in nbformat.read(path, as_version=4).cells])
    for marker in ("/root/", "/tmp/", "/work/", str(ROOT)):
        assert marker not in text, f"{path.name}: output shows a path of this machine ({marker})"
