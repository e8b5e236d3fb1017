"""OpenVINO beside PyTorch eager and ONNX Runtime on the CPU: latency on 2 and 1 threads, accuracy, ORT per-op profile.

Usage: python bench/deploy.py --openvino [--config paper] [--size 256x320] [--rounds 7] [--threads 2 1]
                                         [--out bench/results/deploy_openvino_<cpu>.json] [--no-profile]
                                         [--trained tiny-driving paper-driving]
       (or python bench/deploy_openvino.py with the same options)

Batch 1, random weights for latency (it does not depend on them). Backends, all from the same
rewritten ONNX export except torch:

- ``torch_eager``  the package's DepthNet, ``torch.no_grad``
- ``ort_fp32`` / ``ort_int8``  ONNX Runtime, ORT_ENABLE_ALL; int8 = Conv-only QDQ u8/s8 (the package's recipe)
- ``ov_fp32``  OpenVINO CPU plugin, INFERENCE_PRECISION_HINT=f32, PERFORMANCE_HINT=LATENCY
- ``ov_bf16``  the same with bf16, only where the plugin reports BF16 (else the reason is recorded)
- ``ov_int8``  NNCF post-training INT8 (TRANSFORMER model type, no bias correction), same 8 calibration frames;
  what is not quantised runs in fp32; the depth head stays in float (the package's default)
- ``ov_int8_bf16``  the same INT8 model with the rest in bf16 (only where the plugin reports BF16)
- ``ov_int8_bf16_head_q`` (``ov_int8_head_q`` without bf16)  the same with the depth head quantised too
- ``ov_int8_conv``  the INT8 model with the MatMuls kept in fp32 (convolutions only, like ORT's recipe)

For each thread count every backend runs once per round, in turn (same load for all); wall-clock
medians and the per-round ratio against ``ort_fp32`` (median over rounds) are reported.
Accuracy: each backend's depth against torch fp32 on rendered test-split frames (mean and median
per-pixel |Δdepth|/depth, and AbsRel/δ1 change), for the benchmarked network (random weights:
numerical deviation only) and for the shipped trained driving networks, tiny and paper (what a
user would see), each at its own size, calibrated and tested on driving frames.
Profiles, one thread: ONNX Runtime's per-operator time of ``ort_fp32`` and ``ort_int8`` (the
quantised graph's Quantize/Dequantize and layout nodes), its latency over the compute floor
(FLOPs / one-thread fp32 GEMM speed), and OpenVINO's per-node counters (``PERF_COUNT``) of its
fp32 and INT8 models: time per operation type and per kernel precision (which kernels run in
8-bit integers, bf16 or fp32, e.g. ``brgconv_avx512_amx_I8``).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy import _gemm_speed, _time_rounds  # noqa: E402  (bench/ is not a package)
from machine_info import cpu_info, cpu_short_name  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _ratios(times: dict[str, list[float]], reference: str) -> dict:
    ref = np.array(times[reference])
    out = {}
    for name, ts in times.items():
        t = np.array(ts)
        out[name] = {"median_ms": round(float(np.median(t)), 2), "min_ms": round(float(t.min()), 2),
                     f"ratio_vs_{reference}": round(float(np.median(t / ref)), 3), "runs": len(t)}
    return out


def _accuracy(backends: dict, size: tuple[int, int], frames: int, preset: str = "indoor") -> dict:
    from bore_depth_lite.deploy.accuracy import precision_table, synthetic_test_split

    split = synthetic_test_split(max(1, frames // 2), 2, size, preset=preset)
    rows = precision_table(backends, split, reference="torch_eager")
    keep = ("depth_change", "depth_change_median", "abs_rel", "abs_rel_change", "delta1_change")
    return {name: {k: round(float(r[k]), 5) for k in keep} for name, r in rows.items()}


def _ort_profile(path: Path, x: np.ndarray, runs: int, tmp: Path) -> dict:
    """Per-operator-type share of ORT's node time on one thread (``runs`` profiled runs after one warm-up)."""
    from bore_depth_lite.deploy import make_session

    sess = make_session(path, threads=1, profile_prefix=str(tmp / "ort_profile"))
    sess.run(None, {"image": x})
    for _ in range(runs):
        sess.run(None, {"image": x})
    events = json.loads(Path(sess.end_profiling()).read_text())
    per_type: dict[str, float] = {}
    per_node: dict[str, list] = {}
    runs_seen = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    warm = runs_seen[0]["ts"] + runs_seen[0]["dur"] if runs_seen else -1   # drop the warm-up run's nodes
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e["ts"] < warm:
            continue
        op = e.get("args", {}).get("op_name", "?")
        per_type[op] = per_type.get(op, 0.0) + e["dur"]
        node = e["name"][: -len("_kernel_time")]
        per_node.setdefault(node, [op, 0.0])[1] += e["dur"]
    total = sum(per_type.values())
    top = sorted(per_type.items(), key=lambda kv: -kv[1])
    nodes = sorted(per_node.items(), key=lambda kv: -kv[1][1])[:10]
    run_ms = [e["dur"] / 1e3 for e in runs_seen[1:]]
    return {"runs": runs, "model_run_median_ms": round(float(np.median(run_ms)), 2) if run_ms else None,
            "node_time_per_run_ms": round(total / 1e3 / runs, 2),
            "op_types": [{"op": op, "ms_per_run": round(us / 1e3 / runs, 2), "share": round(us / total, 4)}
                         for op, us in top[:12]],
            "top_nodes": [{"node": n, "op": op, "ms_per_run": round(us / 1e3 / runs, 2), "share": round(us / total, 4)}
                          for n, (op, us) in nodes]}


