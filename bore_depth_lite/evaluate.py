"""Evaluate a DepthNet: ``python -m bore_depth_lite.evaluate`` (console script ``bore-depth-evaluate``).

Examples::

    # our checkpoint on the synthetic test split (rendered into the cache on first use)
    python -m bore_depth_lite.evaluate --checkpoint runs/stage1/checkpoint.pt --dataset synthetic
    # a released checkpoint on prepared NYUv2 (data_scripts/prepare_nyu.py), BoRe's protocol
    python -m bore_depth_lite.evaluate --checkpoint nyu.ckpt --dataset nyu --data-root data/nyu --json nyu.json

Each dataset has a default protocol (``--protocol`` overrides it) and a network input size
(the released sizes: KITTI 256×832, NYUv2 and iBims-1 256×320). The table names the
protocol; the JSON holds the protocol, per-metric means and per-image results.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from .reporting import aggregate_results, format_results_table
from .metrics import EDGE_METRICS, TABLE_METRICS
from .preprocess import PRESETS, normalize_imagenet
from .protocols import PROTOCOLS, evaluate_image

__all__ = ["DepthModel", "predict_depth", "evaluate_depth_net", "ConstantDepth", "DATASETS", "main"]

#: dataset name -> (default protocol, network input size (H, W): the released presets, 16-bit PNG depth scale)
DATASETS: dict[str, tuple[str, tuple[int, int] | None, float]] = {
    "synthetic": ("synthetic_indoor", None, 1000.0),
    "synthetic-driving": ("synthetic_driving", None, 1000.0),
    "kitti": ("bore_kitti", PRESETS["kitti"], 1000.0),
    "nyu": ("bore_nyu", PRESETS["nyu"], 1000.0),
    "ibims": ("ibims", PRESETS["ibims"], 1000.0),
}


class ConstantDepth(nn.Module):
    """The trivial baseline: the same depth everywhere. After per-image median scaling it
    predicts the median of each image's ground truth, the best a constant can do there."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(image[:, :1])


#: Anything that maps ImageNet-normalised images (B, 3, H, W) to depth (B, 1, H, W): a DepthNet,
#: or a deployment backend (:func:`bore_depth_lite.deploy.make_backend`).
DepthModel = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def predict_depth(depth_net: DepthModel, images: torch.Tensor) -> torch.Tensor:
    """Depth (B, 1, H, W) for images (B, 3, H, W) in [0, 1] (normalised here, not by the caller)."""
    return depth_net(normalize_imagenet(images))


@torch.no_grad()
def evaluate_depth_net(depth_net: DepthModel, dataset: Dataset, protocol: str = "synthetic_indoor",
                       device: torch.device | str = "cpu", limit: int | None = None, progress: bool = True,
                       per_image: bool = False, keep_predictions: bool = False) -> dict[str, Any]:
    """Mean metrics of ``depth_net`` over ``dataset`` (a :class:`~bore_depth_lite.data.datasets.TestDataset`).

    The one evaluation path of the package: ``depth_net`` is a DepthNet or any callable that maps
    normalised images to depth (a deployment backend: the precision tables use this too). Every
    image is evaluated at the size the dataset returns it (the network's input size) and the
    prediction is resized to the GT size by the protocol. Boundary errors are added where the
    dataset has boundary maps. Returns ``{"protocol", "num_images", <metric>: mean, ...}`` plus
    ``"images"`` (per-image dicts) when ``per_image`` and ``"predictions"`` (list of (H, W)
    float32 arrays at the input size) when ``keep_predictions``.
    """
    from tqdm import tqdm

    is_module = isinstance(depth_net, nn.Module)
    was_training = is_module and depth_net.training
    if is_module:
        depth_net.eval()
    n = len(dataset) if limit is None else min(limit, len(dataset))
    if n == 0:
        raise ValueError("the evaluation data set is empty")
    results, predictions = [], []
    for i in tqdm(range(n), desc="evaluate", disable=not progress, mininterval=1.0):
        item = dataset[i]
        pred = predict_depth(depth_net, item["image"][None].to(device))[0, 0].float().cpu()
        if keep_predictions:
            predictions.append(pred.numpy())
        masks = [item[k][0] for k in ("mask_invalid", "mask_transp") if k in item]
        edges = item["boundary"][0] if "boundary" in item else None
        result = evaluate_image(pred, item["depth"][0], protocol, valid_masks=masks, edges_gt=edges, on_empty="nan")
        result["name"] = item.get("name", str(i))
        results.append(result)
    if is_module:
        depth_net.train(was_training)
    aggregate = aggregate_results([{k: v for k, v in r.items() if k != "name"} for r in results], nan_skipped="all")
    out: dict[str, Any] = {"protocol": aggregate.protocol, "num_images": aggregate.num_images, **aggregate.means}
    if per_image:
        out["images"] = results
    if keep_predictions:
        out["predictions"] = predictions
    out["_aggregate"] = aggregate
    return out


