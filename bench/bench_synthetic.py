"""Synthetic data speed: render-only frames/s per preset (one process) and the full default
data set write (1,000 frames at 256x320 with 2 worker processes). Prints one JSON object.

    python bench/bench_synthetic.py [--render-frames 50] [--workers 2] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import tempfile
import time

import numpy as np

from bore_depth_lite.data.generate import SyntheticConfig, write_synthetic_dataset
from bore_depth_lite.data.synthetic import render_sequence


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--render-frames", type=int, default=50, help="frames per preset for the render-only timing")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--keep", help="write the data set here and keep it (default: a temp dir, deleted)")
    a = p.parse_args()
    result = {"cpu_count": os.cpu_count(), "machine": platform.machine(), "numpy": np.__version__}
    for preset in ("indoor", "driving"):
        render_sequence(preset, 2, 256, 320, seed=0)  # warm-up
        start = time.perf_counter()
        render_sequence(preset, a.render_frames, 256, 320, seed=1)
        seconds = time.perf_counter() - start
        result[f"render_{preset}_256x320_frames_per_s_1proc"] = round(a.render_frames / seconds, 2)
    out = a.keep or tempfile.mkdtemp(prefix="bench_synthetic_")
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    load0 = os.getloadavg()[0]
    try:
        summary = write_synthetic_dataset(out, SyntheticConfig(), workers=a.workers)
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    finally:
        if not a.keep:
            shutil.rmtree(out, ignore_errors=True)
    cpu = sum((b.ru_utime + b.ru_stime) - (a_.ru_utime + a_.ru_stime) for a_, b in zip(cpu0, cpu1))
    result.update({"dataset_cpu_seconds": round(cpu, 2),
                   # on a shared machine the wall time includes waiting for other jobs; CPU
                   # seconds / workers is what the same run takes on idle cores
                   "dataset_seconds_if_cores_idle": round(cpu / a.workers, 2),
                   "load_average_1min_before": round(load0, 2)})
    result.update({"dataset_frames": summary["frames"], "dataset_seconds": summary["seconds"],
                   "dataset_frames_per_s": summary["frames_per_s"], "dataset_workers": a.workers,
                   "dataset_MiB": {k: round(v / 2**20, 1) for k, v in summary["bytes"].items()},
                   "target": "1000 frames at 256x320 in < 60 s on 2 cores",
                   "meets_target": summary["frames"] >= 1000 and summary["seconds"] < 60,
                   "meets_target_on_idle_cores": summary["frames"] >= 1000 and cpu / a.workers < 60})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
