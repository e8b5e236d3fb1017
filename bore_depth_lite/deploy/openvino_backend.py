"""OpenVINO (CPU plugin): the package's ONNX export in fp32, bf16 and NNCF post-training INT8.

OpenVINO reads the same ``.onnx`` file ONNX Runtime runs (:func:`~bore_depth_lite.deploy.export.export_onnx`,
with its rewrites), compiles it with oneDNN kernels for the CPU it runs on, and picks the
precision from a hint. Why the settings look the way they do:

- ``INFERENCE_PRECISION_HINT`` is set explicitly, also for fp32: on a CPU with bf16 units
  (AVX-512 BF16, AMX) the plugin otherwise silently runs bf16, and "fp32" would not be fp32.
  For the same reason ``"int8"`` runs what it does not quantise (LayerNorm, softmax, GELU, the
  depth-wise convolutions, the resampling) in fp32 everywhere, and ``"int8_bf16"`` is the explicit
  choice of INT8 with the rest in bf16 (CPUs with bf16 units only): measured on a 2-core Xeon
  with AMX, paper network at 256×320, 1.9–2.2× ONNX Runtime's fp32 against 1.6× for ``"int8"``.
- INT8 keeps the depth head (the last 3×3 convolution, one output channel) in floating point:
  it costs nothing measurable and its rounding lands on every depth value (see
  :data:`DEPTH_HEAD_PATTERNS`).
- bf16 is only offered where the plugin reports ``BF16`` in ``OPTIMIZATION_CAPABILITIES``
  (``avx512_bf16`` or ``amx_bf16``); elsewhere the plugin would emulate it or fall back to
  fp32 without a word, so we refuse instead.
- INT8 comes from NNCF post-training quantisation of the OpenVINO model, calibrated on the
  frames ONNX Runtime's INT8 path uses (:func:`~bore_depth_lite.deploy.onnxruntime_backend.synthetic_calibration_images`).
  Measured with OpenVINO 2026.4 / NNCF 3.4 on this network: the default (CNN) preset's
  graph does not compile in the CPU plugin, so ``model_type=TRANSFORMER`` is used; fast bias
  correction crashes on the channels-first attention's MatMul bias (a reshape of the bias to
  the wrong axis), so it is disabled.
- ``PERFORMANCE_HINT=LATENCY`` (one stream: batch-1 latency, what a robot needs) and
  ``INFERENCE_NUM_THREADS`` from the caller, so comparisons with torch/ORT use equal threads.

    backend = OpenVinoBackend("depthnet_256x320.onnx", precision="int8", threads=2)
    depth = backend(preprocess(rgb, "nyu"))      # (1, 1, 256, 320) float32
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from .graph_input import check_input, run_padded

if TYPE_CHECKING:   # an optional dependency: imported where used
    import openvino

__all__ = ["DEPTH_HEAD_PATTERNS", "OPENVINO_PRECISIONS", "OpenVinoBackend", "openvino_capabilities", "openvino_bf16_status",
           "quantize_int8_openvino", "require_openvino"]

OPENVINO_PRECISIONS = ("fp32", "bf16", "int8", "int8_bf16")
_INSTALL = "pip install 'bore_depth_lite[openvino]'"
_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32", "int8_bf16": "bf16"}   # int8: what is not quantised stays f32
#: Kept in floating point by default in INT8: the 1-channel 3×3 convolution that makes the disparity
#: logits. It is ~0.1 % of the compute, and its rounding goes straight into every depth value (the
#: most sensitive layer in chapter 8's sweep); in float, the shipped paper network's INT8 + bf16 AbsRel
#: change on 16 rendered driving frames fell from +1.59 % to +0.48 % (Xeon, bench/deploy.py --openvino),
#: with latency within the run-to-run noise.
DEPTH_HEAD_PATTERNS = (r".*/depth_head/.*",)


def require_openvino() -> ModuleType:
    """The ``openvino`` module, or a one-line ImportError saying how to install it."""
    try:
        import openvino
    except ImportError:
        raise ImportError(f"backend 'openvino': the openvino package is not installed; {_INSTALL}") from None
    return openvino


def _require_nncf() -> ModuleType:
    try:
        import nncf
    except ImportError:
        raise ImportError(f"openvino precision 'int8': the nncf package is not installed; {_INSTALL}") from None
    return nncf


def openvino_capabilities(device: str = "CPU") -> list[str]:
    """What the OpenVINO ``device`` plugin reports it can compute fast: e.g. ``['FP32', 'INT8', 'BIN', ...]``."""
    ov = require_openvino()
    return list(ov.Core().get_property(device, "OPTIMIZATION_CAPABILITIES"))


def openvino_bf16_status() -> tuple[bool, str]:
    """(bf16 available, reason): whether the CPU plugin lists ``BF16`` in its capabilities."""
    caps = openvino_capabilities()
    if "BF16" in caps:
        return True, f"CPU plugin reports BF16 (capabilities {', '.join(caps)})"
    return False, (f"this CPU lacks bf16: OpenVINO's CPU capabilities are {', '.join(caps)}; "
                   "bf16 needs the avx512_bf16 or amx_bf16 CPU flag")


def _calibration_dataset(images: np.ndarray, nncf: ModuleType):
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4 or images.shape[1] != 3 or len(images) == 0:
        raise ValueError(f"calibration_images must be (N, 3, H, W) with N ≥ 1, got {images.shape}")
    return nncf.Dataset([images[i:i + 1] for i in range(len(images))]), len(images)


def quantize_int8_openvino(model_path: str | os.PathLike | openvino.Model, calibration_images: np.ndarray,
                           out_path: str | os.PathLike | None = None, ignored_types: tuple[str, ...] = (),
                           ignored_patterns: tuple[str, ...] | None = None) -> openvino.Model:
    """NNCF post-training INT8 of an ONNX (or OpenVINO IR) model; returns the ``openvino.Model``.

    Args:
        model_path: the fp32 ``.onnx`` export (static shapes recommended) or an IR ``.xml``, or
            the ``openvino.Model`` already read from one.
        calibration_images: (N, 3, H, W) float32 network inputs, calibrated one frame at a time.
        out_path: also save the quantised IR here (``.xml`` + ``.bin``) to skip quantising next time.
        ignored_types: OpenVINO operation types to keep in fp32 (e.g. ``("MatMul",)``: only the
            convolutions in int8, like ONNX Runtime's recipe).
        ignored_patterns: regular expressions over operation names (``re.fullmatch``) to keep in
            floating point. ``None``: the DepthNet's depth head (:data:`DEPTH_HEAD_PATTERNS`), where
            the model has one; ``()``: quantise everything NNCF would. A pattern given explicitly must
            match an operation.
    """
    import logging

    ov = require_openvino()
    nncf = _require_nncf()
    dataset, count = _calibration_dataset(calibration_images, nncf)
    nncf.set_log_level(logging.ERROR)   # its INFO lines per algorithm step would flood notebooks and logs
    model = model_path if isinstance(model_path, ov.Model) else ov.Core().read_model(str(model_path))
    names = [op.get_friendly_name() for op in model.get_ops()]

    def matches(pattern: str) -> bool:
        return any(re.fullmatch(pattern, n) for n in names)

    if ignored_patterns is None:   # the default applies to DepthNet exports only
        ignored_patterns = tuple(filter(matches, DEPTH_HEAD_PATTERNS))
    else:
        for pattern in ignored_patterns:
            if not matches(pattern):
                raise ValueError(f"ignored_patterns: {pattern!r} matches no operation of the model "
                                 f"(names look like {names[len(names) // 2]!r})")
    scope = (nncf.IgnoredScope(types=list(ignored_types), patterns=list(ignored_patterns))
             if ignored_types or ignored_patterns else None)
    # NNCF draws its progress bars on stdout: send them to stderr so stdout stays the caller's (JSON, tables)
    with contextlib.redirect_stdout(sys.stderr):
        quantized = nncf.quantize(model, dataset, subset_size=count, model_type=nncf.ModelType.TRANSFORMER,
                                  ignored_scope=scope,
                                  advanced_parameters=nncf.AdvancedQuantizationParameters(disable_bias_correction=True))
    if out_path is not None:
        ov.save_model(quantized, str(out_path), compress_to_fp16=False)
    return quantized


class OpenVinoBackend:
    """An ONNX export (or IR) compiled by OpenVINO's CPU plugin. Static-shape models accept only their own size.

    Args:
        model: path to the ``.onnx`` export (or an OpenVINO IR ``.xml``; an int8 IR is used as is).
        precision: ``"fp32"``, ``"bf16"`` (CPUs with avx512_bf16/amx_bf16 only), ``"int8"``
            (NNCF post-training quantisation at construction; the rest in fp32) or ``"int8_bf16"``
            (the same INT8 model with the rest in bf16; CPUs with bf16 only).
        threads: ``INFERENCE_NUM_THREADS``; ``None`` = torch's thread count.
        calibration_images: (N, 3, H, W) for int8; default: the 8 rendered frames ONNX Runtime's
            INT8 path calibrates on, at the model's size (256×320 for a dynamic model).
        int8_ignored_types, int8_ignored_patterns: int8: what stays in floating point (see
            :func:`quantize_int8_openvino`; by default the depth head).
        extra_config: more CPU-plugin properties for ``compile_model`` (e.g. ``{"PERF_COUNT": True}``
            for per-node counters through ``backend.request.get_profiling_info()``).
    """

    name = "openvino"

    def __init__(self, model: str | os.PathLike, precision: str = "fp32", threads: int | None = None,
                 calibration_images: np.ndarray | None = None, int8_ignored_types: tuple[str, ...] = (),
                 int8_ignored_patterns: tuple[str, ...] | None = None, extra_config: dict | None = None):
        if precision not in OPENVINO_PRECISIONS:
            raise ValueError(f"openvino precision {precision!r}: expected one of {OPENVINO_PRECISIONS}")
        if threads is not None and int(threads) < 1:
            raise ValueError(f"threads={threads}: expected an integer ≥ 1 or None")
        ov = require_openvino()
        self.path = Path(model)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such model file")
        if "bf16" in precision:
            ok, reason = openvino_bf16_status()
            if not ok:
                raise ValueError(f"openvino precision {precision!r}: {reason}")
        core = ov.Core()
        ov_model = core.read_model(str(self.path))
        shape = ov_model.inputs[0].get_partial_shape()
        dims = [d.get_length() if d.is_static else None for d in shape]
        self.static_hw = tuple(dims[2:4]) if None not in dims[2:4] else None
        self.static_batch = dims[0]
        self.prequantized = any(op.get_type_name() == "FakeQuantize" for op in ov_model.get_ops())
        if self.prequantized and not precision.startswith("int8"):
            raise ValueError(f"{self.path.name} is already quantised (FakeQuantize nodes): expected precision 'int8' "
                             f"or 'int8_bf16', got {precision!r}")
        if precision.startswith("int8") and not self.prequantized:   # an int8 IR (quantize_int8_openvino(out_path=...)) runs as is
            if calibration_images is None:
                from .onnxruntime_backend import synthetic_calibration_images

                calibration_images = synthetic_calibration_images(8, self.static_hw or (256, 320))
            ov_model = quantize_int8_openvino(ov_model, calibration_images, ignored_types=int8_ignored_types,
                                              ignored_patterns=int8_ignored_patterns)
        self.precision = precision
        self.threads = int(threads) if threads is not None else torch.get_num_threads()
        self.config = {"INFERENCE_PRECISION_HINT": _HINTS[precision], "INFERENCE_NUM_THREADS": self.threads,
                       "PERFORMANCE_HINT": "LATENCY", **(extra_config or {})}
        self.compiled = core.compile_model(ov_model, "CPU", self.config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, image: Tensor) -> Tensor:
        """Normalised (B, 3, H, W) float → depth (B, 1, H, W) float32 on the CPU (padded to 32 and cropped back)."""
        return run_padded(check_input(image).cpu(), self._run, self.static_hw, self.static_batch, self.path.name)

    def _run(self, x: Tensor) -> Tensor:
        self.request.infer({0: np.ascontiguousarray(x.numpy(), dtype=np.float32)})
        # the request reuses its output buffer on the next call: copy it out
        out = np.array(self.request.get_output_tensor(0).data, dtype=np.float32, copy=True)
        return torch.from_numpy(out)
