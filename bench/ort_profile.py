"""ONNX Runtime fp32 per-operator profile of DepthNet, and A/B timing of export rewrites and session options.

Usage: python bench/ort_profile.py [--variant baseline,default] [--threads 1 2] [--rounds 11] [--sessions 1] [--warmup 2]
                                   [--profile-runs 5] [--config paper] [--size 256x320]
                                   [--out bench/results/ort_profile_<cpu>.json [--overwrite]] [--list]

Exports the network (random weights, seed 0) once per distinct set of rewrites with the package's
:func:`~bore_depth_lite.deploy.export.export_onnx`, builds its sessions with
:func:`~bore_depth_lite.deploy.make_session`, and for each thread count:

- ``latency``: every session runs once per round, in turn (A B A B ..., the order rotating by one
  each round), after ``--warmup`` runs each, so all see the same machine load. With
  ``--sessions K`` each variant has K sessions whose times are averaged per round: two sessions
  of the same model can differ by a few per cent on a shared machine (where their buffers land
  in memory), and ``session_medians_ms`` shows that spread. On one thread the work is timed by
  the calling thread's CPU clock (ORT runs a 1-thread session on the caller): other processes
  inflate wall-clock (given too) far more than CPU time. On more threads only wall-clock
  measures latency (``process_cpu`` includes pool threads spinning). Per variant: median,
  quartiles, and against the first variant the median of the per-round differences with its
  quartiles and a bootstrap 95 % interval (read a gain against it).
- ``profile``: ORT's profiler (``make_session(profile_prefix=...)``) over ``--profile-runs`` runs
  after one warm-up: per operator type the time summed over its nodes (``ms`` per run, the share
  of node time, and ``nodes``: how many nodes of that type the optimised graph runs), and the
  top nodes. On one thread ``cpu_ms`` rescales the profiler's wall-clock node times by
  (CPU time per run) / (node time per run), so the types add up to the CPU time a run took.

Also: parity of every variant against PyTorch (:func:`~bore_depth_lite.deploy.check_parity`), the
operator counts of the exported and of ORT's optimised graph (``optimized_model_filepath``,
which shows the fusions ORT made), and the compute floor: the network's FLOPs over ONNX Runtime's
fp32 GEMM speed on this machine (``bench/deploy.py``'s measurement: one thread by CPU time, and
``max(--threads)`` threads by wall-clock; taken before each thread count's timing and at the end,
the floor uses their median), with each variant's ratio to it (``over_floor``).

``--list`` prints the variants. Progress goes to stderr, the JSON to stdout (and to ``--out``,
which must not exist unless ``--overwrite``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy import _fp32_gemm_wall, _gemm_speed  # noqa: E402  (bench/ is not a package)
from machine_info import cpu_info, cpu_short_name  # noqa: E402

from bore_depth_lite.fileio import atomic_write_text, check_output_file, cli_errors  # noqa: E402

#: The export rewrites before issue #15's "fp32 closer to the floor" (what ``baseline`` exports).
BASELINE_REWRITES = ("sce_concat_depthwise", "attention_channels_first", "reflection_pad_slices")


@dataclass(frozen=True)
class Variant:
    """One way to build the session: which export rewrites (``None`` = the package's default,
    all of ``REWRITES``) and which ``make_session`` arguments."""

    doc: str
    rewrites: tuple[str, ...] | None = None
    optimization: str = "all"
    options: dict = field(default_factory=dict)


def variants() -> dict[str, Variant]:
    """The variants ``--variant`` accepts, by name."""
    from bore_depth_lite.deploy.export import REWRITES

    out = {
        "baseline": Variant("the export and session before this work: rewrites " + ", ".join(BASELINE_REWRITES)
                            + "; ORT_ENABLE_ALL, pool threads spinning (ORT's default)", BASELINE_REWRITES,
                            options={"session.intra_op.allow_spinning": "1"}),
        "default": Variant("the package's defaults now: export_onnx's REWRITES, make_session's options"),
        "baseline_no_spinning": Variant("baseline's export, pool threads do not spin", BASELINE_REWRITES,
                                        options={"session.intra_op.allow_spinning": "0"}),
        "plain": Variant("a plain torch.onnx.export (no rewrites), default session", ()),
        "extended": Variant("ORT_ENABLE_EXTENDED: no NCHWc layout transform (fusions only)", optimization="extended"),
        "no_spinning": Variant("session.intra_op.allow_spinning=0 (idle pool threads sleep; make_session(spinning=False))",
                               options={"session.intra_op.allow_spinning": "0"}),
        "no_mem_pattern": Variant("enable_mem_pattern=False", options={"enable_mem_pattern": False}),
        "no_arena": Variant("enable_cpu_mem_arena=False", options={"enable_cpu_mem_arena": False}),
        "denormal_zero": Variant("session.set_denormal_as_zero=1 (flush-to-zero / denormals-are-zero)",
                                 options={"session.set_denormal_as_zero": "1"}),
        "dynamic_block_base": Variant("session.dynamic_block_base=4 (smaller, adaptive thread-pool work blocks)",
                                      options={"session.dynamic_block_base": "4"}),
    }
    for name in REWRITES:
        out[f"no_{name}"] = Variant(f"every rewrite but {name}", tuple(r for r in REWRITES if r != name))
    return out


def _log(msg: str) -> None:
    print(f"[ort_profile] {msg}", file=sys.stderr, flush=True)


def _stats(values: list[float]) -> dict:
    v = np.asarray(values)
    return {"median_ms": round(float(np.median(v)), 2), "p25_ms": round(float(np.percentile(v, 25)), 2),
            "p75_ms": round(float(np.percentile(v, 75)), 2), "runs": len(v)}


def _difference(values: list[float], reference: list[float], seed: int = 0) -> dict:
    """Per-round difference ``values - reference``: median, quartiles, bootstrap 95 % interval of the median."""
    d = np.asarray(values) - np.asarray(reference)
    rng = np.random.default_rng(seed)
    boot = np.median(rng.choice(d, size=(2000, len(d)), replace=True), axis=1)
    return {"median_ms": round(float(np.median(d)), 2),
            "quartiles_ms": [round(float(q), 2) for q in np.percentile(d, [25, 75])],
            "ci95_ms": [round(float(q), 2) for q in np.percentile(boot, [2.5, 97.5])],
            "ratio": round(float(np.median(np.asarray(values) / np.asarray(reference))), 4)}


def time_interleaved(sessions: dict, feed: dict, rounds: int, warmup: int, cpu_clock: bool) -> dict:
    """Run every session once per round; the order rotates by one each round, so no session always
    runs first. Returns {key: {"wall": [...], "cpu": [...]}} in ms, one entry per round. ``cpu`` is
    the calling thread's CPU time (``cpu_clock``: one thread) or the process's."""
    clock = time.thread_time if cpu_clock else time.process_time
    for s in sessions.values():
        for _ in range(warmup):
            s.run(None, feed)
    keys = list(sessions)
    times = {key: {"wall": [], "cpu": []} for key in keys}
    for r in range(rounds):
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            c, w = clock(), time.perf_counter()
            sessions[key].run(None, feed)
            times[key]["wall"].append((time.perf_counter() - w) * 1e3)
            times[key]["cpu"].append((clock() - c) * 1e3)
    return times


def profile_session(path: Path, variant: Variant, threads: int, feed: dict, runs: int, prefix: Path,
                    top: int) -> dict:
    """ORT's per-operator profile of ``runs`` runs after one warm-up run (see the module docstring)."""
    from bore_depth_lite.deploy import make_session

    sess = make_session(path, threads=threads, optimization=variant.optimization, profile_prefix=str(prefix),
                        options=variant.options)
    sess.run(None, feed)
    cpu, wall = [], []
    for _ in range(runs):
        c, w = time.thread_time(), time.perf_counter()
        sess.run(None, feed)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - w)
    profile_file = Path(sess.end_profiling())
    events = json.loads(profile_file.read_text())
    profile_file.unlink(missing_ok=True)
    model_runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
    after_warmup = model_runs[0]["ts"] + model_runs[0]["dur"] if model_runs else -1
    per_node: dict[str, list] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time") or e["ts"] < after_warmup:
            continue
        node = e["name"][: -len("_kernel_time")]
        per_node.setdefault(node, [e.get("args", {}).get("op_name", "?"), 0.0])[1] += e["dur"] / 1e3 / runs
    node_ms = sum(ms for _, ms in per_node.values())
    # one thread: the profiler's node times are wall-clock, which includes waiting for other
    # processes on a shared machine; scaled by (CPU time per run) / (node time per run) they add up
    # to the CPU time a run took (the executor's own time between nodes spread over the nodes)
    scale = float(np.median(cpu)) * 1e3 / node_ms if threads == 1 and node_ms > 0 else None
    per_type: dict[str, dict] = {}
    for op, ms in per_node.values():
        entry = per_type.setdefault(op, {"op": op, "ms": 0.0, "nodes": 0})
        entry["ms"] += ms
        entry["nodes"] += 1
    rows = sorted(per_type.values(), key=lambda r: -r["ms"])
    for r in rows:
        r["share"] = round(r["ms"] / node_ms, 4)
        if scale is not None:
            r["cpu_ms"] = round(r["ms"] * scale, 2)
        r["ms"] = round(r["ms"], 2)
    nodes = sorted(per_node.items(), key=lambda kv: -kv[1][1])[:top]
    out = {"runs": runs, "wall_ms_per_run_median": round(float(np.median(wall)) * 1e3, 2),
           "node_wall_ms_per_run": round(node_ms, 2), "nodes_run": len(per_node), "op_types": rows,
           "top_nodes": [{"node": n, "op": op, "ms": round(ms, 2), "share": round(ms / node_ms, 4)}
                         for n, (op, ms) in nodes]}
    if scale is not None:
        out["cpu_ms_per_run_median"] = round(float(np.median(cpu)) * 1e3, 2)
        out["cpu_over_node_wall"] = round(scale, 3)
    return out


