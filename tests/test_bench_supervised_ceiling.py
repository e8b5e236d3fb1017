"""bench/supervised_ceiling.py: the scale-invariant log loss that trains the supervised ceiling."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("supervised_ceiling", ROOT / "bench" / "supervised_ceiling.py")
ceiling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ceiling)


def test_hand_computed_case():
    """Two valid pixels off by factors e and 1 (g = 1, 0): mean(g²) = 1/2, mean(g)² = 1/4."""
    target = torch.tensor([[[[2.0, 3.0, 0.0]]]])
    pred = torch.tensor([[[[2.0 * math.e, 3.0, 50.0]]]])     # the third pixel has no truth: left out
    assert ceiling.silog_loss(pred, target, lam=0.85).item() == pytest.approx(0.5 - 0.85 * 0.25, abs=1e-6)
    assert ceiling.silog_loss(pred, target, lam=0.0).item() == pytest.approx(0.5, abs=1e-6)


def test_lambda_one_ignores_a_global_scale_and_zero_at_the_truth():
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(3, 1, 8, 8, generator=gen) * 20 + 0.5
    pred = target * torch.exp(0.3 * torch.randn(3, 1, 8, 8, generator=gen))
    loss = ceiling.silog_loss(pred, target, lam=1.0)
    assert ceiling.silog_loss(7.5 * pred, target, lam=1.0).item() == pytest.approx(loss.item(), rel=1e-4)
    assert ceiling.silog_loss(target, target).item() == pytest.approx(0.0, abs=1e-7)
    assert ceiling.silog_loss(2 * target, target, lam=0.85).item() == pytest.approx(0.15 * math.log(2) ** 2, rel=1e-5)


def test_is_the_mean_of_per_image_losses_and_has_gradients():
    gen = torch.Generator().manual_seed(1)
    target = torch.rand(2, 1, 4, 5, generator=gen) + 1
    target[1, 0, :2] = 0          # the second image has fewer valid pixels: its own mean
    pred = (torch.rand(2, 1, 4, 5, generator=gen) + 1).requires_grad_()
    batch = ceiling.silog_loss(pred, target)
    each = [ceiling.silog_loss(pred[i:i + 1], target[i:i + 1]) for i in range(2)]
    assert batch.item() == pytest.approx((each[0].item() + each[1].item()) / 2, rel=1e-6)
    batch.backward()
    assert torch.isfinite(pred.grad).all() and (pred.grad[1, 0, :2] == 0).all()


def test_a_supervised_step_trains_the_network():
    """The training step of the ceiling moves the weights and lowers the loss on a batch it repeats."""
    from bore_depth_lite.models import DepthNet

    torch.manual_seed(0)
    net = DepthNet("tiny").train()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    images = torch.rand(2, 3, 64, 96)
    depth = torch.linspace(2, 20, 64).view(1, 1, 64, 1).expand(2, 1, 64, 96).contiguous()
    before = [p.detach().clone() for p in net.parameters()]
    losses = [ceiling.supervised_step(net, optimiser, images, depth) for _ in range(8)]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.parametrize("flag", ["--steps", "--synthetic-scenes", "--frame-step", "--threads"])
def test_counts_below_one_are_refused_with_the_flag_named(flag, capsys):
    with pytest.raises(SystemExit):
        ceiling.main([flag, "0"])
    assert f"{flag}: expected an integer >= 1, found 0" in capsys.readouterr().err
