"""The package's own trained DepthNets (driving and indoor worlds), small enough to ship inside it.

``make pretrained`` (``data_scripts/make_pretrained.py``) trains it on the synthetic world
with the recipe stored in the checkpoint, evaluates it and the trivial baselines on the
synthetic test split, and writes ``bore_depth_lite/assets/<name>.pt``. The evaluation and
deployment chapters load it so that their numbers describe a network that learnt something.

The authors' released checkpoints are not shipped: :func:`released` (``--checkpoint released:nyu``)
fetches one into the cache, records its sha256 and loads it strictly (see :data:`RELEASED`).
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_depthnet, safe_load
from .models import DepthNet

__all__ = ["ASSETS", "RESULTS", "PRETRAINED", "pretrained_path", "load_pretrained", "pretrained_info", "RELEASED",
           "ReleasedWeightsError", "released", "released_path", "released_cache_path", "released_url",
           "parse_released"]

ASSETS = Path(__file__).resolve().parent / "assets"
#: Results of long runs that the chapters read (the ablation sweep, the deployment benchmark),
#: shipped with the package so that a chapter runs from any folder, Colab included.
RESULTS = ASSETS / "results"
#: name -> file in ASSETS
PRETRAINED: dict[str, str] = {"tiny-driving": "depthnet_tiny_driving.pt", "tiny-indoor": "depthnet_tiny_indoor.pt",
                              "paper-driving": "depthnet_paper_driving.pt"}
DEFAULT = "tiny-driving"


def pretrained_path(name: str = DEFAULT) -> Path:
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained network {name!r}; available: {sorted(PRETRAINED)}")
    path = ASSETS / PRETRAINED[name]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `make pretrained` to train and write it")
    return path


def load_pretrained(name: str = DEFAULT, map_location: str | torch.device = "cpu") -> DepthNet:
    """The shipped DepthNet in eval mode (fp32)."""
    return load_depthnet(pretrained_path(name), map_location=map_location).float().eval()


def pretrained_info(name: str = DEFAULT) -> dict[str, Any]:
    """What ``make pretrained`` recorded: the recipe, the metrics, the baselines' metrics."""
    return dict(safe_load(pretrained_path(name))["extra"])


# ----------------------------------------------------------------------------- the authors' released weights
#: Where the authors' README (github.com/liangxiansheng093/BoRe-Depth) says the weights are.
README_WEIGHTS_LINK = "https://drive.google.com/drive/my-drive?dmr=1&ec=wgc-drive-globalnav-goto"
BASE_URL_ENV = "BORE_DEPTH_RELEASED_BASE_URL"
#: name -> file name in the cache, download URL, pinned sha256 (None: recorded at first use).
#: ``url`` is None for both: the README's link above is the author's own "My Drive" page, not a
#: shared folder or file, so it holds no file id and nobody else can download from it. Set
#: ``BORE_DEPTH_RELEASED_URL_<NAME>`` (one file) or ``BORE_DEPTH_RELEASED_BASE_URL`` (a folder
#: holding the file names below) to a real link, or put a file obtained from the authors at
#: :func:`released_cache_path`. A Google-Drive link (``drive.google.com/...``) is fetched with
#: gdown, any other with pooch (``pip install "bore_depth_lite[released]"``).
RELEASED: dict[str, dict[str, str | None]] = {
    "nyu": {"filename": "bore_nyu.ckpt", "url": None, "sha256": None},
    "kitti": {"filename": "bore_kitti.ckpt", "url": None, "sha256": None},
}


class ReleasedWeightsError(RuntimeError):
    """The released weights cannot be had: no URL, no network, a missing library or a changed file.
    The message is one line naming the URL or file and where to put a manually downloaded file."""


def _entry(name: str) -> dict[str, str | None]:
    if name not in RELEASED:
        raise ValueError(f"unknown released checkpoint {name!r}; known: {', '.join(sorted(RELEASED))} "
                         "(e.g. --checkpoint released:nyu)")
    return RELEASED[name]


def released_dir() -> Path:
    """``<BORE_DEPTH_DATA or ~/.cache/bore_depth_lite>/released``."""
    from .data.cache import data_cache_dir

    return data_cache_dir() / "released"


def released_cache_path(name: str) -> Path:
    """Where ``released(name)`` keeps (and looks for) the checkpoint; it may not exist yet."""
    return released_dir() / str(_entry(name)["filename"])


def released_url(name: str) -> str | None:
    """The URL to fetch ``name`` from: ``BORE_DEPTH_RELEASED_URL_<NAME>``, else
    ``BORE_DEPTH_RELEASED_BASE_URL``/<file name>, else the registry's (None today)."""
    entry = _entry(name)
    url = os.environ.get(f"BORE_DEPTH_RELEASED_URL_{name.upper()}")
    if url:
        return url
    base = os.environ.get(BASE_URL_ENV)
    if base:
        return f"{base.rstrip('/')}/{entry['filename']}"
    return entry["url"]


