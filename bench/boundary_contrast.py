"""Is a low boundary F1 a missing edge or a flat one? F1 and contrast of networks, their teacher and the truth → JSON.

Usage: python bench/boundary_contrast.py [--world driving|indoor] [--networks NAME_OR_CHECKPOINT ...]
                                         [--powers 1 1.5 2 3] [--out FILE [--overwrite]]

Depth Pro's boundary F1 (``bore_depth_lite.boundary_f1``) marks a contour between two neighbouring
pixels when their depths differ by more than 5-25 %. A network can place its depth edges right and
still score F1 near 0 if it makes every jump too small: if its depth's *contrast* (the spread of
log depth against the truth's) is pressed together, or if its edges are spread over several pixels.
This script separates the two on ``make_pretrained.py``'s held-out test split (seed 7, 32 images at
the networks' size):

- each network's F1 on its prediction raised to the powers ``--powers`` (``d**k`` multiplies the log
  contrast by k and moves no edge: if F1 grows with k, the edges were there but flat);
- the contrast ``log_spread_ratio``, median over images of std(log pred) / std(log gt) on the
  protocol's pixels (1: the truth's range of ratios; below 1: pressed together);
- the same for stand-ins made from the truth: blurred by a Gaussian of 0.5, 1 and 2 px (a network
  with exact depth but soft edges), and the world's *simulated pseudo-depth*, the teacher of SC-Depth
  v3's terms (``simulate_pseudo_depth``: a random monotone distortion and a blur of 1 % of the width),
  with and without its blur.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "data_scripts"))


def contrast_and_f1(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], power: float = 1.0) -> dict[str, float]:
    """Mean boundary F1 and median ``log_spread_ratio`` of predictions raised to ``power``.

    Args:
        pairs: per image (gt (H,W) metres, pred (H,W) positive, valid (H,W) bool of the scored pixels).
        power: exponent k applied to every prediction (scales its log contrast by k).
    """
    from bore_depth_lite.boundary_f1 import boundary_f1

    f1, spread = [], []
    for gt, pred, valid in pairs:
        p = pred ** power
        f1.append(boundary_f1(gt, p, valid=valid)["f1"])
        if np.ptp(gt[valid]) > 0:
            spread.append(np.std(np.log(p[valid])) / np.std(np.log(gt[valid])))
    return {"boundary_f1": round(float(np.nanmean(f1)), 4), "log_spread_ratio": round(float(np.median(spread)), 3)}


def stand_ins(seed: int = 0) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Predictions made from the true depth (0 = no ground truth, filled by the largest depth)."""
    from bore_depth_lite.data.synthetic import simulate_pseudo_depth

    rng = np.random.default_rng(seed)

    def filled(gt: np.ndarray) -> np.ndarray:
        return np.where(gt > 0, gt, gt.max())

    def blurred(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
        return lambda gt: np.exp(ndimage.gaussian_filter(np.log(filled(gt)), sigma))

    return {"truth, 0.5 px blur": blurred(0.5), "truth, 1 px blur": blurred(1.0), "truth, 2 px blur": blurred(2.0),
            "pseudo-depth (as trained)": lambda gt: simulate_pseudo_depth(gt, rng).astype(np.float64),
            "pseudo-depth, no blur": lambda gt: simulate_pseudo_depth(gt, rng, blur_sigma=0.0).astype(np.float64)}


def main(argv: list[str] | None = None) -> dict:
    import make_pretrained as mp
    from bore_depth_lite.checkpoint import load_any_depthnet
    from bore_depth_lite.evaluate import predict_depth
    from bore_depth_lite.fileio import check_output_file, emit_json
    from bore_depth_lite.pretrained import PRETRAINED, load_pretrained
    from bore_depth_lite.protocols import get_protocol, resize_prediction, scored_pixels

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="indoor", choices=["driving", "indoor"])
    parser.add_argument("--networks", nargs="+", help="shipped names or checkpoint paths (default: the world's shipped networks)")
    parser.add_argument("--powers", type=float, nargs="+", default=[1.0, 1.5, 2.0, 3.0], help="exponents k of pred**k")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    specs = args.networks or [name for name, world in mp.WORLDS.items() if world == args.world]
    try:
        if args.out:
            check_output_file(args.out, "--out", overwrite=args.overwrite)
        if any(not k > 0 for k in args.powers):
            raise ValueError(f"--powers: expected positive exponents, found {args.powers}")
        for spec in specs:
            if spec not in PRETRAINED and not Path(spec).is_file():
                raise ValueError(f"--networks: {spec!r} is neither a shipped network "
                                 f"({', '.join(sorted(PRETRAINED))}) nor a checkpoint file")
    except ValueError as err:
        parser.error(str(err))
    torch.set_num_threads(1)   # the numbers do not depend on the core count
    protocol = get_protocol(f"synthetic_{args.world}")
    split = mp.test_split(replace(mp.TEST_SPLIT, preset=args.world))
    items = [split[i] for i in range(len(split))]
    truths = [(it["depth"][0].numpy().astype(np.float64)) for it in items]
    valids = [scored_pixels(gt, protocol) for gt in truths]
    result: dict = {"benchmark": "boundary_contrast", "world": args.world, "split": "test (seed 7)",
                    "images": len(items), "stand_ins": {}, "networks": {}}
    for name, make in stand_ins().items():
        result["stand_ins"][name] = contrast_and_f1([(gt, make(gt), v) for gt, v in zip(truths, valids)])
    for spec in specs:
        net = (load_pretrained(spec) if spec in PRETRAINED else load_any_depthnet(spec, map_location="cpu")).float().eval()
        pairs = []
        for it, gt, v in zip(items, truths, valids):
            with torch.no_grad():
                pred = predict_depth(net, it["image"][None])[0, 0].numpy().astype(np.float64)
            if pred.shape != gt.shape:
                pred = resize_prediction(pred, gt.shape, protocol.resize)
            pairs.append((gt, pred, v))
        result["networks"][spec] = {f"pred**{k:g}": contrast_and_f1(pairs, k) for k in args.powers}
    emit_json(result, args.out, ensure_ascii=False)
    return result


if __name__ == "__main__":
    main()
