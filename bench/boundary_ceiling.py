"""What ε_DBE gives the true depth itself, beside the shipped networks and an untrained one → JSON.

Usage: python bench/boundary_ceiling.py [--out FILE [--overwrite]]

ε_DBE extracts edges with Canny on the prediction min-max normalised to [0, 1]: a depth jump is
found only when it is a large share of the image's whole depth range. Passing the *true* depth
as the prediction shows the best any network can do under that rule. The synthetic world stores
no depth for the sky (0, missing: it creates no edge), while a network predicts one, and that
depth sets the range every other jump is compared with; so the truth is scored with its sky
missing, at the protocol's far limit (80 m) and at 200 m, and once blurred by a 1-px Gaussian.
On the held-out splits of ``make_pretrained.py`` (32 images each, the networks' own size); each
shipped network's recorded numbers, and those of the same network untrained, are copied beside.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: each stand-in prediction, made from the true depth (metres; 0 = no ground truth, the sky)
ORACLES = {
    "truth, sky missing": lambda gt: gt,
    "truth, sky at 80 m": lambda gt: np.where(gt > 0, gt, 80.0),
    "truth, sky at 200 m": lambda gt: np.where(gt > 0, gt, 200.0),
    "truth, sky at 80 m, 1 px blur": lambda gt: ndimage.gaussian_filter(np.where(gt > 0, gt, 80.0), 1.0),
}


def oracle_scores(dataset: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Mean ε_acc, ε_comp and edge counts of each stand-in of :data:`ORACLES` over ``dataset``."""
    from bore_depth_lite import boundary

    rows: dict[str, list[tuple[float, float, int]]] = {name: [] for name in ORACLES}
    true_edges = []
    for index in range(len(dataset)):
        item = dataset[index]
        gt, edges = item["depth"][0].numpy(), item["boundary"][0].numpy().astype(bool)
        true_edges.append(int(edges.sum()))
        for name, make in ORACLES.items():
            acc, comp, found = boundary.depth_boundary_error(edges, make(gt), return_edges=True)
            rows[name].append((acc, comp, int(found.sum())))
    result = {}
    for name, values in rows.items():
        acc, comp, found = np.array(values, dtype=float).T
        result[name] = {"dbe_acc": round(float(np.nanmean(acc)), 3), "dbe_comp": round(float(np.nanmean(comp)), 3),
                        "dbe_edges_pred": round(float(found.mean()), 1),
                        "dbe_edges_gt": round(float(np.mean(true_edges)), 1)}
    return result


def recorded(scores: dict) -> dict[str, float]:
    """The ε_DBE numbers of a network's recorded metrics (``pretrained_info``), rounded as the stand-ins'."""
    return {k: round(scores[k], 3) for k in ("dbe_acc", "dbe_comp", "dbe_edges_pred", "dbe_edges_gt")}


def main(argv: list[str] | None = None) -> dict:
    from bore_depth_lite.fileio import check_output_file, emit_json
    from bore_depth_lite.pretrained import PRETRAINED, pretrained_info

    sys.path.insert(0, str(ROOT / "data_scripts"))   # the held-out splits are make_pretrained.py's
    from make_pretrained import WORLDS, splits_for, test_split

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    if args.out:
        try:
            check_output_file(args.out, "--out", overwrite=args.overwrite)
        except ValueError as err:
            parser.error(str(err))
    result: dict = {"setting": "ε_DBE as the package computes it: Canny 0.15/0.30 on the min-max normalised "
                               "prediction, θ = 10 px, symmetric completeness", "splits": {}}
    for world in sorted(set(WORLDS.values())):
        networks = [name for name in PRETRAINED if WORLDS.get(name) == world]
        for split_name, config in zip(("test (seed 7)", "fresh (seed 29)"), splits_for(networks[0])):
            key = f"{world}, {split_name}, {config.height}x{config.width}"
            entry = oracle_scores(test_split(config))
            for name in networks:
                info = pretrained_info(name)
                trained = info["metrics"] if split_name.startswith("test") else info["fresh"]["trained"]
                untrained = (info["baselines"]["untrained"] if split_name.startswith("test")
                             else info["fresh"]["untrained"])
                entry[f"{name} (recorded)"] = recorded(trained)
                entry[f"{name} untrained (recorded)"] = recorded(untrained)
            result["splits"][key] = entry
    emit_json(result, args.out, ensure_ascii=False)
    return result


if __name__ == "__main__":
    main()
