"""GPU benchmark: TensorRT engines (fp32, fp16, int8 from the QDQ model) and PyTorch on CUDA → JSON.

Usage: python bench/gpu.py [--config paper] [--sizes 256x320 256x832] [--checkpoint released:nyu|PATH]
                           [--iterations 200] [--out bench/results/gpu.json]

For every size: export the network to ONNX with the package's rewrites, build a TensorRT engine
per precision (fp32; fp16; int8 from a QDQ model quantised with *symmetric* s8 activations,
zero point 0, which is what TensorRT accepts), check each engine's depth against PyTorch fp32 on
the same rendered frames (max and mean relative change), and time it the way ``trtexec`` does
(data already on the GPU, median of ``--iterations`` calls after a warm-up) beside PyTorch eager
(fp32 and fp16 autocast, CUDA-synchronised). Random weights unless ``--checkpoint`` (latency does
not depend on them; parity does not either, but a trained network makes the accuracy deltas
meaningful). The paper reports 50.7 FPS on a Jetson Orin; a data-centre GPU is not an Orin, so
the JSON records the GPU's name next to every number.

Without CUDA it prints ``{"skipped": "<reason>"}`` and exits 0: CI has no GPU. With CUDA but
without TensorRT (the lent H200 machines have none, and its ~1 GB of wheels cannot travel there)
it times PyTorch alone and records why the engines are missing under ``"tensorrt"``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def skip_reason() -> str | None:
    """Why this machine cannot run the benchmark at all, or None."""
    if not torch.cuda.is_available():
        return "CUDA is not available on this machine"
    return None


def tensorrt_missing() -> str | None:
    """Why no TensorRT engine can be built here (the PyTorch rows still run), or None."""
    from bore_depth_lite.deploy.tensorrt_backend import tensorrt_status

    ok, why = tensorrt_status()
    return None if ok else f"TensorRT is not usable here: {why}"


def _torch_latency(net: torch.nn.Module, size: tuple[int, int], fp16: bool, iterations: int) -> dict[str, float]:
    x = torch.randn(1, 3, *size, device="cuda")
    times = []
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=fp16):
        for i in range(iterations + 20):
            torch.cuda.synchronize()
            t = time.perf_counter()
            net(x)
            torch.cuda.synchronize()
            if i >= 20:
                times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "throughput_fps": float(1e3 / np.median(ms)), "iterations": iterations}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="paper")
    p.add_argument("--sizes", nargs="+", default=["256x320", "256x832"])
    p.add_argument("--checkpoint", default=None, help="our checkpoint, a released .ckpt, or released:nyu|kitti")
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--out", type=Path, default=None, help="also write the JSON here (atomically)")
    args = p.parse_args(argv)
    reason = skip_reason()
    if reason is not None:
        print(json.dumps({"skipped": reason}))
        return 0

    from bore_depth_lite.checkpoint import load_any_depthnet
    from bore_depth_lite.data.generate import RenderedTestSet
    from bore_depth_lite.deploy import check_parity, export_onnx
    from bore_depth_lite.deploy.onnxruntime_backend import quantize_int8, synthetic_calibration_images
    from bore_depth_lite.deploy.tensorrt_backend import TensorRTBackend, build_engine, time_engine
    from bore_depth_lite.fileio import atomic_write_text
    from bore_depth_lite.models import DepthNet
    from bore_depth_lite.preprocess import normalize_imagenet
    from bore_depth_lite.pretrained import parse_released, released

    torch.manual_seed(0)
    if args.checkpoint and parse_released(args.checkpoint):
        net = released(parse_released(args.checkpoint))
    elif args.checkpoint:
        net = load_any_depthnet(args.checkpoint)
    else:
        net = DepthNet(args.config)
    net = net.eval()
    trt_missing = tensorrt_missing()
    if trt_missing is None:
        import tensorrt
    result = {"gpu": torch.cuda.get_device_name(0),
              "tensorrt": {"skipped": trt_missing} if trt_missing else tensorrt.__version__, "torch": torch.__version__,
              "cpu": platform.processor() or platform.machine(), "config": None if args.checkpoint else args.config,
              "parameters": net.num_parameters(), "weights": args.checkpoint or "random (seed 0)", "batch": 1,
              "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        folder = Path(tmp)
        for text in args.sizes:
            size = tuple(int(v) for v in text.split("x"))
            frames = RenderedTestSet(2, 2, size, "driving" if size[1] > 500 else "indoor")
            images = torch.stack([frames[i]["image"] for i in range(len(frames))])
            normalised = normalize_imagenet(images)
            with torch.no_grad():
                reference = torch.cat([net(normalised[i:i + 1]) for i in range(len(frames))])
            row: dict = {}
            engines = []
            if trt_missing is None:
                onnx_path = folder / f"depthnet_{text}.onnx"
                export_onnx(net, onnx_path, size)
                qdq = quantize_int8(onnx_path, folder / f"depthnet_{text}_qdq.onnx",
                                    synthetic_calibration_images(8, size), symmetric_activations=True)
                engines = [("fp32", onnx_path), ("fp16", onnx_path), ("int8", qdq)]
            for precision, model in engines:
                engine = build_engine(model, folder / f"{text}_{precision}.engine", precision)
                backend = TensorRTBackend(engine)
                depth = torch.cat([backend(normalised[i:i + 1]) for i in range(len(frames))])
                row[f"tensorrt_{precision}"] = {**time_engine(backend, size, iterations=args.iterations),
                                                "parity_vs_torch_fp32": check_parity(reference, depth)}
            cuda_net = net.to("cuda")
            row["torch_cuda_fp32"] = _torch_latency(cuda_net, size, False, args.iterations)
            row["torch_cuda_fp16_autocast"] = _torch_latency(cuda_net, size, True, args.iterations)
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
                depth16 = torch.cat([cuda_net(normalised[i:i + 1].cuda()) for i in range(len(frames))]).float().cpu()
            row["torch_cuda_fp16_autocast"]["parity_vs_torch_fp32"] = check_parity(reference, depth16)
            net = net.cpu()
            result["sizes"][text] = row
    result["paper_orin_fps_256x320"] = 50.7
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
