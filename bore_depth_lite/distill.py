"""Stage 2: semantic distillation from a frozen segmentation encoder into the depth encoder.

The paper's idea: boundaries of depth coincide with boundaries of objects, and a network
trained for segmentation has learnt where objects end. So after stage 1, a frozen
segmentation encoder (the *teacher*) guides the depth encoder's features through a
semantic information loss. The paper leaves the loss open; our recipe (the book's appendix "Reference", training):

    L_sem = mean over levels l and pixels of 1 − cos(A_l(F_depth,l), F_teacher,l)

with A_l a trained 1×1 conv *adapter*, so the depth features need only contain the
teacher's information, not equal it. Adapters are dropped at export: the deployed DepthNet
is unchanged by stage 2.

Teachers:
- ``mpvit`` (embedded default): the release's teacher topology (the depth encoder with MLP
  ratio 4) plus a light segmentation head, trained by :func:`train_teacher` on the synthetic
  world's labels, so everything runs offline;
- ``torchvision``: a torchvision LR-ASPP MobileNetV3 segmentation backbone, with its
  pretrained weights for users with internet (``weights="DEFAULT"`` downloads them once into
  torch's cache); the tests build it with random weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import atomic_save, safe_load
from .models.mpvit import ENCODER_CONFIGS, EncoderConfig, MPViTEncoder

__all__ = ["SegmentationTeacher", "TorchvisionTeacher", "SemanticGuide", "semantic_information_loss",
           "load_teacher", "save_teacher"]


class SegmentationTeacher(nn.Module):
    """MPViT encoder + a light FPN-style head: levels 1–4 projected to ``head_channels``,
    upsampled to stride 4 and summed, then a 3×3 conv and a 1×1 classifier."""

    def __init__(self, encoder_config: EncoderConfig | str = "teacher", num_classes: int = 8, head_channels: int = 64):
        super().__init__()
        if isinstance(encoder_config, str):
            encoder_config = ENCODER_CONFIGS[encoder_config]
        self.encoder_config, self.num_classes = encoder_config, num_classes
        self.encoder = MPViTEncoder(encoder_config)
        chans = self.encoder.out_channels
        self.lateral = nn.ModuleList(nn.Conv2d(c, head_channels, 1) for c in chans[1:])
        self.head = nn.Sequential(nn.Conv2d(head_channels, head_channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(head_channels), nn.ReLU(inplace=True),
                                  nn.Conv2d(head_channels, num_classes, 1))

    @property
    def out_channels(self) -> tuple[int, ...]:
        return self.encoder.out_channels

    def features(self, image: Tensor) -> list[Tensor]:
        """The 5 encoder levels (strides 2–32) of an ImageNet-normalised image."""
        return self.encoder(image)

    def forward(self, image: Tensor) -> Tensor:
        """Class logits (B, num_classes, H, W)."""
        feats = self.features(image)[1:]
        size = feats[0].shape[-2:]
        fused = sum(F.interpolate(lat(f), size=size, mode="bilinear", align_corners=False)
                    for lat, f in zip(self.lateral, feats))
        return F.interpolate(self.head(fused), size=image.shape[-2:], mode="bilinear", align_corners=False)


class TorchvisionTeacher(nn.Module):
    """The MobileNetV3-Large backbone of torchvision's LR-ASPP segmentation model.

    Returns 5 levels at strides 2, 4, 8, 16, 16 (channels 16, 24, 40, 112, 960): the
    segmentation backbone is dilated, so its deepest level stays at stride 16; the loss resizes
    each teacher level to the student's resolution.
    ``weights="DEFAULT"`` downloads the COCO/VOC-trained weights (about 13 MB) on first use.
    """

    LEVELS = {"1": "level0", "3": "level1", "6": "level2", "12": "level3", "16": "level4"}

    def __init__(self, weights: str | None = None):
        super().__init__()
        from torchvision.models.feature_extraction import create_feature_extractor
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large

        model = lraspp_mobilenet_v3_large(weights=weights, weights_backbone=None)
        self.body = create_feature_extractor(model.backbone, return_nodes=self.LEVELS)
        self.weights = weights

    @property
    def out_channels(self) -> tuple[int, ...]:
        return (16, 24, 40, 112, 960)

    def features(self, image: Tensor) -> list[Tensor]:
        return list(self.body(image).values())


def semantic_information_loss(student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
    """Mean over levels and pixels of 1 − cosine similarity along channels.

    Args:
        student: adapted depth features, each (B, C_l, h_l, w_l).
        teacher: teacher features with the same channels C_l; resized to (h_l, w_l) when
            their resolution differs.
    """
    if len(student) != len(teacher) or not student:
        raise ValueError(f"need one teacher feature per student feature, got {len(student)} and {len(teacher)}")
    terms = []
    for s, t in zip(student, teacher):
        if s.shape[1] != t.shape[1]:
            raise ValueError(f"channel mismatch: student {tuple(s.shape)} vs teacher {tuple(t.shape)}")
        if t.shape[-2:] != s.shape[-2:]:
            t = F.interpolate(t, size=s.shape[-2:], mode="bilinear", align_corners=False)
        terms.append((1.0 - F.cosine_similarity(s, t, dim=1, eps=1e-6)).mean())
    return torch.stack(terms).mean()


class SemanticGuide(nn.Module):
    """The frozen teacher plus trainable adapters; ``guide(student_features, image)`` → L_sem.

    ``student_features`` are all 5 levels of the depth encoder; ``levels`` picks which ones
    are guided (default 1–4: strides 4–32).
    """

    def __init__(self, teacher: nn.Module, student_channels: Sequence[int], levels: Sequence[int] = (1, 2, 3, 4)):
        super().__init__()
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.levels = tuple(levels)
        t_ch = teacher.out_channels
        self.adapters = nn.ModuleList(nn.Conv2d(student_channels[l], t_ch[l], 1) for l in self.levels)

    def train(self, mode: bool = True) -> "SemanticGuide":
        super().train(mode)
        self.teacher.eval()  # frozen: BatchNorm statistics stay the teacher's
        return self

    def forward(self, student_features: Sequence[Tensor], image: Tensor) -> Tensor:
        with torch.no_grad():
            teacher_features = self.teacher.features(image)
        adapted = [a(student_features[l]) for a, l in zip(self.adapters, self.levels)]
        return semantic_information_loss(adapted, [teacher_features[l] for l in self.levels])

    @classmethod
    def from_teacher_checkpoint(cls, path: str | Path, student_channels: Sequence[int],
                                levels: Sequence[int] = (1, 2, 3, 4)) -> "SemanticGuide":
        return cls(load_teacher(path), student_channels, levels)


def save_teacher(path: str | Path, teacher: nn.Module, class_names: Sequence[str] = (),
                 metrics: dict[str, float] | None = None) -> Path:
    """Write a teacher checkpoint (atomically): kind, configuration, weights, metrics."""
    if isinstance(teacher, SegmentationTeacher):
        meta: dict[str, Any] = {"kind": "mpvit", "encoder_config": teacher.encoder_config.to_dict(),
                                "num_classes": teacher.num_classes}
    elif isinstance(teacher, TorchvisionTeacher):
        meta = {"kind": "torchvision"}
    else:
        raise TypeError(f"cannot save a teacher of type {type(teacher).__name__}")
    return atomic_save({"format": "bore_depth_lite.teacher/1", **meta, "class_names": list(class_names),
                        "metrics": dict(metrics or {}), "state_dict": teacher.state_dict()}, path)


def load_teacher(path: str | Path) -> nn.Module:
    """Read a checkpoint written by :func:`save_teacher`; the teacher comes back in eval mode."""
    state = safe_load(path)
    if state.get("format") != "bore_depth_lite.teacher/1":
        raise ValueError(f"{path}: not a teacher checkpoint (format {state.get('format')!r}); "
                         "write one with `python -m bore_depth_lite.train --teacher-only` or `make teacher`")
    if state["kind"] == "mpvit":
        teacher: nn.Module = SegmentationTeacher(EncoderConfig.from_dict(state["encoder_config"]), state["num_classes"])
    else:
        teacher = TorchvisionTeacher(weights=None)
    teacher.load_state_dict(state["state_dict"])
    return teacher.eval()


@dataclass
class TeacherTrainResult:
    teacher: SegmentationTeacher
    losses: list[float]
    pixel_accuracy: float
    mean_iou: float


def segmentation_scores(logits: Tensor, labels: Tensor, num_classes: int) -> tuple[float, float]:
    """Pixel accuracy and mean IoU over the classes present in ``labels`` or the prediction."""
    pred = logits.argmax(1)
    accuracy = float((pred == labels).float().mean())
    ious = []
    for c in range(num_classes):
        inter = ((pred == c) & (labels == c)).sum()
        union = ((pred == c) | (labels == c)).sum()
        if union > 0:
            ious.append(float(inter) / float(union))
    return accuracy, sum(ious) / max(len(ious), 1)


def teacher_encoder_config(name: str) -> EncoderConfig:
    """``teacher``: the release's topology (paper encoder, MLP ratio 4); ``small``/``tiny``: the
    CPU teaching encoders with MLP ratio 4, the same relation at a size a laptop trains."""
    if name == "teacher":
        return ENCODER_CONFIGS["teacher"]
    if name not in ENCODER_CONFIGS:
        raise ValueError(f"unknown teacher encoder {name!r}; choose from {sorted(ENCODER_CONFIGS)}")
    from dataclasses import replace

    return replace(ENCODER_CONFIGS[name], mlp_ratio=4.0)


#: OneCycleLR with pct_start=0.1 divides by (0.1 * steps - 1): it needs more than 10 steps
MIN_TEACHER_STEPS = 11

def train_teacher(dataset, out_path: str | Path, num_classes: int, class_names: Sequence[str] = (),
                  encoder: str = "small", steps: int = 300, batch_size: int = 8, lr: float = 1e-3,
                  seed: int = 0, device: str = "auto", progress: bool = True) -> TeacherTrainResult:
    """Train the embedded teacher on semantic labels and save it (then it is frozen for stage 2).

    Args:
        dataset: items are dicts with ``image`` (3, H, W) in [0, 1] and ``semantic`` (H, W)
            integer labels in [0, num_classes).
        out_path: where :func:`save_teacher` writes the checkpoint.
        encoder: the teacher's encoder (:func:`teacher_encoder_config`).

    Returns:
        the trained teacher (eval mode), the loss curve, and pixel accuracy / mean IoU on
        the last batches seen (training-set figures: the teacher only has to be informative).
    """
    from tqdm import tqdm

    from . import resolve_device, seed_everything
    from .preprocess import normalize_imagenet

    seed_everything(seed)
    dev = resolve_device(device)
    if steps < MIN_TEACHER_STEPS:
        raise ValueError(f"train_teacher needs steps >= {MIN_TEACHER_STEPS} (its one-cycle schedule warms up over "
                         f"the first 10 % of the steps, which must be more than one step), got {steps}")
    if len(dataset) == 0:
        raise ValueError("the teacher's data set is empty")
    teacher = SegmentationTeacher(teacher_encoder_config(encoder), num_classes).to(dev).train()
    optimizer = torch.optim.AdamW(teacher.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    scores: list[tuple[float, float]] = []
    for step in tqdm(range(steps), desc="teacher", disable=not progress, mininterval=1.0):
        idx = torch.randint(len(dataset), (batch_size,), generator=generator).tolist()
        items = [dataset[i] for i in idx]
        image = torch.stack([it["image"] for it in items]).to(dev)
        labels = torch.stack([torch.as_tensor(it["semantic"]).long().reshape(image.shape[-2:]) for it in items]).to(dev)
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"semantic labels must lie in [0, {num_classes}); got [{int(labels.min())}, {int(labels.max())}]")
        logits = teacher(normalize_imagenet(image))
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if step >= steps - 10:
            scores.append(segmentation_scores(logits.detach(), labels, num_classes))
    teacher.eval()
    accuracy = sum(s[0] for s in scores) / len(scores)
    miou = sum(s[1] for s in scores) / len(scores)
    save_teacher(out_path, teacher, class_names, {"pixel_accuracy": accuracy, "mean_iou": miou, "steps": steps})
    return TeacherTrainResult(teacher, losses, accuracy, miou)
