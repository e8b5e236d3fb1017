"""Deployment benchmark: PyTorch eager vs ONNX Runtime fp32 / INT8 (and GPU backends when present).

Usage: python bench/deploy.py [--config paper] [--sizes 256x320 256x832] [--rounds 15] [--threads 2]
                              [--out bore_depth_lite/assets/results/deploy_cpu.json]
       python bench/deploy.py --openvino [options of bench/deploy_openvino.py]   (OpenVINO fp32/bf16/int8
              beside torch and ORT on 2 and 1 threads, accuracy, ORT per-op profile)

Batch 1, random weights (latency does not depend on them). Every backend runs once per
round, in turn, so all of them see the same machine load; latency is wall-clock per call.
Reported per backend and size: median and p90 latency (ms), throughput (images/s = 1000 /
median), and the speed-up against PyTorch eager as the median over rounds of the per-round
ratio (robust to load drifting during the run). ``cpu_time_1_thread`` repeats the comparison
on one thread timed by the thread's CPU clock: the work each backend does, which a shared,
oversubscribed machine distorts far less than multi-thread wall-clock. Backends:

- ``torch_eager``        the package's DepthNet, ``torch.no_grad``, 2 threads
- ``ort_fp32_plain``     a plain ``torch.onnx.export`` (no rewrites), ORT_ENABLE_ALL
- ``ort_fp32``           the export with the rewrites of ``bore_depth_lite.deploy.export``
- ``ort_int8``           ``ort_fp32`` statically quantised (QDQ, u8/s8 per-channel, 8 frames)
- ``torch_cuda_fp16``, ``ort_cuda_fp32``, ``tensorrt_fp16``  only where CUDA / TensorRT exist

It also records the machine's ONNX Runtime GEMM speed (fp32 and u8×s8, one thread; fp32 on
``--threads`` threads by wall-clock) and the resulting compute floors (the network's FLOPs /
fp32 GEMM speed): ``ort_fp32_over_floor`` and ``ort_fp32_latency_over_floor`` say how close the
graph gets to them. ``targets`` checks the deployment issue's CPU targets (ORT fp32 ≤ 96 ms,
≥ 2× eager; INT8 ≥ 1.5× ORT fp32) and records each measured value.

Prints the JSON and writes it (atomically) to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from bore_depth_lite.fileio import atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine_info import cpu_info  # noqa: E402  (bench/ is not a package)


def _time_rounds(fns: dict, rounds: int, warmup: int, clock=time.perf_counter) -> dict[str, list[float]]:
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = clock()
            fn()
            times[name].append((clock() - t) * 1e3)
    return times


def _matmul_gflops(op: str, threads: int, clock, warmup: bool, n: int = 1024, repeats: int = 7) -> float:
    """GFLOP/s of one ONNX Runtime n×n matrix product: ``MatMul`` (fp32) or ``MatMulInteger``
    (u8×s8), median of ``repeats`` runs timed by ``clock``."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    ta, tb, tc = ((TensorProto.FLOAT,) * 3 if op == "MatMul"
                  else (TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32))
    graph = helper.make_graph([helper.make_node(op, ["a", "b"], ["c"])], "gemm",
                              [helper.make_tensor_value_info("a", ta, [n, n]), helper.make_tensor_value_info("b", tb, [n, n])],
                              [helper.make_tensor_value_info("c", tc, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    dtype = {TensorProto.FLOAT: np.float32, TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8}
    feed = {"a": (np.random.rand(n, n) * 100).astype(dtype[ta]), "b": (np.random.rand(n, n) * 50).astype(dtype[tb])}
    if warmup:
        sess.run(None, feed)
    times = []
    for _ in range(repeats):
        t = clock()
        sess.run(None, feed)
        times.append(clock() - t)
    return round(2 * n**3 / np.median(times) / 1e9, 2)


def _fp32_gemm_wall(threads: int) -> float:
    """GFLOP/s of fp32 MatMul on ``threads`` threads, by wall-clock: divided into a network's
    FLOPs, the floor for the multi-thread latency table."""
    return _matmul_gflops("MatMul", threads, time.perf_counter, warmup=True)


def _targets(entry: dict, times: dict[str, list[float]], size: tuple[int, int]) -> dict:
    """The issue's CPU targets at this size, each with the measured value and whether it is met."""
    lat = entry["latency"]
    out = {}
    if size == (256, 320):   # the latency target is set for the NYUv2 size only
        out["ort_fp32_at_most_96_ms"] = {"value_ms": lat["ort_fp32"]["median_ms"],
                                         "met": lat["ort_fp32"]["median_ms"] <= 96.0}
    out["ort_fp32_2x_eager"] = {"value": lat["ort_fp32"]["speedup_vs_torch_eager"],
                                "met": lat["ort_fp32"]["speedup_vs_torch_eager"] >= 2.0}
    if "ort_int8" in times:
        ratio = round(float(np.median(np.array(times["ort_fp32"]) / np.array(times["ort_int8"]))), 3)
        out["int8_1.5x_ort_fp32"] = {"value": ratio, "met": ratio >= 1.5}
    return out


def _gemm_speed() -> dict[str, float]:
    """GFLOP/s of ONNX Runtime's fp32 MatMul and u8×s8 MatMulInteger (n³), one thread, by
    thread CPU time.

    The fp32 figure turns a network's FLOPs into a compute floor on *this* machine at *this*
    load; the int8/fp32 ratio is the most INT8 can gain on its convolutions here.
    """
    out = {f"{name}_gflops_1_thread": _matmul_gflops(op, 1, time.thread_time, warmup=False)
           for name, op in [("fp32", "MatMul"), ("u8s8", "MatMulInteger")]}
    out["int8_over_fp32"] = round(out["u8s8_gflops_1_thread"] / out["fp32_gflops_1_thread"], 3)
    return out


def _summary(times: dict[str, list[float]], baseline: str) -> dict:
    out = {}
    base = np.array(times[baseline])
    for name, ts in times.items():
        t = np.array(ts)
        out[name] = {"median_ms": round(float(np.median(t)), 2), "p90_ms": round(float(np.percentile(t, 90)), 2),
                     "throughput_fps": round(float(1e3 / np.median(t)), 3),
                     f"speedup_vs_{baseline}": round(float(np.median(base / t)), 3), "runs": len(t)}
    return out


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--openvino" in argv:   # its own comparison, with its own options and output file
        from deploy_openvino import main as openvino_main

        return openvino_main([a for a in argv if a != "--openvino"])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="paper", help="DepthNet config (paper/small/tiny)")
    p.add_argument("--sizes", nargs="+", default=["256x320", "256x832"], help="HxW input sizes")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--cpu-rounds", type=int, default=5, help="rounds of the 1-thread CPU-time measurement")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calibration-frames", type=int, default=8)
    p.add_argument("--no-int8", action="store_true", help="skip the INT8 backend")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "bore_depth_lite" / "assets" / "results" / "deploy_cpu.json")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger().setLevel(logging.ERROR)  # the quantiser logs every node it skips

    import onnxruntime as ort

    from bore_depth_lite import setup
    from bore_depth_lite.deploy import make_session, quantize_int8, synthetic_calibration_images, tensorrt_status
    from bore_depth_lite.deploy.export import check_parity, export_onnx
    from bore_depth_lite.models import DepthNet

    setup(0, "cpu", threads=args.threads)
    net = DepthNet(args.config).eval()
    flops = {}
    for size_text in args.sizes:
        h, w = (int(v) for v in size_text.lower().split("x"))
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(torch.zeros(1, 3, h, w))
        flops[(h, w)] = counter.get_total_flops()
    cuda = torch.cuda.is_available()
    trt_ok, trt_reason = tensorrt_status()
    result = {"benchmark": "deploy", "config": args.config, "batch": 1, "threads": args.threads,
              "rounds": args.rounds, "machine": cpu_info(),
              "load_average_start": list(os.getloadavg()),
              "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__, "python": sys.version.split()[0]},
              "cuda": torch.cuda.get_device_name(0) if cuda else "not available",
              "tensorrt": trt_reason, "sizes": {}}
    with tempfile.TemporaryDirectory(prefix="bench_deploy_") as tmp:
        tmp = Path(tmp)
        for size_text in args.sizes:
            h, w = (int(v) for v in size_text.lower().split("x"))
            x = torch.randn(1, 3, h, w)
            xn = x.numpy()
            entry: dict = {}
            t0 = time.perf_counter()
            plain = export_onnx(net, tmp / f"plain_{h}x{w}.onnx", (h, w), rewrites=())
            fast = export_onnx(net, tmp / f"fast_{h}x{w}.onnx", (h, w))
            entry["export_s"] = round(time.perf_counter() - t0, 1)
            entry["rewrites"] = fast.rewrites
            paths = {"ort_fp32_plain": plain.path, "ort_fp32": fast.path}
            if not args.no_int8:
                t0 = time.perf_counter()
                cal = synthetic_calibration_images(args.calibration_frames, (h, w))
                paths["ort_int8"] = quantize_int8(fast.path, tmp / f"int8_{h}x{w}.onnx", cal)
                entry["int8_quantise_s"] = round(time.perf_counter() - t0, 1)
            sessions = {name: make_session(path, threads=args.threads) for name, path in paths.items()}
            with torch.no_grad():
                ref = net(x)
            entry["parity_vs_torch"] = {name: check_parity(ref, s.run(None, {"image": xn})[0])
                                        for name, s in sessions.items()}
            fns = {"torch_eager": lambda: net(x)}
            for name, s in sessions.items():
                fns[name] = (lambda s: lambda: s.run(None, {"image": xn}))(s)
            with torch.no_grad():
                times = _time_rounds(fns, args.rounds, args.warmup)
            entry["latency"] = _summary(times, "torch_eager")
            # The same work on ONE thread, timed by the thread's CPU clock: on a shared,
            # oversubscribed machine wall-clock multi-thread latency mostly measures the
            # scheduler (a thread pool waits for its slowest thread); CPU time measures the work.
            torch.set_num_threads(1)
            cpu_fns = {"torch_eager": lambda: net(x)}
            for name, path in paths.items():
                cpu_fns[name] = (lambda s: lambda: s.run(None, {"image": xn}))(make_session(path, threads=1))
            with torch.no_grad():
                cpu_times = _time_rounds(cpu_fns, args.cpu_rounds, 1, clock=time.thread_time)
            entry["cpu_time_1_thread"] = _summary(cpu_times, "torch_eager")
            gemm = _gemm_speed()
            entry["gemm_1_thread"] = gemm
            if flops:
                floor_ms = flops[(h, w)] / 1e9 / gemm["fp32_gflops_1_thread"] * 1e3
                entry["gflop"] = round(flops[(h, w)] / 1e9, 2)
                entry["compute_floor_1_thread_ms"] = round(floor_ms, 1)
                entry["ort_fp32_over_floor"] = round(entry["cpu_time_1_thread"]["ort_fp32"]["median_ms"] / floor_ms, 3)
                gflops_wall = _fp32_gemm_wall(args.threads)
                entry[f"gemm_{args.threads}_threads_wall"] = {"fp32_gflops": gflops_wall}
                entry["compute_floor_ms"] = round(flops[(h, w)] / 1e9 / gflops_wall * 1e3, 1)
                entry["ort_fp32_latency_over_floor"] = round(entry["latency"]["ort_fp32"]["median_ms"]
                                                             / entry["compute_floor_ms"], 3)
            entry["targets"] = _targets(entry, times, (h, w))
            torch.set_num_threads(args.threads)
            if cuda:
                entry["gpu"] = _gpu_backends(net, fast.path, (h, w), trt_ok, trt_reason, tmp)
            result["sizes"][f"{h}x{w}"] = entry
    result["load_average_end"] = list(os.getloadavg())
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text + "\n")
    return result


