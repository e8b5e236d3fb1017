"""Array coercion for the metrics: numpy arrays, torch tensors or sequences in, float64 numpy out.

The one place where torch tensors enter the numpy metrics (:mod:`.metrics`, :mod:`.boundary`,
:mod:`.boundary_f1`, :mod:`.protocols`): detached, moved to the CPU, half precision widened.
"""
from __future__ import annotations

from typing import Any, Sequence, Union

import numpy as np
import torch

__all__ = ["ArrayLike", "as_numpy", "as_image"]

ArrayLike = Union[np.ndarray, torch.Tensor, Sequence[float]]


def as_numpy(x: ArrayLike, name: str, dtype: Any = np.float64) -> np.ndarray:
    """Convert a numpy array, torch tensor or sequence to a numpy array of ``dtype``.

    Tensors are detached and moved to the CPU; this is the only place where torch enters.
    """
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            raise ValueError(f"{name} must hold real numbers, got a complex tensor ({x.dtype})")
        x = x.detach().cpu()
        x = x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
        x = x.numpy()
    if np.iscomplexobj(x):   # np.asarray(..., float64) would drop the imaginary part with a mere warning
        raise ValueError(f"{name} must hold real numbers, got complex values")
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be an array of numbers, got {type(x).__name__}: {err}") from None


def as_image(x: ArrayLike, name: str, dtype: Any = np.float64) -> np.ndarray:
    """Return ONE image as an (H, W) array; accepts (H, W), (1, H, W) or (1, 1, H, W)."""
    arr = as_numpy(x, name, dtype)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be one image of shape (H, W), (1, H, W) or (1, 1, H, W); "
                         f"got shape {tuple(as_numpy(x, name, dtype).shape)}")
    return arr
