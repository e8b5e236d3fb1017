"""Training throughput (samples/s) and the share of time spent waiting for data. Prints JSON.

Usage: python bench/bench_training.py [--steps 20] [--threads 2]

Runs stage-1 training steps at 256×320, batch 4, on the CPU, for the paper and the small
configurations (the CPU teaching setting uses the small PoseNet encoder), from the synthetic
data set on disk (rendered into the cache on first use, not timed).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from bore_depth_lite.training import TrainConfig, Trainer
from bore_depth_lite.training import training_datasets


def measure(model: str, pose_arch: str, steps: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(model=model, pose_arch=pose_arch, height=256, width=320, batch_size=4, steps=steps,
                             steps_per_epoch=steps + 1, synthetic_scenes=2, synthetic_frames=8, device="cpu",
                             out_dir=out)
        train, _ = training_datasets(config)
        trainer = Trainer(config, train, None, progress=False)
        torch.set_num_threads(threads)
        start = time.perf_counter()
        trainer.fit()
        seconds = time.perf_counter() - start
    return {"model": model, "pose_arch": pose_arch, "steps": steps, "seconds": round(seconds, 2),
            "samples_per_s": round(steps * config.batch_size / seconds, 3),
            "data_wait_fraction": round(trainer.data_wait_seconds / seconds, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    runs = [measure(m, p, args.steps, args.threads) for m, p in (("paper", "resnet18"), ("small", "small"))]
    print(json.dumps({"benchmark": "training", "height": 256, "width": 320, "batch": 4, "threads": args.threads,
                      "torch": torch.__version__, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
