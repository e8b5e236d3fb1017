"""The ablation machinery: the summary statistics by hand, and one tiny sweep end to end
(papermill executes the run template, the table gets its mean ± std columns)."""
from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path

import nbformat
import numpy as np
import pytest

from bore_depth_lite import ablation
from bore_depth_lite.training import TrainConfig

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
    # 95 % CI with 1 degree of freedom: t = 12.7062 (a t table), half-width 12.7062 · 0.7071 / √2 = 6.3531
    assert acc["ci95"] == pytest.approx([-1.5 - 6.3531, -1.5 + 6.3531], abs=1e-4)
    assert acc["beyond_noise"] is False                # two seeds: the interval is wide and holds 0
    delta = efaf["metrics"]["delta1"]                  # +0.05, +0.10: δ1 up is the paper's direction
    assert delta["paper_direction"] is True
    assert efaf["metrics"]["boundary_f1"]["mean"] is None   # runs of an older sweep without the metric: missing


def test_a_consistent_difference_over_four_seeds_is_beyond_noise_and_f1_up_is_the_papers_direction():
    runs = []
    for seed, (acc_diff, f1_diff) in enumerate([(-1.0, 0.02), (-1.1, 0.03), (-0.9, 0.01), (-1.0, 0.02)]):
        runs += [{**fake_run("stage1", seed, 0.2, 0.7, 3.0 + acc_diff, 4.0), "boundary_f1": 0.3 + f1_diff,
                  "dbe_edges_pred": 100 + seed, "dbe_edges_gt": 200},
                 {**fake_run("plain", seed, 0.2, 0.7, 3.0, 4.0), "boundary_f1": 0.3,
                  "dbe_edges_pred": 90, "dbe_edges_gt": 200}]
    summary, (efaf,) = ablation.summarise(runs, ["stage1", "plain"])
    acc = efaf["metrics"]["dbe_acc"]                   # mean -1, std 0.08165, t(3) = 3.1824: half-width 0.1299
    assert acc["ci95"] == pytest.approx([-1.1299, -0.8701], abs=1e-4) and acc["beyond_noise"] is True
    f1 = efaf["metrics"]["boundary_f1"]
    assert f1["paper_direction"] is True and f1["mean"] == pytest.approx(0.02)
    assert summary["stage1"]["dbe_edges_pred"]["mean"] == pytest.approx(101.5)    # counts are tabulated ...
    assert "dbe_edges_pred" not in efaf["metrics"]                                # ... never compared
    table = ablation.markdown({"config": {"world": {"preset": "driving", "height": 8, "width": 8}, "seeds": [0, 1, 2, 3],
                                          "train": {"model": "tiny", "stage1_steps": 1, "stage2_steps": 1, "batch_size": 1},
                                          "teacher": {"steps": 1}},
                               "num_test_images": 1, "protocol": "p", "summary": summary, "comparisons": [efaf],
                               "not_run": {}})
    assert "-1.0000 [-1.1299, -0.8701] paper, beyond noise" in table and "edge px found" in table


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
    shipped = ablation.load_config(ROOT / "bench" / "ablation_shipped.yaml")
    assert len(shipped["seeds"]) >= 5 and set(shipped["variants"]) == set(ablation.VARIANTS)
    TrainConfig(**shipped["train"]["options"])       # every option is a training option


