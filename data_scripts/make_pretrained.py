"""Train the package's shipped DepthNet on the synthetic world (``make pretrained``).

Usage: python data_scripts/make_pretrained.py [--name tiny-driving|tiny-indoor|paper-driving] [--steps N] [--work DIR]

Trains stage 1 with ``RECIPE`` (the CPU teaching configuration, longer), then evaluates it
and the trivial baselines (the best constant depth after median scaling; the same network
untrained) on a synthetic test split that ``TEST_SPLIT`` describes, and writes the DepthNet
with the recipe, the split and every metric in the checkpoint's ``extra``
(``bore_depth_lite.pretrained.pretrained_info()`` reads them; ``tests/test_pretrained.py``
re-renders the split and checks the numbers). Resumable: run it again after an interruption
and it continues from the last checkpoint in ``--work``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import copy
from dataclasses import asdict, replace
from pathlib import Path

from bore_depth_lite import setup
from bore_depth_lite.data.datasets import TestDataset
from bore_depth_lite.data.generate import SyntheticConfig
from bore_depth_lite.evaluate import ConstantDepth, evaluate_depth_net
from bore_depth_lite.checkpoint import save_checkpoint
from bore_depth_lite.models import DepthNet
from bore_depth_lite.pretrained import ASSETS, PRETRAINED
from bore_depth_lite.fileio import check_output_file
from bore_depth_lite.training import TrainConfig, Trainer
from bore_depth_lite.data.cache import ensure_synthetic
from bore_depth_lite.training import training_datasets

# Stage 1 with SC-Depth v3's pseudo-depth terms (0.1 each, no smoothness term, as v3), 4750
# steps, the learning rate divided by 10 for the last 500 (bench/results/learning_curves/README.md
# has the runs that chose it). 32 scenes x 24 frames at 96x160: on 8 (192 frames) the tiny network
# scored AbsRel 0.085 on its own training scenes against 0.13-0.17 on unseen ones, and 32 took the
# unseen ones to 0.12-0.14 (run lc_v3_s32 there).
RECIPE = dict(model="tiny", pose_arch="small", synthetic_preset="driving", height=96, width=160, batch_size=4,
              lr=5e-4, lr_milestones=(4250,), lr_gamma=0.1, steps=4750, steps_per_epoch=250, synthetic_scenes=32,
              synthetic_frames=24, val_images=16, seed=0, smooth_weight=0.0, normal_weight=0.1,
              mask_rank_weight=0.1, normal_rank_weight=0.1)
# The street network goes further (learning-curve runs lc_v3_s128*, tiny_driving_s128_fs4_all_*):
# 128 scenes; triplets of every frame gap 1-4 (wider gaps give the far street parallax, and PoseNet
# learns every motion size, so a video read frame by frame gets a path); depths divided by the
# target's mean before the loss, with a weak anchor on the scale (so the pose's units cannot drag
# depth to DepthNet's ceiling); 10,500 steps, the rate divided by 10 for the last 750. Held-out
# AbsRel 0.118 / 0.110 and delta1 0.880 / 0.900, against 0.131 / 0.119 and 0.849 / 0.884 for the
# same recipe stopped at 6,750 steps (rate drop at 6,000) and 0.136 / 0.119 and 0.804 / 0.836 for
# the recipe above. The validation AbsRel was still falling at 9,500 steps (0.128 at 6,000, 0.119
# at 8,000, 0.107 at 9,500). The indoor network keeps the recipe above: indoors the normalised
# depth lets the mask-ranking term stretch the contrast two to four times (learning-curve runs
# indoor_s128_*).
DRIVING = {"synthetic_scenes": 128, "frame_step": 4, "every_frame_step": True, "normalise_depth": True,
           "scale_anchor_weight": 0.1, "steps": 10500, "lr_milestones": (9750,)}
# The paper configuration costs ~3x the tiny one per step on a CPU (2.7-3.5 s on one Zen 3 core), so
# it trains 2,750 steps with the same 500-step tail at a tenth of the rate: a run at the full rate
# had reached held-out AbsRel 0.124 / 0.105 and delta1 0.848 / 0.881 by step 2,750.
#: shipped name -> (DepthNet configuration, synthetic world it learns, what it changes in RECIPE);
#: ``PRETRAINED`` in the package names the file of each one that is shipped.
NETWORKS = {"tiny-driving": ("tiny", "driving", DRIVING), "tiny-indoor": ("tiny", "indoor", {}),
            "paper-driving": ("paper", "driving", {"steps": 2750, "lr_milestones": (2250,)})}
WORLDS = {name: world for name, (_, world, _) in NETWORKS.items()}
TEST_SPLIT = SyntheticConfig(preset="driving", height=96, width=160, seed=7, train_scenes=0, val_scenes=0,
                             test_scenes=4, test_frames_per_scene=8)
# A second split rendered from a seed that neither training, validation nor the test split used.
FRESH_SPLIT = replace(TEST_SPLIT, seed=29)
METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3", "dbe_acc", "dbe_comp",
           "dbe_edges_pred", "dbe_edges_gt", "boundary_f1")


def recipe_for(name: str) -> dict:
    model, world, changes = NETWORKS[name]
    return {**RECIPE, "model": model, "synthetic_preset": world, **changes}


def splits_for(name: str) -> tuple[SyntheticConfig, SyntheticConfig]:
    """(test split, fresh split) of the network's own world."""
    return replace(TEST_SPLIT, preset=WORLDS[name]), replace(FRESH_SPLIT, preset=WORLDS[name])


