"""BoRe-Depth's two-stage schedule and its ablation variants, as one experiment function.

Every variant spends the same step budget ``stage1_steps + stage2_steps``:

- ``stage1``: stage 1 for ``stage1_steps``, then ``stage2_steps`` more stage-1 steps with a fresh
  optimiser, exactly where ``two_stage`` switches to stage 2 (so the two differ only in the loss);
- ``plain``: the same schedule with the plain U-Net decoder (DepthNet config ``<model>-plain``);
- ``two_stage``: ``stage1_steps`` of stage 1, then ``stage2_steps`` of stage 2 (the semantic loss
  of the frozen teacher) from its weights: the paper's recipe;
- ``joint``: the stage-2 objective from step 0 for the whole budget.

Chapter 6, the ablation (:mod:`bore_depth_lite.ablation`) and the tests run these same functions.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

from torch.utils.data import Dataset

from ..models import DEPTHNET_CONFIGS
from .callbacks import Callback
from .config import TrainConfig
from .trainer import Trainer

__all__ = ["VARIANTS", "train_phase", "run_two_stage"]

#: variant -> (stage of the first phase, stage of the second phase)
VARIANTS: dict[str, tuple[int, int]] = {"stage1": (1, 1), "plain": (1, 1), "two_stage": (1, 2), "joint": (2, 2)}


def train_phase(config: TrainConfig, train_set: Dataset, val_set: Dataset | None = None, init_from: str | None = None,
                progress: bool = False, callbacks: Sequence[Callback] | None = None, resume: bool = False) -> Trainer:
    """One training run to ``config.steps``, optionally starting from another run's networks
    (``init_from``: networks only, with a fresh optimiser, as a new stage starts). ``resume``: continue
    from ``config.out_dir``'s checkpoint when there is one (then ``init_from`` is not applied again;
    a finished phase trains no further step). Returns the trainer."""
    trainer = Trainer(config, train_set, val_set, progress=progress, callbacks=callbacks)
    if not (resume and trainer.resume()) and init_from:
        trainer.init_from(init_from)
    trainer.fit()
    return trainer


def run_two_stage(base: TrainConfig, variant: str, stage1_steps: int, stage2_steps: int, train_set: Dataset,
                  val_set: Dataset | None = None, start: str | None = None, progress: bool = False,
                  callbacks: Sequence[Callback] | None = None, checkpoint_every: int | None = None,
                  resume: bool = False) -> Trainer:
    """Train ``variant`` (:data:`VARIANTS`) under ``base.out_dir`` and return the last phase's trainer.

    Phases go into ``phase1/`` and ``phase2/`` (``joint/`` for the joint variant); each phase
    validates and checkpoints at its end, and every ``checkpoint_every`` steps if given (then an
    interrupted run continues with ``resume=True``: finished phases are kept, the running one
    continues from its last checkpoint, bit for bit as if uninterrupted). ``start``: a
    finished phase-1 checkpoint to reuse (``two_stage`` only; the ablation shares the ``stage1``
    run's first phase this way). ``base.stage``, ``base.steps`` and ``base.init_from`` are ignored;
    ``base.teacher`` is needed by ``two_stage`` and ``joint``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {sorted(VARIANTS)}, found {variant!r}")
    for name, steps in (("stage1_steps", stage1_steps), ("stage2_steps", stage2_steps)):
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"{name}: expected an integer >= 1, found {steps!r}")
    if checkpoint_every is not None and (not isinstance(checkpoint_every, int) or checkpoint_every < 1):
        raise ValueError(f"checkpoint_every: expected an integer >= 1 or None, found {checkpoint_every!r}")
    if start is not None and variant != "two_stage":
        raise ValueError(f"start: only the two_stage variant continues from a given phase-1 checkpoint, not {variant!r}")
    if variant == "plain":
        base = replace(base, model=f"{base.model}-plain")
        if base.model not in DEPTHNET_CONFIGS:
            raise ValueError(f"the plain variant needs DepthNet config {base.model!r}, which does not exist "
                             f"(known: {sorted(DEPTHNET_CONFIGS)})")
    first, second = VARIANTS[variant]
    if 2 in (first, second) and not base.teacher:
        raise ValueError(f"variant {variant!r} needs a teacher checkpoint (TrainConfig.teacher; `make teacher`)")
    out = Path(base.out_dir)

    def phase(name: str, stage: int, steps: int, init_from: str | None = None) -> Trainer:
        config = replace(base, stage=stage, steps=steps, steps_per_epoch=min(checkpoint_every or steps, steps),
                         out_dir=str(out / name), init_from=None)
        return train_phase(config, train_set, val_set, init_from, progress, callbacks, resume)

    if variant == "joint":
        return phase("joint", 2, stage1_steps + stage2_steps)
    if start is None:
        start = str(phase("phase1", first, stage1_steps).checkpoint_path)
    return phase("phase2", second, stage2_steps, init_from=start)
