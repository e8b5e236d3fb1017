"""Two-stage training of BoRe-Depth: the configuration, one training step, the loop.

Stage 1 learns depth and ego-motion from video alone (SC-Depth's objective, see
:func:`bore_depth_lite.losses.stage1_loss`). Stage 2 starts from the stage-1 weights and adds
the semantic information loss of a frozen teacher (:mod:`bore_depth_lite.distill`).

The loop is built for fault tolerance and exact reproducibility:
- every batch is a pure function of (seed, step): the sample indices and each sample's
  augmentation seed come from a generator seeded with the step, so a resumed run sees the
  very batches the uninterrupted run saw, whatever the number of data-loading workers;
- checkpoints hold model, optimiser, step and RNG states and are written atomically;
- data-parallel training (``torchrun``) gives each process a slice of the global batch.
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from . import setup
from .checkpointing import atomic_save, rng_state, safe_load, set_rng_state
from .distributed import DistributedContext, init_distributed
from .fileio import atomic_write, atomic_write_text, remove_stale_temporaries
from .sampling import SeededSamples, StepBatchSampler
from .losses import stage1_loss
from .models import DepthNet, PoseNet
from .models.checkpoint import FORMAT as CHECKPOINT_FORMAT
from .models.checkpoint import VERSION as CHECKPOINT_VERSION
from .models.depth_net import DISP_SCALE, MIN_DISP
from .preprocess import normalize_imagenet

if TYPE_CHECKING:
    from .distill import SemanticGuide

__all__ = ["TrainConfig", "PRESETS", "build_networks", "training_step", "Trainer", "StepBatchSampler"]


@dataclass
class TrainConfig:
    """Everything a run depends on. Defaults: the CPU teaching preset on the synthetic world."""

    stage: int = 1                      # 1: self-supervised; 2: + semantic distillation
    data_root: str | None = None        # a prepared data set; None: the synthetic world
    synthetic_preset: str = "indoor"    # indoor | driving (when data_root is None)
    synthetic_scenes: int = 8           # training scenes generated (when data_root is None)
    synthetic_frames: int = 24          # frames per scene
    frame_step: int = 1                 # sources are frames t-k and t+k: a wider baseline, more parallax
    height: int = 128
    width: int = 160
    model: str = "small"                # DepthNet config: paper | small | tiny
    pose_arch: str = "small"            # PoseNet encoder: resnet18 (the release) | small (CPU)
    steps: int = 400
    steps_per_epoch: int = 100          # validation, checkpoint and sample images every epoch
    batch_size: int = 4                 # global batch (split over processes under torchrun)
    grad_chunks: int = 1                # split the batch into chunks whose gradients add up
    lr: float = 2e-4
    seed: int = 0
    device: str = "auto"
    out_dir: str = "runs/stage1"
    num_workers: int = 0
    augment: bool = True
    # Stage-1 loss (SC-Depth defaults; ssim_window 7 in the paper preset).
    photo_weight: float = 1.0
    geometry_weight: float = 0.1
    smooth_weight: float = 0.1
    ssim_window: int = 3
    # SC-Depth v3's pseudo-depth terms (0 = off; v3 uses 0.1 each, with smooth_weight 0).
    # Any > 0 makes the run read the target's pseudo_depth/ maps (the synthetic world then
    # writes its simulated pseudo-depth).
    normal_weight: float = 0.0          # normal matching vs the pseudo-depth's normals
    mask_rank_weight: float = 0.0       # dynamic-region mask ranking
    normal_rank_weight: float = 0.0     # edge-guided normal ranking
    # Stage 2.
    semantic_weight: float = 0.1
    semantic_levels: tuple[int, ...] = (1, 2, 3, 4)   # encoder levels (strides 4..32)
    teacher: str | None = None          # teacher checkpoint (stage 2); see distill.py
    init_from: str | None = None        # stage-1 checkpoint to start stage 2 from
    amp: bool = False                   # mixed precision (CUDA only)
    val_images: int = 16
    val_protocol: str | None = None     # evaluation protocol (bore_kitti, bore_nyu...); synthetic: synthetic_<preset>

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["semantic_levels"] = list(self.semantic_levels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training options {unknown}; known: {sorted(known)}")
        d = dict(d)
        if "semantic_levels" in d:
            d["semantic_levels"] = tuple(d["semantic_levels"])
        return cls(**d)

    def check(self) -> None:
        """Every value, before any data is built: ValueError naming the option (its flag),
        what was expected and what was found."""
        self._check_types()
        flag = lambda name: "--" + name.replace("_", "-")  # noqa: E731
        for name, low in (("steps", 1), ("steps_per_epoch", 1), ("height", 32), ("width", 32), ("frame_step", 1),
                          ("synthetic_scenes", 1), ("synthetic_frames", 3), ("val_images", 1), ("num_workers", 0),
                          ("ssim_window", 1)):
            value = getattr(self, name, None)
            if value is not None and value < low:
                raise ValueError(f"{flag(name)}: expected an integer >= {low}, found {value}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr: expected a finite number > 0, found {self.lr}")
        for name in ("photo_weight", "geometry_weight", "smooth_weight", "semantic_weight"):
            value = getattr(self, name, None)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{flag(name)}: expected a finite number >= 0, found {value}")
        from .data.synthetic import PRESETS as WORLDS
        from .models import DEPTHNET_CONFIGS
        from .models.pose_net import POSE_ARCHS
        from .protocols import PROTOCOLS

        for name, known in (("model", sorted(DEPTHNET_CONFIGS)), ("pose_arch", list(POSE_ARCHS)),
                            ("synthetic_preset", sorted(WORLDS))):
            if getattr(self, name) not in known:
                raise ValueError(f"{flag(name)}: expected one of {known}, found {getattr(self, name)!r}")
        if self.val_protocol is not None and self.val_protocol not in PROTOCOLS:
            raise ValueError(f"--val-protocol: expected one of {sorted(PROTOCOLS)}, found {self.val_protocol!r}")
        from . import resolve_device

        try:
            resolve_device(self.device)
        except ValueError as err:
            raise ValueError(f"--device: {err}") from None
        if self.data_root is not None and not Path(self.data_root).is_dir():
            raise ValueError(f"--data-root {self.data_root}: expected a prepared data set folder, found "
                             f"{'a file' if Path(self.data_root).exists() else 'nothing'}")
        for name in ("init_from", "teacher"):
            path = getattr(self, name)
            if path and not Path(path).is_file() and (name != "teacher" or self.stage == 2):
                raise ValueError(f"{flag(name)} {path}: expected a checkpoint file, found "
                                 f"{'a folder' if Path(path).is_dir() else 'nothing'}")
        out = Path(self.out_dir)
        for parent in [out, *out.parents]:
            if parent.exists():
                if not parent.is_dir():
                    raise ValueError(f"--out {out}: expected a folder, but {parent} is a file")
                break
        if self.stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {self.stage}")
        if self.batch_size < 1 or self.grad_chunks < 1 or self.batch_size % self.grad_chunks:
            raise ValueError(f"batch_size {self.batch_size} must be a positive multiple of grad_chunks {self.grad_chunks}")
        if self.height % 32 or self.width % 32:
            raise ValueError(f"training resolution must be a multiple of 32, got {self.height}x{self.width}")
        if self.data_root is not None and self.val_protocol is None:
            raise ValueError("a prepared data set needs --val-protocol (bore_kitti, bore_nyu, ...) for its validation")
        if self.stage == 2 and not self.teacher:
            raise ValueError("stage 2 needs a teacher checkpoint (--teacher); build one with `make teacher`")

    def _check_types(self) -> None:
        """Each value has its field's type (a YAML ``steps: "ten"`` is caught here, by name)."""
        for f in fields(self):
            value, default = getattr(self, f.name), f.default
            flag = "--" + f.name.replace("_", "-")
            if default is MISSING:
                continue
            if isinstance(default, tuple):
                ok = isinstance(value, tuple) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                expected = "a list of integers"
            elif isinstance(default, bool):
                ok, expected = isinstance(value, bool), "true or false"
            elif isinstance(default, int):
                ok, expected = isinstance(value, int) and not isinstance(value, bool), "an integer"
            elif isinstance(default, float):
                ok, expected = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
            elif isinstance(default, str) or default is None:
                ok, expected = isinstance(value, str) or (default is None and value is None), "a string"
            else:
                continue
            if not ok:
                raise ValueError(f"{flag}: expected {expected}, found {value!r} ({type(value).__name__})")


