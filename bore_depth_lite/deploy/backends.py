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

from ..models import pad_to_multiple

__all__ = ["BACKENDS", "TorchBackend", "OnnxRuntimeBackend", "make_backend"]

BACKENDS = ("torch", "onnxruntime", "tensorrt")


def _check_input(image: Tensor) -> Tensor:
    if not isinstance(image, Tensor) or image.ndim != 4 or image.shape[1] != 3:
        shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise ValueError(f"expected a normalised image batch (B, 3, H, W), got {shape}")
    if not image.is_floating_point():
        # uint8 0-255 or integer pixels are not ImageNet-normalised inputs: casting them would
        # run the network on garbage without a word.
        raise ValueError(f"expected a float ImageNet-normalised batch (see preprocess()), got dtype {image.dtype}")
    return image.float()


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
        x = _check_input(image)
        h, w = x.shape[-2:]
        if self.static_hw is None or (h, w) != self.static_hw:   # a static graph of its exact size runs unpadded
            x, (h, w) = pad_to_multiple(x, 32)
            if self.static_hw is not None and tuple(x.shape[-2:]) != self.static_hw:
                sh, sw = self.static_hw
                accepted = f"{sh}×{sw}" if sh % 32 or sw % 32 else f"{sh - 31}..{sh}×{sw - 31}..{sw}"
                raise ValueError(f"{self.path.name} was exported for {sh}×{sw} inputs (accepts {accepted}), got {h}×{w} "
                                 f"(padded to {x.shape[-2]}×{x.shape[-1]}); export with dynamic=True or at this size")
        if self.static_batch is not None and x.shape[0] != self.static_batch:
            outs = [self._run(x[i:i + 1]) for i in range(x.shape[0])]
            return torch.cat(outs)[..., :h, :w]
        return self._run(x)[..., :h, :w]

    def _run(self, x: Tensor) -> Tensor:
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x.numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(out.astype(np.float32, copy=False))


def make_backend(name: str, model: nn.Module | str | Path, *, size: tuple[int, int] | None = None,
                 precision: str = "fp32", device: str = "cpu", threads: int | None = 2,
                 workdir: str | Path | None = None, calibration_images: np.ndarray | None = None,
                 int8_keep_fp32: int = 0):
    """Build a backend: ``callable(normalised (B, 3, H, W)) -> depth (B, 1, H, W)`` on the CPU.

    Args:
        name: ``"torch"``, ``"onnxruntime"`` or ``"tensorrt"``.
        model: a DepthNet, or (onnxruntime/tensorrt) a path to an exported ``.onnx``
            (or, for tensorrt, a built ``.engine``/``.plan``).
        size: (H, W) to export a DepthNet at (static shapes, fastest); ``None`` = dynamic
            shapes (any multiple of 32; others are padded).
        precision: ``"fp32"``, ``"fp16"`` or ``"int8"`` (int8: onnxruntime/tensorrt).
        device: ``"cpu"`` or ``"cuda"`` (onnxruntime's CUDA provider; tensorrt is always GPU).
        threads: CPU threads (torch and onnxruntime).
        workdir: where exported/quantised files go (default: a temporary folder kept for
            the backend's lifetime).
        calibration_images: (N, 3, H, W) for int8; default: 8 rendered synthetic frames.
        int8_keep_fp32: onnxruntime int8: keep this many of the most error-prone convs in fp32
            (``quantize_int8(keep_sensitive=...)``: one extra quantisation per conv to rank them).
    """
    if name not in BACKENDS:
        raise ValueError(f"backend {name!r}: expected one of {BACKENDS}")
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"precision {precision!r}: expected 'fp32', 'fp16' or 'int8'")
    if int8_keep_fp32 and (precision != "int8" or name != "onnxruntime"):
        raise ValueError(f"int8_keep_fp32={int8_keep_fp32} applies to backend 'onnxruntime' with precision 'int8' only")
    if name == "torch":
        if not isinstance(model, nn.Module):
            raise ValueError("backend 'torch' needs a DepthNet module, not a file path")
        if threads is not None:
            torch.set_num_threads(int(threads))
        return TorchBackend(model, device, precision)

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

    if name == "tensorrt":
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

