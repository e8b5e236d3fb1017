"""What the same network reaches when it is *given* the true depth, on the shipped recipe's budget → JSON.

Usage: python bench/supervised_ceiling.py [--name tiny-driving] [--steps N] [--synthetic-scenes N] [--frame-step N]
                                          [--work DIR] [--out FILE [--overwrite]]

The self-supervised networks learn depth from photometric consistency alone. How far that is
from what the architecture and the data allow shows when the same DepthNet, on the same
frames (the training world of ``make_pretrained.py``'s recipe for ``--name``, rendered again
with its depth), the same augmentation, batch, optimiser, learning-rate schedule and number of
steps, is trained on the true depth with the scale-invariant log loss of Eigen et al. (2014),

    L = mean(g²) − λ · mean(g)²,   g = log d̂ − log d over pixels with a true depth, λ = 0.85,

which, like median scaling at evaluation, ignores the global scale. It is then scored exactly
as the shipped networks are: the two held-out splits of ``make_pretrained.py`` at the network's
own size, median scaling. Validation every 250 steps on the run's 16 validation images gives
its learning curve. Resumable: the run checkpoints atomically to ``--work`` every 250 steps.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SILOG_LAMBDA = 0.85
VALIDATE_EVERY = 250


def silog_loss(pred: torch.Tensor, target: torch.Tensor, lam: float = SILOG_LAMBDA) -> torch.Tensor:
    """Scale-invariant log loss, mean over the batch of per-image losses.

    Args:
        pred: (B, 1, H, W) predicted depth, > 0.
        target: (B, 1, H, W) true depth in metres; 0 = no ground truth (the sky), left out.
        lam: weight of the scale term; 1 makes the loss blind to a global scale, 0 is the log MSE.

    Returns:
        scalar loss.
    """
    valid = target > 0
    g = torch.where(valid, torch.log(pred.clamp_min(1e-6)) - torch.log(target.clamp_min(1e-6)), torch.zeros_like(pred))
    n = valid.flatten(1).sum(1).clamp_min(1)
    mean = g.flatten(1).sum(1) / n
    mean_sq = g.pow(2).flatten(1).sum(1) / n
    return (mean_sq - lam * mean.pow(2)).mean()


def _make_pretrained():
    spec = importlib.util.spec_from_file_location("make_pretrained", ROOT / "data_scripts" / "make_pretrained.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def supervised_step(net: torch.nn.Module, optimiser: torch.optim.Optimizer, images: torch.Tensor,
                    depth: torch.Tensor) -> float:
    """One optimiser step of the SILog loss on (B, 3, H, W) images in [0, 1] and (B, 1, H, W) true depth."""
    from bore_depth_lite.preprocess import normalize_imagenet

    # not evaluate.predict_depth: that one runs without gradients
    loss = silog_loss(net(normalize_imagenet(images)), depth)
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return float(loss.item())


def main(argv: list[str] | None = None) -> dict:
    from tqdm import tqdm

    from bore_depth_lite import setup
    from bore_depth_lite.checkpoint.io import atomic_save, safe_load
    from bore_depth_lite.data.cache import ensure_synthetic
    from bore_depth_lite.data.datasets import TestDataset, TrainTripletDataset
    from bore_depth_lite.data.transforms import Compose, Resize, train_augmentation
    from bore_depth_lite.evaluate import evaluate_depth_net
    from bore_depth_lite.fileio import check_output_file, emit_json
    from bore_depth_lite.models import DepthNet
    from bore_depth_lite.training import TrainConfig
    from bore_depth_lite.training.data import synthetic_config_for

    script = _make_pretrained()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="tiny-driving", choices=sorted(script.NETWORKS),
                        help="whose recipe (network, world, data, schedule) to follow")
    parser.add_argument("--steps", type=int, help="default: the recipe's")
    parser.add_argument("--synthetic-scenes", type=int, help="training scenes; default: the recipe's")
    parser.add_argument("--frame-step", type=int, help="frames between a target and its sources (which frames are "
                                                        "targets); default: the recipe's")
    parser.add_argument("--work", type=Path, help="checkpoint folder (resumable; default runs/supervised-<name>)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    recipe = script.recipe_for(args.name)
    if args.steps is not None:
        if args.steps < 1:
            parser.error(f"--steps: expected an integer >= 1, found {args.steps}")
        recipe["steps"] = args.steps
    for key in ("synthetic_scenes", "frame_step"):
        value = getattr(args, key)
        if value is not None:
            if value < 1:
                parser.error(f"--{key.replace('_', '-')}: expected an integer >= 1, found {value}")
            recipe[key] = value
    if args.threads < 1:
        parser.error(f"--threads: expected an integer >= 1, found {args.threads}")
    if args.out is not None:
        try:
            check_output_file(args.out, "--out", args.overwrite)
        except ValueError as err:
            parser.error(str(err))
    torch.set_num_threads(args.threads)
    work = args.work or Path(f"runs/supervised-{args.name}")
    config = TrainConfig(**recipe, out_dir=str(work))
    device = setup(config.seed, "cpu")

    root = ensure_synthetic(replace(synthetic_config_for(config), train_depth=True, pseudo_depth=False))
    transform = Compose([Resize(config.height, config.width), *train_augmentation().transforms])
    train = TrainTripletDataset(root, "train", frame_step=config.frame_step, transform=transform, with_depth=True)
    val = TestDataset(root, image_size=(config.height, config.width))
    net = DepthNet(config.model)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimiser, list(config.lr_milestones), config.lr_gamma)
    generator = torch.Generator().manual_seed(config.seed)
    step, history, seconds = 0, [], 0.0
    checkpoint = work / "supervised.pt"
    if checkpoint.exists():
        state = safe_load(checkpoint)
        if state["recipe"] != {k: (list(v) if isinstance(v, tuple) else v) for k, v in recipe.items()}:
            parser.error(f"{checkpoint}: was written for another recipe; use another --work")
        net.load_state_dict(state["depth_net"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        step, history, seconds = state["step"], state["history"], state["seconds"]
        print(f"resumed at step {step}", file=sys.stderr)
    work.mkdir(parents=True, exist_ok=True)

    net.train()
    bar = tqdm(total=config.steps, initial=step, desc=f"supervised {args.name}", unit="step")
    while step < config.steps:
        order = torch.randperm(len(train), generator=generator).tolist()
        for start in range(0, len(order) - config.batch_size + 1, config.batch_size):
            if step >= config.steps:
                break
            began = time.perf_counter()
            items = [train[i] for i in order[start:start + config.batch_size]]
            images = torch.stack([item["tgt"] for item in items])
            depth = torch.stack([item["tgt_depth"] for item in items])
            loss = supervised_step(net, optimiser, images, depth)
            schedule.step()
            step += 1
            seconds += time.perf_counter() - began
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            if step % VALIDATE_EVERY == 0 or step == config.steps:
                scores = evaluate_depth_net(net, val, f"synthetic_{config.synthetic_preset}", device,
                                            limit=config.val_images, progress=False)
                net.train()
                history.append({"step": step, "train_loss": loss, "val_abs_rel": float(scores["abs_rel"]),
                                "val_delta1": float(scores["delta1"]), "val_dbe_comp": float(scores["dbe_comp"])})
                atomic_save({"recipe": {k: (list(v) if isinstance(v, tuple) else v) for k, v in recipe.items()},
                             "depth_net": net.state_dict(), "optimiser": optimiser.state_dict(),
                             "schedule": schedule.state_dict(), "generator": generator.get_state(), "step": step,
                             "history": history, "seconds": seconds}, checkpoint)
                # Python's and torch's default RNGs (augmentation) restart from the step on resume: a resumed
                # run sees other flips and crops than an uninterrupted one, not other frames.
                torch.manual_seed(config.seed + step)
    bar.close()

    net.eval()
    test_config, fresh_config = script.splits_for(args.name)
    preset = script.WORLDS[args.name]
    result = {"name": args.name, "what": "the same DepthNet trained on the true depth (SILog, lambda 0.85) with "
                                         "the shipped recipe's data, augmentation, batch, schedule and steps",
              "recipe": recipe, "loss": f"silog, lambda {SILOG_LAMBDA}", "train_seconds": round(seconds, 1),
              "threads": args.threads, "test_split": asdict(test_config), "fresh_split": asdict(fresh_config),
              "metrics": script.score(net, script.test_split(test_config), preset),
              "fresh": script.score(net, script.test_split(fresh_config), preset), "history": history}
    emit_json(result, args.out)
    return result


if __name__ == "__main__":
    main()