#: Named starting points; the paper preset is one parameter away from the CPU default.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "paper-nyu": dict(model="paper", pose_arch="resnet18", height=256, width=320, batch_size=8, lr=1e-4, steps=100_000,
                      steps_per_epoch=1000, ssim_window=7, synthetic_preset="indoor"),
    "paper-kitti": dict(model="paper", pose_arch="resnet18", height=256, width=832, batch_size=4, lr=1e-4, steps=100_000,
                        steps_per_epoch=1000, ssim_window=7, synthetic_preset="driving"),
}


def build_networks(config: TrainConfig) -> tuple[DepthNet, PoseNet]:
    return DepthNet(config.model), PoseNet(arch=config.pose_arch)


class DepthAndFeatures(nn.Module):
    """DepthNet as one module returning (depth, encoder features): the semantic loss needs the
    features of the very forward pass that produced the depth, and DDP needs one call."""

    def __init__(self, depth_net: DepthNet):
        super().__init__()
        self.net = depth_net

    def forward(self, image: Tensor) -> tuple[Tensor, list[Tensor]]:
        if image.shape[-2] % 32 or image.shape[-1] % 32:
            raise ValueError(f"training images must have sides that are multiples of 32, got {tuple(image.shape[-2:])}")
        features = self.net.encode(image)
        disparity = DISP_SCALE * torch.sigmoid(self.net.decoder(features)) + MIN_DISP
        return 1.0 / disparity, features


