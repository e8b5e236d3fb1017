"""Released-layout checkpoints: strict loading, exact parity, clear errors."""
from __future__ import annotations

import argparse
from collections import OrderedDict

import pytest
import torch

from bore_depth_lite.checkpoint import load_any_depthnet, to_released_state_dict
from bore_depth_lite.models import DepthNet, PoseNet
from bore_depth_lite.checkpoint import CheckpointError, load_released_depthnet, load_released_posenet
from bore_depth_lite.checkpoint.released import (convert_depthnet_state_dict, convert_posenet_state_dict,
                                                read_released_state_dict)
from fixtures.released_layout import PARITY, generator, layout_names

torch.set_num_threads(2)


class NotAllowed:
    """A class torch.load(weights_only=True) must refuse."""


@pytest.fixture(scope="module")
def released_sd() -> dict:
    return generator().state_dict(0)


@pytest.fixture(scope="module")
def released_ckpt(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("released") / "seed0.ckpt"
    torch.save(generator().lightning_checkpoint(0), path)
    return str(path)


@pytest.fixture(scope="module")
def depth_sd(released_sd):
    return {k[len("depth_net."):]: v for k, v in released_sd.items() if k.startswith("depth_net.")}


@pytest.fixture(scope="module")
def paper_net():
    return DepthNet()


def test_parity_with_released_code(released_ckpt):
    net = load_released_depthnet(released_ckpt)
    assert not net.training
    ref = torch.load(PARITY, weights_only=True)
    with torch.no_grad():
        depth = net(ref["input"])
    rel = ((depth - ref["depth"]).abs().max() / ref["depth"].abs().max()).item()
    assert rel <= 1e-5, f"relative error {rel:.3e} vs the released code"
    report = net.load_report
    assert len(report.unused_in_forward) == 6 and all("globalattentions.4" in k for k in report.unused_in_forward)
    assert report.shared_copies_checked == 322
    assert "never used in forward" in str(report)


def test_load_any_depthnet_recognises_released(released_ckpt):
    assert isinstance(load_any_depthnet(released_ckpt), DepthNet)


def test_posenet_loads_strictly(released_ckpt, released_sd):
    net = load_released_posenet(released_ckpt)
    assert net.load_report.loaded == len(layout_names("pose_net"))
    torch.testing.assert_close(net.decoder.to_pose.weight, released_sd["pose_net.decoder.convs_pose.2.weight"])
    torch.testing.assert_close(net.encoder.conv1.weight, released_sd["pose_net.encoder.encoder.conv1.weight"])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.isfinite(net(x, x)).all()


def test_names_map_onto_the_released_layout_exactly(paper_net):
    assert set(to_released_state_dict(paper_net, "depth_net")) == layout_names("depth_net")
    assert set(to_released_state_dict(PoseNet(), "pose_net")) == layout_names("pose_net")


def test_round_trip_through_released_names(depth_sd, paper_net):
    sd, _ = convert_depthnet_state_dict(depth_sd, paper_net)
    net = DepthNet()
    net.load_state_dict(sd, strict=True)
    back = to_released_state_dict(net)
    assert all(torch.equal(back[k], depth_sd[k]) for k in depth_sd)


def test_network_without_unused_block_still_accepts_it(depth_sd):
    from dataclasses import replace

    from bore_depth_lite.models import DEPTHNET_CONFIGS

    net = DepthNet(replace(DEPTHNET_CONFIGS["paper"], build_unused_skip_sce=False))
    assert net.num_parameters() == 8_380_041
    sd, report = convert_depthnet_state_dict(depth_sd, net)
    net.load_state_dict(sd, strict=True)
    assert sorted(report.unused_in_forward) == sorted(k for k in depth_sd if k.startswith("decoder.globalattentions.4."))


def test_unknown_and_missing_keys_are_listed(depth_sd, paper_net):
    bad = dict(depth_sd)
    bad["decoder.extra_head.weight"] = torch.zeros(1)
    del bad["decoder.dispconvs.0.conv.bias"]
    with pytest.raises(CheckpointError) as err:
        convert_depthnet_state_dict(bad, paper_net, "bad.ckpt")
    msg = str(err.value)
    assert "bad.ckpt" in msg
    assert "1 unknown key(s): decoder.extra_head.weight" in msg
    assert "1 missing key(s): decoder.dispconvs.0.conv.bias" in msg


def test_shape_mismatch_is_listed(depth_sd, paper_net):
    bad = dict(depth_sd)
    bad["decoder.deconvs.0.conv.bias"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=r"decoder\.deconvs\.0\.conv\.bias: checkpoint \(3,\)"):
        convert_depthnet_state_dict(bad, paper_net)


def test_disagreeing_shared_copies_are_an_error(depth_sd, paper_net):
    bad = dict(depth_sd)
    key = "encoder.mhca_stages.2.mhca_blks.1.MHCA_layers.3.factoratt_crpe.crpe.conv_list.1.weight"
    bad[key] = bad[key] + 1e-3
    with pytest.raises(CheckpointError, match="disagree") as err:
        convert_depthnet_state_dict(bad, paper_net)
    assert key in str(err.value)


def test_pose_unknown_key(released_sd):
    pose = {k[len("pose_net."):]: v for k, v in released_sd.items() if k.startswith("pose_net.")}
    pose["decoder.convs_pose.3.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"unknown key\(s\): decoder\.convs_pose\.3\.weight"):
        convert_posenet_state_dict(pose, PoseNet())


def test_namespace_allowed_other_classes_refused(tmp_path):
    ok = tmp_path / "ok.ckpt"
    torch.save({"state_dict": OrderedDict({"depth_net.x": torch.zeros(1)}),
                "hyper_parameters": argparse.Namespace(lr=1e-4)}, ok)
    assert set(read_released_state_dict(ok, "depth_net")) == {"x"}
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {"depth_net.x": torch.zeros(1)}, "hyper_parameters": NotAllowed()}, bad)
    with pytest.raises(CheckpointError, match=r"bad\.ckpt: refused to unpickle .*NotAllowed"):
        read_released_state_dict(bad, "depth_net")


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt"):
        load_released_depthnet(junk)
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"model.x": torch.zeros(1)}}, other)
    with pytest.raises(CheckpointError, match=r"no 'depth_net\.\*' tensors .*\['model'\]"):
        load_released_depthnet(other)
    with pytest.raises(CheckpointError, match="neither"):
        load_any_depthnet(other)
