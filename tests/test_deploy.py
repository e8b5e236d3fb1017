"""Deployment: export rewrites, ONNX export/parity, ORT fp16/int8, backends, TensorRT (skipped without it)."""
from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from bore_depth_lite.data.synthetic import render_sequence
from bore_depth_lite.deploy import (OnnxRuntimeBackend, TensorRTUnavailable, check_parity, export_onnx, make_backend,
                                    onnx_operator_counts, prepare_for_export, tensorrt_status, trtexec_commands)
from bore_depth_lite.deploy.accuracy import precision_backends, precision_table, synthetic_test_split
from bore_depth_lite.deploy.export import ConcatDepthwiseSCE, SliceReflectConv2d
from bore_depth_lite.deploy.onnxruntime_backend import (depthwise_conv_nodes, int8_sensitivity,
                                                        quantize_int8, synthetic_calibration_images)
from bore_depth_lite.models import DepthNet, SCEBlock
from bore_depth_lite.models.mpvit import PathEncoder
from bore_depth_lite.preprocess import preprocess

SIZE = (64, 96)
TRT_OK, TRT_REASON = tensorrt_status()


def _randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights AND biases/norm statistics far from their init, so a wrong rewrite shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return module.eval()


@pytest.fixture(scope="module")
def tiny_net() -> DepthNet:
    torch.manual_seed(0)
    return DepthNet("tiny").eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_net):
    folder = tmp_path_factory.mktemp("onnx")
    static = export_onnx(tiny_net, folder / "tiny_static.onnx", SIZE)
    dynamic = export_onnx(tiny_net, folder / "tiny_dynamic.onnx", SIZE, dynamic=True)
    plain = export_onnx(tiny_net, folder / "tiny_plain.onnx", SIZE, rewrites=())
    return {"static": static, "dynamic": dynamic, "plain": plain, "folder": folder}


def _rendered_input(size=SIZE) -> torch.Tensor:
    rgb = render_sequence("indoor", 1, size[0], size[1], seed=3).rgb[0]
    return preprocess(rgb, None)


# ---- rewrites, module by module (random weights with non-trivial biases) -------------------

def test_concat_depthwise_sce_equals_grouped_sce():
    sce = _randomise(SCEBlock(6))
    x = torch.randn(2, 6, 9, 11)
    torch.testing.assert_close(ConcatDepthwiseSCE(sce)(x), sce(x), rtol=1e-5, atol=1e-5)


def test_concat_depthwise_sce_detects_a_wrong_permutation():
    sce = _randomise(SCEBlock(4))
    swapped = ConcatDepthwiseSCE(sce)
    with torch.no_grad():  # the naive "channel k ↔ original k" mapping must NOT match
        swapped.depthwise.weight.copy_(sce.depthwise.weight)
        swapped.pointwise.weight.copy_(sce.pointwise.weight)
    x = torch.randn(1, 4, 8, 8)
    assert (swapped(x) - sce(x)).abs().max() > 1e-2


@pytest.mark.parametrize("form", ["released", "channels_first"])
def test_every_path_encoder_form_computes_the_same(form):
    enc = _randomise(PathEncoder(16, 2, 4, 2.0, {3: 2, 5: 1, 7: 1}))
    x = torch.randn(2, 16, 6, 10)
    keys = set(enc.state_dict())
    with torch.no_grad():
        fast = enc(x)
        enc.set_form(form)
        other = enc(x)
    torch.testing.assert_close(other, fast, rtol=1e-4, atol=1e-5)
    snapshot = {k for k in enc.state_dict() if k.startswith("snapshot_conv.")}
    assert set(enc.state_dict()) - snapshot == keys   # the parameters are the same ones
    assert bool(snapshot) == (form == "channels_first")
    assert (enc.relative_position.merged is False) == (form == "released")
    enc.set_form("fast")
    assert set(enc.state_dict()) == keys
    with pytest.raises(ValueError, match="form: expected one of"):
        enc.set_form("fastest")


def test_slice_reflect_conv_equals_reflect_padded_conv():
    conv = _randomise(nn.Conv2d(5, 3, 3, 1, 1, padding_mode="reflect"))
    x = torch.randn(1, 5, 7, 9)
    torch.testing.assert_close(SliceReflectConv2d(conv)(x), conv(x), rtol=1e-6, atol=1e-6)


def test_prepare_for_export_counts_and_leaves_the_original_untouched(tiny_net):
    before = {k: v.clone() for k, v in tiny_net.state_dict().items()}
    rewritten, counts = prepare_for_export(tiny_net)
    assert counts == {"sce_concat_depthwise": 9, "attention_channels_first": 8, "reflection_pad_slices": 6}
    assert all(torch.equal(before[k], v) for k, v in tiny_net.state_dict().items())
    net = _randomise(DepthNet("tiny"), seed=1)
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        parity = check_parity(net(x), prepare_for_export(net)[0](x))
    assert parity["max_rel"] < 1e-4
    with pytest.raises(ValueError, match="unknown rewrites"):
        prepare_for_export(tiny_net, ("no_such_rewrite",))


# ---- ONNX export --------------------------------------------------------------------------

