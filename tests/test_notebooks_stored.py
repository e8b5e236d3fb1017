"""The stored notebooks are what the website shows: check they are complete and follow the convention.

nbval re-executes them and compares outputs; these checks catch what nbval cannot see
(an unexecuted notebook passes nbval, a missing widget state renders as nothing).
"""
from __future__ import annotations

import json
import re
import tomllib

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


#: extra -> the modules it provides (pyproject.toml's optional dependencies a chapter may need)
EXTRA_MODULES = {"widgets": {"ipywidgets"}, "deploy": {"onnx", "onnxruntime", "onnxscript"}, "video": {"av"}}
#: package modules that need an extra (they import it)
PACKAGE_MODULE_EXTRAS = {"bore_depth_lite.deploy": "deploy", "bore_depth_lite.explore": "widgets",
                         "bore_depth_lite.video": "video"}


def _extras_needed(nb) -> set[str]:
    source = "\n".join(c.source for c in _code_cells(nb)[1:])
    imported = set(re.findall(r"^\s*(?:from|import)\s+([\w.]+)", source, re.M))
    needed = {extra for extra, modules in EXTRA_MODULES.items() if {m.split(".")[0] for m in imported} & modules}
    return needed | {extra for module, extra in PACKAGE_MODULE_EXTRAS.items()
                     if any(m == module or m.startswith(module + ".") for m in imported)}


def test_extras_match_pyproject():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra, modules in EXTRA_MODULES.items():
        names = {re.split(r"[<>=!~\[ ;]", dep)[0].replace("-", "_") for dep in extras[extra]}
        assert names == modules, f"pyproject.toml extra {extra!r}: {names} != {modules}"


def test_repository_url_is_one_place():
    """_config.yml's repository.url is the one place; pyproject.toml and the install cells agree."""
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Repository"] == urls["Homepage"] == REPOSITORY_URL, "pyproject.toml's urls differ from _config.yml"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_colab_cell_installs_the_extras_the_chapter_needs(path):
    nb = nbformat.read(path, as_version=4)
    first = _code_cells(nb)[0]
    assert "remove-cell" in first.metadata.get("tags", [])
    assert f"git+{REPOSITORY_URL}.git" in first.source, "install URL differs from _config.yml repository.url"
    spec = re.search(r'%pip install -q "bore_depth_lite(?:\[([\w,]+)\])? @ \{source\}"', first.source)
    checked = re.search(r"find_spec\(m\) is None for m in \(([^)]*)\)", first.source)
    assert spec and checked, f"{path.name}: the install cell does not follow book/CONTRIBUTING.md\n{first.source}"
    installs = set(spec.group(1).split(",")) if spec.group(1) else set()
    assert installs == _extras_needed(nb), f"{path.name}: installs extras {installs}, needs {_extras_needed(nb)}"
    modules = set(re.findall(r"[\"']([\w.]+)[\"']", checked.group(1)))
    assert modules == {"bore_depth_lite"}.union(*(EXTRA_MODULES[e] for e in installs)), \
        f"{path.name}: the install cell checks {modules}, not the modules of what it installs"


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
