"""bench/deploy.py runs end to end on a tiny network and writes the JSON the chapter reads."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from book_files import ROOT

pytest.importorskip("onnxruntime", reason="onnxruntime comes with the deploy extra")


@pytest.mark.slow
def test_deploy_benchmark_writes_latency_floor_and_targets(tmp_path):
    out = tmp_path / "deploy.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "deploy.py"), "--config", "tiny", "--sizes", "64x96",
                          "--rounds", "2", "--warmup", "1", "--cpu-rounds", "1", "--calibration-frames", "2",
                          "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(run.stdout) == result                      # printed and written alike
    entry = result["sizes"]["64x96"]
    assert set(entry["latency"]) == {"torch_eager", "ort_fp32_plain", "ort_fp32", "ort_int8"}
    assert all(r["median_ms"] > 0 and r["runs"] == 2 for r in entry["latency"].values())
    assert entry["parity_vs_torch"]["ort_fp32"]["max_rel"] < 1e-4
    assert entry["gemm_2_threads_wall"]["fp32_gflops"] > 0 and entry["compute_floor_ms"] > 0
    targets = entry["targets"]
    # the 96 ms target is set for 256x320 only
    assert set(targets) == {"ort_fp32_2x_eager", "int8_1.5x_ort_fp32"}
    assert targets["int8_1.5x_ort_fp32"]["met"] == (targets["int8_1.5x_ort_fp32"]["value"] >= 1.5)
    assert targets["ort_fp32_2x_eager"]["value"] == entry["latency"]["ort_fp32"]["speedup_vs_torch_eager"]


@pytest.mark.slow
def test_deploy_benchmark_openvino_mode_writes_both_thread_counts_accuracy_and_profile(tmp_path):
    pytest.importorskip("openvino", reason="openvino comes with the openvino extra")
    pytest.importorskip("nncf", reason="nncf comes with the openvino extra")
    out = tmp_path / "ov.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "deploy.py"), "--openvino", "--config", "tiny",
                          "--size", "64x96", "--rounds", "2", "--warmup", "1", "--calibration-frames", "2",
                          "--accuracy-frames", "2", "--profile-runs", "1", "--trained", "tiny-driving",
                          "--out", str(out)],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(run.stdout) == result
    expected = {"torch_eager", "ort_fp32", "ort_int8", "ov_fp32", "ov_int8", "ov_int8_conv"}
    assert result["ov_bf16"] == "available" or result["ov_bf16"].startswith("skipped: this CPU lacks bf16")
    if result["ov_bf16"] == "available":
        expected |= {"ov_bf16", "ov_int8_bf16", "ov_int8_bf16_head_q"}
    else:
        expected |= {"ov_int8_head_q"}
    assert "depth_head" in result["ov_int8_recipe"]
    for threads in ("2_threads", "1_thread"):
        rows = result["latency"][threads]
        assert set(rows) == expected and rows["ort_fp32"]["ratio_vs_ort_fp32"] == 1.0
        assert all(r["median_ms"] > 0 and r["runs"] == 2 for r in rows.values())
    assert result["parity_vs_torch_random_input"]["ov_fp32"]["max_rel"] < 1e-4
    accuracy = result["accuracy_vs_torch_fp32"]
    assert set(accuracy) == set(result["accuracy_frames"]) == {"tiny_random_weights", "tiny_driving_trained"}
    for net_rows in accuracy.values():
        assert set(net_rows) == expected and net_rows["ov_fp32"]["depth_change_median"] < 1e-4
    for key in ("ort_fp32_profile_1_thread", "ort_int8_profile_1_thread"):
        shares = [o["share"] for o in result[key]["op_types"]]
        assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1.0001
    assert "QuantizeLinear" in {o["op"] for o in result["ort_int8_profile_1_thread"]["op_types"]}
    ov_profiles = result["ov_profile_1_thread"]
    assert set(ov_profiles) == {"ov_fp32", "ov_int8"} | ({"ov_bf16", "ov_int8_bf16"} & expected)
    for name, prof in ov_profiles.items():
        assert prof["node_time_per_run_ms"] > 0 and abs(sum(prof["kernel_precision_share"].values()) - 1) < 1e-3
        assert "Convolution" in {o["op"] for o in prof["op_types"]}
    assert ov_profiles["ov_fp32"]["kernel_precision_share"].get("i8", 0) == 0      # fp32 runs no integer kernel
    assert ov_profiles["ov_int8"]["kernel_precision_share"].get("i8", 0) > 0.1     # INT8's convolutions do
    assert result["compute_floor"]["floor_1_thread_ms"] > 0 and result["machine"]["short_name"]


def test_gpu_benchmark_skips_with_its_reason_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: bench/gpu.py would run for minutes; it is run by hand there")
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == {"skipped": "CUDA is not available on this machine"}


def test_int8_for_tensorrt_is_symmetric_with_zero_points_of_zero(tmp_path):
    """TensorRT takes symmetric INT8 only: every QuantizeLinear/DequantizeLinear of the QDQ model
    bench/gpu.py builds its int8 engine from must have an int8 zero point of 0."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from bore_depth_lite.deploy import export_onnx
    from bore_depth_lite.deploy.onnxruntime_backend import quantize_int8, synthetic_calibration_images
    from bore_depth_lite.models import DepthNet

    import torch

    torch.manual_seed(0)
    export_onnx(DepthNet("tiny"), tmp_path / "t.onnx", (64, 96))
    calibration = synthetic_calibration_images(2, (64, 96))
    models = {sym: onnx.load(str(quantize_int8(tmp_path / "t.onnx", tmp_path / f"q{sym}.onnx", calibration,
                                               symmetric_activations=sym))) for sym in (True, False)}

    def zero_points(model):
        init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        return [init[n.input[2]] for n in model.graph.node
                if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2]

    symmetric = zero_points(models[True])
    assert symmetric and all(z.dtype == np.int8 and not z.any() for z in symmetric)
    assert any(z.dtype == np.uint8 for z in zero_points(models[False]))   # the CPU default: u8 with a zero point