def test_export_is_checker_clean_and_reports_replacements(exported):
    static, plain = exported["static"], exported["plain"]
    assert static.checker_ok and static.opset >= 17
    assert "Slice + Concat" in static.summary() and "plain export" in plain.summary()
    import onnx

    def multiplier_two_convs(path):
        model = onnx.load(str(path))
        shapes = {i.name: tuple(i.dims) for i in model.graph.initializer}
        return [n for n in model.graph.node if n.op_type == "Conv"
                and next((a.i for a in n.attribute if a.name == "group"), 1) > 1
                and shapes[n.input[1]][0] == 2 * next(a.i for a in n.attribute if a.name == "group")]

    def reflect_pads(path):
        return [n for n in onnx.load(str(path)).graph.node if n.op_type == "Pad"
                and any(a.name == "mode" and a.s == b"reflect" for a in n.attribute)]

    assert len(reflect_pads(plain.path)) == 6
    assert multiplier_two_convs(static.path) == [] and reflect_pads(static.path) == []
    grouped = _randomise(SCEBlock(3))  # the checker itself finds a multiplier-2 conv
    torch.onnx.export(grouped.depthwise, (torch.randn(1, 3, 8, 8),), str(exported["folder"] / "g.onnx"), dynamo=False)
    assert len(multiplier_two_convs(exported["folder"] / "g.onnx")) == 1
    ops = onnx_operator_counts(static.path)
    assert ops["LayerNormalization"] == 16 and "Pad" not in ops


@pytest.mark.parametrize("kind", ["random", "rendered"])
def test_onnxruntime_parity(exported, tiny_net, kind):
    x = torch.randn(1, 3, *SIZE) if kind == "random" else _rendered_input()
    with torch.no_grad():
        ref = tiny_net(x)
    for key in ("static", "plain", "dynamic"):
        parity = check_parity(ref, OnnxRuntimeBackend(exported[key].path)(x))
        assert parity["max_rel"] < 1e-4, (key, parity)


def test_dynamic_shape_any_size(exported, tiny_net):
    backend = OnnxRuntimeBackend(exported["dynamic"].path)
    for shape in [(2, 3, 96, 128), (1, 3, 70, 100)]:  # another multiple of 32, and one that needs padding
        x = torch.randn(*shape)
        with torch.no_grad():
            ref = tiny_net(x)
        out = backend(x)
        assert out.shape == ref.shape
        assert check_parity(ref, out)["max_rel"] < 1e-4


def test_static_model_rejects_another_size_with_a_clear_error(exported):
    with pytest.raises(ValueError, match="exported for 64×96"):
        OnnxRuntimeBackend(exported["static"].path)(torch.randn(1, 3, 96, 128))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        OnnxRuntimeBackend(exported["static"].path)(torch.randn(3, 64, 96))


def test_export_argument_errors(tiny_net, tmp_path):
    with pytest.raises(ValueError, match="multiples of 32"):
        export_onnx(tiny_net, tmp_path / "x.onnx", (60, 96))
    with pytest.raises(ValueError, match="opset"):
        export_onnx(tiny_net, tmp_path / "x.onnx", SIZE, opset=13)
    with pytest.raises(FileNotFoundError, match="no such"):
        OnnxRuntimeBackend(tmp_path / "missing.onnx")


# ---- precisions -------------------------------------------------------------------------

def test_fp16_and_int8_run_within_accuracy_bounds(exported, tiny_net):
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    fp32 = exported["static"].path
    backends = precision_backends(tiny_net, fp32, synthetic_calibration_images(4, SIZE))
    assert list(backends) == ["PyTorch fp32", "ORT fp32", "ORT fp16", "ORT int8"]
    int8 = fp32.with_name(f"{fp32.stem}_int8.onnx")          # written beside the export
    assert int8.is_file() and fp32.with_name(f"{fp32.stem}_fp16.onnx").is_file()
    rows = precision_table(backends, synthetic_test_split(1, 2, SIZE))
    assert rows["PyTorch fp32"]["abs_rel_change"] == 0.0 and rows["ORT fp32"]["depth_change"] < 1e-4
    assert 0 < rows["ORT fp16"]["depth_change"] < 1e-2
    assert 0 < rows["ORT int8"]["depth_change"] < 0.1
    assert abs(rows["ORT fp16"]["abs_rel_change"]) < 0.01 and abs(rows["ORT int8"]["abs_rel_change"]) < 0.1
    assert all(np.isfinite(r["dbe_acc"]) for r in rows.values())
    ops = onnx_operator_counts(int8)
    assert ops.get("QuantizeLinear", 0) > 0 and ops.get("DequantizeLinear", 0) > 0


def _int8_weights(model_path) -> list[np.ndarray]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return [init[n.input[0]] for n in model.graph.node
            if n.op_type == "DequantizeLinear" and n.input[0] in init and init[n.input[0]].dtype == np.int8
            and init[n.input[0]].ndim == 4]


