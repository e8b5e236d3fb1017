"""TensorRT: build an engine from the exported ONNX file, run it, time it.

Runs wherever ``tensorrt`` imports and CUDA is present (a desktop GPU, or a Jetson with
JetPack, whose TensorRT Python bindings come with the OS image). Elsewhere
:func:`tensorrt_status` says why, and every entry point raises :class:`TensorRTUnavailable`
with that reason — nothing here ever returns a made-up number.

Written against the TensorRT 8.5 – 10.x Python API (JetPack 5.1 ships 8.5, JetPack 6.0 8.6,
JetPack 6.1+ 10.x): explicit-batch networks, ``set_memory_pool_limit``, name-based I/O on
10.x with a fallback to bindings on 8.x.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["TensorRTUnavailable", "tensorrt_status", "build_engine", "TensorRTBackend", "time_engine",
           "trtexec_commands"]


class TensorRTUnavailable(RuntimeError):
    """TensorRT cannot run here; the message says why."""


def tensorrt_status() -> tuple[bool, str]:
    """(available, reason): ``tensorrt`` importable and a CUDA device present."""
    try:
        import tensorrt as trt
    except ImportError as err:
        return False, f"the tensorrt Python package is not installed ({err}); it comes with JetPack on a Jetson, " \
                      "or `pip install tensorrt` on a machine with an NVIDIA GPU"
    if not torch.cuda.is_available():
        return False, f"tensorrt {trt.__version__} imports but CUDA is not available (no NVIDIA GPU / driver)"
    return True, f"tensorrt {trt.__version__} on {torch.cuda.get_device_name(0)}"


def _require_tensorrt():
    ok, reason = tensorrt_status()
    if not ok:
        raise TensorRTUnavailable(f"TensorRT not available: {reason}")
    import tensorrt as trt

    return trt


def _make_calibrator(trt, images: np.ndarray, cache_file: Path):
    """An entropy calibrator (TensorRT's implicit INT8) feeding ``images`` one at a time."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            super().__init__()
            self.images = np.ascontiguousarray(images, dtype=np.float32)
            self.index = 0
            self.device_input = torch.empty((1, *self.images.shape[1:]), dtype=torch.float32, device="cuda")

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            if self.index >= len(self.images):
                return None
            self.device_input.copy_(torch.from_numpy(self.images[self.index:self.index + 1]))
            self.index += 1
            return [int(self.device_input.data_ptr())]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache):
            cache_file.write_bytes(bytes(cache))

    return EntropyCalibrator()


