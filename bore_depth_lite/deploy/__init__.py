"""Deployment: ONNX export, ONNX Runtime, OpenVINO and TensorRT backends, FP16/BF16/INT8, accuracy per precision.

    from bore_depth_lite.deploy import export_onnx, make_backend
    report = export_onnx(net, "depthnet_256x320.onnx", (256, 320))   # onnx.checker clean
    backend = make_backend("onnxruntime", "depthnet_256x320.onnx", precision="fp32")
    depth = backend(preprocess(rgb, "nyu"))                           # (1, 1, 256, 320)

OpenVINO (``make_backend("openvino", ...)``, fp32/bf16/int8 on the CPU) imports lazily and
raises a one-line ImportError naming the install command where ``openvino`` is missing.
TensorRT parts import lazily and raise :class:`TensorRTUnavailable` with the reason where
``tensorrt`` or CUDA is missing.
"""
from .backends import BACKENDS, OnnxRuntimeBackend, TorchBackend, make_backend
from .export import REWRITES, ExportReport, check_parity, export_onnx, onnx_operator_counts, prepare_for_export
from .openvino_backend import OpenVinoBackend, openvino_bf16_status
from .onnxruntime_backend import convert_to_fp16, make_session, quantize_int8, synthetic_calibration_images
from .tensorrt_backend import TensorRTUnavailable, tensorrt_status, trtexec_commands

__all__ = ["BACKENDS", "OnnxRuntimeBackend", "TorchBackend", "make_backend", "REWRITES", "ExportReport",
           "check_parity", "export_onnx", "onnx_operator_counts", "prepare_for_export", "convert_to_fp16",
           "make_session", "quantize_int8", "synthetic_calibration_images", "TensorRTUnavailable",
           "tensorrt_status", "trtexec_commands", "OpenVinoBackend", "openvino_bf16_status"]
