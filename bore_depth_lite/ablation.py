"""The paper's ablations on the synthetic world, one papermill run per (variant, seed).

Usage: python -m bore_depth_lite.ablation --config bench/ablation.yaml [--out DIR] [--runs DIR] [--work DIR]
                                          [--no-resume] [--jobs N] [--status | --tabulate-only]
(``make ablation``; folders in the YAML are relative to the current folder.)

Steps:
1. render the synthetic world once (``world`` in the YAML; the same world for every seed, so
   that variants are compared on the same test images and seeds vary only the training);
2. train the frozen semantic teacher once (``teacher``), shared by every stage-2 run;
3. execute the run template ``bore_depth_lite/assets/ablation_run.ipynb`` (it trains through
   :func:`bore_depth_lite.training.run_two_stage`) with papermill for every seed and variant (the
   ``stage1`` run of a seed goes first: ``two_stage`` starts from its checkpoint after
   ``stage1_steps``), saving each executed notebook to ``<runs>/`` (``bench/results/ablation_runs``);
4. tabulate mean ± std over seeds of AbsRel, δ1, ε_acc and ε_comp, and the paired
   per-seed differences that answer the paper's three questions, into ``<out>/ablation.json`` (``bore_depth_lite/assets/results``, shipped with the package)
   and ``<out>/ablation.md``; the first seed's predictions on one test image go to
   ``<out>/ablation_samples.npz`` (the chapter's boundary crops).

A run whose ``metrics.json`` exists with the same parameters, or whose record beside its notebook in
``<runs>/`` matches (:mod:`bore_depth_lite.ablation_runs`), is not repeated: an interrupted sweep
resumes, and a long one advances over several sittings that commit their runs folder. The JSON is
printed on stdout at the end (bench/ convention).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .ablation_runs import (execute_run, finished_metrics, print_status, record_key, recorded_sample, shrink_notebook,
                            sweep_status)
from .fileio import atomic_write_text

VARIANTS = ("stage1", "plain", "two_stage", "joint")
RUN_ORDER = ("stage1", "two_stage", "plain", "joint")
STAGE2_VARIANTS = ("two_stage", "joint")
METRICS = ("abs_rel", "delta1", "dbe_acc", "dbe_comp", "boundary_f1")
#: Tabulated beside the metrics, never compared: how many edge pixels ε_DBE found and had to find.
COUNTS = ("dbe_edges_pred", "dbe_edges_gt")
HIGHER_IS_BETTER = frozenset({"delta1", "boundary_f1"})
LABELS = {"abs_rel": "AbsRel ↓", "delta1": "δ1 ↑", "dbe_acc": "ε_acc (px) ↓", "dbe_comp": "ε_comp (px) ↓",
          "boundary_f1": "boundary F1 ↑", "dbe_edges_pred": "edge px found", "dbe_edges_gt": "edge px true"}
VARIANT_LABELS = {"stage1": "EFAF, stage 1 only", "plain": "plain decoder, stage 1 only",
                  "two_stage": "EFAF, two-stage (paper)", "joint": "EFAF, joint semantic"}
#: (name, variant whose metric should be lower for the paper's claim, the other variant, claim)
COMPARISONS = (
    ("EFAF vs plain decoder", "stage1", "plain", "EFAF lowers the boundary error"),
    ("semantic stage vs stage 1 only", "two_stage", "stage1", "the semantic stage lowers the boundary error"),
    ("two-stage vs joint", "two_stage", "joint", "two-stage beats joint training"),
)
DEFAULTS: dict[str, Any] = {
    "seeds": [0, 1, 2],
    "variants": list(VARIANTS),
    "world": {"preset": "indoor", "height": 64, "width": 96, "seed": 0, "train_scenes": 8,
              "frames_per_scene": 24, "test_scenes": 4, "test_frames_per_scene": 4},
    "teacher": {"steps": 150, "batch_size": 8, "seed": 0},
    # options: any further TrainConfig fields for every run (the shipped recipe's loss weights, say);
    # checkpoint_every: steps between checkpoints (0: one per phase), so that a killed run resumes mid-phase
    "train": {"model": "tiny", "stage1_steps": 120, "stage2_steps": 80, "batch_size": 4, "lr": 5e-4,
              "semantic_weight": 0.1, "sample_index": 3, "options": {}, "checkpoint_every": 0},
    "jobs": 1,
    "cell_timeout_s": 6 * 3600,   # the longest a run's training cell may take
    "out": "bore_depth_lite/assets/results",   # the summary ships with the package (chapter 7 reads it)
    "runs": "bench/results/ablation_runs",     # every run's executed notebook (provenance, not shipped)
    "work": "runs/ablation",
}


def load_config(path: Path | None) -> dict[str, Any]:
    """DEFAULTS updated by the YAML file (sections merged key by key); unknown keys raise."""
    config = json.loads(json.dumps(DEFAULTS))
    if path is None:
        return config
    if not path.is_file():
        raise SystemExit(f"ablation: --config {path}: no such file")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise SystemExit(f"ablation: {path}: expected a mapping at the top level, got {type(data).__name__}")
    for key, value in data.items():
        if key not in DEFAULTS:
            raise SystemExit(f"ablation: {path}: unknown key {key!r}; known: {sorted(DEFAULTS)}")
        if isinstance(DEFAULTS[key], dict):
            if not isinstance(value, dict):
                raise SystemExit(f"ablation: {path}: {key} must be a mapping")
            if unknown := sorted(set(value) - set(DEFAULTS[key])):
                raise SystemExit(f"ablation: {path}: unknown {key} keys {unknown}; known: {sorted(DEFAULTS[key])}")
            config[key].update(value)
        else:
            config[key] = value
    if [v for v in config["variants"] if v not in VARIANTS] or not config["variants"]:
        raise SystemExit(f"ablation: variants must be a non-empty subset of {list(VARIANTS)}, got {config['variants']}")
    if not isinstance(config["jobs"], int) or config["jobs"] < 1:
        raise SystemExit(f"ablation: jobs must be a positive integer, got {config['jobs']!r}")
    if not isinstance(config["cell_timeout_s"], int) or config["cell_timeout_s"] < 1:
        raise SystemExit(f"ablation: cell_timeout_s must be a positive integer, got {config['cell_timeout_s']!r}")
    if not config["seeds"] or len(set(config["seeds"])) != len(config["seeds"]):
        raise SystemExit(f"ablation: seeds must be a non-empty list of distinct integers, got {config['seeds']}")
    return config


def prepare_world(config: dict[str, Any], work: Path) -> Path:
    from .data.generate import SyntheticConfig
    from .data.cache import ensure_synthetic
    from .training import TrainConfig
    from .training.data import needs_pseudo_depth

    w = config["world"]
    # the pseudo-depth terms read the simulated pseudo-depth of the training scenes (chapter 3)
    pseudo = needs_pseudo_depth(TrainConfig(**config["train"]["options"]))
    return ensure_synthetic(SyntheticConfig(preset=w["preset"], height=w["height"], width=w["width"], seed=w["seed"],
                                            train_scenes=w["train_scenes"], val_scenes=0,
                                            frames_per_scene=w["frames_per_scene"], test_scenes=w["test_scenes"],
                                            test_frames_per_scene=w["test_frames_per_scene"], pseudo_depth=pseudo),
                            work / "data")


def prepare_teacher(config: dict[str, Any], world: Path, work: Path) -> Path:
    """Train the teacher unless one with the same recipe exists in ``work``."""
    from .distill import train_teacher
    from .data import SemanticFrames

    t = config["teacher"]
    recipe = {**t, "encoder": config["train"]["model"], "world": str(world)}
    path, stamp = work / "teacher.pt", work / "teacher.json"
    if path.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == recipe:
        return path
    frames = SemanticFrames(world)
    train_teacher(frames, path, num_classes=len(frames.class_names), class_names=frames.class_names,
                  encoder=config["train"]["model"], steps=t["steps"], batch_size=t["batch_size"], seed=t["seed"],
                  progress=False)
    atomic_write_text(stamp, json.dumps(recipe))
    return path


def run_parameters(config: dict[str, Any], variant: str, seed: int, world: Path, teacher: Path | None,
                   work: Path) -> dict[str, Any]:
    tr, w = config["train"], config["world"]
    params = {"variant": variant, "seed": seed, "device": "auto", "preset": w["preset"], "model": tr["model"], "height": w["height"],
              "width": w["width"], "stage1_steps": tr["stage1_steps"], "stage2_steps": tr["stage2_steps"],
              "batch_size": tr["batch_size"], "lr": tr["lr"], "semantic_weight": tr["semantic_weight"],
              "data_root": str(world), "teacher": str(teacher) if variant in STAGE2_VARIANTS else "",
              "init_from": "", "out_dir": str(work / f"{variant}-seed{seed}"), "sample_index": tr["sample_index"],
              "train_options": dict(tr["options"]), "checkpoint_every": tr["checkpoint_every"]}
    stage1_start = work / f"stage1-seed{seed}" / "phase1" / "checkpoint.pt"
    if variant == "two_stage" and "stage1" in config["variants"]:
        params["init_from"] = str(stage1_start)
    return params


def stage1_needed_again(config: dict[str, Any], variant: str, seed: int, world: Path, teacher: Path | None,
                        work: Path, runs_dir: Path) -> bool:
    """A recorded stage1 run must train again when two_stage still has to start from its checkpoint, which
    went with an earlier sitting's training folder."""
    if variant != "stage1" or "two_stage" not in config["variants"]:
        return False
    two_stage = run_parameters(config, "two_stage", seed, world, teacher, work)
    notebook = runs_dir / f"two_stage-seed{seed}.ipynb"
    return not Path(two_stage["init_from"]).is_file() and \
        finished_metrics(two_stage, notebook, record_key(two_stage, config)) is None


