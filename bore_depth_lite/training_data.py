"""The data sets a training run reads: a prepared folder, or the synthetic world (the default).

Without ``--data-root`` a run renders the synthetic world once into a cache folder
(``$BORE_DEPTH_DATA`` or ``~/.cache/bore_depth_lite``) in the same on-disk layout as the
real-data preparation scripts, then reads it with the same loader classes. The folder is
written under a temporary name and renamed when complete, so an interrupted generation is
never mistaken for a finished one.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .data.datasets import TestDataset, TrainTripletDataset
from .data.generate import SyntheticConfig, write_synthetic_dataset
from .data.layout import IMAGE_EXTENSIONS, LayoutError, list_files, read_image, read_label_png, read_split
from .data.transforms import Compose, Resize, train_augmentation
from .training import TrainConfig

__all__ = ["data_cache_dir", "ensure_synthetic", "training_datasets", "SemanticFrames", "teacher_dataset"]


def data_cache_dir() -> Path:
    return Path(os.environ.get("BORE_DEPTH_DATA", Path.home() / ".cache" / "bore_depth_lite"))


def renderer_version() -> str:
    """A hash of the code that renders and writes the world: a changed renderer gets a new
    cache folder instead of silently reusing frames the current code would not produce."""
    from .data import generate, layout, render, synthetic

    digest = hashlib.sha1()
    for module in (render, synthetic, generate, layout):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:8]


def ensure_synthetic(config: SyntheticConfig, cache: Path | None = None) -> Path:
    """Render ``config`` into the cache unless it is already there; return its root."""
    c = config
    name = (f"{c.preset}-{c.height}x{c.width}-seed{c.seed}-train{c.train_scenes}x{c.frames_per_scene}"
            f"-val{c.val_scenes}x{c.val_frames_per_scene}-test{c.test_scenes}x{c.test_frames_per_scene}"
            f"{'-pseudo' if c.pseudo_depth else ''}-{renderer_version()}")
    root = (cache or data_cache_dir()) / "synthetic" / name
    if (root / "info.json").is_file():
        return root
    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_synthetic_dataset(tmp, config, workers=1)
    try:
        tmp.rename(root)
    except OSError:  # another process finished the same folder first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def needs_pseudo_depth(config: TrainConfig) -> bool:
    """Whether the run uses SC-Depth v3's pseudo-depth terms (any of their weights > 0)."""
    return any((config.normal_weight, config.mask_rank_weight, config.normal_rank_weight))


def synthetic_config_for(config: TrainConfig) -> SyntheticConfig:
    """The synthetic world a run trains on; with the pseudo-depth terms on, its training scenes
    also get the *simulated* pseudo-depth (true depth under a random monotone distortion and
    blur; the frames themselves are the same)."""
    return SyntheticConfig(preset=config.synthetic_preset, height=config.height, width=config.width, seed=config.seed,
                           train_scenes=config.synthetic_scenes, val_scenes=0,
                           frames_per_scene=config.synthetic_frames, test_scenes=4,
                           test_frames_per_scene=max(1, config.val_images // 4),
                           pseudo_depth=needs_pseudo_depth(config))


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
                                    with_pseudo_depth=pseudo)
    except LayoutError as err:
        if pseudo and "pseudo-depth" in str(err):
            raise LayoutError(f"the pseudo-depth terms (normal/mask-rank/normal-rank weight > 0) need pseudo_depth/ "
                              f"in every training scene: {err}") from err
        raise
    val = TestDataset(root, image_size=(config.height, config.width)) if (root / "testing").is_dir() else None
    return train, val


class SemanticFrames(Dataset):
    """Frames with semantic labels from the training scenes (the embedded teacher's data).

    Item: ``image`` (3, H, W) in [0, 1] and ``semantic`` (H, W) int64.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train"):
        training = Path(root) / "training"
        self.items: list[tuple[Path, Path]] = []
        for scene in read_split(training / f"{split}.txt"):
            frames = list_files(training / scene, IMAGE_EXTENSIONS, "frames")
            labels = list_files(training / scene / "semantic", (".png",), "semantic maps")
            if len(frames) != len(labels):
                raise LayoutError(f"{training / scene / 'semantic'}: {len(labels)} label maps for {len(frames)} frames")
            self.items += list(zip(frames, labels))
        if not self.items:
            raise LayoutError(f"{training}/{split}.txt lists no scene with semantic labels")
        names = Path(root) / "classes.txt"
        self.class_names = names.read_text().split() if names.is_file() else []

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        frame, label = self.items[index]
        rgb = torch.from_numpy(np.ascontiguousarray(read_image(frame))).permute(2, 0, 1).float() / 255.0
        return {"image": rgb, "semantic": torch.from_numpy(read_label_png(label).astype(np.int64))}


def teacher_dataset(config: TrainConfig) -> SemanticFrames:
    return SemanticFrames(data_root_for(config))
