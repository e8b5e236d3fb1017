"""DepthNet CPU benchmark: latency (fp32, batch 1, median of runs), FLOPs, peak memory → JSON.

Usage: python bench/bench_depthnet.py [--threads 2] [--runs 15] [--config paper] [--sizes 256x320 256x832]

It also times a *straightforward* implementation of the two places where ours differs from
a line-by-line port of the released code (einsum-based factorised attention with permuted
copies of q/k/v, the relative-position convs run per channel split then concatenated, and
``.contiguous()`` token↔image round trips), interleaved with ours in
the same process so the ratio is meaningful on a noisy shared machine. Both give the same
output (checked). Random weights (latency does not depend on them).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from bore_depth_lite.models import DepthNet


@contextlib.contextmanager
def straightforward(net: DepthNet):
    """Compute ``net``'s encoder in the ``released`` form (the released code's order of operations:
    einsums over permuted q/k/v copies, per-group relative-position convs, contiguous token <->
    image round trips); same modules, same weights."""
    net.encoder.set_form("released")
    try:
        yield
    finally:
        net.encoder.set_form("fast")


def count_flops(net: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs (2 per multiply-add) of one forward, by torch.utils.flop_counter."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    return counter.get_total_flops()


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def _peak_rss_child(config: str, h: int, w: int, threads: int, queue) -> None:
    import threading

    torch.set_num_threads(threads)
    net = DepthNet(config).eval()
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():
        net(x)  # warm-up: oneDNN primitives and caches
    before = _rss_mb()
    peak, running = [before], [True]

    def sample():
        while running[0]:
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    with torch.no_grad():
        net(x)
    running[0] = False
    sampler.join()
    queue.put((before, peak[0]))


def peak_memory_mb(config: str, h: int, w: int, threads: int) -> tuple[float, float]:
    """(RSS before a forward, peak RSS sampled every 0.5 ms during it), fresh process, MiB (Linux)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_rss_child, args=(config, h, w, threads, queue))
    proc.start()
    result = queue.get(timeout=600)
    proc.join()
    return result


def time_interleaved(net, x, runs: int, clock=time.perf_counter, warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per forward by ``clock``, ours and straightforward alternating, so both see the
    same load; ``warmup`` rounds of each first (oneDNN primitive creation)."""
    times = {"ours": [], "straightforward": []}
    with torch.no_grad():
        for _ in range(warmup):
            net(x)
            with straightforward(net):
                net(x)
        for _ in range(runs):
            t = clock()
            net(x)
            times["ours"].append(clock() - t)
            with straightforward(net):
                t = clock()
                net(x)
                times["straightforward"].append(clock() - t)
    return times


def cpu_time_interleaved(net, x, runs: int) -> dict[str, list[float]]:
    """Process CPU time per forward with ONE thread: unlike wall time, it does not grow when
    other processes compete for the cores, so the ours/straightforward ratio stays meaningful."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            net(x)
        return time_interleaved(net, x, runs, clock=time.process_time, warmup=0)
    finally:
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--config", default="paper")
    p.add_argument("--sizes", nargs="+", default=["256x320", "256x832"])
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = DepthNet(args.config).eval()
    result = {"config": args.config, "parameters": net.num_parameters(),
              "parameters_used_in_forward": net.num_parameters(used_in_forward=True),
              "threads": args.threads, "runs": args.runs, "dtype": "float32", "batch": 1,
              "torch": torch.__version__, "cpu": platform.processor() or platform.machine(), "sizes": {}}
    for size in args.sizes:
        h, w = (int(v) for v in size.split("x"))
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            ours = net(x)
            with straightforward(net):
                ref = net(x)
        times = time_interleaved(net, x, args.runs)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        cpu = {k: statistics.median(v) * 1e3 for k, v in cpu_time_interleaved(net, x, max(3, args.runs // 2)).items()}
        with straightforward(net):
            flops = count_flops(net, x)
        executed = count_flops(net, x)
        rss_before, rss_peak = peak_memory_mb(args.config, h, w, args.threads)
        result["sizes"][size] = {
            "gflop": round(flops / 1e9, 3),
            "gflop_executed_incl_zero_taps": round(executed / 1e9, 3),
            "latency_ms_median": round(med["ours"], 1),
            "latency_ms_min": round(min(times["ours"]) * 1e3, 1),
            "straightforward_latency_ms_median": round(med["straightforward"], 1),
            "speedup_vs_straightforward": round(med["straightforward"] / med["ours"], 3),
            "cpu_time_1thread_ms_median": round(cpu["ours"], 1),
            "straightforward_cpu_time_1thread_ms_median": round(cpu["straightforward"], 1),
            "speedup_vs_straightforward_cpu_time_1thread": round(cpu["straightforward"] / cpu["ours"], 3),
            "gflop_per_s": round(flops / 1e9 / (med["ours"] / 1e3), 1),
            "max_abs_diff_vs_straightforward": float((ours - ref).abs().max()),
            "rss_increase_during_forward_mb": round(rss_peak - rss_before, 1),
        }
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