def mean_std(values: list[float]) -> dict[str, Any]:
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
    return {"mean": float(v.mean()) if v.size else None,
            "std": float(v.std(ddof=1)) if v.size > 1 else None, "n": int(v.size)}


def t_quantile_975(dof: int) -> float:
    """Student's t 97.5 % quantile: the half-width of a 95 % confidence interval in standard errors."""
    from scipy import stats
    return float(stats.t.ppf(0.975, dof))


def summarise(runs: list[dict[str, Any]], variants: list[str]) -> tuple[dict, list[dict]]:
    """Mean ± std per variant, and per comparison the paired differences with their 95 % confidence
    interval (Student's t over seeds); runs of an older sweep without a metric count as missing."""
    summary = {v: {m: mean_std([r.get(m) for r in runs if r["variant"] == v]) for m in METRICS + COUNTS}
               for v in variants if any(r["variant"] == v for r in runs)}
    comparisons = []
    for name, better, other, claim in COMPARISONS:
        if better not in summary or other not in summary:
            continue
        by_seed = {(r["variant"], r["seed"]): r for r in runs}
        seeds = sorted(s for (v, s) in by_seed if v == better and (other, s) in by_seed)
        entry: dict[str, Any] = {"name": name, "claim": claim, "a": better, "b": other, "seeds": seeds, "metrics": {}}
        for m in METRICS:
            diffs = [by_seed[(better, s)][m] - by_seed[(other, s)][m] for s in seeds
                     if by_seed[(better, s)].get(m) is not None and by_seed[(other, s)].get(m) is not None]
            stats = mean_std(diffs)
            sign = 1.0 if m in HIGHER_IS_BETTER else -1.0   # the paper's direction: δ1 and F1 up, errors down
            d = stats["mean"]
            # below the 4 printed decimals a sign means nothing: no direction either way
            stats["negligible"] = d is not None and abs(d) < 5e-5
            stats["paper_direction"] = None if d is None or stats["negligible"] else bool(sign * d > 0)
            # beyond seed noise: the 95 % confidence interval of the mean paired difference excludes 0
            half = (None if stats["std"] is None or d is None
                    else t_quantile_975(stats["n"] - 1) * stats["std"] / math.sqrt(stats["n"]))
            stats["ci95"] = None if half is None else [d - half, d + half]
            stats["beyond_noise"] = None if half is None or stats["negligible"] else bool(abs(d) > half)
            entry["metrics"][m] = stats
        comparisons.append(entry)
    return summary, comparisons