def _load(checkpoint: str | None, device: torch.device) -> nn.Module:
    from .checkpoint import load_any_depthnet

    if checkpoint is None:
        raise SystemExit("bore-depth-evaluate: --checkpoint is required (ours, or a released BoRe-Depth .ckpt); "
                         "train one with `python -m bore_depth_lite.train` or use the package's pretrained "
                         "small model via `--checkpoint pretrained`")
    if checkpoint == "pretrained":
        from .pretrained import load_pretrained

        return load_pretrained().to(device).eval()
    from .pretrained import parse_released, released

    if parse_released(checkpoint):
        return released(parse_released(checkpoint)).to(device).eval()
    return load_any_depthnet(checkpoint, map_location="cpu").to(device).eval()


def _fail(message: str, code: int) -> SystemExit:
    """One line on stderr; 2 for a bad argument, 1 for an input that cannot be used."""
    print(f"bore-depth-evaluate: error: {message}", file=sys.stderr)
    return SystemExit(code)


def _json_ready(value: Any) -> Any:
    """NaN/inf → None everywhere (per-image results too): the file stays valid JSON."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bore-depth-evaluate", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("Examples::")[1])
    parser.add_argument("--checkpoint", help="our checkpoint, a released .ckpt, 'pretrained', or released:nyu / "
                        "released:kitti (the authors' weights, downloaded into the cache on first use)")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="synthetic")
    parser.add_argument("--data-root", type=Path, help="prepared data set (holding testing/); "
                        "default for synthetic: rendered into the cache")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), help="override the dataset's default protocol")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="network input size")
    parser.add_argument("--limit", type=int, help="evaluate only the first N images")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="write the results (and per-image metrics) here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import resolve_device
    from .data.datasets import TestDataset
    from .fileio import atomic_write_text, check_output_file

    # Every argument is checked before the network is loaded or any image is read.
    try:
        device = resolve_device(args.device)
    except (RuntimeError, ValueError) as err:
        raise _fail(f"--device: {err}", 2) from None
    if args.limit is not None and args.limit < 1:
        raise _fail(f"--limit: expected an integer >= 1, found {args.limit}", 2)
    if args.size is not None and min(args.size) < 1:
        raise _fail(f"--size: expected two positive integers H W, found {args.size[0]} {args.size[1]}", 2)
    if args.json is not None:
        try:
            check_output_file(args.json, "--json", overwrite=args.overwrite)
        except ValueError as err:
            raise _fail(str(err), 2) from None
    from .pretrained import ReleasedWeightsError, parse_released

    try:
        is_released = parse_released(args.checkpoint) is not None
    except ValueError as err:
        raise _fail(f"--checkpoint {args.checkpoint}: {err}", 2) from None
    if args.checkpoint not in (None, "pretrained") and not is_released and not Path(args.checkpoint).is_file():
        raise _fail(f"--checkpoint {args.checkpoint}: expected a checkpoint file, found "
                    f"{'a folder' if Path(args.checkpoint).is_dir() else 'nothing'}", 2)
    if args.data_root is not None and not args.data_root.is_dir():
        raise _fail(f"--data-root {args.data_root}: expected a prepared data set folder (holding testing/), found "
                    f"{'a file' if args.data_root.exists() else 'nothing'}", 2)
    protocol, size, png_scale = DATASETS[args.dataset]
    protocol = args.protocol or protocol
    size = tuple(args.size) if args.size else size
    root = args.data_root
    if root is None and not args.dataset.startswith("synthetic"):
        raise _fail(f"--dataset {args.dataset} needs --data-root (see data_scripts/)", 2)
    try:
        net = _load(args.checkpoint, device)
    except (FileNotFoundError, ValueError, ReleasedWeightsError) as err:
        raise _fail(str(err), 1) from None
    try:
        if root is None:
            from .data.generate import SyntheticConfig
            from .data.cache import ensure_synthetic

            preset = "driving" if args.dataset == "synthetic-driving" else "indoor"
            h, w = size or (96, 160)   # the chapters' and the shipped network's training size
            root = ensure_synthetic(SyntheticConfig(preset=preset, height=h, width=w, train_scenes=0, val_scenes=0,
                                                    test_scenes=4, test_frames_per_scene=8))
        dataset = TestDataset(root, image_size=size, png_depth_scale=png_scale)
        result = evaluate_depth_net(net, dataset, protocol, device, args.limit, not args.no_progress, per_image=True)
    except (FileNotFoundError, ValueError) as err:   # LayoutError and protocol errors name the file or value
        raise _fail(str(err), 1) from None
    aggregate = result.pop("_aggregate")
    shown = [m for m in TABLE_METRICS + EDGE_METRICS if m in aggregate.means]   # with the edge diagnostics
    print(format_results_table({Path(args.checkpoint or "constant").name: aggregate}, metrics=shown, style="text"))
    if args.json:
        text = json.dumps(_json_ready({**result, "checkpoint": args.checkpoint, "dataset": args.dataset,
                                       "data_root": str(root)}), indent=2, default=float)
        atomic_write_text(args.json, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
