"""Where a network's depth errs: error by true distance and by semantic class, after median scaling → JSON.

Usage: python bench/error_by_depth.py [--networks tiny-driving paper-driving runs/x/checkpoint.pt ...]
                                      [--world driving] [--bins 0.1 5 10 20 40 80] [--out FILE [--overwrite]]

Scores each network on ``make_pretrained.py``'s two held-out splits of its world (seeds 7 and 29,
32 images each, the network's own size), as the shipped networks are scored: the protocol's valid
pixels, per-image median scaling and clamp. Then it splits the valid pixels by true depth and by
the world's semantic class and reports, per group, its share of the pixels, the mean log ratio
``log(pred / gt)`` (the bias: negative = predicted too near), δ1 and AbsRel. A self-supervised
network that compresses depth with distance (too far near the camera, too near far from it) has a
bias that falls from positive to negative across the bins, and loses δ1 in the far bins; a
supervised one does not. Before scaling, it also reports the scale the network chose (units per
metre) and the share of its pixels pressed against DepthNet's 100-unit ceiling. Names are shipped networks (``bore_depth_lite.pretrained``); paths are
checkpoints of ours (``bore-depth-train`` writes them).
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
sys.path.insert(0, str(ROOT / "data_scripts"))

DEFAULT_BINS = (0.1, 5.0, 10.0, 20.0, 40.0, 80.0)


def group_errors(log_ratio: np.ndarray, groups: np.ndarray, labels) -> dict[str, dict[str, float]]:
    """Per group: pixel share, mean log(pred/gt), δ1 and AbsRel.

    Args:
        log_ratio: (N,) ``log(pred / gt)`` of the valid, scaled pixels.
        groups: (N,) integer group of each pixel; pixels of a group not in ``labels`` are left out.
        labels: ``{group: name}``; groups without pixels are omitted.
    """
    if log_ratio.shape != groups.shape:
        raise ValueError(f"log_ratio {log_ratio.shape} and groups {groups.shape} must have the same shape")
    out = {}
    for group, name in labels.items():
        r = log_ratio[groups == group]
        if r.size:
            out[name] = {"share": round(r.size / log_ratio.size, 4), "log_bias": round(float(r.mean()), 4),
                         "delta1": round(float(np.mean(np.abs(r) < np.log(1.25))), 4),
                         "abs_rel": round(float(np.mean(np.abs(np.expm1(r)))), 4)}
    return out


def scaled_log_ratios(net, dataset, protocol: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict]:
    """(log(pred/gt), gt, semantic class or None, raw) over every valid pixel of the split, after the
    protocol's scaling and clamp: the pixels and values that AbsRel and δ1 are computed on.

    ``raw`` describes the depth before scaling: ``units_per_metre``, the median over images of
    median(pred) / median(gt) on the valid pixels (the scale the network chose: self-supervision
    fixes none), and ``near_ceiling_share``, the share of all predicted pixels (sky included) beyond
    half of DepthNet's ceiling 1 / MIN_DISP = 100 units, where d log(depth) / d logit has fallen
    below 1/2 and the photometric loss can hardly move the depth any more; ``log_spread_ratio``, the
    median over images of std(log pred) / std(log gt) on the valid pixels (the contrast: 1 when the
    depth spans the truth's range of ratios, above 1 when near and far are pushed apart, below 1
    when they are pressed together; median scaling does not change it)."""
    from bore_depth_lite.evaluate import predict_depth
    from bore_depth_lite.metrics import scale_and_clamp
    from bore_depth_lite.models.depth_net import MIN_DISP
    from bore_depth_lite.protocols import get_protocol, resize_prediction, scored_pixels

    proto = get_protocol(protocol)
    ratios, gts, classes, units, spreads, near_ceiling, predicted = [], [], [], [], [], 0, 0
    for i in range(len(dataset)):
        item = dataset[i]
        with torch.no_grad():
            pred = predict_depth(net, item["image"][None])[0, 0].numpy().astype(np.float64)
        gt = item["depth"][0].numpy().astype(np.float64)
        if pred.shape != gt.shape:
            pred = resize_prediction(pred, gt.shape, proto.resize)
        valid = scored_pixels(gt, proto)
        units.append(np.median(pred[valid]) / np.median(gt[valid]))
        if np.ptp(gt[valid]) > 0:
            spreads.append(np.std(np.log(pred[valid])) / np.std(np.log(gt[valid])))
        near_ceiling += int(np.count_nonzero(pred > 0.5 / MIN_DISP))
        predicted += pred.size
        scaled, _ = scale_and_clamp(gt[valid], pred[valid], proto.scaling, proto.clamp)
        ratios.append(np.log(scaled / gt[valid]))
        gts.append(gt[valid])
        if "semantic" in item:
            classes.append(item["semantic"][0].numpy()[valid])
    raw = {"units_per_metre": round(float(np.median(units)), 4),
           "near_ceiling_share": round(near_ceiling / predicted, 4),
           "log_spread_ratio": round(float(np.median(spreads)), 4) if spreads else None}
    return np.concatenate(ratios), np.concatenate(gts), (np.concatenate(classes) if classes else None), raw


def _network(spec: str):
    from bore_depth_lite.checkpoint import load_any_depthnet
    from bore_depth_lite.pretrained import PRETRAINED, load_pretrained

    if spec in PRETRAINED:
        return load_pretrained(spec).eval()
    if not Path(spec).is_file():
        raise ValueError(f"--networks: {spec!r} is neither a shipped network ({', '.join(sorted(PRETRAINED))}) "
                         "nor a checkpoint file")
    return load_any_depthnet(spec, map_location="cpu").eval()


def main(argv: list[str] | None = None) -> dict:
    import make_pretrained as mp
    from bore_depth_lite.data.synthetic import CLASS_NAMES
    from bore_depth_lite.fileio import check_output_file, emit_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", nargs="+", default=["tiny-driving", "paper-driving"],
                        help="shipped network names or checkpoint paths")
    parser.add_argument("--world", default="driving", choices=["driving", "indoor"])
    parser.add_argument("--bins", type=float, nargs="+", default=list(DEFAULT_BINS), help="true-depth bin edges (m)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    if len(args.bins) < 2 or any(b <= a for a, b in zip(args.bins, args.bins[1:])):
        parser.error(f"--bins: expected at least two increasing edges, found {args.bins}")
    try:
        if args.out:
            check_output_file(args.out, "--out", overwrite=args.overwrite)
        nets = {spec: _network(spec) for spec in args.networks}
    except ValueError as err:
        parser.error(str(err))
    torch.set_num_threads(1)   # the numbers do not depend on the core count
    protocol = f"synthetic_{args.world}"
    splits = {f"seed {c.seed}": mp.test_split(c) for c in (replace(mp.TEST_SPLIT, preset=args.world),
                                                           replace(mp.FRESH_SPLIT, preset=args.world))}
    bin_labels = {i: f"{a:g}-{b:g} m" for i, (a, b) in enumerate(zip(args.bins, args.bins[1:]))}
    result: dict = {"benchmark": "error_by_depth", "protocol": protocol, "bins_m": args.bins, "networks": {}}
    for spec, net in nets.items():
        result["networks"][spec] = {}
        for split_name, split in splits.items():
            log_ratio, gt, classes, raw = scaled_log_ratios(net, split, protocol)
            by_depth = group_errors(log_ratio, np.digitize(gt, args.bins) - 1, bin_labels)
            entry = {"images": len(split), "pixels": int(log_ratio.size), "raw_depth": raw,
                     "overall": group_errors(log_ratio, np.zeros_like(log_ratio, dtype=int), {0: "all"})["all"],
                     "by_true_depth": by_depth}
            if classes is not None:
                entry["by_class"] = group_errors(log_ratio, classes, dict(enumerate(CLASS_NAMES)))
            result["networks"][spec][split_name] = entry
    emit_json(result, args.out)
    return result


if __name__ == "__main__":
    main()