def training_step(depth_model: nn.Module, pose_net: nn.Module, batch: dict[str, Tensor], config: TrainConfig,
                  semantic: SemanticGuide | None = None) -> dict[str, Tensor]:
    """The losses of one batch, top to bottom (call ``losses["loss"].backward()`` after).

    ``depth_model`` is a :class:`DepthAndFeatures`. DepthNet runs on the target and every
    source in one batched call (the geometry term needs the sources' depths). PoseNet runs
    on (target, source) and (source, target) for every source, in one batched call too, so
    each pair is warped both ways. With any pseudo-depth weight > 0, the batch must hold the
    target's pseudo-depth ``tgt_pseudo_depth`` (B,1,H,W); the ranking terms draw their point
    pairs from torch's global generator, which the checkpoints save and restore.
    """
    tgt, K = batch["tgt"], batch["K"]
    pseudo_weights = dict(normal_weight=config.normal_weight, mask_rank_weight=config.mask_rank_weight,
                          normal_rank_weight=config.normal_rank_weight)
    pseudo_depth = batch.get("tgt_pseudo_depth") if any(pseudo_weights.values()) else None
    if any(pseudo_weights.values()) and pseudo_depth is None:
        on = ", ".join(f"{k}={v}" for k, v in pseudo_weights.items() if v)
        raise ValueError(f"{on} needs pseudo-depth maps, but the batch has none ('tgt_pseudo_depth'): "
                         "give the data set pseudo_depth/ folders or set these weights to 0")
    srcs = list(batch["srcs"].unbind(1))                               # S × (B, 3, H, W) in [0, 1]
    S = len(srcs)
    normalised = normalize_imagenet(torch.cat([tgt, *srcs]))
    depths, features = depth_model(normalised)
    tgt_depth, *src_depths = depths.chunk(1 + S)

    tgt_n, *src_n = normalised.chunk(1 + S)
    pose_vectors = pose_net(torch.cat([tgt_n] * S + src_n), torch.cat(src_n + [tgt_n] * S)).chunk(2 * S)
    poses, poses_inv = pose_vectors[:S], pose_vectors[S:]              # target→source, source→target

    losses = stage1_loss(tgt, srcs, tgt_depth, src_depths, poses, poses_inv, K,
                         photo_weight=config.photo_weight, geometry_weight=config.geometry_weight,
                         smooth_weight=config.smooth_weight, ssim_window=config.ssim_window,
                         pseudo_depth=pseudo_depth, **pseudo_weights)
    if semantic is not None:
        tgt_features = [f[: tgt.shape[0]] for f in features]
        losses["semantic"] = semantic(tgt_features, tgt_n)
        losses["loss"] = losses["loss"] + config.semantic_weight * losses["semantic"]
    return losses


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}