@pytest.mark.slow
def test_ort_profile_benchmark_writes_profiles_latency_and_floor(tmp_path):
    out = tmp_path / "profile.json"
    cmd = [sys.executable, str(ROOT / "bench" / "ort_profile.py"), "--config", "tiny", "--size", "64x96",
           "--variant", "baseline,default,no_spinning", "--threads", "1", "2", "--rounds", "2", "--sessions", "2",
           "--warmup", "1", "--profile-runs", "1", "--top", "3", "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(run.stdout) == result and "[ort_profile]" in run.stderr   # JSON on stdout, progress on stderr
    assert result["machine"]["model"] and "avx" in result["machine"]["flags"] and len(result["load_average_start"]) == 3
    assert result["parity_vs_torch"]["default"]["max_rel"] < 1e-4
    optimised = result["optimised_graph_operators"]["default"]
    assert optimised["ReorderInput"] > 0 and "Erf" not in optimised   # NCHWc layout; GELU fused
    assert result["variants"]["baseline"]["options"] == {"session.intra_op.allow_spinning": "1"}
    floor = result["compute_floor"]
    assert len(floor["gemm_measurements"]) == 3   # before each thread count and at the end
    assert floor["1_thread"]["floor_ms"] > 0 and floor["2_threads"]["floor_ms"] > 0
    for key, clock in (("1_thread", "thread CPU time"), ("2_threads", "wall-clock")):
        entry = result["by_threads"][key]
        assert entry["clock"] == clock and set(entry["latency"]) == {"baseline", "default", "no_spinning"}
        for name, row in entry["latency"].items():
            assert row["runs"] == 2 and row["median_ms"] > 0 and len(row["session_medians_ms"]) == 2
            assert row["over_floor"] > 0 and (name == "baseline") == ("vs_baseline" not in row)
        profile = entry["profile"]["default"]
        shares = [r["share"] for r in profile["op_types"]]
        assert shares == sorted(shares, reverse=True) and abs(sum(shares) - 1) < 0.01
        assert sum(r["nodes"] for r in profile["op_types"]) == profile["nodes_run"] and len(profile["top_nodes"]) == 3
    one = result["by_threads"]["1_thread"]["profile"]["default"]
    total = one["cpu_ms_per_run_median"]
    assert abs(sum(r["cpu_ms"] for r in one["op_types"]) - total) < 0.05 * total
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)   # an existing --out is not replaced
    assert again.returncode == 1 and "--overwrite" in again.stderr and json.loads(out.read_text()) == result
    bad = subprocess.run([sys.executable, str(ROOT / "bench" / "ort_profile.py"), "--variant", "baseline,nope"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "unknown ['nope']" in bad.stderr
