"""Stage 2: the semantic information loss, the frozen teacher, teacher checkpoints."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bore_depth_lite.distill import (SegmentationTeacher, SemanticGuide, TorchvisionTeacher, load_teacher,
                                     save_teacher, semantic_information_loss, teacher_encoder_config, train_teacher)
from bore_depth_lite.models import DepthNet


def test_loss_is_zero_for_aligned_features_and_ignores_scale():
    a = torch.randn(2, 8, 4, 5)
    assert float(semantic_information_loss([a], [3.0 * a])) == pytest.approx(0.0, abs=1e-6)
    assert float(semantic_information_loss([a], [-a])) == pytest.approx(2.0, abs=1e-6)
    b = torch.randn(2, 8, 8, 10)              # teacher at another resolution: resized to the student's
    expected = (1 - F.cosine_similarity(a, F.interpolate(b, size=(4, 5), mode="bilinear", align_corners=False),
                                        dim=1, eps=1e-6)).mean()
    torch.testing.assert_close(semantic_information_loss([a], [b]), expected)
    with pytest.raises(ValueError, match="channel mismatch"):
        semantic_information_loss([a], [torch.randn(2, 4, 4, 5)])


def test_guide_trains_adapters_and_student_but_never_the_teacher():
    torch.manual_seed(0)
    teacher = SegmentationTeacher(teacher_encoder_config("tiny"), num_classes=5)
    student = DepthNet("tiny")
    guide = SemanticGuide(teacher, student.feature_channels)
    guide.train()
    assert not guide.teacher.training                      # BatchNorm statistics stay frozen
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    x = torch.randn(2, 3, 64, 64)
    loss = guide(student.encode(x), x)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(a.weight.grad is not None for a in guide.adapters)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.encoder.parameters())
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_teacher_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    teacher = SegmentationTeacher(teacher_encoder_config("tiny"), num_classes=4).eval()
    path = save_teacher(tmp_path / "t.pt", teacher, ["a", "b", "c", "d"], {"mean_iou": 0.5})
    loaded = load_teacher(path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), teacher(x))
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError):
        load_teacher(tmp_path / "bad.pt")


def test_torchvision_teacher_levels_with_random_weights():
    teacher = TorchvisionTeacher(weights=None).eval()      # no download: pretrained weights need internet
    with torch.no_grad():
        feats = teacher.features(torch.randn(1, 3, 64, 96))
    assert [f.shape[1] for f in feats] == list(teacher.out_channels)
    assert [f.shape[-1] for f in feats] == [48, 24, 12, 6, 6]   # dilated: the last level stays at stride 16


class Halves(torch.utils.data.Dataset):
    """Two classes split by a vertical edge whose position varies: learnable in a few steps."""

    def __len__(self):
        return 16

    def __getitem__(self, i):
        col = 16 + 2 * i
        image = torch.zeros(3, 32, 64)
        image[0, :, col:] = 1.0
        labels = torch.zeros(32, 64, dtype=torch.long)
        labels[:, col:] = 1
        return {"image": image, "semantic": labels}


def test_teacher_learns_a_segmentation(tmp_path):
    result = train_teacher(Halves(), tmp_path / "t.pt", num_classes=2, encoder="tiny", steps=40, batch_size=4,
                           lr=3e-3, progress=False)
    assert result.losses[-1] < 0.5 * result.losses[0]
    assert result.pixel_accuracy > 0.9
    with pytest.raises(ValueError, match="steps"):
        train_teacher(Halves(), tmp_path / "u.pt", num_classes=2, steps=3, progress=False)


@pytest.mark.parametrize("steps", [10, 11])
def test_teacher_step_minimum_is_the_schedules_real_one(steps, tmp_path):
    """10 steps used to pass the check and then divide by zero inside OneCycleLR."""
    from bore_depth_lite.distill import MIN_TEACHER_STEPS, train_teacher
    assert MIN_TEACHER_STEPS == 11
    if steps < MIN_TEACHER_STEPS:
        with pytest.raises(ValueError, match="needs steps >= 11"):
            train_teacher(Halves(), tmp_path / "t.pt", num_classes=2, encoder="tiny", steps=steps, progress=False)
    else:
        result = train_teacher(Halves(), tmp_path / "t.pt", num_classes=2, encoder="tiny", steps=steps, batch_size=2,
                               progress=False)
        assert (tmp_path / "t.pt").is_file() and 0.0 <= result.pixel_accuracy <= 1.0