def _optimised_operators(path: Path, variant: Variant, tmp: Path) -> dict[str, int]:
    """Operator counts of the graph ORT runs (its optimised model, one thread)."""
    from bore_depth_lite.deploy import make_session
    from bore_depth_lite.deploy.export import onnx_operator_counts

    opt = tmp / f"{path.stem}_{variant.optimization}_optimised.onnx"
    make_session(path, threads=1, optimization=variant.optimization,
                 options={**variant.options, "optimized_model_filepath": str(opt)})
    counts = onnx_operator_counts(opt)
    opt.unlink(missing_ok=True)
    return counts


def _machine() -> dict:
    info = cpu_info(all_flags=True)
    info["flags"] = " ".join(info.pop("flags_all", []))
    info["short_name"] = cpu_short_name(info)
    try:   # with autogroup scheduling, nice levels only rank processes of one session (e.g. one shell)
        info["sched_autogroup"] = Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        pass
    return info


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="baseline,default",
                   help="comma-separated variant names (--list); the first is the reference for differences")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rounds", type=int, default=11, help="timed rounds per thread count (each runs every session)")
    p.add_argument("--sessions", type=int, default=1,
                   help="sessions per variant: two sessions of one model can differ by a few %% (where their "
                        "buffers land in memory); with 2 or more the spread between them is reported and the "
                        "per-round time of a variant is the mean over its sessions")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per variant before the rounds")
    p.add_argument("--profile-runs", type=int, default=5, help="profiled runs per variant and thread count (0: none)")
    p.add_argument("--top", type=int, default=15, help="top nodes listed per profile")
    p.add_argument("--config", default="paper", help="DepthNet config (paper/small/tiny)")
    p.add_argument("--size", default="256x320", help="HxW input size (multiples of 32)")
    p.add_argument("--no-floor", action="store_true", help="skip the GEMM speed measurement (and the floor)")
    p.add_argument("--out", type=Path, default=None,
                   help="also write the JSON here (e.g. bench/results/ort_profile_<cpu>.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--list", action="store_true", help="print the variants and exit")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    with cli_errors("ort_profile.py"):
        return _main(args)


