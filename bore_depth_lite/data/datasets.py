"""PyTorch datasets over the on-disk layout of :mod:`bore_depth_lite.data.layout`.

The same two classes read the synthetic world and prepared KITTI / NYUv2 / iBims-1 folders.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .transforms import resize_intrinsics
from ..images import IMAGE_EXTENSIONS, read_image
from .layout import (DEPTH_EXTENSIONS, LayoutError, list_files, read_depth, read_intrinsics, read_label_png, read_poses,
                     read_split)


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)


class _Scene:
    """Paths and checks for one training scene folder."""

    def __init__(self, folder: Path, with_depth: bool, with_pseudo_depth: bool, with_poses: bool):
        if not folder.is_dir():
            raise LayoutError(f"{folder}: scene folder listed in the split file does not exist")
        self.folder = folder
        self.name = folder.name
        self.frames = list_files(folder, IMAGE_EXTENSIONS, "frames")
        self.K = read_intrinsics(folder / "cam.txt")
        self.depth = self._extra(folder / "depth", "depth maps") if with_depth else None
        self.pseudo = self._extra(folder / "pseudo_depth", "pseudo-depth maps") if with_pseudo_depth else None
        self.poses = None
        if with_poses:
            self.poses = read_poses(folder / "poses.txt")
            if len(self.poses) != len(self.frames):
                raise LayoutError(f"{folder / 'poses.txt'}: {len(self.poses)} poses for {len(self.frames)} frames")

    def _extra(self, sub: Path, what: str) -> list[Path]:
        files = list_files(sub, DEPTH_EXTENSIONS, what)
        if len(files) != len(self.frames):
            raise LayoutError(f"{sub}: {len(files)} {what} for {len(self.frames)} frames in {self.folder}; "
                              "expected one per frame")
        return files


class TrainTripletDataset(Dataset):
    """Frame triplets (t−k, t, t+k) with intrinsics, for self-supervised training.

    Args:
        root: data root (holding ``training/``) or the ``training`` folder itself.
        split: ``"train"`` or ``"val"`` (reads ``training/<split>.txt``).
        frame_step: k, the frame gap between target and sources.
        every_step_up_to: also the triplets of every narrower gap 1 … k − 1, so that the
            samples span every baseline up to k (a PoseNet trained on one gap only mis-sizes
            the motion between frames at other gaps).
        transform: a callable on ``{"images": (3,3,H,W), "K": (3,3), "maps": {...}}``
            (see :mod:`bore_depth_lite.data.transforms`), applied to the whole triplet.
        with_depth / with_pseudo_depth: also return the target's depth / pseudo-depth
            (the scene must then have ``depth/`` / ``pseudo_depth/`` with one file per frame).
        with_poses: also return ground-truth ``T_src_tgt`` (2,4,4) from ``poses.txt``.
        png_depth_scale: divisor for 16-bit PNG depth files.

    Item: ``tgt`` (3,H,W) float in [0,1]; ``srcs`` (2,3,H,W) (t−k then t+k); ``K``, ``K_inv``
    (3,3) float32; ``scene`` str; ``index`` int; optionally ``tgt_depth`` / ``tgt_pseudo_depth``
    (1,H,W) metres, ``T_src_tgt`` (2,4,4) float32 = inv(pose_src) @ pose_tgt.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", frame_step: int = 1, transform=None,
                 with_depth: bool = False, with_pseudo_depth: bool = False, with_poses: bool = False,
                 png_depth_scale: float = 1000.0, every_step_up_to: bool = False):
        root = Path(root)
        training = root if root.name == "training" else root / "training"
        if not training.is_dir():
            raise LayoutError(f"{training}: training folder not found (expected <root>/training/<scene>/...)")
        if frame_step < 1:
            raise ValueError(f"frame_step={frame_step}: expected ≥ 1")
        self.root, self.split, self.frame_step, self.transform = training, split, frame_step, transform
        self.png_depth_scale = png_depth_scale
        self.scenes = [_Scene(training / name, with_depth, with_pseudo_depth, with_poses)
                       for name in read_split(training / f"{split}.txt")]
        self.samples: list[tuple[int, int, int]] = []   # (scene, target frame, gap)
        steps = range(1, frame_step + 1) if every_step_up_to else (frame_step,)
        for s, scene in enumerate(self.scenes):
            n = len(scene.frames)
            if n < 2 * frame_step + 1:
                raise LayoutError(f"{scene.folder}: {n} frames, but a triplet with frame_step={frame_step} "
                                  f"needs at least {2 * frame_step + 1}")
            self.samples += [(s, i, k) for k in steps for i in range(k, n - k)]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        s, i, k = self.samples[index]
        scene = self.scenes[s]
        ids = (i, i - k, i + k)
        frames = [read_image(scene.frames[j]) for j in ids]
        shapes = {f.shape for f in frames}
        if len(shapes) != 1:
            raise LayoutError(f"{scene.folder}: frames {[scene.frames[j].name for j in ids]} have different "
                              f"sizes {sorted(shapes)}; expected one size per scene")
        sample = {"images": torch.stack([_to_tensor(f) for f in frames]),
                  "K": torch.from_numpy(scene.K).float()}
        maps = {}
        for key, files in (("tgt_depth", scene.depth), ("tgt_pseudo_depth", scene.pseudo)):
            if files is not None:
                d = read_depth(files[i], self.png_depth_scale)
                if d.shape != frames[0].shape[:2]:
                    raise LayoutError(f"{files[i]}: depth map {d.shape} does not match image {frames[0].shape[:2]}")
                maps[key] = torch.from_numpy(d)[None, None]
        if maps:
            sample["maps"] = maps
        if self.transform is not None:
            sample = self.transform(sample)
        K = sample["K"].float()
        item = {"tgt": sample["images"][0], "srcs": sample["images"][1:], "K": K, "K_inv": torch.linalg.inv(K),
                "scene": scene.name, "index": i}
        for key, value in sample.get("maps", {}).items():
            item[key] = value[0]
        if scene.poses is not None:
            tgt = scene.poses[i]
            item["T_src_tgt"] = torch.from_numpy(np.stack([np.linalg.inv(scene.poses[j]) @ tgt for j in ids[1:]])).float()
        return item


