"""The training loop: state, resume, data-parallel steps, validation; what it writes is callbacks.

Built for fault tolerance and exact reproducibility:
- every batch is a pure function of (seed, step): the sample indices and each sample's
  augmentation seed come from a generator seeded with the step, so a resumed run sees the
  very batches the uninterrupted run saw, whatever the number of data-loading workers;
- checkpoints hold model, optimiser, step and RNG states and are written atomically, before
  anything else of the epoch (metrics, samples) is;
- data-parallel training (``torchrun``) gives each process a slice of the global batch.

The trainer seeds the generators from the configuration but leaves the process's thread count
alone: that is the caller's decision (:func:`bore_depth_lite.setup` in chapters and command lines).
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .. import resolve_device, seed_everything
from ..checkpoint import check_finite_state, checkpoint_dict, read_checkpoint, save_checkpoint
from ..checkpoint import shorten_list
from ..distributed import DistributedContext, init_distributed
from ..fileio import atomic_write_text, remove_stale_temporaries
from ..sampling import SeededSamples, StepBatchSampler
from .callbacks import Callback, default_callbacks
from .config import TrainConfig
from .step import StudentModel, build_networks, training_step

__all__ = ["Trainer", "rng_state", "set_rng_state"]


def rng_state() -> dict[str, Any]:
    """The state of Python's, NumPy's and torch's generators, as tensors and plain values."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, Tensor) else v for k, v in batch.items()}


class Trainer:
    """Runs (or resumes) a training run described by a :class:`TrainConfig`.

    Writes into ``out_dir``: ``config.json`` and ``checkpoint.pt`` (latest, atomic), then what
    its ``callbacks`` write (by default :func:`~.callbacks.default_callbacks`: ``metrics.csv``,
    ``samples/step_XXXXXXX.png`` and, when TensorBoard is installed, event files).
    """

    def __init__(self, config: TrainConfig, train_set: Dataset, val_set: Dataset | None = None,
                 progress: bool = True, callbacks: Sequence[Callback] | None = None):
        config.check()
        self.config = config
        seed_everything(config.seed)
        self.device = resolve_device(config.device)
        self.callbacks = list(default_callbacks() if callbacks is None else callbacks)
        self.data_wait_seconds = 0.0
        self._ddp: tuple[nn.Module, nn.Module] | None = None
        self.dist: DistributedContext = init_distributed(self.device)
        if self.dist.enabled and (config.batch_size % self.dist.world_size or config.grad_chunks != 1):
            raise ValueError(f"under torchrun the global batch_size ({config.batch_size}) must split evenly over "
                             f"{self.dist.world_size} processes, and grad_chunks must be 1 (got {config.grad_chunks})")
        self.out = Path(config.out_dir)
        self.train_set, self.val_set, self.progress = train_set, val_set, progress
        self.depth_net, self.pose_net = (n.to(self.device) for n in build_networks(config))
        self.student = StudentModel(self.depth_net)
        self.semantic = None
        if config.stage == 2:
            from ..distill import SemanticGuide

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
    def _extra_and_training(self) -> tuple[dict[str, Any], dict[str, Any]]:
        extra = {"step": self.step, "train_config": self.config.to_dict(), "history": self.history}
        training = {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(), "rng": rng_state()}
        if self.semantic is not None:
            training["adapters"] = {k: v.detach().cpu() for k, v in self.semantic.adapters.state_dict().items()}
        return extra, training

    def state_dict(self) -> dict[str, Any]:
        """Our checkpoint format (so ``load_any_depthnet`` reads it) plus the training state."""
        extra, training = self._extra_and_training()
        return checkpoint_dict(self.depth_net, self.pose_net, extra, training)

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
            extra, training = self._extra_and_training()
            save_checkpoint(self.checkpoint_path, self.depth_net, self.pose_net, extra, training)

    def resume(self) -> bool:
        """Continue from ``out_dir/checkpoint.pt`` if it exists (and matches this config).

        Raises FileNotFoundError or ValueError naming the checkpoint (truncated, not a
        training checkpoint, another configuration) before any state is changed.
        """
        if not self.checkpoint_path.exists():
            return False
        state = self._read(self.checkpoint_path)
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

    @staticmethod
    def _read(path) -> dict[str, Any]:
        return read_checkpoint(path, hint="stage 2 starts from a stage-1 run's checkpoint.pt")

    def _check_networks(self, path, state: dict) -> None:
        """Both networks' tensors match ours (names, shapes) and are finite: one short error
        naming the file otherwise, before anything is loaded."""
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
        state = self._read(path)
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
            return self.student, self.pose_net
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.dist.local_rank] if self.device.type == "cuda" else None
        if self._ddp is None:
            # The paper config builds one block it never uses, and PoseNet keeps ResNet's unused
            # classifier (so released checkpoints load strictly): DDP must be told.
            unused = self.depth_net.num_parameters(used_in_forward=True) != self.depth_net.num_parameters()
            self._ddp = (DDP(self.student, device_ids=ids, find_unused_parameters=unused),
                         DDP(self.pose_net, device_ids=ids, find_unused_parameters=True))
        return self._ddp

    def _optimise(self, batch: dict[str, Tensor]) -> dict[str, float]:
        c = self.config
        depth_net, pose_net = self._models()
        self.optimizer.zero_grad(set_to_none=True)
        for group in self.optimizer.param_groups:
            group["lr"] = c.lr_at(self.step)
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

    def fit(self, on_epoch: Callable[["Trainer", dict[str, float]], None] | None = None) -> list[dict[str, float]]:
        """Train until ``config.steps``; returns the per-epoch history.

        ``on_epoch(trainer, row)`` is called after each epoch's validation, checkpoint and
        callbacks (the chapters use it to redraw their figures).
        """
        from tqdm import tqdm

        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        if self.dist.is_main:
            atomic_write_text(self.out / "config.json", json.dumps(c.to_dict(), indent=2))
            remove_stale_temporaries(self.checkpoint_path)   # left by a killed earlier save
            for callback in self.callbacks:
                callback.on_fit_start(self)
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
                if self.dist.is_main:
                    for callback in self.callbacks:
                        callback.on_epoch_end(self, row)
                    if on_epoch is not None:
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
        from ..evaluate import evaluate_depth_net

        protocol = self.config.val_protocol or f"synthetic_{self.config.synthetic_preset}"
        results = evaluate_depth_net(self.depth_net, self.val_set, protocol=protocol,
                                     device=self.device, limit=self.config.val_images, progress=False)
        return {f"val_{k}": v for k, v in results.items() if isinstance(v, float)}
