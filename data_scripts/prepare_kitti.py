"""Prepare KITTI raw (Eigen split) in the shared layout.

    python data_scripts/prepare_kitti.py --raw-root /data/kitti_raw --out data/kitti \
        --test-split test_files.txt                       # testing/: Eigen test frames + velodyne GT
    python data_scripts/prepare_kitti.py --raw-root /data/kitti_raw --out data/kitti --train
                                                          # training/: every non-test drive at 256x832

Expects the raw tree ``<root>/<date>/{calib_*.txt, <date>_drive_NNNN_sync/...}`` (PNG frames;
see data_scripts/download.py for where to get it). GT reproduces monodepth2's Eigen export,
including its sub2ind quirk unless --no-quirk.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from bore_depth_lite.data.kitti import prepare_kitti
from bore_depth_lite.data.layout import read_text
from bore_depth_lite.fileio import check_fresh_folder, cli_errors


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--raw-root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--test-split", help="monodepth2 splits/eigen/test_files.txt")
    p.add_argument("--train", action="store_true", help="also write training scenes")
    p.add_argument("--train-drives", help="text file of <date>/<drive>_sync lines (default: all non-test drives)")
    p.add_argument("--size", type=int, nargs=2, default=(256, 832), metavar=("H", "W"))
    p.add_argument("--image-ext", default=".png", choices=[".png", ".jpg"])
    p.add_argument("--quirk", action=argparse.BooleanOptionalAction, default=True,
                   help="reproduce the reference sub2ind duplicate quirk (default: yes)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    a = p.parse_args(argv)
    if not a.test_split and not a.train:
        p.error("nothing to do: give --test-split and/or --train")
    if min(a.size) < 1:
        p.error(f"--size: expected two positive integers H W, found {a.size[0]} {a.size[1]}")
    try:
        check_fresh_folder(a.out, "--out", a.overwrite)
    except ValueError as err:
        p.error(str(err))
    with cli_errors("prepare_kitti.py"):
        return _run(a)


def _run(a) -> int:
    summary = {}
    if a.test_split:
        summary.update(prepare_kitti(a.raw_root, a.out, test_split=a.test_split, reproduce_sub2ind_quirk=a.quirk,
                                     progress=tqdm))
    if a.train:
        drives = None
        if a.train_drives:
            drives = [l.strip() for l in read_text(a.train_drives, "--train-drives list").splitlines() if l.strip()]
        if drives is None:
            from bore_depth_lite.data.kitti import EIGEN_TEST_DRIVES
            root = Path(a.raw_root)
            drives = sorted(f"{d.parent.name}/{d.name}" for d in root.glob("*/*_sync")
                            if not d.name.startswith(EIGEN_TEST_DRIVES))
        s = prepare_kitti(a.raw_root, a.out, train_drives=drives, size=tuple(a.size), image_ext=a.image_ext,
                          progress=tqdm)
        summary.update({k: v for k, v in s.items() if k != "test_frames"})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