def fmt(stats: dict[str, Any], digits: int = 4) -> str:
    if stats["mean"] is None:
        return "—"
    std = "—" if stats["std"] is None else f"{stats['std']:.{digits}f}"
    return f"{stats['mean']:.{digits}f} ± {std}"


def markdown(result: dict[str, Any]) -> str:
    c = result["config"]
    lines = [f"# Ablation on the synthetic world ({c['world']['preset']}, {c['world']['height']}×{c['world']['width']})",
             "",
             f"Seeds {c['seeds']}; DepthNet `{c['train']['model']}`; {c['train']['stage1_steps']} + "
             f"{c['train']['stage2_steps']} steps per run (batch {c['train']['batch_size']}); teacher "
             f"{c['teacher']['steps']} steps; {result['num_test_images']} test images; "
             f"protocol {result['protocol']}. Mean ± std over seeds (std with ddof=1).", "",
             "| variant | seeds | " + " | ".join(f"{LABELS[m]} mean ± std" for m in METRICS + COUNTS) + " |",
             "|---|---|" + "---|" * len(METRICS + COUNTS)]
    for v, stats in result["summary"].items():
        lines.append(f"| {VARIANT_LABELS[v]} | {stats['abs_rel']['n']} | "
                     + " | ".join(fmt(stats[m], 4 if m in METRICS else 1) for m in METRICS + COUNTS) + " |")
    for v, why in result["not_run"].items():
        lines.append(f"| {VARIANT_LABELS[v]} | 0 | not run: {why} |" + " |" * (len(METRICS + COUNTS) - 1))
    if result["comparisons"]:
        lines += ["", "Paired differences (A − B, per seed), mean and 95 % confidence interval (Student's t over "
                  "seeds); 'paper' = the sign the paper claims; 'beyond noise' = the interval excludes 0; "
                  "'no difference' = |mean| < 0.00005:", "",
                  "| comparison (A − B) | " + " | ".join(LABELS[m] for m in METRICS) + " |",
                  "|---|" + "---|" * len(METRICS)]
        for comp in result["comparisons"]:
            cells = []
            for m in METRICS:
                s = comp["metrics"][m]
                tag = (" no difference" if s["negligible"] else "" if s["paper_direction"] is None
                       else (" paper" if s["paper_direction"] else " against"))
                tag += "" if s["beyond_noise"] is None else (", beyond noise" if s["beyond_noise"] else ", within noise")
                ci = "" if s.get("ci95") is None else f" [{s['ci95'][0]:.4f}, {s['ci95'][1]:.4f}]"
                cells.append(("—" if s["mean"] is None else f"{s['mean']:.4f}") + ci + tag)
            lines.append(f"| {comp['name']} ({comp['a']} − {comp['b']}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def collect_samples(config: dict[str, Any], world: Path, work: Path, runs_dir: Path, out: Path,
                    runs: list[dict]) -> None:
    """The first seed's predictions on one test image, with the image and its true edges."""
    from .data.datasets import TestDataset

    w = config["world"]
    test = TestDataset(world, image_size=(w["height"], w["width"]))
    item = test[config["train"]["sample_index"] % len(test)]
    seed = config["seeds"][0]
    arrays = {"image": (item["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8),
              "depth": item["depth"][0].numpy().astype(np.float16),
              "boundary": item["boundary"][0].numpy().astype(bool)}
    for r in runs:
        if r["seed"] == seed:
            arrays[f"pred_{r['variant']}"] = recorded_sample(runs_dir / f"{r['variant']}-seed{seed}.ipynb",
                                                             work / f"{r['variant']}-seed{seed}" / "sample_depth.npy")
    tmp = out / "ablation_samples.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, out / "ablation_samples.npz")


def retabulate(out: Path) -> int:
    """Rewrite ``out``/ablation.json and .md from the runs it records (after a change of the statistics)."""
    path = out / "ablation.json"
    if not path.is_file():
        raise SystemExit(f"ablation: --tabulate-only: {path}: no such file; run the sweep first")
    result = json.loads(path.read_text())
    result["summary"], result["comparisons"] = summarise(result["runs"], [v for v in VARIANTS if v in result["summary"]])
    atomic_write_text(path, json.dumps(result, indent=2))
    atomic_write_text(out / "ablation.md", markdown(result))
    print(json.dumps({"summary": result["summary"], "comparisons": result["comparisons"]}, indent=2))
    return 0


def planned_runs(config: dict[str, Any], variants: list[str], world: Any, teacher: Any, work: Path,
                 runs_dir: Path) -> list[tuple[dict[str, Any], Path, dict[str, Any]]]:
    """(parameters, notebook, record key) of every run of the sweep, in the order a seed trains them."""
    return [(params := run_parameters(config, variant, seed, world, teacher, work),
             runs_dir / f"{variant}-seed{seed}.ipynb", record_key(params, config))
            for seed in config["seeds"] for variant in sorted(variants, key=RUN_ORDER.index)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="YAML sweep description (default: built-in defaults)")
    parser.add_argument("--out", type=Path, help="results folder (overrides the YAML's out)")
    parser.add_argument("--runs", type=Path, help="folder of the executed run notebooks (overrides the YAML's runs)")
    parser.add_argument("--work", type=Path, help="training runs folder (overrides the YAML's work)")
    parser.add_argument("--no-resume", action="store_true", help="re-run runs whose results exist")
    parser.add_argument("--jobs", type=int, help="seeds trained at once, one kernel and one thread each "
                                                  "(overrides the YAML's jobs; 2 on a 2-core machine)")
    parser.add_argument("--status", action="store_true",
                        help="train nothing: list the runs already recorded in RUNS and the steps still to train")
    parser.add_argument("--tabulate-only", action="store_true",
                        help="train nothing: recompute the summary and comparisons of OUT/ablation.json from its runs")
    args = parser.parse_args(argv)
    if args.tabulate_only:
        return retabulate((args.out or Path(load_config(args.config)["out"])).resolve())
    config = load_config(args.config)
    if args.status:
        unrendered = Path("<not rendered>")   # paths are not in a record's key
        planned = planned_runs(config, config["variants"], unrendered, unrendered,
                               (args.work or Path(config["work"])).resolve(), (args.runs or Path(config["runs"])).resolve())
        return print_status(sweep_status(planned, METRICS))
    if args.jobs is not None:
        if args.jobs < 1:
            parser.error(f"--jobs {args.jobs}: expected a positive integer")
        config["jobs"] = args.jobs
    out = (args.out or Path(config["out"])).resolve()
    work = (args.work or Path(config["work"])).resolve()
    runs_dir = (args.runs or Path(config["runs"])).resolve()
    config["out"], config["work"] = str(args.out or config["out"]), str(args.work or config["work"])
    config["runs"] = str(args.runs or config["runs"])
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    from .models import DEPTHNET_CONFIGS

    variants = list(config["variants"])
    not_run: dict[str, str] = {}
    plain = f"{config['train']['model']}-plain"
    if "plain" in variants and plain not in DEPTHNET_CONFIGS:
        not_run["plain"] = f"DepthNet config {plain!r} does not exist yet"
        variants.remove("plain")
        print(f"ablation: NOT running the plain-decoder variant: {not_run['plain']}", file=sys.stderr)
    order = [v for v in VARIANTS if v in variants]  # stage1 before two_stage (its checkpoint)

    world = prepare_world(config, work)
    t = time.perf_counter()
    teacher = prepare_teacher(config, world, work) if set(order) & set(STAGE2_VARIANTS) else None
    teacher_seconds = time.perf_counter() - t
    print(f"ablation: world {world.name}; teacher ready (took {teacher_seconds:.0f} s)", file=sys.stderr)

    runs: list[dict[str, Any]] = []
    total = len(order) * len(config["seeds"])
    lock = threading.Lock()
    # Time left from this sitting's own pace: runs already recorded return at once and say nothing of it.
    planned = planned_runs(config, order, world, teacher, work, runs_dir)
    to_train = {(r["variant"], r["seed"]): r["steps"] for r in sweep_status(planned, METRICS)["to_run"]}
    steps_left, trained, train_start = sum(to_train.values()), {"steps": 0}, time.perf_counter()

    def run_seed(seed: int) -> None:
        # a seed's variants run in order, two_stage right after stage1 (it starts from stage1's checkpoint);
        # seeds are independent
        for params, notebook, key in [run for run in planned if run[0]["seed"] == seed]:
            variant = params["variant"]
            resume = not args.no_resume and not stage1_needed_again(config, variant, seed, world, teacher, work, runs_dir)
            t = time.perf_counter()
            result = execute_run(params, notebook, key, resume=resume,
                                 cell_timeout_s=config["cell_timeout_s"])
            shrink_notebook(notebook)
            with lock:
                runs.append(result)
                done, trained["steps"] = len(runs), trained["steps"] + to_train.get((variant, seed), 0)
                per_step = (time.perf_counter() - train_start) / max(trained["steps"], 1)
            print(f"ablation: [{done}/{total}] {variant} seed {seed}: AbsRel {result['abs_rel']:.4f} "
                  f"ε_acc {result['dbe_acc'] if result['dbe_acc'] is not None else float('nan'):.4f} "
                  f"({result['seconds_per_step']:.2f} s/step; took {time.perf_counter() - t:.0f} s; "
                  f"about {per_step * (steps_left - trained['steps']) / 60:.0f} min left)", file=sys.stderr, flush=True)

    with ThreadPoolExecutor(max_workers=config["jobs"]) as pool:
        for future in [pool.submit(run_seed, seed) for seed in config["seeds"]]:
            future.result()   # re-raises a failed run's error
    rank = {v: i for i, v in enumerate(order)}
    runs.sort(key=lambda r: (config["seeds"].index(r["seed"]), rank[r["variant"]]))

    summary, comparisons = summarise(runs, order)
    per_step = {v: mean_std([r["seconds_per_step"] for r in runs if r["variant"] == v])["mean"] for v in order}
    result = {"config": config, "protocol": runs[0]["protocol"], "num_test_images": runs[0]["num_images"],
              "summary": summary, "comparisons": comparisons, "not_run": not_run,
              "runs": [{k: v for k, v in r.items()} for r in runs],
              "seconds": {"total": time.perf_counter() - start, "teacher": teacher_seconds,
                          "per_step": per_step}}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "ablation.json", json.dumps(result, indent=2))
    atomic_write_text(out / "ablation.md", markdown(result))
    collect_samples(config, world, work, runs_dir, out, runs)
    print(json.dumps({"summary": summary, "not_run": not_run, "seconds": result["seconds"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