def test_shipped_sweep_runs_the_shipped_recipe():
    """bench/ablation_shipped.yaml is the scale of `make pretrained` (data_scripts/make_pretrained.py):
    same world, size, batch, rate and objective, so its variants compare at the shipped network's scale.
    Its runs are shorter (6,750 steps, the shipped recipe's length when the sweep began; the shipped
    network now trains 10,500, which would cost the sweep 56 % more) and end with the recipe's
    750-step tail, where the shipped run lowers the rate and the sweep's stage 2 begins."""
    spec = importlib.util.spec_from_file_location("make_pretrained", ROOT / "data_scripts" / "make_pretrained.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    recipe, shipped = script.recipe_for("tiny-driving"), ablation.load_config(ROOT / "bench" / "ablation_shipped.yaml")
    world, train = shipped["world"], shipped["train"]
    assert (world["preset"], world["height"], world["width"]) == (recipe["synthetic_preset"], recipe["height"], recipe["width"])
    assert (world["train_scenes"], world["frames_per_scene"]) == (recipe["synthetic_scenes"], recipe["synthetic_frames"])
    assert (train["model"], train["batch_size"], train["lr"]) == (recipe["model"], recipe["batch_size"], recipe["lr"])
    assert train["stage1_steps"] + train["stage2_steps"] <= recipe["steps"]
    assert train["stage2_steps"] == recipe["steps"] - recipe["lr_milestones"][-1]
    # every other training option of the recipe (loss weights, frame gaps, normalisation) is the sweep's too
    others = set(recipe) - {"model", "pose_arch", "synthetic_preset", "height", "width", "batch_size", "lr",
                            "lr_milestones", "lr_gamma", "steps", "steps_per_epoch", "synthetic_scenes",
                            "synthetic_frames", "val_images", "seed"}
    assert {k: train["options"].get(k) for k in others} == {k: recipe[k] for k in others}


@pytest.mark.slow
def test_tiny_sweep_end_to_end(tmp_path, capsys):
    config = tmp_path / "sweep.yaml"
    config.write_text(
        "seeds: [0]\n"
        "variants: [stage1, plain, two_stage, joint]\n"
        "world: {height: 64, width: 64, train_scenes: 1, frames_per_scene: 5, test_scenes: 1, "
        "test_frames_per_scene: 2}\n"
        "teacher: {steps: 12, batch_size: 2}\n"
        "train: {stage1_steps: 1, stage2_steps: 2, batch_size: 2, sample_index: 1, checkpoint_every: 1, "
        "options: {smooth_weight: 0.0, normal_weight: 0.1, mask_rank_weight: 0.1, normal_rank_weight: 0.1}}\n"
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
    assert two_stage["trained_steps_here"] == 2          # it started from stage1's checkpoint
    run_config = json.loads((work / "joint-seed0" / "joint" / "config.json").read_text())
    assert run_config["normal_weight"] == 0.1 and run_config["smooth_weight"] == 0.0   # the options reached the run
    assert run_config["steps_per_epoch"] == 1                                          # a checkpoint every step
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

    # A later sitting without the training folder: the records beside the notebooks stand for the runs.
    for variant in ran:
        assert (runs_dir / f"{variant}-seed0.json").is_file() and (runs_dir / f"{variant}-seed0.sample.npy").is_file()
    shutil.rmtree(work)
    capsys.readouterr()
    assert ablation.main(args) == 0
    assert not list(work.glob("*-seed0/metrics.json"))                 # nothing trained again
    # the time left counts only steps still to train, not runs that a record answered at once
    progress = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ablation: [")]
    assert len(progress) == len(ran) and all(line.endswith("about 0 min left)") for line in progress)
    again = json.loads((out / "ablation.json").read_text())
    assert again["runs"] == result["runs"] and again["summary"] == result["summary"]
    assert np.array_equal(np.load(out / "ablation_samples.npz")["pred_stage1"], samples["pred_stage1"])
    # two_stage starts from stage1's checkpoint: without its record, stage1 trains again to provide it.
    (runs_dir / "two_stage-seed0.json").unlink()
    assert ablation.main(args) == 0
    assert sorted(p.parent.name for p in work.glob("*-seed0/metrics.json")) == ["stage1-seed0", "two_stage-seed0"]


def test_a_run_finished_in_work_is_recorded_by_execute_run_not_by_finished_metrics(tmp_path):
    """A run that finished before records existed (metrics in its training folder, no record):
    finished_metrics only reads it; execute_run returns it without training and writes its record."""
    from bore_depth_lite.ablation_runs import execute_run, finished_metrics, record_paths

    out = tmp_path / "work" / "stage1-seed0"
    out.mkdir(parents=True)
    params = {"variant": "stage1", "seed": 0, "out_dir": str(out)}
    metrics = {"abs_rel": 0.125, "variant": "stage1", "seed": 0}
    (out / "metrics.json").write_text(json.dumps(metrics))
    (out / "parameters.json").write_text(json.dumps(params))
    np.save(out / "sample_depth.npy", np.full((4, 6), 2.5, dtype=np.float32))
    notebook = tmp_path / "runs" / "stage1-seed0.ipynb"
    notebook.parent.mkdir()
    notebook.write_text("{}")
    key = {"run": {"variant": "stage1", "seed": 0}}
    record, sample = record_paths(notebook)

    assert finished_metrics(params, notebook, key) == metrics and not record.exists()
    assert execute_run(params, notebook, key, resume=True, cell_timeout_s=1) == metrics   # no kernel started
    assert json.loads(record.read_text()) == {"key": key, "metrics": metrics}
    assert np.load(sample).dtype == np.float16 and float(np.load(sample)[0, 0]) == 2.5
    # without the training folder the record stands for the run; another key does not match it
    shutil.rmtree(out)
    assert finished_metrics(params, notebook, key) == metrics
    assert finished_metrics(params, notebook, {"run": {"variant": "stage1", "seed": 1}}) is None


def test_status_counts_the_runs_recorded_for_this_recipe_and_the_steps_left(tmp_path, capsys):
    """--status reads the records only (nothing rendered or trained): a record made for another recipe
    does not count, and the core-hours left follow the recorded runs' seconds per step."""
    from bore_depth_lite.ablation_runs import write_record

    path = ROOT / "bench" / "ablation_shipped.yaml"
    config, runs_dir = ablation.load_config(path), tmp_path / "runs"
    runs_dir.mkdir()

    def record(variant, seed, sweep):
        params = ablation.run_parameters(sweep, variant, seed, tmp_path / "world", tmp_path / "teacher.pt", tmp_path / "w")
        metrics = {"abs_rel": 0.13, "delta1": 0.85, "seconds_per_step": 0.5}
        write_record(runs_dir / f"{variant}-seed{seed}.ipynb", ablation.record_key(params, sweep), metrics,
                     tmp_path / "no_sample.npy")

    record("stage1", 0, config)
    other = json.loads(json.dumps(config))
    other["train"]["stage1_steps"] = 5000
    record("two_stage", 0, other)
    assert ablation.main(["--config", str(path), "--runs", str(runs_dir), "--work", str(tmp_path / "w"), "--status"]) == 0
    captured = capsys.readouterr()
    status = json.loads(captured.out)
    train = config["train"]
    per_seed = 3 * (train["stage1_steps"] + train["stage2_steps"]) + train["stage2_steps"]
    assert status["runs"] == 4 * len(config["seeds"])
    assert [(r["variant"], r["seed"], r["abs_rel"]) for r in status["recorded"]] == [("stage1", 0, 0.13)]
    assert status["to_run"][0] == {"variant": "two_stage", "seed": 0, "steps": train["stage2_steps"]}
    assert status["steps_left"] == len(config["seeds"]) * per_seed - (train["stage1_steps"] + train["stage2_steps"])
    assert status["core_hours_left"] == round(status["steps_left"] * 0.5 / 3600, 1)
    assert "1 of 20 runs recorded" in captured.err
    assert not (tmp_path / "w").exists()          # nothing rendered, nothing trained