class Trainer:
    """Runs (or resumes) a training run described by a :class:`TrainConfig`.

    Writes into ``out_dir``: ``config.json``, ``checkpoint.pt`` (latest, atomic),
    ``metrics.csv`` (one row per epoch), ``samples/step_XXXXXXX.png`` and, when TensorBoard is
    installed, event files.
    """

    def __init__(self, config: TrainConfig, train_set: Dataset, val_set: Dataset | None = None,
                 progress: bool = True):
        config.check()
        self.config = config
        self.device = setup(config.seed, config.device)
        self.dist: DistributedContext = init_distributed(self.device)
        if self.dist.enabled and (config.batch_size % self.dist.world_size or config.grad_chunks != 1):
            raise ValueError(f"under torchrun the global batch_size ({config.batch_size}) must split evenly over "
                             f"{self.dist.world_size} processes, and grad_chunks must be 1 (got {config.grad_chunks})")
        self.out = Path(config.out_dir)
        self.train_set, self.val_set, self.progress = train_set, val_set, progress
        self.depth_net, self.pose_net = (n.to(self.device) for n in build_networks(config))
        self.depth_model = DepthAndFeatures(self.depth_net)
        self.semantic = None
        if config.stage == 2:
            from .distill import SemanticGuide

            self.semantic = SemanticGuide.from_teacher_checkpoint(
                config.teacher, self.depth_net.feature_channels, config.semantic_levels).to(self.device)
        params = [*self.depth_net.parameters(), *self.pose_net.parameters()]
        if self.semantic is not None:
            params += list(self.semantic.adapters.parameters())
        self.optimizer = torch.optim.Adam(params, lr=config.lr)
        self.scaler = torch.amp.GradScaler("cuda", enabled=config.amp and self.device.type == "cuda")
        self.step = 0
        self.history: list[dict[str, float]] = []

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Our checkpoint format (so ``load_any_depthnet`` reads it) plus the training state."""
        cpu = lambda sd: {k: v.detach().cpu() for k, v in sd.items()}  # noqa: E731
        state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
                 "depth_net": {"config": self.depth_net.config.to_dict(), "state_dict": cpu(self.depth_net.state_dict())},
                 "pose_net": {"config": {"arch": self.pose_net.arch}, "state_dict": cpu(self.pose_net.state_dict())},
                 "extra": {"step": self.step, "train_config": self.config.to_dict(), "history": self.history},
                 "training": {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                              "rng": rng_state()}}
        if self.semantic is not None:
            state["training"]["adapters"] = cpu(self.semantic.adapters.state_dict())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.depth_net.load_state_dict(state["depth_net"]["state_dict"])
        self.pose_net.load_state_dict(state["pose_net"]["state_dict"])
        training = state["training"]
        self.optimizer.load_state_dict(training["optimizer"])
        self.scaler.load_state_dict(training["scaler"])
        if self.semantic is not None and "adapters" in training:
            self.semantic.adapters.load_state_dict(training["adapters"])
        set_rng_state(training["rng"])
        self.step, self.history = int(state["extra"]["step"]), list(state["extra"]["history"])

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def save(self) -> None:
        if self.dist.is_main:
            atomic_save(self.state_dict(), self.checkpoint_path)

    def resume(self) -> bool:
        """Continue from ``out_dir/checkpoint.pt`` if it exists (and matches this config).

        Raises FileNotFoundError or ValueError naming the checkpoint (truncated, not a
        training checkpoint, another configuration) before any state is changed.
        """
        if not self.checkpoint_path.exists():
            return False
        state = safe_load(self.checkpoint_path)
        if "training" not in state:
            raise ValueError(f"{self.checkpoint_path}: holds no training state (optimiser, RNG): cannot resume from it")
        try:
            saved = TrainConfig.from_dict(state["extra"]["train_config"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{self.checkpoint_path}: holds no readable training configuration "
                             f"({type(err).__name__}: {str(err)[:200]})") from None
        for key in ("model", "pose_arch", "batch_size", "seed", "stage", "height", "width"):
            if getattr(saved, key) != getattr(self.config, key):
                raise ValueError(f"{self.checkpoint_path}: was written with {key}={getattr(saved, key)!r}, "
                                 f"this run has {key}={getattr(self.config, key)!r}; use another out_dir")
        self._check_networks(self.checkpoint_path, state)
        try:
            self.load_state_dict(state)
        except (KeyError, RuntimeError, TypeError, ValueError, IndexError) as err:
            raise ValueError(f"{self.checkpoint_path}: its training state does not fit this run "
                             f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
        return True

    def _check_networks(self, path, state: dict) -> None:
        """Both networks' tensors match ours (names, shapes) and are finite: one short error
        naming the file otherwise, before anything is loaded."""
        from .models.checkpoint import FORMAT
        from .models.official import check_finite_state, shorten_list

        if state.get("format") != FORMAT:
            raise ValueError(f"{path}: not a checkpoint of this package (format {state.get('format')!r}); "
                             "stage 2 starts from a stage-1 run's checkpoint.pt")
        for name, net in (("depth_net", self.depth_net), ("pose_net", self.pose_net)):
            sd = state.get(name, {}).get("state_dict") if isinstance(state.get(name), dict) else None
            if not isinstance(sd, dict):
                raise ValueError(f"{path}: holds no {name} weights; a training run's checkpoint.pt has both networks")
            ours = net.state_dict()
            wrong = sorted(set(ours) ^ set(sd)) + [k for k in ours if k in sd and getattr(sd[k], "shape", None) != ours[k].shape]
            if wrong:
                raise ValueError(f"{path}: its {name} does not match this run's ({len(wrong)} key(s) missing, extra or "
                                 f"of another shape: {shorten_list(wrong, 5)}); check --model / --pose-arch")
            check_finite_state(sd, f"{path}: {name}")

    def init_from(self, path: str) -> None:
        """Start from another run's weights (stage 2 from stage 1): networks only, new optimiser."""
        state = safe_load(path)
        self._check_networks(path, state)
        self.depth_net.load_state_dict(state["depth_net"]["state_dict"])
        self.pose_net.load_state_dict(state["pose_net"]["state_dict"])

    # -- loop --------------------------------------------------------------------------
    def _loader(self) -> DataLoader:
        c = self.config
        sampler = StepBatchSampler(len(self.train_set), c.batch_size, c.seed, self.step, c.steps,
                                   self.dist.rank, self.dist.world_size)
        return DataLoader(SeededSamples(self.train_set), batch_sampler=sampler, num_workers=c.num_workers,
                          pin_memory=self.device.type == "cuda", persistent_workers=False)

    def _models(self) -> tuple[nn.Module, nn.Module]:
        if not self.dist.enabled:
            return self.depth_model, self.pose_net
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.dist.local_rank] if self.device.type == "cuda" else None
        if not hasattr(self, "_ddp"):
            # The paper config builds one block it never uses, and PoseNet keeps ResNet's unused
            # classifier (so released checkpoints load strictly): DDP must be told.
            unused = self.depth_net.num_parameters(used_in_forward=True) != self.depth_net.num_parameters()
            self._ddp = (DDP(self.depth_model, device_ids=ids, find_unused_parameters=unused),
                         DDP(self.pose_net, device_ids=ids, find_unused_parameters=True))
        return self._ddp

    def _optimise(self, batch: dict[str, Tensor]) -> dict[str, float]:
        c = self.config
        depth_net, pose_net = self._models()
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        chunks = c.grad_chunks
        for part in range(chunks):
            sub = {k: v.chunk(chunks)[part] if isinstance(v, Tensor) else v for k, v in batch.items()}
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.scaler.is_enabled()):
                losses = training_step(depth_net, pose_net, sub, c, self.semantic)
            self.scaler.scale(losses["loss"] / chunks).backward()
            for k, v in losses.items():
                totals[k] = totals.get(k, 0.0) + float(v.detach()) / chunks
        if self.dist.enabled and self.semantic is not None:  # adapters live outside the DDP modules
            import torch.distributed as dist

            for p in self.semantic.adapters.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad)
                    p.grad /= self.dist.world_size
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return totals

    def fit(self, on_epoch=None) -> list[dict[str, float]]:
        """Train until ``config.steps``; returns the per-epoch history.

        ``on_epoch(trainer, row)`` is called after each epoch's validation (the chapters use
        it to redraw their figures).
        """
        from tqdm import tqdm

        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:
            atomic_write_text(self.out / "config.json", json.dumps(c.to_dict(), indent=2))
            remove_stale_temporaries(self.checkpoint_path)   # left by a killed earlier save
            self._write_metrics()   # metrics.csv = this run's history: no rows of a killed or earlier run
        self.depth_net.train(), self.pose_net.train()
        bar = tqdm(total=c.steps, initial=self.step, desc=f"stage {c.stage}", disable=not (self.progress and self.dist.is_main),
                   leave=True, mininterval=1.0)
        running: dict[str, float] = {}
        data_wait, t_last = 0.0, time.perf_counter()
        for batch in self._loader():
            data_wait += time.perf_counter() - t_last
            step_losses = self._optimise(_to_device(batch, self.device))
            for k, v in step_losses.items():
                running[k] = running.get(k, 0.0) + v
            self.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{step_losses['loss']:.4f}", refresh=False)
            if self.step % c.steps_per_epoch == 0 or self.step == c.steps:
                n = c.steps_per_epoch if self.step % c.steps_per_epoch == 0 else self.step % c.steps_per_epoch
                row = {"step": self.step, **{f"train_{k}": v / n for k, v in running.items()},
                       **self.validate()}
                self.history.append(row)
                running = {}
                self.save()     # the checkpoint first: metrics.csv never gets ahead of it
                self._log(row)
                if on_epoch is not None and self.dist.is_main:
                    on_epoch(self, row)
                self.depth_net.train(), self.pose_net.train()
            t_last = time.perf_counter()
        bar.close()
        self.data_wait_seconds = data_wait
        return self.history

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """AbsRel and δ1 (median scaling) on up to ``val_images`` test images."""
        if self.val_set is None:
            return {}
        from .evaluate import evaluate_depth_net

        protocol = self.config.val_protocol or f"synthetic_{self.config.synthetic_preset}"
        results = evaluate_depth_net(self.depth_net, self.val_set, protocol=protocol,
                                     device=self.device, limit=self.config.val_images, progress=False)
        return {f"val_{k}": v for k, v in results.items() if isinstance(v, float)}

    def _log(self, row: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        self._write_metrics()
        if self._tensorboard() is not None:
            for key, value in row.items():
                if key != "step":
                    self._writer.add_scalar(key, value, row["step"])
            self._writer.flush()
        self._save_samples(row["step"])

    def _write_metrics(self) -> None:
        """``metrics.csv``, rewritten atomically from the history (the checkpoint's, on resume)."""
        if not self.dist.is_main:
            return
        path = self.out / "metrics.csv"
        if not self.history:
            path.unlink(missing_ok=True)
            return
        names = list(dict.fromkeys(k for row in self.history for k in row))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=names)
        writer.writeheader()
        writer.writerows(self.history)
        atomic_write_text(path, text.getvalue())

    def _tensorboard(self):
        """A SummaryWriter when TensorBoard is installed (it is optional), else None."""
        if not hasattr(self, "_writer"):
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.out / "tensorboard"))
            except ImportError:
                self._writer = None
        return self._writer

    @torch.no_grad()
    def _save_samples(self, step: int, count: int = 4) -> None:
        """``samples/step_XXXXXXX.png``: test images over their predicted inverse depth."""
        if self.val_set is None:
            return
        from matplotlib.figure import Figure  # no pyplot: never touches a notebook's backend

        from .evaluate import predict_depth

        self.depth_net.eval()
        items = [self.val_set[i] for i in range(min(count, len(self.val_set)))]
        fig = Figure(figsize=(2.5 * len(items), 4))
        axes = fig.subplots(2, len(items), squeeze=False)
        for c, item in enumerate(items):
            depth = predict_depth(self.depth_net, item["image"][None].to(self.device))[0, 0].float().cpu()
            axes[0, c].imshow(item["image"].permute(1, 2, 0).numpy())
            axes[1, c].imshow((1 / depth).numpy(), cmap="magma")
            for ax in axes[:, c]:
                ax.axis("off")
        fig.suptitle(f"step {step}: test images and predicted inverse depth", fontsize=9)
        folder = self.out / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / f"step_{step:07d}.png", lambda f: fig.savefig(f, format="png", dpi=80))
