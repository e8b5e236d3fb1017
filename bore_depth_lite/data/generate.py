"""Write a synthetic data set in the shared on-disk layout (used by ``make_synthetic.py``)."""
from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .layout import atomic_write_bytes, folder_size, write_split, write_test_frames, write_training_scene
from .synthetic import CLASS_NAMES, render_sequence


@dataclass
class SyntheticConfig:
    """What to write. Defaults: 8×100 train + 2×50 val + 10×10 test = 1,000 frames."""

    preset: str = "indoor"
    height: int = 256
    width: int = 320
    seed: int = 0
    train_scenes: int = 8
    val_scenes: int = 2
    frames_per_scene: int = 100
    val_frames_per_scene: int = 50
    test_scenes: int = 10
    test_frames_per_scene: int = 10
    test_speed: float = 4.0          # test frames further apart: more varied views
    train_speed: float = 1.0         # training and validation scenes' translation per frame (parallax)
    train_depth: bool = False        # depth for training scenes (val scenes always have it)
    semantic: bool = True
    pseudo_depth: bool = False
    image_ext: str = ".png"

    def check(self) -> None:
        """Every value, before anything is rendered: ValueError naming the option (its flag)."""
        from .synthetic import PRESETS

        if self.preset not in PRESETS:
            raise ValueError(f"--preset: expected one of {sorted(PRESETS)}, found {self.preset!r}")
        for name, low in (("height", 2), ("width", 2), ("train_scenes", 0), ("val_scenes", 0), ("test_scenes", 0),
                          ("frames_per_scene", 1), ("val_frames_per_scene", 1), ("test_frames_per_scene", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"--{name.replace('_', '-')}: expected an integer >= {low}, found {value!r}")
        for name in ("test_speed", "train_speed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"--{name.replace('_', '-')}: expected a finite number > 0, found {value!r}")
        if self.image_ext not in (".png", ".jpg"):
            raise ValueError(f"--image-ext: expected '.png' or '.jpg', found {self.image_ext!r}")
        if self.num_frames == 0:
            raise ValueError("SyntheticConfig asks for no frames at all (every scene count is 0)")

    @property
    def num_frames(self) -> int:
        return (self.train_scenes * self.frames_per_scene + self.val_scenes * self.val_frames_per_scene
                + self.test_scenes * self.test_frames_per_scene)


def scene_seed(seed: int, group: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, group, index]).generate_state(1)[0])


def _job(args) -> int:
    cfg, out, kind, index = args
    cfg = SyntheticConfig(**cfg)
    out = Path(out)
    if kind == "test":
        seq = render_sequence(cfg.preset, cfg.test_frames_per_scene, cfg.height, cfg.width,
                              seed=scene_seed(cfg.seed, 2, index), speed=cfg.test_speed)
        write_test_frames(out / "testing", index * cfg.test_frames_per_scene, seq.rgb, seq.depth,
                          semantic=seq.semantic if cfg.semantic else None, boundary=seq.boundary,
                          image_ext=cfg.image_ext)
        return len(seq)
    is_val = kind == "val"
    n = cfg.val_frames_per_scene if is_val else cfg.frames_per_scene
    seq = render_sequence(cfg.preset, n, cfg.height, cfg.width, seed=scene_seed(cfg.seed, int(is_val), index),
                          pseudo_depth=cfg.pseudo_depth, speed=cfg.train_speed)
    write_training_scene(out / "training" / scene_name(cfg.preset, kind, index), seq.rgb, seq.K, poses=seq.poses,
                         depth=seq.depth if (is_val or cfg.train_depth) else None,
                         semantic=seq.semantic if cfg.semantic else None,
                         pseudo_depth=seq.pseudo_depth, image_ext=cfg.image_ext)
    return len(seq)


def scene_name(preset: str, kind: str, index: int) -> str:
    return f"{preset}_{kind}_{index:03d}"


def write_synthetic_dataset(out: str | os.PathLike, config: SyntheticConfig | None = None, workers: int = 2,
                            progress=None) -> dict:
    """Render and write a data set; returns a summary (frames, seconds, bytes per folder).

    ``workers`` processes render scenes in parallel (one scene per job). The output is the
    same for any number of workers: every scene has its own seed derived from ``config.seed``.
    """
    cfg = config or SyntheticConfig()
    cfg.check()
    if workers < 0:
        raise ValueError(f"workers: expected an integer >= 0, found {workers}")
    out = Path(out)
    (out / "training").mkdir(parents=True, exist_ok=True)
    jobs = ([(asdict(cfg), str(out), "train", i) for i in range(cfg.train_scenes)]
            + [(asdict(cfg), str(out), "val", i) for i in range(cfg.val_scenes)]
            + [(asdict(cfg), str(out), "test", i) for i in range(cfg.test_scenes)])
    start = time.perf_counter()
    frames = 0
    if workers <= 1:
        results = map(_job, jobs)
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
        results = pool.map(_job, jobs)
    try:
        for n in (progress(results, total=len(jobs)) if progress else results):
            frames += n
    finally:
        if workers > 1:
            pool.shutdown()
    if cfg.train_scenes:
        write_split(out / "training" / "train.txt", [scene_name(cfg.preset, "train", i) for i in range(cfg.train_scenes)])
    if cfg.val_scenes:
        write_split(out / "training" / "val.txt", [scene_name(cfg.preset, "val", i) for i in range(cfg.val_scenes)])
    atomic_write_bytes(out / "classes.txt", "".join(f"{c}\n" for c in CLASS_NAMES).encode())
    seconds = time.perf_counter() - start
    summary = {"frames": frames, "seconds": round(seconds, 2), "frames_per_s": round(frames / seconds, 2),
               "bytes": {"training": folder_size(out / "training"),
                         "testing": folder_size(out / "testing") if (out / "testing").is_dir() else 0},
               "config": asdict(cfg), "workers": workers}
    atomic_write_bytes(out / "info.json", json.dumps(summary, indent=2).encode())
    return summary


class RenderedTestSet(Dataset):
    """The first ``num_scenes`` × ``frames_per_scene`` frames of the synthetic test split, rendered
    in memory at ``size`` (H, W): the scenes and camera speed :func:`write_synthetic_dataset`
    writes to ``testing/`` (with the data set's size, these are its test frames).

    Items as :class:`~bore_depth_lite.data.datasets.TestDataset`'s: ``image`` (3, H, W) in [0, 1],
    ``depth`` (1, H, W) metres, ``boundary`` (1, H, W) bool, ``name``; ``protocol`` names the
    evaluation protocol (``synthetic_<preset>``).
    """

    def __init__(self, num_scenes: int = 2, frames_per_scene: int = 2, size: tuple[int, int] = (256, 320),
                 preset: str = "indoor", seed: int = 0):
        if num_scenes < 1 or frames_per_scene < 1:
            raise ValueError(f"num_scenes={num_scenes}, frames_per_scene={frames_per_scene}: need >= 1 each")
        self.protocol = f"synthetic_{preset}"
        self.items: list[dict] = []
        for i in range(num_scenes):
            seq = render_sequence(preset, frames_per_scene, size[0], size[1], seed=scene_seed(seed, 2, i),
                                  speed=SyntheticConfig().test_speed)
            for j in range(frames_per_scene):
                self.items.append({"image": torch.from_numpy(seq.rgb[j]).permute(2, 0, 1).float() / 255.0,
                                   "depth": torch.from_numpy(seq.depth[j])[None],
                                   "boundary": torch.from_numpy(seq.boundary[j])[None],
                                   "name": f"{scene_name(preset, 'test', i)}_{j:06d}"})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]
