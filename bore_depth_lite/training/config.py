"""A training run's configuration: one object from YAML or the command line down to every loss switch."""
from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from .. import resolve_device
from ..data.synthetic import PRESETS as WORLDS
from ..models import DEPTHNET_CONFIGS
from ..models.pose_net import POSE_ARCHS
from ..protocols import PROTOCOLS

__all__ = ["TrainConfig", "PRESETS"]


@dataclass
class TrainConfig:
    """Everything a run depends on. Defaults: the CPU teaching preset on the synthetic world."""

    stage: int = 1                      # 1: self-supervised; 2: + semantic distillation
    data_root: str | None = None        # a prepared data set; None: the synthetic world
    synthetic_preset: str = "indoor"    # indoor | driving (when data_root is None)
    synthetic_scenes: int = 8           # training scenes generated (when data_root is None)
    synthetic_frames: int = 24          # frames per scene
    synthetic_speed: float = 1.0        # camera translation per frame, x the world's own (more parallax)
    frame_step: int = 1                 # sources are frames t-k and t+k: a wider baseline, more parallax
    every_frame_step: bool = False      # triplets of every gap 1..frame_step (PoseNet sees every motion size)
    height: int = 128
    width: int = 160
    model: str = "small"                # DepthNet config: paper | small | tiny
    pose_arch: str = "small"            # PoseNet encoder: resnet18 (the release) | small (CPU)
    steps: int = 400
    steps_per_epoch: int = 100          # validation, checkpoint and sample images every epoch
    batch_size: int = 4                 # global batch (split over processes under torchrun)
    grad_chunks: int = 1                # split the batch into chunks whose gradients add up
    lr: float = 2e-4
    lr_milestones: tuple[int, ...] = ()  # steps at which the learning rate is multiplied by lr_gamma
    lr_gamma: float = 0.1
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
    # Divide each triplet's depths by the target depth's mean before warping: the loss no longer
    # depends on the global depth scale, so the pose's translation units cannot drag the depth
    # toward DepthNet's 100-unit ceiling (training_step).
    normalise_depth: bool = False
    # With normalise_depth, nothing in the loss sees the global scale, so it wanders; this pulls
    # the target's mean log depth to the middle of DepthNet's range, sqrt(0.1 · 100) ≈ 3.2 units.
    scale_anchor_weight: float = 0.0
    # Ablation switches of the photometric objective (False: "no SSIM", "no auto-mask", "no
    # self-discovered mask", "average instead of min", "no in-view check"; losses.stage1_loss).
    use_ssim: bool = True
    use_auto_mask: bool = True
    use_dynamic_mask: bool = True
    use_min: bool = True
    use_geometric_mask: bool = True
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
        for name in _TUPLE_FIELDS:
            d[name] = list(getattr(self, name))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training options {unknown}; known: {sorted(known)}")
        d = dict(d)
        for name in _TUPLE_FIELDS:
            if name in d and isinstance(d[name], list):
                d[name] = tuple(d[name])
        return cls(**d)

    def lr_at(self, step: int) -> float:
        """The learning rate for the optimiser step that follows ``step`` completed steps: a pure
        function of the step, so a resumed run needs no scheduler state (monodepth2's step decay)."""
        return self.lr * self.lr_gamma ** sum(step >= m for m in self.lr_milestones)

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
        if not (math.isfinite(self.lr_gamma) and 0 < self.lr_gamma <= 1):
            raise ValueError(f"--lr-gamma: expected a number in (0, 1], found {self.lr_gamma}")
        if any(m < 1 for m in self.lr_milestones) or list(self.lr_milestones) != sorted(set(self.lr_milestones)):
            raise ValueError(f"--lr-milestones: expected increasing steps >= 1, found {list(self.lr_milestones)}")
        if self.scale_anchor_weight and not self.normalise_depth:
            raise ValueError("--scale-anchor-weight: needs --normalise-depth (without it the anchor pulls against "
                             f"the photometric terms, which see the scale), found {self.scale_anchor_weight}")
        if not (math.isfinite(self.synthetic_speed) and self.synthetic_speed > 0):
            raise ValueError(f"--synthetic-speed: expected a finite number > 0, found {self.synthetic_speed}")
        for name in ("photo_weight", "geometry_weight", "smooth_weight", "semantic_weight", "scale_anchor_weight"):
            value = getattr(self, name, None)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{flag(name)}: expected a finite number >= 0, found {value}")
        for name, known in (("model", sorted(DEPTHNET_CONFIGS)), ("pose_arch", list(POSE_ARCHS)),
                            ("synthetic_preset", sorted(WORLDS))):
            if getattr(self, name) not in known:
                raise ValueError(f"{flag(name)}: expected one of {known}, found {getattr(self, name)!r}")
        if self.val_protocol is not None and self.val_protocol not in PROTOCOLS:
            raise ValueError(f"--val-protocol: expected one of {sorted(PROTOCOLS)}, found {self.val_protocol!r}")
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


_TUPLE_FIELDS = ("semantic_levels", "lr_milestones")

#: Named starting points; the paper preset is one parameter away from the CPU default.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {},
    "paper-nyu": dict(model="paper", pose_arch="resnet18", height=256, width=320, batch_size=8, lr=1e-4, steps=100_000,
                      steps_per_epoch=1000, ssim_window=7, synthetic_preset="indoor"),
    "paper-kitti": dict(model="paper", pose_arch="resnet18", height=256, width=832, batch_size=4, lr=1e-4, steps=100_000,
                        steps_per_epoch=1000, ssim_window=7, synthetic_preset="driving"),
}
