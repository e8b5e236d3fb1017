"""Serve MathJax 3 from the website itself, so that its formulas are typeset offline.

Sphinx loads MathJax from cdn.jsdelivr.net by default: without a network the reader sees raw
``\\( ... \\)``. This extension copies MathJax's ``es5/`` files from the PyPI package
``django-static-mathjax`` (in the ``book`` extra; it installs a plain folder of MathJax's files,
with no Django code and no dependencies) into ``_build/html/_static/mathjax/`` and points
``mathjax_path`` there, so every page loads it by a relative URL (``../_static/mathjax/...``).

It copies the one entry bundle Sphinx uses (``tex-mml-chtml.js``) and every folder MathJax loads
components, fonts and extensions from on demand; it leaves out the other combined bundles.
The files are not handed to ``html_static_path``: jupyter-book injects every ``.js`` file found
there as a ``<script>`` once a ``_static/`` folder exists at the book root.
"""
from __future__ import annotations

import importlib.metadata
import shutil
from importlib.resources import files
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ExtensionError

PACKAGE = "django-static-mathjax"
BUNDLE = "tex-mml-chtml.js"      # Sphinx's default bundle, the one it loaded from the CDN
TARGET = "mathjax"               # under _static/ in the built site


def _source() -> Path:
    try:
        folder = Path(str(files("mathjax"))) / "static" / "mathjax" / "es5"
    except ModuleNotFoundError:
        folder = None
    if folder is None or not (folder / BUNDLE).is_file():
        raise ExtensionError(f"local_mathjax: MathJax's files are missing; install the `book` extra "
                             f"(pip install -e '.[book]', or pip install {PACKAGE})")
    return folder


def _set_path(app: Sphinx, config: Config) -> None:
    _source()                     # fail at the start of the build, not after it
    config.mathjax_path = f"{TARGET}/{BUNDLE}"


def _copy(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    source = _source()
    target = Path(app.outdir) / "_static" / TARGET
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if not path.is_file() or (len(rel.parts) == 1 and rel.name != BUNDLE):
            continue
        dest = target / rel
        stat = path.stat()
        if dest.is_file() and dest.stat().st_size == stat.st_size and dest.stat().st_mtime == stat.st_mtime:
            continue              # unchanged since the last build
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    shutil.copy2(source.parent / "LICENSE", target / "LICENSE")     # Apache-2.0: ship it with the copy
    (target / "VERSION").write_text(f"MathJax from {PACKAGE} {importlib.metadata.version(PACKAGE)}\n")


def setup(app: Sphinx) -> dict:
    app.setup_extension("sphinx.ext.mathjax")
    app.connect("config-inited", _set_path)
    app.connect("build-finished", _copy)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
