"""The ablation machinery: the summary statistics by hand, and one tiny sweep end to end
(papermill executes the run template, the table gets its mean ± std columns)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import numpy as np
import pytest

from bore_depth_lite import ablation

ROOT = Path(__file__).resolve().parents[1]


def fake_run(variant, seed, abs_rel, delta1, acc, comp):
    return {"variant": variant, "seed": seed, "abs_rel": abs_rel, "delta1": delta1, "dbe_acc": acc, "dbe_comp": comp}


def test_summary_is_mean_and_sample_std_over_seeds_and_paired_differences():
    runs = [fake_run("stage1", 0, 0.20, 0.70, 3.0, 4.0), fake_run("stage1", 1, 0.30, 0.60, 5.0, 6.0),
            fake_run("plain", 0, 0.25, 0.65, 4.0, 5.0), fake_run("plain", 1, 0.40, 0.50, 7.0, 9.0)]
    summary, comparisons = ablation.summarise(runs, ["stage1", "plain"])
    assert summary["stage1"]["abs_rel"]["mean"] == pytest.approx(0.25)
    assert summary["stage1"]["abs_rel"]["std"] == pytest.approx(math.sqrt(0.005))   # ddof=1: (0.05²·2)/1
    assert summary["plain"]["dbe_acc"]["n"] == 2
    (efaf,) = comparisons                              # only the comparison whose two variants ran
    assert efaf["a"] == "stage1" and efaf["b"] == "plain" and efaf["seeds"] == [0, 1]
    acc = efaf["metrics"]["dbe_acc"]                   # differences -1, -2
    assert acc["mean"] == pytest.approx(-1.5) and acc["std"] == pytest.approx(math.sqrt(0.5))
    assert acc["paper_direction"] is True
    assert acc["beyond_noise"] is True                 # 1.5 > 2 · 0.7071 / √2 = 1.0
    delta = efaf["metrics"]["delta1"]                  # +0.05, +0.10: δ1 up is the paper's direction
    assert delta["paper_direction"] is True
    comp = efaf["metrics"]["dbe_comp"]                 # -1, -3: 2 > 2 · 1.414 / √2 = 2.0 is false
    assert comp["beyond_noise"] is False


def test_one_seed_has_no_std_and_the_table_says_so():
    runs = [fake_run("stage1", 0, 0.2, 0.7, 3.0, 4.0)]
    summary, _ = ablation.summarise(runs, ["stage1"])
    assert summary["stage1"]["abs_rel"]["std"] is None
    assert ablation.fmt(summary["stage1"]["abs_rel"]) == "0.2000 ± —"


def test_config_rejects_unknown_keys_and_variants(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {stage1_step: 3}\n")
    with pytest.raises(SystemExit, match="stage1_step"):
        ablation.load_config(bad)
    bad.write_text("variants: [stage1, efaf]\n")
    with pytest.raises(SystemExit, match="variants"):
        ablation.load_config(bad)
    bad.write_text("jobs: 0\n")
    with pytest.raises(SystemExit, match="jobs must be a positive integer"):
        ablation.load_config(bad)
    default = ablation.load_config(ROOT / "bench" / "ablation.yaml")
    assert len(default["seeds"]) >= 3 and set(default["variants"]) == set(ablation.VARIANTS)


@pytest.mark.slow
def test_tiny_sweep_end_to_end(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text(
        "seeds: [0]\n"
        "variants: [stage1, plain, two_stage, joint]\n"
        "world: {height: 64, width: 64, train_scenes: 1, frames_per_scene: 5, test_scenes: 1, "
        "test_frames_per_scene: 2}\n"
        "teacher: {steps: 12, batch_size: 2}\n"
        "train: {stage1_steps: 1, stage2_steps: 1, batch_size: 2, sample_index: 1}\n"
        "cell_timeout_s: 600\n")
    out, work, runs_dir = tmp_path / "out", tmp_path / "work", tmp_path / "runs"
    args = ["--config", str(config), "--out", str(out), "--work", str(work), "--runs", str(runs_dir), "--jobs", "2"]
    assert ablation.main(args) == 0

    result = json.loads((out / "ablation.json").read_text())
    ran = set(result["summary"])
    assert ran | set(result["not_run"]) == set(ablation.VARIANTS)
    assert {"stage1", "two_stage", "joint"} <= ran
    for variant in ran:
        nb = nbformat.read(runs_dir / f"{variant}-seed0.ipynb", as_version=4)
        assert nb.metadata["papermill"]["parameters"]["variant"] == variant
        assert not any(o.output_type == "error" for c in nb.cells for o in c.get("outputs", []))
        for metric in ablation.METRICS:
            stats = result["summary"][variant][metric]
            assert stats["n"] == 1 and np.isfinite(stats["mean"]) and stats["std"] is None
    two_stage = next(r for r in result["runs"] if r["variant"] == "two_stage")
    assert two_stage["trained_steps_here"] == 1          # it started from stage1's checkpoint
    table = (out / "ablation.md").read_text()
    assert "AbsRel ↓ mean ± std" in table and "ε_acc (px) ↓ mean ± std" in table
    assert table.count(" ± ") >= 4 * len(ran)
    samples = np.load(out / "ablation_samples.npz")
    assert samples["boundary"].shape == (64, 64) and samples["pred_stage1"].shape == (64, 64)
    # A second call finds every run done and repeats none of them.
    before = {p: p.stat().st_mtime_ns for p in work.glob("*-seed0/metrics.json")}
    assert len(before) == len(ran)
    assert ablation.main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in work.glob("*-seed0/metrics.json")} == before
