"""Write the synthetic data set in the shared layout (``make data``).

    python data_scripts/make_synthetic.py --out data/synthetic                 # 1,000 indoor frames
    python data_scripts/make_synthetic.py --out data/driving --preset driving --height 256 --width 832

Defaults: 8 training scenes x 100 frames, 2 validation scenes x 50 (with depth), 10 test
scenes x 10 frames (depth, semantics, boundaries), 256x320, 2 worker processes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from tqdm import tqdm

from bore_depth_lite.fileio import check_fresh_folder

from bore_depth_lite.data.generate import SyntheticConfig, write_synthetic_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output root (gets training/ and testing/)")
    parser.add_argument("--workers", type=int, default=2, help="parallel processes (one scene per job)")
    for f in dataclasses.fields(SyntheticConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            kind = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
            parser.add_argument(flag, type=kind, default=f.default)
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    args = vars(parser.parse_args(argv))
    out, workers, overwrite = args.pop("out"), args.pop("workers"), args.pop("overwrite")
    config = SyntheticConfig(**args)
    try:
        config.check()
        if workers < 1:
            raise ValueError(f"--workers: expected an integer >= 1, found {workers}")
        check_fresh_folder(out, "--out", overwrite)
    except ValueError as err:
        parser.error(str(err))
    summary = write_synthetic_dataset(out, config, workers=workers, progress=lambda it, total: tqdm(it, total=total))
    mb = {k: round(v / 2**20, 1) for k, v in summary["bytes"].items()}
    print(json.dumps({"out": out, "frames": summary["frames"], "seconds": summary["seconds"],
                      "frames_per_s": summary["frames_per_s"], "MiB": mb}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