def test_int8_weights_have_7_bits_for_the_cpu_and_8_for_tensorrt(exported, tmp_path):
    """The CPU form keeps every u8×s8 pair sum inside int16 (2 × 255 × 64 < 32,768), so CPUs
    without VNNI (vpmaddubsw saturates) compute what CPUs with VNNI do; TensorRT's keeps 8 bits."""
    fp32, cal = exported["static"].path, synthetic_calibration_images(2, SIZE)
    cpu = _int8_weights(quantize_int8(fp32, tmp_path / "cpu.onnx", cal))
    largest = max(int(np.abs(w.astype(np.int32)).max()) for w in cpu)
    assert largest == 64 and 2 * 255 * largest < 2 ** 15                    # symmetric [-64, 64], all of it used
    trt = _int8_weights(quantize_int8(fp32, tmp_path / "trt.onnx", cal, symmetric_activations=True))
    assert max(int(np.abs(w).max()) for w in trt) == 127
    wide = _int8_weights(quantize_int8(fp32, tmp_path / "wide.onnx", cal, reduce_range=False))
    assert max(int(np.abs(w).max()) for w in wide) == 127


def test_int8_sensitivity_ranks_layers_and_keeping_the_worst_in_fp32_helps(exported):
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    import onnx

    folder, fp32 = exported["folder"], exported["static"].path
    dense = [n.name for n in onnx.load(str(fp32)).graph.node
             if n.op_type == "Conv" and n.name not in set(depthwise_conv_nodes(fp32))]
    first_three = dense[:3]                     # the input conv and the two after it; the rest stay fp32
    rest = [n for n in dense if n not in first_three]
    cal = synthetic_calibration_images(2, SIZE)
    ranking = int8_sensitivity(fp32, cal, exclude_nodes=rest)
    assert sorted(ranking) == sorted(first_three)
    values = list(ranking.values())
    assert values == sorted(values, reverse=True) and values[0] > 0
    all_three = quantize_int8(fp32, folder / "three.onnx", cal, exclude_nodes=rest)
    kept = quantize_int8(fp32, folder / "kept.onnx", cal, exclude_nodes=rest, keep_sensitive=1)
    qdq = onnx_operator_counts(all_three)["QuantizeLinear"], onnx_operator_counts(kept)["QuantizeLinear"]
    assert qdq[1] < qdq[0]                      # one conv fewer is quantised
    x = torch.from_numpy(cal[:1])
    ref = OnnxRuntimeBackend(fp32)(x)
    change = [float(((OnnxRuntimeBackend(p)(x) - ref).abs() / ref).mean()) for p in (all_three, kept)]
    assert change[1] < change[0]
    with pytest.raises(ValueError, match="keep_sensitive"):
        quantize_int8(fp32, folder / "bad.onnx", cal, keep_sensitive=-1)


def test_make_backend_torch_and_errors(tiny_net):
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        torch.testing.assert_close(make_backend("torch", tiny_net)(x), tiny_net(x))
    with pytest.raises(ValueError, match="expected one of"):
        make_backend("tflite", tiny_net)
    with pytest.raises(ValueError, match="precision"):
        make_backend("onnxruntime", tiny_net, precision="int4")
    with pytest.raises(ValueError, match="needs a DepthNet"):
        make_backend("torch", "model.onnx")
    with pytest.raises(ValueError, match="fp16 needs device='cuda'"):
        make_backend("torch", tiny_net, precision="fp16")
    with pytest.raises(ValueError, match="int8_keep_fp32=3 applies to backend 'onnxruntime'"):
        make_backend("torch", tiny_net, int8_keep_fp32=3)


# ---- TensorRT -----------------------------------------------------------------------------

def test_trtexec_commands_name_the_precisions_and_shapes():
    cmds = trtexec_commands("d.onnx", (256, 832), dynamic=True)
    assert "--fp16" in cmds["fp16"] and "--int8" in cmds["int8"] and "--fp16" not in cmds["fp32"]
    assert "--optShapes=image:1x3x256x832" in cmds["fp32"]


@pytest.mark.skipif(TRT_OK, reason="TensorRT is available here")
def test_tensorrt_missing_raises_with_the_reason(exported, tmp_path):
    from bore_depth_lite.deploy.tensorrt_backend import build_engine

    with pytest.raises(TensorRTUnavailable, match="TensorRT not available: "):
        build_engine(exported["static"].path, tmp_path / "x.engine")


@pytest.mark.tensorrt
@pytest.mark.skipif(not TRT_OK, reason=f"TensorRT not available: {TRT_REASON}")
@pytest.mark.parametrize("precision,tolerance", [("fp32", 1e-4), ("fp16", 1e-2), ("int8", 0.1)])
def test_tensorrt_engine_parity(exported, tiny_net, tmp_path, precision, tolerance):
    from bore_depth_lite.deploy.tensorrt_backend import TensorRTBackend, build_engine, time_engine

    engine = build_engine(exported["static"].path, tmp_path / f"tiny_{precision}.engine", precision)
    backend = TensorRTBackend(engine)
    x = _rendered_input()
    with torch.no_grad():
        ref = tiny_net(x)
    assert check_parity(ref, backend(x))["mean_rel"] < tolerance
    timing = time_engine(backend, SIZE, iterations=20, warmup=5)
    assert timing["median_ms"] > 0
