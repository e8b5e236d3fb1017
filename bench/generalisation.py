"""How far a shipped network's accuracy falls from the scenes it learnt to scenes it never saw → JSON.

Usage: python bench/generalisation.py [--name tiny-driving] [--every 6] [--scenes N] [--out FILE [--overwrite]]

Re-renders the training scenes of the network's recipe (the training world stores no depth, so
they are rendered again with it) and scores every ``--every``-th frame under the world's protocol
(median scaling), beside the run's validation images (the training world's test folder, as
``bore-depth-train`` validates) and the two held-out splits that ``make_pretrained.py`` recorded.
A network that scores far better on its training scenes than on unseen ones is limited by its
data, not by its objective: more scenes is then the lever to try.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def scene_scores(net, preset: str, size: tuple[int, int], seed: int, group: int, scenes: int, frames: int,
                 every: int) -> list[float]:
    from bore_depth_lite.data.generate import scene_seed
    from bore_depth_lite.data.synthetic import render_sequence
    from bore_depth_lite.evaluate import predict_depth
    from bore_depth_lite.protocols import evaluate_image

    scores = []
    for index in range(scenes):
        seq = render_sequence(preset, frames, *size, seed=scene_seed(seed, group, index))
        images = torch.from_numpy(seq.rgb[::every]).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            depth = predict_depth(net, images)[:, 0].numpy()
        scores += [evaluate_image(d, gt, f"synthetic_{preset}")["abs_rel"] for d, gt in zip(depth, seq.depth[::every])]
    return scores


def main(argv: list[str] | None = None) -> dict:
    from bore_depth_lite.evaluate import evaluate_depth_net
    from bore_depth_lite.fileio import check_output_file, emit_json
    from bore_depth_lite.pretrained import PRETRAINED, load_pretrained, pretrained_info
    from bore_depth_lite.data.cache import ensure_synthetic
    from bore_depth_lite.data.datasets import TestDataset
    from bore_depth_lite.training import TrainConfig
    from bore_depth_lite.training.data import synthetic_config_for

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="tiny-driving", choices=sorted(PRETRAINED))
    parser.add_argument("--every", type=int, default=6, help="score every N-th frame of each scene")
    parser.add_argument("--scenes", type=int, default=None, help="score only the first N training scenes")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    for flag, value in (("--every", args.every), ("--scenes", args.scenes)):
        if value is not None and value < 1:
            parser.error(f"{flag}: expected an integer >= 1, found {value}")
    if args.out:
        try:
            check_output_file(args.out, "--out", overwrite=args.overwrite)
        except ValueError as err:
            parser.error(str(err))
    torch.manual_seed(0)
    info, net = pretrained_info(args.name), load_pretrained(args.name)
    recipe = info["recipe"]
    preset, size = recipe["synthetic_preset"], (recipe["height"], recipe["width"])
    result: dict = {"name": args.name, "protocol": f"synthetic_{preset}", "every": args.every, "abs_rel": {}}
    scenes = min(args.scenes or recipe["synthetic_scenes"], recipe["synthetic_scenes"])
    scores = scene_scores(net, preset, size, recipe["seed"], 0, scenes, recipe["synthetic_frames"], args.every)
    result["abs_rel"]["training scenes"] = {"mean": round(float(np.mean(scores)), 4), "images": len(scores)}
    # The run's validation images are its world's test folder; rendering that folder alone (no
    # training scenes) gives the same images, since every scene has its own seed.
    world = replace(synthetic_config_for(TrainConfig(**recipe)), train_scenes=0, pseudo_depth=False)
    val = TestDataset(ensure_synthetic(world), image_size=size)
    val_scores = evaluate_depth_net(net, val, f"synthetic_{preset}", torch.device("cpu"), limit=recipe["val_images"],
                                    progress=False)
    result["abs_rel"]["validation images"] = {"mean": round(float(val_scores["abs_rel"]), 4),
                                              "images": recipe["val_images"]}
    result["abs_rel"]["test split (recorded)"] = {"mean": info["metrics"]["abs_rel"], "images": info["test_images"]}
    result["abs_rel"]["fresh split (recorded)"] = {"mean": info["fresh"]["trained"]["abs_rel"],
                                                   "images": info["test_images"]}
    emit_json(result, args.out)
    return result


if __name__ == "__main__":
    main()
