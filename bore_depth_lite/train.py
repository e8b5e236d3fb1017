"""Train BoRe-Depth: ``python -m bore_depth_lite.train`` (console script ``bore-depth-train``).

Examples::

    # stage 1 on the synthetic world, CPU teaching preset (a few minutes on 2 cores)
    python -m bore_depth_lite.train --out runs/stage1
    # the embedded semantic teacher, then stage 2 from the stage-1 weights
    python -m bore_depth_lite.train --teacher-only --out runs/teacher
    python -m bore_depth_lite.train --stage 2 --teacher runs/teacher/teacher.pt \\
        --init-from runs/stage1/checkpoint.pt --out runs/stage2
    # the paper's configuration on prepared NYUv2 video, 4 GPUs
    torchrun --nproc_per_node=4 -m bore_depth_lite.train --preset paper-nyu --data-root data/nyu \\
        --val-protocol bore_nyu --out runs/nyu
    # continue a run that was killed
    python -m bore_depth_lite.train --out runs/stage1 --resume

Options come from (later wins): the preset, a YAML/JSON ``--config`` file, then flags.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from .training import PRESETS, TrainConfig

__all__ = ["main", "parse_config"]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bore-depth-train", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("Examples::")[1])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="starting point for every option")
    parser.add_argument("--config", type=Path, help="YAML or JSON file of options (names as below, with underscores)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt if it exists")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh in an OUT that holds an earlier run (its checkpoint, metrics and samples are replaced)")
    parser.add_argument("--teacher-only", action="store_true",
                        help="train the embedded semantic teacher on the synthetic labels and exit")
    parser.add_argument("--out", dest="out_dir", help="output folder (checkpoint, metrics.csv, samples)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: torch's, all cores); 1 makes a CPU run's numbers independent of the machine's core count")
    for f in fields(TrainConfig):
        if f.name == "out_dir":
            continue
        kind = type(f.default) if f.default is not None else str
        if isinstance(f.default, tuple):
            parser.add_argument(_flag(f.name), type=int, nargs="+", default=None)
        elif kind is bool:
            parser.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(_flag(f.name), type=kind if kind in (int, float) else str, default=None)
    return parser


class UsageError(SystemExit):
    """A bad argument: one line on stderr, exit status 2 (argparse's convention)."""

    def __init__(self, message: str, code: int = 2):
        print(f"bore-depth-train: error: {message}", file=sys.stderr)
        super().__init__(code)


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"--config {path}: expected a YAML or JSON file, found {'a folder' if path.is_dir() else 'nothing'}")
    try:
        text = path.read_text()
        loaded = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as err:
        where = ""
        mark = getattr(err, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        elif isinstance(err, json.JSONDecodeError):
            where = f" at line {err.lineno}, column {err.colno}"
        kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
        problem = getattr(err, "problem", None) or getattr(err, "msg", None) or type(err).__name__
        raise UsageError(f"--config {path}: expected {kind}, could not parse it{where} ({problem})") from None
    if not isinstance(loaded, dict):
        raise UsageError(f"--config {path}: expected a mapping of option names to values, found "
                         f"{type(loaded).__name__}")
    return loaded


def parse_config(argv: list[str] | None = None) -> tuple[TrainConfig, argparse.Namespace]:
    """Merge preset, config file and flags into a :class:`TrainConfig`; every value is checked
    here, before any data set is built (exit status 2 and one line naming the option)."""
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = dict(PRESETS[args.preset])
    if args.config is not None:
        values.update(_read_config_file(args.config))
    for f in fields(TrainConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    where = f" (in --config {args.config})" if args.config is not None else ""
    try:
        config = TrainConfig.from_dict(values)
        config.check()
    except (TypeError, ValueError) as err:
        raise UsageError(f"{err}{where}") from None
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite contradict each other: continue the run in --out, or replace it")
    out = Path(config.out_dir)
    earlier = [p.name for p in (out / "checkpoint.pt", out / "metrics.csv", out / "teacher.pt") if p.exists()]
    if args.teacher_only:
        earlier = [n for n in earlier if n == "teacher.pt"]
    elif args.resume:
        earlier = []
    if earlier and not args.overwrite:
        hint = "" if args.teacher_only else "pass --resume to continue it, "
        raise UsageError(f"--out {out}: holds an earlier run ({', '.join(earlier)}); {hint}--overwrite to replace "
                         "it, or choose another --out")
    return config, args


def _failed(message: str) -> SystemExit:
    """A failed input (a data set or checkpoint that cannot be used): one line, exit status 1."""
    print(f"bore-depth-train: error: {message}", file=sys.stderr)
    return SystemExit(1)


def main(argv: list[str] | None = None) -> int:
    config, args = parse_config(argv)
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads: expected an integer >= 1, found {args.threads}")
    from . import setup

    try:
        setup(config.seed, config.device, threads=args.threads)
    except ValueError as err:
        raise UsageError(f"--device: {err}") from None
    from .training import teacher_dataset, training_datasets

    if args.teacher_only:
        from .distill import train_teacher

        out = Path(config.out_dir)
        try:
            frames = teacher_dataset(config)
        except (FileNotFoundError, ValueError) as err:
            raise _failed(str(err)) from None
        result = train_teacher(frames, out / "teacher.pt", num_classes=len(frames.class_names),
                               class_names=frames.class_names, encoder=config.model, steps=config.steps,
                               seed=config.seed, device=config.device, progress=not args.no_progress)
        print(json.dumps({"teacher": str(out / "teacher.pt"), "pixel_accuracy": result.pixel_accuracy,
                          "mean_iou": result.mean_iou}, indent=2))
        return 0

    from .training import Trainer

    try:
        train_set, val_set = training_datasets(config)
        trainer = Trainer(config, train_set, val_set, progress=not args.no_progress)
        if args.resume and trainer.resume():
            print(f"resumed from {trainer.checkpoint_path} at step {trainer.step}", file=sys.stderr)
        elif config.init_from:
            trainer.init_from(config.init_from)
    except (FileNotFoundError, ValueError) as err:   # LayoutError, checkpoint errors: they name the file
        raise _failed(str(err)) from None
    if args.overwrite:
        for old in sorted((Path(config.out_dir) / "samples").glob("step_*.png")):
            old.unlink()
    history = trainer.fit()
    if trainer.dist.is_main and history:
        print(json.dumps(history[-1], indent=2))
    trainer.dist.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