def build_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, precision: str = "fp16", *,
                 calibration_images: np.ndarray | None = None, workspace_gib: float = 1.0,
                 shapes: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]] | None = None) -> Path:
    """Build and serialise a TensorRT engine.

    Args:
        onnx_path: exported model (static or dynamic shapes).
        engine_path: output file (``.engine``); engines are specific to the GPU and the
            TensorRT version that built them: build on the target (the Jetson itself).
        precision: ``"fp32"``, ``"fp16"`` (FP16 kernels allowed, the default on Orin) or
            ``"int8"`` (INT8 + FP16 fallback; a QDQ model is used as is, a float model is
            calibrated on ``calibration_images`` with the entropy calibrator).
        workspace_gib: builder scratch memory.
        shapes: (min, opt, max) input shapes for a dynamic-shape model.
    """
    trt = _require_tensorrt()
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"precision={precision!r}: expected 'fp32', 'fp16' or 'int8'")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0 if int(trt.__version__.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT's ONNX parser refused the model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        has_qdq = any(network.get_layer(i).type == trt.LayerType.QUANTIZE for i in range(network.num_layers))
        if not has_qdq:
            if calibration_images is None:
                from .onnxruntime_backend import synthetic_calibration_images

                h, w = network.get_input(0).shape[2:4]
                calibration_images = synthetic_calibration_images(8, (h if h > 0 else 256, w if w > 0 else 320))
            config.int8_calibrator = _make_calibrator(trt, calibration_images, Path(engine_path).with_suffix(".calib"))
    inp = network.get_input(0)
    if any(d < 0 for d in inp.shape):
        if shapes is None:
            raise ValueError(f"{onnx_path} has dynamic input {tuple(inp.shape)}: pass shapes=(min, opt, max)")
        profile = builder.create_optimization_profile()
        profile.set_shape(inp.name, *shapes)
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    out = Path(engine_path)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(out)
    return out


class TensorRTBackend:
    """A deserialised engine: ``backend(normalised (B, 3, H, W)) -> depth (B, 1, H, W)`` on the CPU.

    ``backend.run_device(x_cuda)`` keeps data on the GPU (what :func:`time_engine` times).
    """

    name = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike):
        trt = _require_tensorrt()
        self.trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise RuntimeError(f"{engine_path}: not an engine for this TensorRT/GPU (rebuild it here)")
        self.context = self.engine.create_execution_context()
        self.v10 = hasattr(self.engine, "num_io_tensors")
        if self.v10:
            names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
            self.input_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
            self.output_name = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.stream = torch.cuda.Stream()

    def run_device(self, x: Tensor) -> Tensor:
        """CUDA float32 (B, 3, H, W), contiguous → CUDA float32 (B, 1, H, W)."""
        x = x.contiguous()
        out = torch.empty((x.shape[0], 1, x.shape[2], x.shape[3]), dtype=torch.float32, device=x.device)
        self.stream.wait_stream(torch.cuda.current_stream())  # x and out were made on the current stream
        if self.v10:
            self.context.set_input_shape(self.input_name, tuple(x.shape))
            self.context.set_tensor_address(self.input_name, int(x.data_ptr()))
            self.context.set_tensor_address(self.output_name, int(out.data_ptr()))
            self.context.execute_async_v3(self.stream.cuda_stream)
        else:  # TensorRT 8.x: binding 0 is the input, 1 the output
            self.context.set_binding_shape(0, tuple(x.shape))
            self.context.execute_async_v2([int(x.data_ptr()), int(out.data_ptr())], self.stream.cuda_stream)
        self.stream.synchronize()
        return out

    def __call__(self, image: Tensor) -> Tensor:
        from ..models import pad_to_multiple

        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"expected a normalised image batch (B, 3, H, W), got {tuple(image.shape)}")
        x, (h, w) = pad_to_multiple(image.float(), 32)
        return self.run_device(x.cuda())[..., :h, :w].cpu()


def time_engine(backend: TensorRTBackend, size: tuple[int, int] = (256, 320), batch: int = 1,
                warmup: int = 20, iterations: int = 200) -> dict[str, float]:
    """GPU latency of the engine alone (data already on the GPU), as ``trtexec`` reports it.

    Returns median/p90 latency in ms and throughput in images/s (batch / median latency).
    """
    x = torch.randn(batch, 3, *size, device="cuda")
    for _ in range(warmup):
        backend.run_device(x)
    times = []
    for _ in range(iterations):
        t = time.perf_counter()
        backend.run_device(x)  # synchronises its stream
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1e3
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
            "throughput_fps": float(batch * 1e3 / np.median(ms)), "iterations": iterations}


def trtexec_commands(onnx_path: str = "depthnet_256x320.onnx", size: tuple[int, int] = (256, 320),
                     dynamic: bool = False) -> dict[str, str]:
    """The ``trtexec`` command lines that build and time the same engines (one per precision).

    ``--useCudaGraph --noDataTransfers`` times the engine as a deployed pipeline would run it
    back to back; drop ``--noDataTransfers`` to include host↔device copies.
    """
    h, w = size
    stem = Path(onnx_path).stem
    shapes = f" --minShapes=image:1x3x{h}x{w} --optShapes=image:1x3x{h}x{w} --maxShapes=image:1x3x{h}x{w}" \
        if dynamic else ""
    common = f"trtexec --onnx={onnx_path}{shapes} --warmUp=500 --iterations=200 --useCudaGraph --noDataTransfers"
    return {
        "fp32": f"{common} --saveEngine={stem}_fp32.engine",
        "fp16": f"{common} --fp16 --saveEngine={stem}_fp16.engine",
        "int8": f"{common} --int8 --fp16 --saveEngine={stem}_int8.engine   # QDQ model, or add --calib=<cache>",
    }
