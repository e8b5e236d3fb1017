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