def _kernel_precision(exec_type: str) -> str:
    """``brgconv_avx512_amx_I8`` -> ``i8``; ``jit_avx512_bf16`` -> ``bf16``; else ``f32``/``other``."""
    tail = exec_type.rsplit("_", 1)[-1].lower()
    return tail if tail in ("i8", "u8", "bf16", "f16", "f32") else "other"


def _ov_profile(path: Path, precision: str, x: np.ndarray, runs: int) -> dict:
    """OpenVINO's per-node counters on one thread: time per operation type and per kernel precision."""
    from bore_depth_lite.deploy.openvino_backend import OpenVinoBackend

    request = OpenVinoBackend(path, precision, threads=1, extra_config={"PERF_COUNT": True}).request
    request.infer({0: x})
    per_type: dict[str, float] = {}
    per_precision: dict[str, float] = {}
    kernels: dict[str, dict[str, float]] = {}
    for _ in range(runs):
        request.infer({0: x})
        nodes = request.get_profiling_info()
        for node in nodes:
            if str(node.status).endswith("EXECUTED") and not str(node.status).endswith("NOT_EXECUTED"):
                us = node.real_time.total_seconds() * 1e6
                per_type[node.node_type] = per_type.get(node.node_type, 0.0) + us
                precision_used = _kernel_precision(node.exec_type)
                per_precision[precision_used] = per_precision.get(precision_used, 0.0) + us
                kernels.setdefault(node.node_type, {}).setdefault(node.exec_type, 0.0)
                kernels[node.node_type][node.exec_type] += us
    total = sum(per_type.values())
    top = sorted(per_type.items(), key=lambda kv: -kv[1])[:12]
    return {"runs": runs, "precision": precision, "node_time_per_run_ms": round(total / 1e3 / runs, 2),
            "fused_away": sum(str(n.status).endswith("NOT_RUN") for n in nodes),
            "op_types": [{"op": op, "ms_per_run": round(us / 1e3 / runs, 2), "share": round(us / total, 4),
                          "kernels": sorted(kernels[op], key=lambda k: -kernels[op][k])[:3]} for op, us in top],
            "kernel_precision_share": {k: round(v / total, 4) for k, v in sorted(per_precision.items(), key=lambda kv: -kv[1])}}


def _models(fp32_path: Path, calibration: np.ndarray, tmp: Path, stem: str) -> dict[str, Path]:
    """The fp32 export and its quantised forms: ORT QDQ, and NNCF IRs (default, convs only, head quantised)."""
    from bore_depth_lite.deploy import quantize_int8
    from bore_depth_lite.deploy.openvino_backend import quantize_int8_openvino

    paths = {"fp32": fp32_path, "ort_int8": quantize_int8(fp32_path, tmp / f"{stem}_int8.onnx", calibration)}
    for key, options in {"ov_int8": {}, "ov_int8_conv": {"ignored_types": ("MatMul",)},
                         "ov_int8_head_q": {"ignored_patterns": ()}}.items():
        paths[key] = tmp / f"{stem}_{key}.xml"
        quantize_int8_openvino(fp32_path, calibration, out_path=paths[key], **options)
    return paths


