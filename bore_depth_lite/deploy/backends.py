"""One interface for every inference backend: ``backend(normalised_batch) -> depth``.

Pre- and post-processing stay in :mod:`bore_depth_lite.preprocess` / ``infer.py`` and are the
same for every backend; a backend only maps an ImageNet-normalised (B, 3, H, W) float32
tensor to depth (B, 1, H, W) float32 on the CPU. Sizes that are not multiples of 32 are
replicate-padded and cropped back exactly as ``DepthNet.forward`` does, so every backend
accepts what the PyTorch network accepts.

    backend = make_backend("onnxruntime", net, size=(256, 320), precision="int8")
    depth = backend(preprocess(rgb, "nyu"))
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .graph_input import check_input as _check_input, run_padded

__all__ = ["BACKENDS", "PRECISIONS", "TorchBackend", "OnnxRuntimeBackend", "make_backend"]

BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int8_bf16")


class TorchBackend:
    """PyTorch eager, as trained (``torch.no_grad``; optional fp16 autocast on CUDA)."""

    name = "torch"

    def __init__(self, net: nn.Module, device: str | torch.device = "cpu", precision: str = "fp32"):
        if precision not in ("fp32", "fp16"):
            raise ValueError(f"torch backend: precision={precision!r}; expected 'fp32' or 'fp16' (int8: use onnxruntime)")
        self.device = torch.device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("torch backend: fp16 needs device='cuda' (CPU half-precision convs are slow or missing)")
        self.net = net.to(self.device).eval()
        self.precision = precision

    @torch.no_grad()
    def __call__(self, image: Tensor) -> Tensor:
        x = _check_input(image).to(self.device)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.precision == "fp16"):
            depth = self.net(x)
        return depth.float().cpu()


class OnnxRuntimeBackend:
    """An ONNX file run by ONNX Runtime. Static-shape models accept only their own size."""

    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, provider: str = "cpu", threads: int | None = 2,
                 optimization: str = "all"):
        from .onnxruntime_backend import make_session

        self.path = Path(onnx_path)
        self.session = make_session(self.path, provider, threads, optimization)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.static_hw = tuple(inp.shape[2:4]) if all(isinstance(d, int) for d in inp.shape[2:4]) else None
        self.static_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def __call__(self, image: Tensor) -> Tensor:
        return run_padded(_check_input(image), self._run, self.static_hw, self.static_batch, self.path.name)

    def _run(self, x: Tensor) -> Tensor:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x.numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(out.astype(np.float32, copy=False))


def make_backend(name: str, model: nn.Module | str | Path, *, size: tuple[int, int] | None = None,
                 precision: str = "fp32", device: str = "cpu", threads: int | None = 2,
                 workdir: str | Path | None = None, calibration_images: np.ndarray | None = None,
                 int8_keep_fp32: int = 0):
    """Build a backend: ``callable(normalised (B, 3, H, W)) -> depth (B, 1, H, W)`` on the CPU.

    Args:
        name: ``"torch"``, ``"onnxruntime"``, ``"openvino"`` or ``"tensorrt"``.
        model: a DepthNet, or (onnxruntime/openvino/tensorrt) a path to an exported ``.onnx``
            (or, for tensorrt, a built ``.engine``/``.plan``).
        size: (H, W) to export a DepthNet at (static shapes, fastest); ``None`` = dynamic
            shapes (any multiple of 32; others are padded).
        precision: ``"fp32"``, ``"fp16"``, ``"bf16"``, ``"int8"`` or ``"int8_bf16"`` (int8:
            onnxruntime/openvino/tensorrt; bf16 and int8_bf16, INT8 with the rest in bf16: openvino
            on CPUs with avx512_bf16/amx_bf16; fp16: not openvino).
        device: ``"cpu"`` or ``"cuda"`` (onnxruntime's CUDA provider; tensorrt is always GPU; openvino CPU only).
        threads: CPU threads (torch, onnxruntime, openvino; openvino: ``None`` = torch's count).
        workdir: where exported/quantised files go (default: a temporary folder kept for
            the backend's lifetime).
        calibration_images: (N, 3, H, W) for int8; default: 8 rendered frames of the synthetic indoor
            world (the same for onnxruntime and openvino). Pass frames like the deployed ones: the
            shipped driving network, calibrated on those indoor frames, moves its depth by a median
            16-20 % under openvino int8, against 2.6 % calibrated on driving frames
            (``synthetic_calibration_images(8, size, preset="driving")``; tests/test_openvino.py).
        int8_keep_fp32: onnxruntime int8: keep this many of the most error-prone convs in fp32
            (``quantize_int8(keep_sensitive=...)``: one extra quantisation per conv to rank them).
    """
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r}: expected one of {BACKENDS}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: expected one of {PRECISIONS}")
    if "bf16" in precision and name != "openvino":
        raise ValueError(f"precision {precision!r} is offered by backend 'openvino' only, not {name!r}")
    if name == "openvino" and (precision == "fp16" or device != "cpu"):
        raise ValueError(f"backend 'openvino': precision={precision!r}, device={device!r}; expected precision "
                         "'fp32', 'bf16', 'int8' or 'int8_bf16' on device 'cpu'")
    if int8_keep_fp32 and (precision != "int8" or name != "onnxruntime"):
        raise ValueError(f"int8_keep_fp32={int8_keep_fp32} applies to backend 'onnxruntime' with precision 'int8' only")
    if name == "torch":
        if not isinstance(model, nn.Module):
            raise ValueError("backend 'torch' needs a DepthNet module, not a file path")
        if threads is not None:
            torch.set_num_threads(int(threads))
        return TorchBackend(model, device, precision)

    if name == "openvino":   # fail before the export when the package or the CPU's bf16 is missing
        from .openvino_backend import openvino_bf16_status, require_openvino

        require_openvino()
        bf16_ok, reason = openvino_bf16_status() if "bf16" in precision else (True, "")
        if not bf16_ok:
            raise ValueError(f"backend 'openvino' precision {precision!r}: {reason}")
    keep = None
    if workdir is None:
        keep = tempfile.TemporaryDirectory(prefix="bore_deploy_")
        workdir = keep.name
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if isinstance(model, nn.Module):
        from .export import export_onnx

        tag = f"{size[0]}x{size[1]}" if size else "dynamic"
        onnx_path = workdir / f"depthnet_{tag}.onnx"
        export_onnx(model, onnx_path, size or (256, 320), dynamic=size is None)
    else:
        onnx_path = Path(model)
        if not onnx_path.is_file():
            raise FileNotFoundError(f"{onnx_path}: no such model file")

    if name == "openvino":
        from .openvino_backend import OpenVinoBackend

        # int8 default calibration: ORT's 8 rendered frames at the model's size (256×320 if dynamic)
        backend = OpenVinoBackend(onnx_path, precision, threads, calibration_images)
    elif name == "tensorrt":
        from .tensorrt_backend import TensorRTBackend, build_engine

        if onnx_path.suffix in (".engine", ".plan"):
            backend = TensorRTBackend(onnx_path)
        else:
            engine = build_engine(onnx_path, workdir / f"{onnx_path.stem}_{precision}.engine", precision,
                                  calibration_images=calibration_images)
            backend = TensorRTBackend(engine)
    else:
        from .onnxruntime_backend import convert_to_fp16, quantize_int8, synthetic_calibration_images

        if precision == "fp16":
            onnx_path = convert_to_fp16(onnx_path, workdir / f"{onnx_path.stem}_fp16.onnx")
        elif precision == "int8":
            if calibration_images is None:
                calibration_images = synthetic_calibration_images(8, size or (256, 320))
            onnx_path = quantize_int8(onnx_path, workdir / f"{onnx_path.stem}_int8.onnx", calibration_images,
                                      keep_sensitive=int8_keep_fp32)
        backend = OnnxRuntimeBackend(onnx_path, provider=device, threads=threads)
    backend._workdir = keep  # the temporary folder lives as long as the backend
    return backend

