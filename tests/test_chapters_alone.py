"""Every chapter runs alone, as a reader runs it: from an empty folder, in a fresh virtual
environment holding only the built wheel, driven by papermill with non-default parameters.

What this proves and how:
- the wheel holds everything a chapter reads (shipped results, parity fixture, weights):
  each chapter is copied alone into an empty folder, so ``../bench`` or ``../tests`` do not
  exist for it, and ``bore_depth_lite`` is imported from the wheel, not from this checkout;
- each chapter's install cell installs the extras it needs: the environment starts with the
  wheel's base dependencies only, plus papermill and ipykernel (what Colab already has), and
  ``BORE_DEPTH_BOOK_SOURCE`` points the install cell at the wheel instead of the repository;
- papermill's parameters take effect: each chapter runs with non-default parameters, and a
  line of its output shows them (``EFFECTS``);
- a chapter removes the temporary files it makes: each one runs with its own empty TMPDIR,
  which must be empty again at the end;
- no chapter hangs: every cell has a time limit, and a timeout names the cell.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from book_files import ROOT, chapter_notebooks

pytestmark = pytest.mark.slow

CELL_TIMEOUT_S = 900
#: chapter -> (non-default parameters, a regular expression its outputs must match because of them)
EFFECTS: dict[str, tuple[dict, str]] = {
    "01_data.ipynb": ({"num_frames": 6, "width": 96}, r"rendered 2 x 6 frames of 128x96"),
    # the driving world's sky has no depth, which every cell must cope with
    "02_view_synthesis.ipynb": ({"preset": "driving", "height": 96, "width": 128},
                                r"3 frames of 96x128; depth from 0\.0000 m .*identity warp, mean \|I - warped\|: "
                                r"consistent convention 0\.0000"),
    "03_photometric_loss.ipynb": ({"height": 96, "width": 128, "world_seed": 3}, r"target frame 96x128, two sources"),
    "04_network.ipynb": ({"height": 128, "width": 160, "kitti_height": 128, "kitti_width": 416},
                         r"GFLOP 128x160\s+GFLOP 128x416"),
    "05_training.ipynb": ({"steps": 6, "steps_per_epoch": 3, "scenes": 2, "frames_per_scene": 6},
                          r"after 6 steps: AbsRel \d\.\d{4}"),
    "06_distillation.ipynb": ({"teacher_steps": 11, "stage1_steps": 4, "stage2_steps": 2, "steps_per_epoch": 2,
                               "scenes": 2, "frames_per_scene": 6}, r"teacher: 100%[^\n]*\b11/11\b"),
    "07_evaluation.ipynb": ({"eval_images": 4}, r"trained\s+4\s+\d\.\d{4}"),
    "08_deployment.ipynb": ({"height": 64, "width": 96, "test_scenes": 1, "frames_per_scene": 2,
                             "calibration_frames": 2, "timing_rounds": 2},
                            r"input 1×3×64×96.*2 test frames at 64×96"),
    "09_your_photos_and_videos.ipynb": ({"clip_frames": 12, "fuse_every": 3}, r"12 frames of 96x160 -> "),
    "results.ipynb": ({"eval_images": 4}, r"on 4 test images of the synthetic driving world"),
}


def test_every_chapter_is_driven():
    assert set(EFFECTS) == {p.name for p in chapter_notebooks()}


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def reader_env(tmp_path_factory):
    """A fresh virtual environment with the wheel (no extras) plus papermill and ipykernel."""
    base = tmp_path_factory.mktemp("reader")
    # Build from a copy: setuptools writes build/ and *.egg-info/ into the tree it builds.
    source = base / "source"
    everywhere = shutil.ignore_patterns(".git", ".venv", "*.egg-info", "__pycache__", ".ipynb_checkpoints")
    at_root = {"_build", "build", "runs", "data"}          # not bore_depth_lite/data, the package's own

    def ignore(folder: str, names: list[str]) -> set[str]:
        return set(everywhere(folder, names)) | (at_root & set(names) if Path(folder) == ROOT else set())

    shutil.copytree(ROOT, source, ignore=ignore)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(base / "dist"),
          str(source)])
    wheel = next((base / "dist").glob("bore_depth_lite-*.whl"))
    venv = base / "venv"
    python = getattr(sys, "_base_executable", sys.executable)
    _run([python, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel),
          "papermill", "ipykernel"])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "JUPYTER", "MPLBACKEND"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               BORE_DEPTH_BOOK_SOURCE=wheel.as_uri(),
               # a cache of the synthetic world of its own: nothing rendered by this checkout's runs is reused
               BORE_DEPTH_DATA=str(base / "cache"),
               # torch keeps its compiled-kernel cache under TMPDIR by default: a cache, not the chapter's files
               TORCHINDUCTOR_CACHE_DIR=str(base / "torchinductor"),
               JUPYTER_DATA_DIR=str(base / "jupyter"), JUPYTER_CONFIG_DIR=str(base / "jupyter-config"))
    # The package a kernel imports must be the wheel's, not this checkout.
    probe = _run([str(venv / "bin" / "python"), "-c", "import bore_depth_lite, sys; print(bore_depth_lite.__file__)"],
                 env=env, cwd=base)
    assert Path(probe.stdout.strip()).is_relative_to(venv), probe.stdout
    return venv, env, base


@pytest.mark.parametrize("chapter", sorted(EFFECTS))
def test_chapter_runs_alone_with_other_parameters(reader_env, chapter):
    venv, env, base = reader_env
    parameters, expected = EFFECTS[chapter]
    folder, tmp = base / chapter.removesuffix(".ipynb"), base / f"{chapter}.tmp"
    folder.mkdir()
    tmp.mkdir()
    shutil.copy(ROOT / "book" / chapter, folder / chapter)
    out = folder / f"out_{chapter}"
    run = subprocess.run([str(venv / "bin" / "papermill"), chapter, out.name, "-k", "python3", "--cwd", ".",
                          "-y", json.dumps(parameters), "--execution-timeout", str(CELL_TIMEOUT_S), "--no-progress-bar"],
                         cwd=folder, env={**env, "TMPDIR": str(tmp)}, capture_output=True, text=True)
    assert run.returncode == 0, f"{chapter} failed alone:\n{run.stderr[-4000:]}"

    nb = nbformat.read(out, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    for name, value in parameters.items():   # papermill writes strings in double quotes
        assert re.search(rf"^{name} = \"?{re.escape(str(value))}\"?$", injected[0].source, re.M), injected[0].source
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert re.search(expected, text, re.S), f"{chapter}: {expected!r} not in its outputs:\n{text[-2000:]}"
    # onnxruntime's native module (1.32) writes a 51-byte session id, $TMPDIR/.ses, when it is
    # imported: the runtime's, not a file the chapter made and forgot
    left = sorted(p.name for p in tmp.iterdir() if p.name != ".ses")
    assert not left, f"{chapter} left temporary files behind: {left}"