def test_split(config: SyntheticConfig = TEST_SPLIT) -> TestDataset:
    return TestDataset(ensure_synthetic(config))


def score(net, dataset: TestDataset, preset: str = "driving") -> dict[str, float | None]:
    device = setup(0, "cpu")
    result = evaluate_depth_net(net.to(device), dataset, f"synthetic_{preset}", device, progress=False)
    return {k: (None if math.isnan(result[k]) else round(float(result[k]), 6)) for k in METRICS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", choices=sorted(WORLDS), default="tiny-driving", help="which shipped network")
    parser.add_argument("--steps", type=int, help="default: the network's recipe (tiny-driving 10,500, tiny-indoor 4,750, paper 2,750)")
    parser.add_argument("--work", type=Path, help="training folder (resumable; default runs/pretrained-<name>)")
    parser.add_argument("--out", type=Path, help="default: the package's asset for --name")
    args = parser.parse_args(argv)
    name, recipe = args.name, recipe_for(args.name)
    if args.steps is not None:
        recipe["steps"] = args.steps
    out = args.out or ASSETS / PRETRAINED.get(name, f"depthnet_{name.replace('-', '_')}.pt")
    config = TrainConfig(**{**recipe, "out_dir": str(args.work or Path(f"runs/pretrained-{name}"))})
    try:
        config.check()
        check_output_file(out, "--out", overwrite=True)   # regenerating the shipped asset is this script's job
    except ValueError as err:
        parser.error(str(err))
    train, val = training_datasets(config)
    trainer = Trainer(config, train, val)
    if trainer.resume():
        print(f"resumed at step {trainer.step}", file=sys.stderr)
    trainer.fit()

    # The paper configuration (8.7 M parameters) is stored in fp16 to keep the asset small (17 MB);
    # it is scored with those very weights (rounded, back in fp32), so its recorded metrics reproduce.
    half = recipe["model"] != "tiny"
    depth_net = copy.deepcopy(trainer.depth_net).cpu().half().float() if half else trainer.depth_net.cpu()
    test_config, fresh_config = splits_for(name)
    preset = WORLDS[name]
    split, fresh = test_split(test_config), test_split(fresh_config)
    untrained = DepthNet(config.model)
    scores = {"trained": score(depth_net, split, preset), "untrained": score(untrained, split, preset),
              "constant": score(ConstantDepth(), split, preset)}
    extra = {"name": name, "recipe": recipe, "test_split": asdict(test_config),
             "protocol": f"synthetic_{preset}", "test_images": len(split), "metrics": scores["trained"],
             "baselines": {"untrained": scores["untrained"], "constant": scores["constant"]},
             "fresh_split": asdict(fresh_config),
             "fresh": {"trained": score(depth_net, fresh, preset), "untrained": score(untrained, fresh, preset)},
             "history": trainer.history, "pose_net_dtype": "float16",
             "depth_net_dtype": "float16" if half else "float32"}
    # The PoseNet rides along for trajectories (bore-depth-infer on a video); stored in fp16 to keep
    # the asset small.
    pose_half = copy.deepcopy(trainer.pose_net).cpu().half()
    save_checkpoint(out, (depth_net.half() if half else depth_net).eval(), pose_half.eval(), extra=extra)
    print(json.dumps({k: extra[k] for k in ("metrics", "baselines", "fresh", "protocol", "test_images")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
