"""Download real data sets (resumable, checksummed; prints size and licence first).

    python data_scripts/download.py list
    python data_scripts/download.py get nyu_labeled nyu_splits --to downloads/ [--yes]
    python data_scripts/download.py kitti 2011_09_26_calib 2011_09_26_drive_0002 --to downloads/kitti

Nothing in the book or the tests calls this. Unzip KITTI/iBims archives yourself, then run
the matching prepare_*.py script.
"""
from __future__ import annotations

import argparse
import sys

from bore_depth_lite.data.download import SOURCES, DownloadError, fetch, kitti_source


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="show every known source with size and licence")
    for name in ("get", "kitti"):
        s = sub.add_parser(name)
        s.add_argument("names", nargs="+")
        s.add_argument("--to", required=True, help="download folder")
        s.add_argument("--yes", action="store_true", help="accept the licences without asking")
        s.add_argument("--sha256", help="expected checksum (only with a single name)")
    a = p.parse_args(argv)
    if a.command == "list":
        for src in SOURCES.values():
            print(src.describe())
        print("kitti <drive>: " + kitti_source("2011_09_26_drive_0002").describe())
        return 0
    if a.command == "get":
        unknown = [n for n in a.names if n not in SOURCES]
        if unknown:
            p.error(f"unknown sources {unknown}; known: {sorted(SOURCES)}")
        sources = [SOURCES[n] for n in a.names]
    else:
        try:
            sources = [kitti_source(n) for n in a.names]
        except ValueError as err:
            p.error(str(err))
    if a.sha256 and len(sources) != 1:
        p.error("--sha256 needs exactly one name")
    for src in sources:
        print(src.describe())
    if not a.yes and input("Download under these licences? [y/N] ").strip().lower() != "y":
        print("nothing downloaded")
        return 1
    for src in sources:
        if a.sha256:
            src = type(src)(**{**src.__dict__, "sha256": a.sha256})
        try:
            fetch(src, a.to)
        except (DownloadError, OSError, ValueError) as err:
            print(f"download.py: error: {src.name}: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
