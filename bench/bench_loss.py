"""Time one full stage-1 loss evaluation (forward + backward) and print JSON.

Default: 2 source frames, batch 4, 256×320 (the NYUv2 training size), CPU, 2 threads, SSIM
window 3. Inputs are random but shaped like training: images in [0, 1], positive depths
and pose vectors that require gradients (as the networks' outputs would).

    python bench/bench_loss.py [--batch 4] [--height 256] [--width 320] [--ssim-window 3]
                               [--repeats 10] [--device cpu|cuda] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

import bore_depth_lite
from bore_depth_lite.losses import stage1_loss


def make_inputs(batch: int, height: int, width: int, sources: int, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    # smooth random images: upsampled noise, so SSIM and the masks see structure, not white noise
    def image():
        low = torch.rand(batch, 3, height // 8, width // 8, generator=g)
        return torch.nn.functional.interpolate(low, size=(height, width), mode="bilinear", align_corners=False)

    def depth_logit():
        return torch.randn(batch, 1, height // 16, width // 16, generator=g)

    tgt, srcs = image(), [image() for _ in range(sources)]
    logits = [depth_logit() for _ in range(sources + 1)]
    poses = [torch.randn(batch, 6, generator=g) * 0.01 for _ in range(2 * sources)]
    f = max(width, height) * 0.8
    K = torch.tensor([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])
    move = lambda x: x.to(device)  # noqa: E731
    return (move(tgt), [move(s) for s in srcs], [move(x).requires_grad_() for x in logits],
            [move(p).requires_grad_() for p in poses], move(K))


def depths_from_logits(logits, height, width):
    """Depth as DepthNet gives it: 1 / (10·sigmoid(x) + 0.01), here upsampled to full size."""
    return [1.0 / (10 * torch.sigmoid(torch.nn.functional.interpolate(x, size=(height, width), mode="bilinear",
                                                                       align_corners=False)) + 0.01)
            for x in logits]


def evaluate(tgt, srcs, logits, poses, K, height, width, ssim_window, backward=True):
    depths = depths_from_logits(logits, height, width)
    n = len(srcs)
    out = stage1_loss(tgt, srcs, depths[0], depths[1:], poses[:n], poses[n:], K, ssim_window=ssim_window)
    if backward:
        out["loss"].backward()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--sources", type=int, default=2)
    p.add_argument("--ssim-window", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    device = bore_depth_lite.setup(0, a.device, threads=a.threads)

    inputs = make_inputs(a.batch, a.height, a.width, a.sources, device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    times, fwd_times = [], []
    for i in range(a.warmup + a.repeats):
        for x in inputs[2] + inputs[3]:
            x.grad = None
        sync()
        t0 = time.perf_counter()
        out = evaluate(*inputs, a.height, a.width, a.ssim_window)
        sync()
        t1 = time.perf_counter()
        with torch.no_grad():
            evaluate(*inputs, a.height, a.width, a.ssim_window, backward=False)
        sync()
        t2 = time.perf_counter()
        if i >= a.warmup:
            times.append((t1 - t0) * 1e3)
            fwd_times.append((t2 - t1) * 1e3)

    result = {
        "benchmark": "stage1_loss",
        "what": "photometric + geometry consistency + smoothness, 2 pairwise terms per source, forward+backward",
        "batch": a.batch, "sources": a.sources, "height": a.height, "width": a.width,
        "ssim_window": a.ssim_window, "device": str(device), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "repeats": a.repeats,
        "forward_backward_ms_median": round(statistics.median(times), 2),
        "forward_backward_ms_min": round(min(times), 2),
        "forward_ms_median": round(statistics.median(fwd_times), 2),
        "loss": round(float(out["loss"].detach()), 6),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
