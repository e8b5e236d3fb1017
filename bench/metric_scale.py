"""Metric scale from the camera height, measured on the synthetic driving world → JSON.

Usage: python bench/metric_scale.py [--checkpoint pretrained|PATH] [--scenes 10] [--frames 3] [--size 96 160]

Scenes are rendered with seeds 10_000 + i, which no training, validation or test split uses
(those derive their seeds from ``data.generate.scene_seed``). For every frame the predicted depth
is made metric with :func:`bore_depth_lite.metric_scale.ground_scale` (camera 1.65 m above the
road, as in the world and in KITTI), once with the lower image rows as road candidates and once
with the true road class; the error is the estimated scale over the scale that best fits the
true depth (the median of true / predicted), minus 1. The true depth itself is measured too
(the method's own error, without a network's).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys

import numpy as np
import torch

import bore_depth_lite
from bore_depth_lite.checkpoint import load_any_depthnet
from bore_depth_lite.data.synthetic import C, render_sequence
from bore_depth_lite.evaluate import predict_depth
from bore_depth_lite.metric_scale import ground_scale
from bore_depth_lite.pretrained import load_pretrained

CAMERA_HEIGHT = 1.65


def _summary(errors: list[float]) -> dict:
    e = np.abs(np.asarray(errors))
    return {"median_abs_error": round(float(np.median(e)), 4), "p25": round(float(np.percentile(e, 25)), 4),
            "p75": round(float(np.percentile(e, 75)), 4), "max": round(float(e.max()), 4),
            "median_signed_error": round(float(np.median(errors)), 4), "frames": len(errors)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="pretrained")
    p.add_argument("--scenes", type=int, default=10)
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--size", type=int, nargs=2, default=(96, 160), metavar=("H", "W"))
    args = p.parse_args(argv)
    bore_depth_lite.setup(0, "cpu", threads=None)
    net = load_pretrained() if args.checkpoint == "pretrained" else load_any_depthnet(args.checkpoint)
    errors: dict[str, list[float]] = {"true_depth_lower_rows": [], "network_lower_rows": [], "network_road_class": []}
    for i in range(args.scenes):
        seq = render_sequence("driving", args.frames, *args.size, seed=10_000 + i, speed=4.0)
        for j in range(args.frames):
            gt = seq.depth[j]
            image = torch.from_numpy(seq.rgb[j]).permute(2, 0, 1).float()[None] / 255.0
            pred = predict_depth(net.eval(), image)[0, 0].numpy().astype(np.float64)
            valid = gt > 0
            best = float(np.median(gt[valid] / pred[valid]))
            errors["true_depth_lower_rows"].append(ground_scale(gt, seq.K, CAMERA_HEIGHT).scale - 1.0)
            errors["network_lower_rows"].append(ground_scale(pred, seq.K, CAMERA_HEIGHT).scale / best - 1.0)
            road = (seq.semantic[j] == C["road"]) & valid
            errors["network_road_class"].append(ground_scale(pred, seq.K, CAMERA_HEIGHT, ground_mask=road).scale / best - 1.0)
    result = {"checkpoint": args.checkpoint, "size": list(args.size), "camera_height_m": CAMERA_HEIGHT,
              "scenes": args.scenes, "frames_per_scene": args.frames, "cpu": platform.processor() or platform.machine(),
              **{k: _summary(v) for k, v in errors.items()}}
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
