"""DepthNet / PoseNet / MPViT encoder: counts, shapes, any input size, blocks vs references."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bore_depth_lite.checkpoint import CheckpointError, load_depthnet, load_posenet, save_checkpoint, save_depthnet
from bore_depth_lite.models import (DEPTHNET_CONFIGS, DepthNet, DepthNetConfig, MPViTEncoder, PoseNet, SCEBlock,
                                    stack_conv1_weights)
from bore_depth_lite.models.mpvit import FactorizedAttention, RelativePositionConvs

torch.set_num_threads(2)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def paper_net() -> DepthNet:
    torch.manual_seed(0)
    return DepthNet().eval()


@pytest.fixture(scope="module")
def tiny_net() -> DepthNet:
    torch.manual_seed(0)
    return DepthNet("tiny").eval()


def test_paper_parameter_counts(paper_net):
    assert paper_net.num_parameters() == 8_664_945
    assert paper_net.num_parameters(used_in_forward=True) == 8_380_041
    assert count(paper_net.encoder) == 5_626_736
    assert count(paper_net.decoder) == 3_038_209
    assert count(paper_net.decoder.unused_skip_sce) == 284_904


def test_teacher_and_pose_counts():
    assert count(MPViTEncoder("teacher")) == 7_934_336
    assert count(MPViTEncoder("paper", mlp_ratio=4.0)) == 7_934_336
    assert PoseNet().num_parameters() == 13_011_950


def test_teaching_configs_are_small():
    counts = {name: DepthNet(name).num_parameters() for name in ("small", "tiny")}
    assert counts == {"small": 1_654_985, "tiny": 406_713}  # pinned: the training chapters rely on them
    assert counts["tiny"] <= 1_000_000


def test_state_dict_stores_shared_modules_once(paper_net):
    keys = list(paper_net.state_dict())
    assert not any(".blocks." in k and ("position" in k) for k in keys)
    n_tensors = sum(v.numel() for k, v in paper_net.state_dict().items() if "running" not in k and "num_batches" not in k)
    assert n_tensors == 8_664_945


def test_encoder_levels(tiny_net, paper_net):
    assert paper_net.feature_channels == (64, 96, 176, 216, 216)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        feats = tiny_net.encode(x)
    assert [f.shape[1] for f in feats] == list(tiny_net.feature_channels)
    assert [tuple(f.shape[-2:]) for f in feats] == [(64 // s, 96 // s) for s in (2, 4, 8, 16, 32)]


@pytest.mark.parametrize("size", [(64, 96), (33, 47), (100, 130), (7, 5), (96, 64)])
def test_forward_any_size(tiny_net, size):
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        depth = tiny_net(x)
    assert depth.shape == (1, 1, *size)
    assert torch.isfinite(depth).all()
    assert depth.min() >= 1 / 10.01 - 1e-6 and depth.max() <= 100 + 1e-4


def test_odd_size_is_replicate_pad_then_crop(tiny_net):
    x = torch.randn(1, 3, 45, 70)
    padded = F.pad(x, (0, 96 - 70, 0, 64 - 45), mode="replicate")
    with torch.no_grad():
        torch.testing.assert_close(tiny_net(x), tiny_net(padded)[..., :45, :70])


def test_paper_forward_shape(paper_net):
    with torch.no_grad():
        assert paper_net(torch.randn(1, 3, 64, 96)).shape == (1, 1, 64, 96)


def test_bad_input_shape_is_a_clear_error(tiny_net):
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        tiny_net(torch.randn(1, 4, 32, 32))


def naive_factorized_attention(att: FactorizedAttention, crpe: RelativePositionConvs, x, H, W, windows):
    """Per-head loop straight from the formula: scale·Q(softmax_N(K)ᵀV) + Q ⊙ DWConv_k(V_head)."""
    B, N, C = x.shape
    h = att.num_heads
    d = C // h
    qkv = att.qkv(x).view(B, N, 3, h, d)
    kernel_of_head = [k for k, n in windows.items() for _ in range(n)]
    conv_of_head = [i for i, n in enumerate(windows.values()) for _ in range(n)]
    first_head = {i: sum(list(windows.values())[:i]) for i in range(len(windows))}
    outs = []
    for head in range(h):
        q, k, v = qkv[:, :, 0, head], qkv[:, :, 1, head], qkv[:, :, 2, head]  # (B, N, d)
        ksm = torch.exp(k - k.max(dim=1, keepdim=True).values)
        ksm = ksm / ksm.sum(dim=1, keepdim=True)
        factor = q @ (ksm.transpose(1, 2) @ v)
        conv = crpe.convs[conv_of_head[head]]
        j = head - first_head[conv_of_head[head]]
        w = conv.weight[j * d:(j + 1) * d]
        b = conv.bias[j * d:(j + 1) * d]
        assert w.shape[-1] == kernel_of_head[head]
        v_img = v.transpose(1, 2).reshape(B, d, H, W)
        cv = F.conv2d(v_img, w, b, padding=w.shape[-1] // 2, groups=d).reshape(B, d, N).transpose(1, 2)
        outs.append(d ** -0.5 * factor + q * cv)
    return att.proj(torch.cat(outs, dim=2))


@pytest.mark.parametrize("dim,heads,windows", [(64, 8, {3: 2, 5: 3, 7: 3}), (32, 4, {3: 2, 5: 1, 7: 1})])
def test_factorized_attention_matches_per_head_formula(dim, heads, windows):
    torch.manual_seed(1)
    att, crpe = FactorizedAttention(dim, heads), RelativePositionConvs(dim // heads, windows)
    H, W = 6, 10
    x = torch.randn(2, H * W, dim)
    with torch.no_grad():
        torch.testing.assert_close(att(x, (H, W), crpe), naive_factorized_attention(att, crpe, x, H, W, windows),
                                   rtol=1e-5, atol=1e-5)


def test_sce_block_formula():
    torch.manual_seed(2)
    sce = SCEBlock(6)
    x = torch.randn(1, 6, 9, 11)
    ref = x + sce.project(0.5 * (y := sce.pointwise(sce.depthwise(x))) * (1 + torch.erf(y / math.sqrt(2))))
    with torch.no_grad():
        torch.testing.assert_close(sce(x), ref)
    assert sce.depthwise.weight.shape == (12, 1, 3, 3)


def test_unused_block_does_not_change_output(paper_net):
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before = paper_net(x)
        saved = {k: v.clone() for k, v in paper_net.decoder.unused_skip_sce.state_dict().items()}
        for p in paper_net.decoder.unused_skip_sce.parameters():
            p.add_(1.0)
        after = paper_net(x)
        paper_net.decoder.unused_skip_sce.load_state_dict(saved)
    torch.testing.assert_close(before, after, rtol=0, atol=0)


def test_gradients_reach_every_used_parameter(tiny_net):
    net = DepthNet("tiny").train()
    net(torch.randn(2, 3, 64, 64)).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_posenet_shape_and_scale():
    torch.manual_seed(0)
    net = PoseNet().eval()
    a, b = torch.randn(2, 3, 64, 96), torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        pose = net(a, b)
    assert pose.shape == (2, 6)
    with torch.no_grad():  # the last conv's output ×0.01
        raw = net.decoder.to_pose(F.relu(net.decoder.conv2(F.relu(net.decoder.conv1(F.relu(
            net.decoder.squeeze(net.features(torch.cat([a, b], 1))))))))).mean(dim=(2, 3))
    torch.testing.assert_close(pose, 0.01 * raw)
    with pytest.raises(ValueError, match="equal shape"):
        net(a, b[:, :, :32])


def test_stack_conv1_weights_keeps_response_on_identical_frames():
    torch.manual_seed(0)
    w = torch.randn(64, 3, 7, 7)
    x = torch.randn(1, 3, 32, 32)
    stacked = stack_conv1_weights(w, 2)
    assert stacked.shape == (64, 6, 7, 7)
    torch.testing.assert_close(F.conv2d(torch.cat([x, x], 1), stacked), F.conv2d(x, w), rtol=1e-4, atol=1e-4)


def test_config_round_trip():
    for name, cfg in DEPTHNET_CONFIGS.items():
        assert DepthNetConfig.from_dict(cfg.to_dict()) == cfg, name


def test_our_checkpoint_round_trip(tmp_path, tiny_net):
    path = save_depthnet(tmp_path / "sub" / "tiny.pt", tiny_net, epoch=3)
    assert [p.name for p in path.parent.iterdir()] == ["tiny.pt"]  # no temporary file left behind
    loaded = load_depthnet(path)
    assert loaded.config == tiny_net.config and not loaded.training
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), tiny_net(x), rtol=0, atol=0)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["format"] == "bore_depth_lite.checkpoint" and ckpt["extra"] == {"epoch": 3}


def test_checkpoint_with_both_networks(tmp_path, tiny_net):
    pose = PoseNet().eval()
    path = save_checkpoint(tmp_path / "both.pt", depth_net=tiny_net, pose_net=pose)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(load_posenet(path)(x, x), pose(x, x), rtol=0, atol=0)
    only_pose = save_checkpoint(tmp_path / "pose.pt", pose_net=pose)
    with pytest.raises(CheckpointError, match="holds no depth_net"):
        load_depthnet(only_pose)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_depthnet(tmp_path / "missing.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a bore_depth_lite checkpoint"):
        load_depthnet(tmp_path / "foreign.pt")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (none on this machine)")
def test_cuda_matches_cpu(tiny_net):
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ref = tiny_net(x)
        out = DepthNet("tiny").cuda().eval()
        out.load_state_dict(tiny_net.state_dict())
        torch.testing.assert_close(out(x.cuda()).cpu(), ref, rtol=1e-3, atol=1e-3)


def test_plain_decoder_is_efaf_without_its_sce_blocks():
    from bore_depth_lite.models import SCEBlock

    efaf, plain = DepthNet("tiny"), DepthNet("tiny-plain")
    sce = sum(p.numel() for m in efaf.decoder.modules() if isinstance(m, SCEBlock) for p in m.parameters())
    assert not any(isinstance(m, SCEBlock) for m in plain.decoder.modules())
    assert plain.num_parameters() == efaf.num_parameters() - sce
    assert plain(torch.rand(1, 3, 64, 96)).shape == (1, 1, 64, 96)
