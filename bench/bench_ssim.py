"""The local means of SSIM's box window: ``avg_pool2d`` against a depth-wise convolution → JSON.

Usage: python bench/bench_ssim.py [--batch 4] [--height 96] [--width 160] [--threads 1 2] [--repeats 20]

SSIM needs five local means (x, y, x², y², xy) over a k×k window; ``bore_depth_lite.ssim`` stacks
the 3-channel maps into one (B, 15, H + k - 1, W + k - 1) tensor and averages it. Both ways below
give the same numbers (checked here to 1e-5); the script times forward and forward + backward of
each, for windows 3 (SC-Depth v1-v2) and 7 (SC-Depth v3), with the CPU's model and flags.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import cpu_info  # noqa: E402  (bench/ is not a package)


def pooled(stacked: torch.Tensor, k: int) -> torch.Tensor:
    return F.avg_pool2d(stacked, k, stride=1)


def depthwise(stacked: torch.Tensor, k: int) -> torch.Tensor:
    n = stacked.shape[1]
    return F.conv2d(stacked, stacked.new_full((n, 1, k, k), 1.0 / (k * k)), groups=n)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return round(statistics.median(times), 3)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--height", type=int, default=96)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    for name in ("batch", "height", "width", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name}: expected a positive integer, found {getattr(args, name)}")
    result: dict = {"cpu": cpu_info(), "torch": torch.__version__, "shape": None, "runs": []}
    threads_before = torch.get_num_threads()
    try:
        time_both_ways(args, result)
    finally:
        torch.set_num_threads(threads_before)
    print(json.dumps(result, indent=2))
    return result


def time_both_ways(args: argparse.Namespace, result: dict) -> None:
    """Fill ``result["runs"]``: per window and thread count, the median times of both ways."""
    for window in (3, 7):
        pad = window // 2
        stacked = torch.rand(args.batch, 15, args.height + 2 * pad, args.width + 2 * pad, generator=torch.Generator().manual_seed(0))
        result["shape"] = list(stacked.shape)
        difference = (pooled(stacked, window) - depthwise(stacked, window)).abs().max().item()
        if difference > 1e-5:   # float32 sums of k² terms in another order: a few ulps
            raise AssertionError(f"window {window}: the two ways differ by {difference:.3g}")
        for threads in args.threads:
            torch.set_num_threads(threads)
            row = {"window": window, "threads": threads, "max_difference": difference}
            for name, fn in (("avg_pool2d", pooled), ("depthwise_conv", depthwise)):
                leaf = stacked.clone().requires_grad_()

                def forward_backward(fn=fn, leaf=leaf):
                    fn(leaf, window).sum().backward()

                with torch.no_grad():
                    row[f"{name}_forward_ms"] = median_ms(lambda fn=fn: fn(stacked, window), args.repeats)
                row[f"{name}_forward_backward_ms"] = median_ms(forward_backward, args.repeats)
            row["speedup_forward_backward"] = round(row["avg_pool2d_forward_backward_ms"]
                                                    / row["depthwise_conv_forward_backward_ms"], 2)
            result["runs"].append(row)


if __name__ == "__main__":
    main()