class TestDataset(Dataset):
    """Test images with ground-truth depth (and semantics / boundaries when present).

    Args:
        root: data root (holding ``testing/``) or the ``testing`` folder itself.
        image_size: (H, W) to resize the image to (bilinear, half-pixel, no antialias, as the
            released inference code); ground truth always stays at its native size.
        png_depth_scale: divisor for 16-bit PNG depth (1000 = BoRe-Depth, 5000 = SC-Depth NYU).
        pair_by: ``"name"`` (colour and depth files must have the same stems) or ``"order"``
            (sorted order, as SC-Depth; counts must still match).

    Item: ``image`` (3,h,w) in [0,1]; ``depth`` (1,H,W) float metres (0 = no GT); optional
    ``semantic`` (1,H,W) int64, ``boundary`` (1,H,W) bool, ``K`` (3,3) float32 (for the
    returned image); ``name`` str.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, root: str | os.PathLike, image_size: tuple[int, int] | None = None,
                 png_depth_scale: float = 1000.0, pair_by: str = "name"):
        root = Path(root)
        testing = root if root.name == "testing" else root / "testing"
        if not testing.is_dir():
            raise LayoutError(f"{testing}: testing folder not found (expected <root>/testing/color, depth)")
        if pair_by not in ("name", "order"):
            raise ValueError(f"pair_by={pair_by!r}: expected 'name' or 'order'")
        self.root, self.image_size, self.png_depth_scale = testing, image_size, png_depth_scale
        self.images = list_files(testing / "color", IMAGE_EXTENSIONS, "test images")
        self.depths = self._paired(testing / "depth", DEPTH_EXTENSIONS, "depth maps", pair_by, required=True)
        self.semantics = self._paired(testing / "semantic", (".png",), "semantic maps", pair_by)
        self.boundaries = self._paired(testing / "boundary", (".png",), "boundary maps", pair_by)
        self.cams = self._paired(testing / "cam", (".txt",), "intrinsics files", pair_by)
        self.K_shared = read_intrinsics(testing / "cam.txt") if (testing / "cam.txt").is_file() else None

    def _paired(self, folder: Path, extensions, what: str, pair_by: str, required: bool = False):
        if not folder.exists() and not required:
            return None
        files = list_files(folder, extensions, what)
        if len(files) != len(self.images):
            raise LayoutError(f"{folder}: {len(files)} {what} but {len(self.images)} images in "
                              f"{self.images[0].parent}; expected one per image")
        if pair_by == "name":
            for img, f in zip(self.images, files):
                if img.stem != f.stem:
                    raise LayoutError(f"{f}: expected the {what[:-1]} of {img.name} (same file stem), "
                                      "or pass pair_by='order'")
        return files

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        rgb = read_image(self.images[index])
        depth = read_depth(self.depths[index], self.png_depth_scale)
        image = _to_tensor(rgb)
        item = {"name": self.images[index].stem, "depth": torch.from_numpy(depth)[None]}
        K = self.K_shared
        if self.cams is not None:
            K = read_intrinsics(self.cams[index])
        h0, w0 = image.shape[-2:]
        if self.image_size is not None and tuple(self.image_size) != (h0, w0):
            h, w = self.image_size
            image = F.interpolate(image[None], size=(h, w), mode="bilinear", align_corners=False, antialias=False)[0]
            if K is not None:
                K = resize_intrinsics(torch.from_numpy(K), w / w0, h / h0).numpy()
        item["image"] = image
        if K is not None:
            item["K"] = torch.from_numpy(np.asarray(K)).float()
        if self.semantics is not None:
            item["semantic"] = torch.from_numpy(read_label_png(self.semantics[index]).astype(np.int64))[None]
        if self.boundaries is not None:
            item["boundary"] = torch.from_numpy(read_label_png(self.boundaries[index]) > 0)[None]
        return item


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
        rgb = _to_tensor(read_image(frame))
        return {"image": rgb, "semantic": torch.from_numpy(read_label_png(label).astype(np.int64))}