def _need(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ReleasedWeightsError(f"downloading the released weights needs {module}: "
                                   'pip install "bore_depth_lite[released]"') from None


def _is_drive(url: str) -> bool:
    return "drive.google.com" in url or "drive.usercontent.google.com" in url


def _fetch(url: str, tmp: Path, sha256: str | None) -> None:
    """Download ``url`` to ``tmp`` (gdown for Google Drive, pooch otherwise)."""
    if _is_drive(url):
        gdown = _need("gdown")
        out = gdown.download(url, str(tmp), quiet=True, fuzzy=True)
        if out is None or not tmp.is_file():
            raise OSError("gdown could not fetch it (not shared publicly, or Drive's quota is exceeded)")
    else:
        pooch = _need("pooch")
        logger = pooch.get_logger()
        # Its info lines name the temporary file and advise a known_hash we record ourselves (see _ensure);
        # `disabled`, not setLevel: pooch's logger is outside logging's manager, so it caches its level.
        disabled, logger.disabled = logger.disabled, True
        try:
            pooch.retrieve(url, known_hash=f"sha256:{sha256}" if sha256 else None, fname=tmp.name, path=tmp.parent,
                           downloader=pooch.HTTPDownloader(progressbar=False, timeout=60, chunk_size=1 << 20))
        finally:
            logger.disabled = disabled


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def _record(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _check_recorded(name: str, path: Path) -> bool:
    """True when ``path`` matches its recorded (and pinned) sha256; False when none is recorded yet."""
    from .data.download import sha256_of

    digest, record, pinned = sha256_of(path), _record(path), _entry(name)["sha256"]
    reset = f"delete {path} and {record} to download again, or put the right file back"
    if pinned and digest != pinned:
        raise ReleasedWeightsError(f"{path}: sha256 {digest} is not the pinned {pinned} of the released "
                                   f"{name!r} weights; {reset}")
    if not record.is_file():
        return False
    recorded = (record.read_text().split() or [""])[0]
    if digest != recorded:
        raise ReleasedWeightsError(f"{path}: sha256 {digest} differs from {recorded} recorded in {record} at its "
                                   f"first use (the file changed or is damaged); {reset}")
    return True


def _write_record(path: Path) -> None:
    from .data.download import sha256_of
    from .fileio import atomic_write_text

    atomic_write_text(_record(path), f"{sha256_of(path)}  {path.name}\n")


def _ensure(name: str, map_location: str | torch.device = "cpu") -> tuple[Path, DepthNet | None]:
    """The verified cache file of ``name`` and, when checking it meant loading it, its DepthNet."""
    from .checkpoint import CheckpointError, load_released_depthnet
    from .data.download import sha256_of
    from .fileio import remove_stale_temporaries

    path = released_cache_path(name)
    if path.is_file():  # downloaded earlier, or put there by hand
        if _check_recorded(name, path):
            return path, None
        net = load_released_depthnet(path, map_location)  # strict: a wrong file is never recorded
        _write_record(path)
        return path, net
    url = released_url(name)
    if not url:
        raise ReleasedWeightsError(
            f"no download URL is published for the released {name!r} weights (the authors' README links "
            f"{README_WEIGHTS_LINK}, the author's own Google-Drive page, which nobody else can download from): "
            f"put {path.name} obtained from the authors at {path}, or set "
            f"BORE_DEPTH_RELEASED_URL_{name.upper()} or {BASE_URL_ENV}")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.download.tmp")  # fileio's temporary naming
    tmp.unlink(missing_ok=True)
    try:
        try:
            _fetch(url, tmp, _entry(name)["sha256"])
        except ReleasedWeightsError:
            raise
        except Exception as err:
            raise ReleasedWeightsError(f"could not download {url} ({_one_line(err)}); download it by hand and put "
                                       f"it at {path}") from err
        pinned = _entry(name)["sha256"]
        digest = sha256_of(tmp) if pinned else None
        if pinned and digest != pinned:
            raise ReleasedWeightsError(f"{url}: sha256 of the download is {digest}, not the pinned {pinned}; "
                                       f"not kept (a file checked by hand can be put at {path})")
        try:
            net = load_released_depthnet(tmp, map_location)
        except CheckpointError as err:
            raise CheckpointError(f"downloaded from {url}, not kept: {err}") from None
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _write_record(path)
    print(f"released {name!r}: {url} -> {path}; sha256 {_record(path).read_text().split()[0]} recorded in "
          f"{_record(path)} and checked on every later use", file=sys.stderr)
    return path, net


def released_path(name: str) -> Path:
    """The authors' released ``name`` checkpoint (``"nyu"`` or ``"kitti"``) in the cache, downloaded
    on first use and checked against the sha256 recorded then (``<file>.sha256`` beside it)."""
    return _ensure(name)[0]


def released(name: str, map_location: str | torch.device = "cpu") -> DepthNet:
    """The authors' released DepthNet ``name`` (``"nyu"`` or ``"kitti"``), strictly loaded, in eval mode.

    Downloads into ``<BORE_DEPTH_DATA>/released/`` on first use (see :data:`RELEASED`); a file put
    there by hand is used as is. Every failure is one line naming the URL or file and where the
    file belongs."""
    path, net = _ensure(name, map_location)
    if net is None:
        from .checkpoint import load_released_depthnet

        net = load_released_depthnet(path, map_location)
    return net.float().eval()


def parse_released(checkpoint: str | os.PathLike | None) -> str | None:
    """``"released:nyu"`` -> ``"nyu"`` (ValueError for an unknown name); anything else -> None."""
    text = "" if checkpoint is None else str(checkpoint)
    if not text.startswith("released:"):
        return None
    name = text.split(":", 1)[1]
    _entry(name)
    return name
