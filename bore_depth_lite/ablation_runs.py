"""One run of the ablation sweep: executed with papermill, and recorded so that it outlives its training folder.

The sweep at the shipped network's scale (``bench/ablation_shipped.yaml``) takes 14-19 core-hours, longer
than a sitting on a 2-core machine, and the training folder (``work``) is not kept between sittings.
So each finished run leaves a *record* beside its executed notebook in the runs folder, which is
committed: ``<variant>-seed<seed>.json`` (what the run was asked and what it measured) and
``<variant>-seed<seed>.sample.npy`` (its depth on the sample test image, fp16). A later sitting that
finds a matching record does not repeat the run, even with an empty ``work``, and the sweep advances
run by run over several sittings. A record matches only the same run parameters, world and teacher
recipe; folder paths, which change from machine to machine, are not part of the match.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .fileio import atomic_write_text

TEMPLATE = Path(__file__).resolve().parent / "assets" / "ablation_run.ipynb"
#: run parameters that name folders: where a run reads and writes, not what it computes
PATH_KEYS = ("data_root", "teacher", "init_from", "out_dir")


def record_key(params: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """What a record must match: the run's parameters without folders, the world and the teacher recipe."""
    return json.loads(json.dumps({"run": {k: v for k, v in params.items() if k not in PATH_KEYS},
                                  "world": config["world"], "teacher": config["teacher"]}))


def record_paths(notebook: Path) -> tuple[Path, Path]:
    """(record JSON, sample depth) beside a run's executed notebook."""
    return notebook.with_suffix(".json"), notebook.with_suffix(".sample.npy")


def metrics_in_work(params: dict[str, Any]) -> dict[str, Any] | None:
    """The metrics a run with exactly ``params`` left in its training folder, else None."""
    out = Path(params["out_dir"])
    metrics, stamp = out / "metrics.json", out / "parameters.json"
    if metrics.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == params:
        return json.loads(metrics.read_text())
    return None


def recorded_metrics(notebook: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The metrics in the record beside ``notebook`` if it was made for ``key``, else None."""
    record, _ = record_paths(notebook)
    if record.is_file():
        data = json.loads(record.read_text())
        if data.get("key") == key:
            return data["metrics"]
    return None


def finished_metrics(params: dict[str, Any], notebook: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The metrics of this run if it already finished (in ``work``, or recorded in the runs folder), else None.

    Reads only; :func:`execute_run` writes the record of a run found finished in ``work``.
    """
    if not notebook.is_file():
        return None
    if (result := metrics_in_work(params)) is not None:
        return result
    return recorded_metrics(notebook, key)


def write_record(notebook: Path, key: dict[str, Any], metrics: dict[str, Any], sample: Path) -> None:
    record, sample_copy = record_paths(notebook)
    if sample.is_file():
        tmp = sample_copy.with_name(sample_copy.name + ".tmp.npy")
        np.save(tmp, np.load(sample).astype(np.float16))
        os.replace(tmp, sample_copy)
    atomic_write_text(record, json.dumps({"key": key, "metrics": metrics}, indent=2))


def recorded_sample(notebook: Path, work_sample: Path) -> np.ndarray:
    """A run's sample depth in fp16 (as recorded): from its training folder when there is one, else from its record."""
    return np.load(work_sample if work_sample.is_file() else record_paths(notebook)[1]).astype(np.float16)


def execute_run(params: dict[str, Any], notebook: Path, key: dict[str, Any], resume: bool,
                cell_timeout_s: int) -> dict[str, Any]:
    """Run the template with ``params`` unless it already finished (``resume``); its metrics either way."""
    import papermill

    if resume and notebook.is_file():
        if (done := metrics_in_work(params)) is not None:
            # finished in work: (re)write its record, for runs that finished before records existed
            write_record(notebook, key, done, Path(params["out_dir"]) / "sample_depth.npy")
            return done
        if (done := recorded_metrics(notebook, key)) is not None:
            return done
    out = Path(params["out_dir"])
    metrics, stamp = out / "metrics.json", out / "parameters.json"
    notebook.parent.mkdir(parents=True, exist_ok=True)
    # A run continues from its checkpoints only if it was started with these same parameters; the
    # stamp lives beside its folder, which a fresh start empties.
    started = out.parent / f"{out.name}.started.json"
    resume = resume and started.is_file() and json.loads(started.read_text()) == params
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(started, json.dumps(params))
    papermill.execute_notebook(str(TEMPLATE), str(notebook), parameters={**params, "resume": resume}, kernel_name="python3",
                               cwd=os.getcwd(), progress_bar=False, log_output=False,
                               execution_timeout=cell_timeout_s)   # a stalled cell fails with its source, never hangs
    if not metrics.is_file():
        raise RuntimeError(f"{notebook}: the run finished but wrote no {metrics}")
    atomic_write_text(stamp, json.dumps(params))
    result = json.loads(metrics.read_text())
    write_record(notebook, key, result, out / "sample_depth.npy")
    return result


def shrink_notebook(path: Path, max_image_bytes: int = 60_000) -> None:
    """Keep committed run notebooks small: drop oversized images, keep text outputs."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if len(data.get("image/png", "")) > max_image_bytes:
                del data["image/png"]
                data["text/plain"] = "<figure dropped to keep the committed notebook small>"
    nbformat.write(nb, path)


def sweep_status(planned: list[tuple[dict[str, Any], Path, dict[str, Any]]], metrics: tuple[str, ...]) -> dict[str, Any]:
    """Which of a sweep's runs the records already stand for, and the steps still to train; reads only.

    ``planned``: (run parameters, notebook, record key) of every run. A ``two_stage`` run that starts
    from stage1's checkpoint (``init_from``) trains only ``stage2_steps``. The core-hours left assume the
    recorded runs' mean seconds per step (one thread each); None before any record.
    """
    recorded, to_run, seconds_per_step = [], [], []
    for params, notebook, key in planned:
        steps = params["stage2_steps"] + (0 if params["init_from"] else params["stage1_steps"])
        found = recorded_metrics(notebook, key)
        if found is None:
            to_run.append({"variant": params["variant"], "seed": params["seed"], "steps": steps})
        else:
            recorded.append({"variant": params["variant"], "seed": params["seed"], **{m: found.get(m) for m in metrics}})
            seconds_per_step.append(found["seconds_per_step"])
    steps_left = sum(run["steps"] for run in to_run)
    hours = round(steps_left * float(np.mean(seconds_per_step)) / 3600, 1) if seconds_per_step else None
    return {"runs": len(planned), "recorded": recorded, "to_run": to_run, "steps_left": steps_left,
            "core_hours_left": hours}


def print_status(status: dict[str, Any]) -> int:
    """One line on stderr, the JSON on stdout (bench/ convention); the exit status 0."""
    left = f", about {status['core_hours_left']} core-hours" if status["core_hours_left"] is not None else ""
    print(f"ablation: {len(status['recorded'])} of {status['runs']} runs recorded; {status['steps_left']:,} steps left{left}",
          file=sys.stderr)
    print(json.dumps(status, indent=2))
    return 0
