"""ONNX Runtime: sessions, FP16 conversion and INT8 static quantisation of an exported DepthNet.

Why the INT8 recipe looks the way it does (each choice measured, see the deployment chapter):
- Only convolutions are quantised by default. LayerNorm, softmax, GELU, ELU and Hardswish
  have no integer kernels in ORT, so every quantised operator is wrapped in
  Quantize/Dequantize pairs; the attention's small matrix products (d×d per head) save less
  than their pairs cost (measured: Conv-only 630 ms, +MatMul/Gemm 686 ms single-thread).
- Depth-wise convs are left in fp32 by default: they are memory-bound (9 MACs per output),
  so int8 saves almost nothing while each adds a Q/DQ pair (and a little rounding error: quantising
  them too moved the shipped network's depth by 8.5 % instead of 8.3 %).
- Activations uint8 (asymmetric), weights int8 per output channel: the u8×s8 product is
  what AVX-512 VNNI (``vpdpbusd``) and ARM ``sdot``/``udot`` kernels are built for.
- Weights in 7 bits (``reduce_range``: symmetric, [-64, 64]). An x86 CPU without VNNI (AVX2, AVX-512
  without VNNI) multiplies u8×s8 with ``vpmaddubsw``, which adds two products into a saturating
  int16: 2 × 255 × 127 = 64,770 overflows it, 2 × 255 × 64 = 32,640 does not. With 8-bit
  weights the same model gave other depth on such a CPU than on one with VNNI (the shipped
  tiny network: 3.6 % mean depth change on a Zen 1 / Zen 3 against 1.6 % on a Xeon with VNNI);
  with 7 bits every x86 CPU computes the same exact integer sums, at the cost of one bit of
  weight resolution (on the VNNI Xeon: 1.7 % instead of 1.6 %). The TensorRT form
  (``symmetric_activations``) keeps 8 bits: GPUs do not saturate.
- Calibration on rendered synthetic frames (the deployment's image statistics), not noise.
- A few layers carry most of the error (for the shipped network, the 3-channel input conv
  alone: 8.8 % mean depth change of the 8.3 % with everything quantised). ``keep_sensitive``
  keeps the k worst in fp32, ranked by :func:`int8_sensitivity` on the calibration images.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

__all__ = ["ort_available_providers", "make_session", "convert_to_fp16", "quantize_int8", "int8_sensitivity",
           "synthetic_calibration_images", "depthwise_conv_nodes"]


def ort_available_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


def make_session(onnx_path: str | os.PathLike, provider: str = "cpu", threads: int | None = 2,
                 optimization: str = "all", profile_prefix: str | None = None, options: dict | None = None,
                 spinning: bool = True):
    """An ``onnxruntime.InferenceSession`` with graph optimisation.

    Args:
        onnx_path: the model file.
        provider: ``"cpu"`` or ``"cuda"`` (raises a clear error when ORT has no CUDA provider).
        threads: intra-op threads (``None`` = ORT's default, all cores).
        optimization: ``"all"`` (layout transforms + fusions; ORT_ENABLE_ALL), ``"extended"``,
            ``"basic"`` or ``"none"``.
        profile_prefix: write an ORT per-operator profile with this file prefix.
        options: further session settings, applied last: a key with a dot is a session
            configuration entry (``{"session.intra_op.allow_spinning": "0"}``), any other key an
            ``onnxruntime.SessionOptions`` attribute (``{"enable_mem_pattern": False}``,
            ``{"optimized_model_filepath": "opt.onnx"}``). ``bench/ort_profile.py`` measures them.
        spinning: let idle pool threads spin-wait for work (ORT's default) instead of sleeping.
            Which is faster depends on whether the cores are free. Paper DepthNet, 256×320,
            2 threads, 2-core Zen 3: on a quiet machine spinning is faster (158 vs 178 ms,
            −21 ms, 95 % interval −25…−12; bench/results/ort_spinning_quiet_epyc_zen3.json);
            with other processes busy the spinning thread burns the process's share of the
            cores and it is slower (650 vs 526 ms; bench/results/ort_profile_epyc_zen3.json,
            where "default" is the session without spinning). Pass ``spinning=False`` on a
            shared, loaded machine. One thread has no pool threads: no effect there.
    """
    import onnxruntime as ort

    path = Path(onnx_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX file")
    levels = {"all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}
    if optimization not in levels:
        raise ValueError(f"optimization={optimization!r}: expected one of {sorted(levels)}")
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[optimization]
    if threads is not None:
        so.intra_op_num_threads = int(threads)
        so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = str(profile_prefix)
    so.log_severity_level = 3  # keep warnings about hardware-specific rewrites out of notebooks
    if "session.intra_op.allow_spinning" not in (options or {}):
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")  # see ``spinning``
    for key, value in (options or {}).items():
        if "." in key:
            so.add_session_config_entry(key, str(value))
        elif hasattr(so, key):
            setattr(so, key, value)
        else:
            raise ValueError(f"options: {key!r} is neither a SessionOptions attribute nor a configuration entry "
                             "(entries have dotted names, e.g. 'session.intra_op.allow_spinning')")
    if provider == "cpu":
        providers = ["CPUExecutionProvider"]
    elif provider == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError("provider='cuda': this onnxruntime has no CUDAExecutionProvider "
                               f"(available: {ort.get_available_providers()}); install onnxruntime-gpu on a CUDA machine")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    else:
        raise ValueError(f"provider={provider!r}: expected 'cpu' or 'cuda'")
    return ort.InferenceSession(str(path), so, providers=providers)


def convert_to_fp16(onnx_path: str | os.PathLike, out_path: str | os.PathLike, keep_io_types: bool = True) -> Path:
    """Convert weights and activations to float16 (inputs/outputs stay float32 by default).

    FP16 pays off on GPUs (CUDA provider, TensorRT) and ARM CPUs with FP16 arithmetic; ORT's
    x86 CPU provider has few fp16 kernels and inserts casts, so it is *slower* there.
    Resize and the depth head's Sigmoid/Reciprocal stay in fp32 (depth = 1/disparity needs
    the head's full precision near the 0.01 disparity floor).
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(onnx_path))
    keep_fp32 = [n.name for n in model.graph.node if n.op_type in ("Sigmoid", "Reciprocal")]
    fp16 = convert_float_to_float16(model, keep_io_types=keep_io_types, node_block_list=keep_fp32,
                                    op_block_list=["Resize"])
    _topological_sort(fp16.graph)  # the converter appends its input casts after their users
    out = Path(out_path)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(fp16, str(tmp))
    onnx.checker.check_model(str(tmp))
    tmp.replace(out)
    return out


def _topological_sort(graph) -> None:
    """Reorder ``graph.node`` in place so every node comes after the producers of its inputs."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in available for i in n.input)]
        if not ready:
            raise ValueError(f"graph has a cycle or a missing input near node {pending[0].name!r}")
        for n in ready:
            ordered.append(n)
            available.update(n.output)
        ready_ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ready_ids]
    del graph.node[:]
    graph.node.extend(ordered)


def synthetic_calibration_images(num_images: int = 8, size: tuple[int, int] = (256, 320), preset: str = "indoor",
                                 seed: int = 1000) -> np.ndarray:
    """Rendered synthetic frames, ImageNet-normalised: (num_images, 3, H, W) float32.

    Seeds differ from the test split's (see :mod:`bore_depth_lite.deploy.accuracy`), so the
    calibration never sees a test frame. Frames come from several short sequences so the
    calibration covers different worlds.
    """
    import torch

    from ..data.synthetic import render_sequence
    from ..preprocess import preprocess

    if num_images < 1:
        raise ValueError(f"num_images={num_images}: need at least 1")
    h, w = size
    per_seq = 2
    images = []
    for i in range((num_images + per_seq - 1) // per_seq):
        seq = render_sequence(preset, per_seq, h, w, seed=seed + i, speed=4.0)
        images += [preprocess(rgb, None)[0] for rgb in seq.rgb]
    return torch.stack(images[:num_images]).numpy().astype(np.float32)


def depthwise_conv_nodes(onnx_path: str | os.PathLike) -> list[str]:
    """Names of Conv nodes whose ``group`` equals their input channels (depth-wise)."""
    import onnx

    model = onnx.load(str(onnx_path))
    weights = {init.name: tuple(init.dims) for init in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        shape = weights.get(node.input[1])
        if group > 1 and shape is not None and shape[1] == 1:
            names.append(node.name)
    return names


class _ArrayReader:
    """``CalibrationDataReader`` over an (N, 3, H, W) array, one image per call."""

    def __init__(self, input_name: str, images: np.ndarray):
        self.input_name = input_name
        self.images = images
        self.index = 0

    def get_next(self):
        if self.index >= len(self.images):
            return None
        self.index += 1
        return {self.input_name: self.images[self.index - 1:self.index]}

    def rewind(self):
        self.index = 0


def quantize_int8(onnx_path: str | os.PathLike, out_path: str | os.PathLike, calibration_images: np.ndarray,
                  op_types: Sequence[str] = ("Conv",), quantize_depthwise: bool = False,
                  exclude_nodes: Iterable[str] = (), method: str = "minmax", per_channel: bool = True,
                  quant_format: str = "qdq", keep_sensitive: int = 0, symmetric_activations: bool = False,
                  reduce_range: bool | None = None) -> Path:
    """INT8 static quantisation (u8 activations, s8 per-channel weights), calibrated on images.

    Args:
        onnx_path: an fp32 model (static shapes recommended).
        out_path: where to write the quantised model.
        calibration_images: (N, 3, H, W) float32 network inputs (see
            :func:`synthetic_calibration_images`).
        op_types: operator types to quantise.
        quantize_depthwise: also quantise depth-wise convs (see the module docstring).
        exclude_nodes: further node names to keep in fp32.
        method: calibration ``"minmax"``, ``"entropy"`` or ``"percentile"``.
        per_channel: per-output-channel weight scales.
        quant_format: ``"qdq"`` (QuantizeLinear/DequantizeLinear pairs; what TensorRT reads too)
            or ``"qoperator"`` (QLinearConv … nodes).
        keep_sensitive: keep this many more Conv nodes in fp32, the ones that change the output
            most when quantised alone (:func:`int8_sensitivity` on the calibration images; costs
            one quantisation per Conv).
        symmetric_activations: s8 activations with zero point 0 instead of u8 with a zero point,
            and float biases: what TensorRT requires of a QDQ model (symmetric INT8 only).
        reduce_range: 7-bit weights, so that x86 CPUs without VNNI cannot saturate (module
            docstring); ``None``: 7 bits for u8 activations (the CPU form), 8 for symmetric ones.
    """
    if reduce_range is None:
        reduce_range = not symmetric_activations
    images = _check_calibration(calibration_images)
    if keep_sensitive < 0:
        raise ValueError(f"keep_sensitive={keep_sensitive}: expected ≥ 0")
    out = Path(out_path)
    with _prepared(onnx_path, out) as prep:
        excluded = list(exclude_nodes) + ([] if quantize_depthwise else depthwise_conv_nodes(prep))
        options = dict(op_types=op_types, method=method, per_channel=per_channel, quant_format=quant_format,
                       symmetric_activations=symmetric_activations, reduce_range=reduce_range)
        if keep_sensitive:
            ranking = _sensitivity(prep, images, excluded, options)
            excluded += list(ranking)[:keep_sensitive]
        _quantize(prep, out, images, excluded, **options)
    return out


def int8_sensitivity(onnx_path: str | os.PathLike, calibration_images: np.ndarray, quantize_depthwise: bool = False,
                     exclude_nodes: Iterable[str] = (), **options) -> dict[str, float]:
    """How much each Conv alone costs in INT8: ``{node name: mean |Δdepth| / depth}``, largest first.

    Leave-one-in: for every Conv that :func:`quantize_int8` would quantise, quantise only that
    node (calibrated on ``calibration_images``) and run the model on the same images. The
    result ranks layers for ``exclude_nodes`` / ``keep_sensitive``; it never sees test data.
    ``options``: ``op_types``, ``method``, ``per_channel``, ``quant_format``,
    ``symmetric_activations``, ``reduce_range`` as in :func:`quantize_int8` (and its defaults).
    """
    images = _check_calibration(calibration_images)
    if options.get("reduce_range") is None:
        options["reduce_range"] = not options.get("symmetric_activations", False)
    with tempfile.TemporaryDirectory(prefix="int8_sensitivity_") as tmp, _prepared(onnx_path, Path(tmp) / "m.onnx") as prep:
        excluded = list(exclude_nodes) + ([] if quantize_depthwise else depthwise_conv_nodes(prep))
        return _sensitivity(prep, images, excluded, {"op_types": ("Conv",), "method": "minmax", "per_channel": True,
                                                     "quant_format": "qdq", **options})


def _sensitivity(prep: Path, images: np.ndarray, excluded: list[str], options: dict) -> dict[str, float]:
    import onnx

    sess = make_session(prep, threads=1)
    name = sess.get_inputs()[0].name
    reference = np.concatenate([sess.run(None, {name: images[i:i + 1]})[0] for i in range(len(images))])
    convs = [n.name for n in onnx.load(str(prep)).graph.node if n.op_type in options["op_types"]]
    skip = set(excluded)
    candidates = [c for c in convs if c not in skip]
    change = {}
    trial = prep.with_name("trial.onnx")
    try:
        for node in candidates:
            _quantize(prep, trial, images, [c for c in convs if c != node], **options)
            sess = make_session(trial, threads=1)
            out = np.concatenate([sess.run(None, {name: images[i:i + 1]})[0] for i in range(len(images))])
            change[node] = float(np.mean(np.abs(out - reference) / np.maximum(np.abs(reference), 1e-6)))
    finally:
        trial.unlink(missing_ok=True)
    return dict(sorted(change.items(), key=lambda kv: kv[1], reverse=True))


def _check_calibration(calibration_images: np.ndarray) -> np.ndarray:
    images = np.asarray(calibration_images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1] != 3 or len(images) == 0:
        raise ValueError(f"calibration_images must be (N, 3, H, W) with N ≥ 1, got {images.shape}")
    return images


@contextlib.contextmanager
def _prepared(onnx_path: str | os.PathLike, out: Path):
    """ORT's pre-processing (shape inference, folding) next to ``out``; removed afterwards."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prep = out.with_name(out.stem + ".prep.onnx")
    try:
        quant_pre_process(str(onnx_path), str(prep), skip_symbolic_shape=True)
        yield prep
    finally:
        prep.unlink(missing_ok=True)


def _quantize(prep: Path, out: Path, images: np.ndarray, excluded: list[str], *, op_types: Sequence[str],
              method: str, per_channel: bool, quant_format: str, reduce_range: bool,
              symmetric_activations: bool = False) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    if method not in methods:
        raise ValueError(f"method={method!r}: expected one of {sorted(methods)}")
    formats = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
    if quant_format not in formats:
        raise ValueError(f"quant_format={quant_format!r}: expected one of {sorted(formats)}")
    tmp = out.with_name(out.name + ".tmp")
    try:
        input_name = onnx.load(str(prep)).graph.input[0].name
        quantize_static(str(prep), str(tmp), _ArrayReader(input_name, images), quant_format=formats[quant_format],
                        op_types_to_quantize=list(op_types), per_channel=per_channel,
                        activation_type=QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
                        weight_type=QuantType.QInt8, nodes_to_exclude=excluded, calibrate_method=methods[method],
                        reduce_range=reduce_range,
                        # TensorRT's form: biases stay float (it fuses them itself; no int32 DequantizeLinear)
                        extra_options={"ActivationSymmetric": symmetric_activations, "WeightSymmetric": True,
                                       "QuantizeBias": not symmetric_activations})
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
