"""Execute chapters and store their outputs in place (``make notebooks``).

Usage: python book/execute.py [--missing] [NOTEBOOK ...]   (default: every chapter in _toc.yml)

Uses nbclient directly (not ``jupyter execute``) so that no per-cell timestamps are written,
and coalesces stream outputs the way nbval does before comparing, so what is stored is what
nbval compares and a progress bar shows as one final line on the website.
``--missing`` executes only notebooks that have code cells without stored outputs.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import nbformat
import yaml
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
_CR = re.compile(r"^.*\r(?=[^\n])", re.MULTILINE)
_BS = re.compile("[^\n]\x08")


def coalesce_streams(outputs: list) -> list:
    """Merge stream outputs per name and apply carriage returns/backspaces (as nbval does)."""
    merged, streams = [], {}
    for out in outputs:
        if out.output_type == "stream":
            if out.name in streams:
                streams[out.name].text += out.text
                continue
            streams[out.name] = out
        merged.append(out)
    for out in streams.values():
        text = out.text
        while (new := _BS.sub("", text)) != text:
            text = new
        out.text = _CR.sub("", text)
    return merged


def toc_notebooks() -> list[Path]:
    """Every ``.ipynb`` chapter listed in ``_toc.yml``, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    stack = list(toc.get("chapters", [])) + [c for p in toc.get("parts", []) for c in p.get("chapters", [])]
    while stack:
        entry = stack.pop(0)
        files.append(entry["file"])
        stack[:0] = entry.get("sections", [])
    return [ROOT / f"{f}.ipynb" for f in files if (ROOT / f"{f}.ipynb").exists()]


def has_missing_outputs(nb) -> bool:
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    return any(c.get("execution_count") is None for c in code)


def execute(path: Path, timeout: int = 1800) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout,
                   kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"),
                   record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = coalesce_streams(cell.outputs)
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--missing", action="store_true", help="only notebooks lacking stored outputs")
    args = parser.parse_args(argv)
    # the kernel inherits our environment, and a non-inline backend (e.g. Agg) stores no figures
    os.environ.pop("MPLBACKEND", None)
    paths = args.notebooks or toc_notebooks()
    for path in paths:
        if not path.exists():
            parser.error(f"{path}: no such notebook")
        if args.missing and not has_missing_outputs(nbformat.read(path, as_version=4)):
            print(f"{path.relative_to(ROOT) if path.is_absolute() else path}: outputs stored, skipped")
            continue
        seconds = execute(path.resolve())
        print(f"{path}: executed in {seconds:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
