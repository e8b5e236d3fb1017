"""Resumable, checksummed downloads of the real data sets (never called by tests or chapters).

The URLs are the ones the data sets' own pages document. We could not fetch the files from
our build machines (no internet), so no sha256 is pinned here: a download without a known
checksum prints the one it computed, so that you can pin it (``--sha256``) for the next
machine. Read each licence before downloading; KITTI and iBims-1 are for non-commercial
research use.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class Source:
    name: str
    url: str
    filename: str
    approx_size: str
    licence: str
    sha256: str | None = None
    note: str = ""

    def describe(self) -> str:
        check = f"sha256 {self.sha256}" if self.sha256 else "no pinned sha256 (the computed one is printed)"
        return (f"{self.name}: {self.url}\n  size: {self.approx_size}; licence: {self.licence}\n  {check}"
                + (f"\n  note: {self.note}" if self.note else ""))


KITTI_RAW = "https://s3.eu-central-1.amazonaws.com/avg-kitti/raw_data"
KITTI_LICENCE = "CC BY-NC-SA 3.0 (KITTI raw data; register and accept the terms on cvlibs.net/datasets/kitti)"

SOURCES: dict[str, Source] = {
    "nyu_labeled": Source(
        "nyu_labeled", "http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat",
        "nyu_depth_v2_labeled.mat", "about 2.8 GB",
        "NYU Depth V2 terms of use (research; cite Silberman et al., ECCV 2012)"),
    "nyu_splits": Source(
        "nyu_splits", "http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat", "splits.mat",
        "a few kB", "NYU Depth V2 terms of use"),
    "kitti_eigen_test_files": Source(
        "kitti_eigen_test_files",
        "https://raw.githubusercontent.com/nianticlabs/monodepth2/master/splits/eigen/test_files.txt",
        "test_files.txt", "about 40 kB (697 lines)", "monodepth2 licence (non-commercial)"),
    "ibims_core_mat": Source(
        "ibims_core_mat", "https://dataserv.ub.tum.de/s/m1455541/download?path=%2F&files=ibims1_core_mat.zip",
        "ibims1_core_mat.zip", "several GB (100 images with all masks)",
        "iBims-1 terms (non-commercial research; see the TUM data server page)",
        note="the TUM server also holds imagelist.txt and Ibims_Dataset.sha512 next to it"),
    "ibims_imagelist": Source(
        "ibims_imagelist", "https://dataserv.ub.tum.de/s/m1455541/download?path=%2F&files=imagelist.txt",
        "imagelist.txt", "about 1.5 kB", "iBims-1 terms"),
}


def kitti_source(drive: str) -> Source:
    """A KITTI raw drive (``2011_09_26_drive_0002``) or calibration (``2011_09_26_calib``) zip.

    The name becomes a file name in the download folder: anything else is a ValueError."""
    import re

    if not re.fullmatch(r"\d{4}_\d{2}_\d{2}_(drive_\d{4}|calib)", drive):
        raise ValueError(f"KITTI drive {drive!r}: expected <date>_drive_<NNNN> (e.g. 2011_09_26_drive_0002) "
                         "or <date>_calib")
    if drive.endswith("_calib"):
        return Source(drive, f"{KITTI_RAW}/{drive}.zip", f"{drive}.zip", "a few kB", KITTI_LICENCE)
    return Source(drive, f"{KITTI_RAW}/{drive}/{drive}_sync.zip", f"{drive}_sync.zip",
                  "0.1–5 GB per drive (all 28 Eigen test drives: about 20 GB)", KITTI_LICENCE)


class DownloadError(RuntimeError):
    pass


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: str | os.PathLike, sha256: str | None = None,
             opener: Callable = urllib.request.urlopen, chunk: int = 1 << 20, log: Callable = print) -> Path:
    """Download ``url`` to ``dest``, resuming a previous ``dest.part``; verify ``sha256``.

    Resuming sends ``Range: bytes=<size>-``; a server that answers 200 instead of 206 sends
    the whole file again and the partial one is discarded. The file appears at ``dest``
    only when complete and verified (``os.replace``). A checksum mismatch deletes the
    download and raises :class:`DownloadError` naming both checksums.
    """
    dest = Path(dest)
    if dest.exists():
        if sha256 and sha256_of(dest) != sha256:
            raise DownloadError(f"{dest}: exists but its sha256 is not {sha256}; delete it to download again")
        log(f"{dest}: already present")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = opener(request)
    except Exception as err:
        raise DownloadError(f"{url}: could not open ({err}); {have} bytes kept in {part} for a later resume") from err
    with response:
        status = getattr(response, "status", None) or response.getcode()
        resumed = have > 0 and status == 206
        if have and not resumed:
            log(f"{url}: server did not resume (status {status}); starting over")
        with open(part, "ab" if resumed else "wb") as f:
            while block := response.read(chunk):
                f.write(block)
    digest = sha256_of(part)
    if sha256 and digest != sha256:
        part.unlink()
        raise DownloadError(f"{url}: sha256 of the download is {digest}, expected {sha256}; the file was deleted")
    os.replace(part, dest)
    log(f"{dest}: done, sha256 {digest}" + ("" if sha256 else " (not pinned: pass --sha256 to check next time)"))
    return dest


def fetch(source: Source, folder: str | os.PathLike, **kwargs) -> Path:
    """Download one :class:`Source` into ``folder`` (see :func:`download`)."""
    return download(source.url, Path(folder) / source.filename, sha256=source.sha256, **kwargs)
