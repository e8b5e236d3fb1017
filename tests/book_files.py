"""Where the book's files are, for the tests that check the book itself."""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book"))
from execute import toc_notebooks  # noqa: E402  (one place that reads _toc.yml)

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPOSITORY_URL = CONFIG["repository"]["url"]


def chapter_notebooks() -> list[Path]:
    """Every notebook in book/, which must all be chapters listed in _toc.yml."""
    return sorted(p for p in (ROOT / "book").glob("*.ipynb"))


__all__ = ["ROOT", "CONFIG", "REPOSITORY_URL", "chapter_notebooks", "toc_notebooks"]