def _gpu_backends(net, onnx_path: Path, size: tuple[int, int], trt_ok: bool, trt_reason: str, tmp: Path) -> dict:
    """CUDA timings (synchronised), only called where CUDA exists."""
    from bore_depth_lite.deploy import make_session

    out: dict = {}
    x = torch.randn(1, 3, *size, device="cuda")
    gnet = net.to("cuda").eval()

    def torch_fp16():
        with torch.autocast("cuda", dtype=torch.float16):
            gnet(x)
        torch.cuda.synchronize()

    fns = {"torch_cuda_fp32": lambda: (gnet(x), torch.cuda.synchronize()), "torch_cuda_fp16": torch_fp16}
    try:
        s = make_session(onnx_path, provider="cuda")
        xn = x.cpu().numpy()
        fns["ort_cuda_fp32"] = lambda: s.run(None, {"image": xn})
    except RuntimeError as err:
        out["ort_cuda"] = f"skipped: {err}"
    with torch.no_grad():
        times = _time_rounds(fns, 50, 10)
    out["latency"] = _summary(times, "torch_cuda_fp32")
    if trt_ok:
        from bore_depth_lite.deploy.tensorrt_backend import TensorRTBackend, build_engine, time_engine

        for precision in ("fp32", "fp16"):
            engine = build_engine(onnx_path, tmp / f"engine_{precision}.engine", precision)
            out[f"tensorrt_{precision}"] = time_engine(TensorRTBackend(engine), size)
    else:
        out["tensorrt"] = f"skipped: TensorRT not available: {trt_reason}"
    net.to("cpu")
    return out


if __name__ == "__main__":
    main()