def _main(args) -> dict:
    table = variants()
    if args.list:
        for name, v in table.items():
            print(f"{name:34s} {v.doc}")
        return {}
    names = [n.strip() for n in args.variant.split(",") if n.strip()]
    unknown = [n for n in names if n not in table]
    if unknown or not names:
        raise ValueError(f"--variant: unknown {unknown or 'empty list'}; expected names from {list(table)}")
    if len(set(names)) != len(names):
        raise ValueError(f"--variant: a name appears twice in {names}")
    if args.rounds < 1 or args.warmup < 0 or args.profile_runs < 0 or min(args.threads) < 1 or args.sessions < 1:
        raise ValueError("expected --rounds ≥ 1, --sessions ≥ 1, --warmup ≥ 0, --profile-runs ≥ 0, --threads ≥ 1")
    if args.out is not None:
        check_output_file(args.out, "--out", overwrite=args.overwrite)
    h, w = (int(v) for v in args.size.lower().split("x"))
    warnings.filterwarnings("ignore")

    import onnxruntime as ort

    from bore_depth_lite import setup
    from bore_depth_lite.deploy import check_parity, make_session
    from bore_depth_lite.deploy.export import REWRITES, export_onnx
    from bore_depth_lite.models import DepthNet

    setup(0, "cpu", threads=1)
    net = DepthNet(args.config).eval()   # random weights from the seed: latency does not depend on them
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, h, w))
    flops = counter.get_total_flops()
    x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    feed = {"image": x.numpy()}
    with torch.no_grad():
        reference = net(x)
    chosen = {n: table[n] for n in names}
    result = {"benchmark": "ort_profile", "config": args.config, "size": f"{h}x{w}", "batch": 1,
              "gflop": round(flops / 1e9, 3), "rounds": args.rounds, "sessions_per_variant": args.sessions,
              "warmup": args.warmup,
              "threads": args.threads, "reference_variant": names[0],
              "machine": _machine(), "load_average_start": [round(v, 2) for v in os.getloadavg()],
              "versions": {"torch": torch.__version__, "onnxruntime": ort.__version__, "python": sys.version.split()[0]},
              "rewrites_now": list(REWRITES),
              "variants": {n: {"doc": v.doc, "rewrites": list(REWRITES if v.rewrites is None else v.rewrites),
                               "optimization": v.optimization, "options": v.options} for n, v in chosen.items()}}
    with tempfile.TemporaryDirectory(prefix="ort_profile_") as tmp:
        tmp = Path(tmp)
        paths: dict[tuple, Path] = {}
        for name, v in chosen.items():
            key = tuple(REWRITES) if v.rewrites is None else tuple(v.rewrites)
            if key not in paths:
                _log(f"export with rewrites {list(key) or 'none'}")
                report = export_onnx(net, tmp / f"export_{len(paths)}.onnx", (h, w), rewrites=key)
                paths[key] = report.path
                result.setdefault("exports", {})[",".join(key) or "none"] = {
                    "rewrites_applied": report.rewrites, "operators": report.operators}
            result["variants"][name]["export"] = ",".join(key) or "none"
        path_of = {n: paths[tuple(REWRITES) if v.rewrites is None else tuple(v.rewrites)] for n, v in chosen.items()}
        result["parity_vs_torch"] = {}
        result["optimised_graph_operators"] = {}
        for name, v in chosen.items():
            sess = make_session(path_of[name], threads=1, optimization=v.optimization, options=v.options)
            result["parity_vs_torch"][name] = {k: float(f"{val:.3g}") for k, val in
                                               check_parity(reference, sess.run(None, feed)[0]).items()}
            result["optimised_graph_operators"][name] = _optimised_operators(path_of[name], v, tmp)
        multi = max([t for t in args.threads if t > 1], default=None)
        gemm_runs: list[dict] = []

        def measure_gemm() -> None:   # spread over the run: the machine's load (and so the speed) drifts
            if not args.no_floor:
                _log("GEMM speed (compute floor)")
                gemm_runs.append({**_gemm_speed(), **({f"fp32_gflops_{multi}_threads_wall": _fp32_gemm_wall(multi)}
                                                      if multi else {})})

        measure_gemm()
        result["by_threads"] = {}
        for threads in args.threads:
            key = f"{threads}_thread{'s' if threads > 1 else ''}"
            _log(f"{key}: {args.rounds} interleaved rounds of {names} ({args.sessions} session(s) each)")
            # sessions created variant after variant, round-robin, so none is always created first
            sessions = {(n, i): make_session(path_of[n], threads=threads, optimization=chosen[n].optimization,
                                             options=chosen[n].options)
                        for i in range(args.sessions) for n in names}
            raw = time_interleaved(sessions, feed, args.rounds, args.warmup, cpu_clock=threads == 1)
            del sessions
            # per variant and round: the mean over its sessions
            times = {n: {c: list(np.mean([raw[(n, i)][c] for i in range(args.sessions)], axis=0))
                         for c in ("wall", "cpu")} for n in names}
            metric = "cpu" if threads == 1 else "wall"
            entry = {"clock": "thread CPU time" if threads == 1 else "wall-clock", "latency": {}}
            ref = times[names[0]][metric]
            for name in names:
                row = _stats(times[name][metric])
                if args.sessions > 1:
                    medians = [round(float(np.median(raw[(name, i)][metric])), 2) for i in range(args.sessions)]
                    row["session_medians_ms"] = medians
                    row["session_spread_ms"] = round(max(medians) - min(medians), 2)
                if threads == 1:
                    row["wall"] = _stats(times[name]["wall"])
                else:   # includes pool threads spinning while they wait for work
                    row["process_cpu"] = _stats(times[name]["cpu"])
                if name != names[0]:
                    row[f"vs_{names[0]}"] = _difference(times[name][metric], ref)
                entry["latency"][name] = row
            if args.profile_runs:
                entry["profile"] = {}
                for name, v in chosen.items():
                    _log(f"{key}: profile {name}")
                    entry["profile"][name] = profile_session(path_of[name], v, threads, feed, args.profile_runs,
                                                             tmp / f"profile_{name}_{threads}", args.top)
            result["by_threads"][key] = entry
            measure_gemm()
        if gemm_runs:
            floor: dict = {"gemm_measurements": gemm_runs}
            for threads in args.threads:
                if threads == 1:
                    gflops, clock = float(np.median([g["fp32_gflops_1_thread"] for g in gemm_runs])), "CPU time"
                elif threads == multi:
                    gflops, clock = float(np.median([g[f"fp32_gflops_{multi}_threads_wall"] for g in gemm_runs])), "wall"
                else:
                    continue
                key = f"{threads}_thread{'s' if threads > 1 else ''}"
                floor_ms = flops / 1e9 / gflops * 1e3
                floor[key] = {"fp32_gemm_gflops_median": round(gflops, 2), "clock": clock, "floor_ms": round(floor_ms, 1)}
                for row in result["by_threads"][key]["latency"].values():
                    row["over_floor"] = round(row["median_ms"] / floor_ms, 3)
            result["compute_floor"] = floor
    result["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    busiest = max(result["load_average_start"][0], result["load_average_end"][0])
    if busiest > (os.cpu_count() or 1):
        result["note"] = (f"load average up to {busiest:.1f} on {os.cpu_count()} cores: other processes shared the "
                          "cores (and caches); the 1-thread rows (CPU time, interleaved) are the comparable ones")
        if result["machine"].get("sched_autogroup"):
            result["note"] += ("; the kernel's autogroup scheduling gives each session's processes an equal CPU "
                               "share, whatever their nice level, so multi-thread wall-clock waits for them")
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, text + "\n")
        _log(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
