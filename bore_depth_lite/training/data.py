"""The data sets a training run reads: a prepared folder, or the synthetic world (the default).

Without ``--data-root`` a run renders the synthetic world once into a cache folder
(:mod:`bore_depth_lite.data.cache`) in the same on-disk layout as the real-data preparation
scripts, then reads it with the same loader classes. The folder is written under a temporary
name and renamed when complete, so an interrupted generation is never mistaken for a finished one.
"""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from ..data.cache import ensure_synthetic
from ..data.datasets import SemanticFrames, TestDataset, TrainTripletDataset
from ..data.generate import SyntheticConfig
from ..data.layout import LayoutError
from ..data.transforms import Compose, Resize, train_augmentation
from .config import TrainConfig

__all__ = ["needs_pseudo_depth", "synthetic_config_for", "data_root_for", "training_datasets", "teacher_dataset"]


def needs_pseudo_depth(config: TrainConfig) -> bool:
    """Whether the run uses SC-Depth v3's pseudo-depth terms (any of their weights > 0)."""
    return any((config.normal_weight, config.mask_rank_weight, config.normal_rank_weight))


def synthetic_config_for(config: TrainConfig) -> SyntheticConfig:
    """The synthetic world a run trains on; with the pseudo-depth terms on, its training scenes
    also get the *simulated* pseudo-depth (true depth under a random monotone distortion and
    blur; the frames themselves are the same). ``synthetic_speed`` moves the training cameras
    faster along the same paths (more parallax per frame); validation keeps the test split's."""
    return SyntheticConfig(preset=config.synthetic_preset, height=config.height, width=config.width, seed=config.seed,
                           train_scenes=config.synthetic_scenes, val_scenes=0,
                           frames_per_scene=config.synthetic_frames, test_scenes=4,
                           test_frames_per_scene=max(1, config.val_images // 4),
                           pseudo_depth=needs_pseudo_depth(config), train_speed=config.synthetic_speed)


def data_root_for(config: TrainConfig) -> Path:
    if config.data_root is not None:
        root = Path(config.data_root)
        if not (root / "training").is_dir():
            raise LayoutError(f"--data-root {root}: expected a prepared data set with training/ "
                              "(see data_scripts/ to prepare KITTI, NYUv2 or the synthetic world)")
        return root
    return ensure_synthetic(synthetic_config_for(config))


def training_datasets(config: TrainConfig) -> tuple[Dataset, Dataset | None]:
    """(training triplets, test images) at the run's resolution.

    With the pseudo-depth terms on, each training item also holds the target's pseudo-depth
    ``tgt_pseudo_depth`` (1,H,W), read from ``pseudo_depth/`` and moved by the same resize,
    flip and scale-crop as the frames (nearest-neighbour, values unchanged).
    """
    root = data_root_for(config)
    size = Resize(config.height, config.width)
    transform = Compose([size, *train_augmentation().transforms]) if config.augment else size
    pseudo = needs_pseudo_depth(config)
    try:
        train = TrainTripletDataset(root, "train", frame_step=config.frame_step, transform=transform,
                                    with_pseudo_depth=pseudo, every_step_up_to=config.every_frame_step)
    except LayoutError as err:
        if pseudo and "pseudo-depth" in str(err):
            raise LayoutError(f"the pseudo-depth terms (normal/mask-rank/normal-rank weight > 0) need pseudo_depth/ "
                              f"in every training scene: {err}") from err
        raise
    val = TestDataset(root, image_size=(config.height, config.width)) if (root / "testing").is_dir() else None
    return train, val


def teacher_dataset(config: TrainConfig) -> SemanticFrames:
    return SemanticFrames(data_root_for(config))
