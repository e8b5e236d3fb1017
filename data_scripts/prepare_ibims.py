"""Prepare iBims-1 (100 test images, annotated depth edges) in the shared layout.

    python data_scripts/prepare_ibims.py --mat-dir ibims1_core_mat --imagelist imagelist.txt --out data/ibims

Writes testing/{color, depth (.npy, invalid/transparent = 0), boundary (the edges), cam/}.
"""
from __future__ import annotations

import argparse
import json
import sys

from tqdm import tqdm

from bore_depth_lite.fileio import check_fresh_folder, cli_errors

from bore_depth_lite.data.ibims import prepare_ibims


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mat-dir", required=True, help="unzipped ibims1_core_mat/")
    p.add_argument("--imagelist", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    a = p.parse_args(argv)
    try:
        check_fresh_folder(a.out, "--out", a.overwrite)
    except ValueError as err:
        p.error(str(err))
    with cli_errors("prepare_ibims.py"):
        print(json.dumps(prepare_ibims(a.mat_dir, a.imagelist, a.out, progress=tqdm)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
