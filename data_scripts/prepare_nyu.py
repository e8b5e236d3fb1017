"""Prepare the NYUv2 labeled test split (654 images) in the shared layout.

    python data_scripts/prepare_nyu.py --mat nyu_depth_v2_labeled.mat --splits splits.mat --out data/nyu

Writes testing/{color, depth (.npy metres), semantic (16-bit, 894 classes)} and testing/cam.txt.
Self-supervised *training* on NYUv2 needs the raw video (see the chapter); SC-Depth's
preprocessed training folders already follow this layout.
"""
from __future__ import annotations

import argparse
import json
import sys

from tqdm import tqdm

from bore_depth_lite.fileio import check_fresh_folder, cli_errors

from bore_depth_lite.data.nyu import prepare_nyu


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mat", required=True, help="nyu_depth_v2_labeled.mat (MATLAB v7.3)")
    p.add_argument("--splits", required=True, help="splits.mat")
    p.add_argument("--out", required=True)
    p.add_argument("--split", default="test", choices=["test", "train"])
    p.add_argument("--semantic", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    a = p.parse_args(argv)
    try:
        check_fresh_folder(a.out, "--out", a.overwrite)
    except ValueError as err:
        p.error(str(err))
    with cli_errors("prepare_nyu.py"):
        print(json.dumps(prepare_nyu(a.mat, a.splits, a.out, a.split, a.semantic, progress=tqdm)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