def _backends(net, paths: dict[str, Path], threads: int | None, bf16_ok: bool) -> dict:
    """Every compared runtime and precision of one network; the INT8 + bf16 forms only where the CPU has bf16."""
    from bore_depth_lite.deploy import OnnxRuntimeBackend
    from bore_depth_lite.deploy.openvino_backend import OpenVinoBackend

    if threads is not None:
        torch.set_num_threads(threads)
    out = {"torch_eager": net, "ort_fp32": OnnxRuntimeBackend(paths["fp32"], threads=threads),
           "ort_int8": OnnxRuntimeBackend(paths["ort_int8"], threads=threads),
           "ov_fp32": OpenVinoBackend(paths["fp32"], "fp32", threads)}
    if bf16_ok:
        out["ov_bf16"] = OpenVinoBackend(paths["fp32"], "bf16", threads)
    int8 = ("int8", "int8_bf16") if bf16_ok else ("int8",)
    for precision in int8:
        out[f"ov_{precision}"] = OpenVinoBackend(paths["ov_int8"], precision, threads)
    out["ov_int8_conv"] = OpenVinoBackend(paths["ov_int8_conv"], "int8", threads)
    out[f"ov_{int8[-1]}_head_q"] = OpenVinoBackend(paths["ov_int8_head_q"], int8[-1], threads)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="paper", help="DepthNet config (paper/small/tiny)")
    p.add_argument("--size", default="256x320", help="HxW input size")
    p.add_argument("--rounds", type=int, default=7, help="timed rounds per thread count")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    p.add_argument("--calibration-frames", type=int, default=8)
    p.add_argument("--accuracy-frames", type=int, default=16)
    p.add_argument("--profile-runs", type=int, default=3)
    p.add_argument("--no-profile", action="store_true", help="skip the per-operator profiles")
    p.add_argument("--trained", nargs="*", default=["tiny-driving", "paper-driving"],
                   help="shipped networks whose accuracy per backend is measured (each at its own size)")
    p.add_argument("--out", type=Path, default=None, help="default: bench/results/deploy_openvino_<cpu>.json")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)   # quantisers log every node they skip

    import onnxruntime as ort
    import openvino as ov
    import nncf

    from bore_depth_lite import setup
    from bore_depth_lite.deploy import synthetic_calibration_images
    from bore_depth_lite.deploy.export import check_parity, export_onnx
    from bore_depth_lite.deploy.openvino_backend import DEPTH_HEAD_PATTERNS, openvino_bf16_status, openvino_capabilities
    from bore_depth_lite.models import DepthNet
    from bore_depth_lite.pretrained import load_pretrained, pretrained_info

    h, w = (int(v) for v in args.size.lower().split("x"))
    setup(0, "cpu", threads=max(args.threads))
    info = cpu_info(all_flags=True)
    flags = set(info.get("flags_all", ()))
    info["int8_dot_product"] = sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8"}) or "none (no VNNI/AMX: u8×s8 via AVX2 vpmaddubsw)"
    info["bf16_units"] = sorted(flags & {"avx512_bf16", "amx_bf16"}) or "none"
    info["short_name"] = cpu_short_name(info)
    bf16_ok, bf16_reason = openvino_bf16_status()
    result = {"benchmark": "deploy_openvino", "config": args.config, "size": f"{h}x{w}", "batch": 1,
              "rounds": args.rounds, "warmup": args.warmup, "threads": args.threads, "clock": "wall (perf_counter)",
              "machine": {**info, "openvino_cpu_capabilities": openvino_capabilities(),
                          "openvino_cpu_name": ov.Core().get_property("CPU", "FULL_DEVICE_NAME")},
              "load_average_start": list(os.getloadavg()),
              "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__, "openvino": ov.__version__,
                           "nncf": nncf.__version__, "python": sys.version.split()[0]},
              "ov_bf16": "available" if bf16_ok else f"skipped: {bf16_reason}",
              "ov_int8_recipe": "nncf.quantize(model_type=TRANSFORMER, disable_bias_correction=True), "
                                f"{args.calibration_frames} synthetic_calibration_images (ORT int8's frames), "
                                f"kept in float: {', '.join(DEPTH_HEAD_PATTERNS)} (the depth head; *_head_q: quantised too)"}
    net = DepthNet(args.config).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, h, w))
    flops = counter.get_total_flops()
    x = torch.randn(1, 3, h, w)
    xn = x.numpy()
    with tempfile.TemporaryDirectory(prefix="bench_openvino_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        fp32_path = export_onnx(net, tmp / "fp32.onnx", (h, w)).path
        result["export_s"] = round(time.perf_counter() - t0, 1)
        cal = synthetic_calibration_images(args.calibration_frames, (h, w))
        t0 = time.perf_counter()
        paths = _models(fp32_path, cal, tmp, "random")
        result["quantise_all_s"] = round(time.perf_counter() - t0, 1)

        def backends(threads: int | None) -> dict:
            return _backends(net, paths, threads, bf16_ok)

        result["latency"] = {}
        for threads in args.threads:
            bs = backends(threads)
            fns = {name: (lambda b: lambda: b(x))(b) for name, b in bs.items()}
            with torch.no_grad():
                times = _time_rounds(fns, args.rounds, args.warmup)
            result["latency"][f"{threads}_thread{'s' if threads > 1 else ''}"] = _ratios(times, "ort_fp32")
        with torch.no_grad():
            ref = net(x)
        result["parity_vs_torch_random_input"] = {name: {k: float(f"{v:.3g}") for k, v in check_parity(ref, b(x)).items()}
                                                  for name, b in bs.items() if name != "torch_eager"}
        torch.set_num_threads(max(args.threads))
        with torch.no_grad():
            result["accuracy_vs_torch_fp32"] = {
                f"{args.config}_random_weights": _accuracy(backends(max(args.threads)), (h, w), args.accuracy_frames)}
            # The shipped networks at their own size, on frames and calibration of their own world: a driving
            # network at 256x320 on indoor frames measures a mismatch, not the precision.
            for name in args.trained:
                trained, recipe = load_pretrained(name), pretrained_info(name)["recipe"]
                tsize, tpreset = (recipe["height"], recipe["width"]), recipe["synthetic_preset"]
                tcal = synthetic_calibration_images(args.calibration_frames, tsize, preset=tpreset)
                tp = export_onnx(trained, tmp / f"{name}.onnx", tsize).path
                trained_backends = _backends(trained, _models(tp, tcal, tmp, name), None, bf16_ok)
                key = f"{name.replace('-', '_')}_trained"
                result["accuracy_vs_torch_fp32"][key] = _accuracy(trained_backends, tsize, args.accuracy_frames, tpreset)
                result.setdefault("accuracy_frames", {})[key] = (
                    f"{max(1, args.accuracy_frames // 2) * 2} rendered {tpreset} test-split frames, "
                    f"{tsize[0]}x{tsize[1]}, calibrated on {args.calibration_frames} {tpreset} frames")
        n = max(1, args.accuracy_frames // 2) * 2
        result["accuracy_frames"][f"{args.config}_random_weights"] = f"{n} rendered indoor test-split frames, {h}x{w}"
        gemm = _gemm_speed()
        floor_ms = flops / 1e9 / gemm["fp32_gflops_1_thread"] * 1e3
        one = result["latency"].get("1_thread", {})
        result["compute_floor"] = {"gflop": round(flops / 1e9, 2), "gemm_1_thread": gemm,
                                   "floor_1_thread_ms": round(floor_ms, 1),
                                   **{f"{k}_1_thread_over_floor": round(v["median_ms"] / floor_ms, 3)
                                      for k, v in one.items()}}
        if not args.no_profile:
            torch.set_num_threads(1)
            result["ort_fp32_profile_1_thread"] = _ort_profile(fp32_path, xn, args.profile_runs, tmp)
            result["ort_int8_profile_1_thread"] = _ort_profile(paths["ort_int8"], xn, args.profile_runs, tmp)
            for key in ("ort_fp32_profile_1_thread", "ort_int8_profile_1_thread"):
                prof = result[key]
                if prof["model_run_median_ms"]:
                    prof["over_floor"] = round(prof["model_run_median_ms"] / floor_ms, 3)
            ov_profiles = {"ov_fp32": (fp32_path, "fp32"), "ov_int8": (paths["ov_int8"], "int8")}
            if bf16_ok:
                ov_profiles.update(ov_bf16=(fp32_path, "bf16"), ov_int8_bf16=(paths["ov_int8"], "int8_bf16"))
            result["ov_profile_1_thread"] = {name: _ov_profile(path, precision, xn, args.profile_runs)
                                             for name, (path, precision) in ov_profiles.items()}
    result["load_average_end"] = list(os.getloadavg())
    busiest = max(result["load_average_start"][0], result["load_average_end"][0])
    if busiest > (os.cpu_count() or 1):   # others' work shares the cores: a thread pool waits for its slowest thread
        result["note"] = (f"load average up to {busiest:.1f} on {os.cpu_count()} cores during the run: multi-thread "
                          "wall-clock latencies include waiting for other processes; the 1-thread rows are the steadier")
    text = json.dumps(result, indent=2)
    print(text)
    out = args.out or RESULTS / f"deploy_openvino_{cpu_short_name(info)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(out.name + ".tmp")
    tmp_out.write_text(text + "\n")
    tmp_out.replace(out)
    return result


if __name__ == "__main__":
    main()
