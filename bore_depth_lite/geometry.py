"""View synthesis geometry: pinhole back-projection, rigid motion, projection, inverse warping.

Conventions used by every function here (the book's chapter "Seeing depth through motion"
derives them):

* Camera frame: OpenCV pinhole, x right, y down, z forward. Intrinsics ``K`` are 3×3 in
  pixels, and the centre of pixel (column u, row v) has coordinates (u, v): pixel (0, 0) is
  centred at (0, 0), so the image spans [-0.5, W-0.5] × [-0.5, H-0.5].
* Relative pose ``T_src_tgt`` (4×4 or 3×4) maps points of the *target* camera into the
  *source* camera: ``T_src_tgt = inv(pose_src) @ pose_tgt`` with camera-to-world poses.
* Sampling convention (one, used everywhere): pixel coordinates are normalised to
  grid_sample's [-1, 1] with ``2·u/(W-1) - 1`` and sampled with ``align_corners=True``. The
  two agree: -1 and +1 are the *centres* of the first and last pixels. (SC-Depth and
  Monodepth2 normalise this way but call ``grid_sample`` with ``align_corners=False``, which
  shifts every sample by half a pixel times (1 - 1/W); we do not copy that.) This is also
  kornia's ``warp_frame_depth`` convention, our test oracle.
* Pose vectors (6 numbers) are read under a *named* convention:

  - ``"sc_depth"`` (default, SC-Depth and the released PoseNet): ``(tx, ty, tz, rx, ry, rz)``,
    translation first, then Euler angles in radians with ``R = Rx @ Ry @ Rz``.
  - ``"axis_angle"`` (Monodepth2): ``(ax, ay, az, tx, ty, tz)``, an axis-angle rotation vector
    (direction = axis, norm = angle in radians) first, then the translation.

  In both, the resulting ``[R | t]`` is the target→source transform above.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = [
    "POSE_CONVENTIONS",
    "pixel_grid",
    "backproject",
    "transform_points",
    "project",
    "pixels_to_grid",
    "euler_to_rotation",
    "axis_angle_to_rotation",
    "pose_vec_to_mat",
    "invert_pose",
    "as_pose_matrix",
    "WarpResult",
    "inverse_warp",
]

POSE_CONVENTIONS = ("sc_depth", "axis_angle")


def _check_bchw(name: str, x: torch.Tensor, channels: int | None = None) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = f"(B,{channels},H,W)" if channels is not None else "(B,C,H,W)"
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a tensor of shape {want}, got {got}")


def _check_intrinsics(name: str, K: torch.Tensor, batch: int) -> torch.Tensor:
    """Return ``K`` as (B,3,3); a single (3,3) matrix is broadcast over the batch."""
    if K.ndim == 2:
        K = K.unsqueeze(0)
    if K.ndim != 3 or K.shape[-2:] != (3, 3) or K.shape[0] not in (1, batch):
        raise ValueError(f"{name}: expected shape (3,3) or (B,3,3) with B={batch}, got {tuple(K.shape)}")
    return K.expand(batch, 3, 3)


def pixel_grid(height: int, width: int, device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Homogeneous pixel coordinates (u, v, 1) of every pixel centre.

    Returns:
        (3, H, W): row 0 is the column index u, row 1 the row index v, row 2 ones.
    """
    if height < 1 or width < 1:
        raise ValueError(f"pixel_grid: height and width must be >= 1, got {height}×{width}")
    v, u = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                          torch.arange(width, device=device, dtype=dtype), indexing="ij")
    return torch.stack([u, v, torch.ones_like(u)], dim=0)


def backproject(depth: torch.Tensor, K_inv: torch.Tensor) -> torch.Tensor:
    """Lift every pixel to a 3-D point in its camera: ``X = depth · K⁻¹ (u, v, 1)ᵀ``.

    ``depth`` is the z coordinate (not the ray length), as in KITTI/NYUv2 and our DepthNet.

    Args:
        depth: (B,1,H,W) z-depth in metres (or any unit; points come out in the same unit).
        K_inv: (B,3,3) or (3,3) inverse intrinsics.

    Returns:
        (B,3,H,W) points (X, Y, Z) in the camera frame; Z equals ``depth``.
    """
    _check_bchw("backproject: depth", depth, 1)
    b, _, h, w = depth.shape
    K_inv = _check_intrinsics("backproject: K_inv", K_inv, b).to(depth.dtype)
    rays = K_inv @ pixel_grid(h, w, depth.device, depth.dtype).reshape(1, 3, h * w)  # (B,3,HW)
    return rays.reshape(b, 3, h, w) * depth


def transform_points(points: torch.Tensor, T: torch.Tensor) -> torch.Tensor:
    """Apply a rigid transform ``X' = R X + t`` to a map of points.

    Args:
        points: (B,3,H,W).
        T: (B,4,4) or (B,3,4) transform (only the top 3×4 is used).

    Returns:
        (B,3,H,W) transformed points.
    """
    _check_bchw("transform_points: points", points, 3)
    b, _, h, w = points.shape
    if T.ndim != 3 or T.shape[0] != b or T.shape[1:] not in ((4, 4), (3, 4)):
        raise ValueError(f"transform_points: T must be (B,4,4) or (B,3,4) with B={b}, got {tuple(T.shape)}")
    T = T.to(points.dtype)
    out = T[:, :3, :3] @ points.reshape(b, 3, h * w) + T[:, :3, 3:]
    return out.reshape(b, 3, h, w)


def project(points: torch.Tensor, K: torch.Tensor, eps: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """Project camera-frame points to pixels: ``(u, v) = (K X)[:2] / Z``.

    Points with ``Z <= eps`` (at or behind the camera) get a finite but meaningless pixel;
    use the returned depth (or :func:`inverse_warp`'s ``valid``) to discard them.

    Args:
        points: (B,3,H,W) points in the camera frame.
        K: (B,3,3) or (3,3) intrinsics.
        eps: smallest |Z| used in the division.

    Returns:
        pixels (B,2,H,W) as (u, v), and depth (B,1,H,W) = Z of each point in this camera.
    """
    _check_bchw("project: points", points, 3)
    b, _, h, w = points.shape
    K = _check_intrinsics("project: K", K, b).to(points.dtype)
    cam = (K @ points.reshape(b, 3, h * w)).reshape(b, 3, h, w)
    z = cam[:, 2:3]
    # Keep the sign of Z so points behind the camera do not fold back into view.
    safe_z = torch.where(z.abs() < eps, torch.full_like(z, eps), z)
    return cam[:, :2] / safe_z, points[:, 2:3]


def pixels_to_grid(pixels: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates → grid_sample's normalised grid (``align_corners=True`` convention).

    Args:
        pixels: (B,2,H,W) pixel coordinates (u, v) into an image of size H×W.

    Returns:
        (B,H,W,2) grid with ``x = 2u/(W-1) - 1``, ``y = 2v/(H-1) - 1``.
    """
    _check_bchw("pixels_to_grid: pixels", pixels, 2)
    h, w = pixels.shape[-2:]
    scale = pixels.new_tensor([max(w - 1, 1), max(h - 1, 1)]).view(1, 2, 1, 1)
    return (2.0 * pixels / scale - 1.0).permute(0, 2, 3, 1)


def euler_to_rotation(angles: torch.Tensor) -> torch.Tensor:
    """Euler angles (rx, ry, rz) in radians → rotation ``R = Rx @ Ry @ Rz`` (SC-Depth).

    Args:
        angles: (B,3).

    Returns:
        (B,3,3).
    """
    rx, ry, rz = angles.unbind(-1)
    one, zero = torch.ones_like(rx), torch.zeros_like(rx)
    cx, sx, cy, sy, cz, sz = rx.cos(), rx.sin(), ry.cos(), ry.sin(), rz.cos(), rz.sin()
    Rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).view(-1, 3, 3)
    Ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).view(-1, 3, 3)
    Rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).view(-1, 3, 3)
    return Rx @ Ry @ Rz


def axis_angle_to_rotation(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation vector (axis × angle, radians) → rotation matrix (Rodrigues' formula).

    Args:
        axis_angle: (B,3).

    Returns:
        (B,3,3); exact identity for a zero vector, smooth gradients near it (in every dtype).
    """
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)
    # sin(θ)/θ and (1-cos θ)/θ² with a Taylor fallback near θ = 0. The exact branch never sees
    # θ² = 0 (a square root there has an infinite derivative, and 0/0 would leak NaN into the
    # gradient through torch.where even where the Taylor branch is taken).
    small = theta2 < 1e-6
    theta = torch.sqrt(torch.where(small, torch.ones_like(theta2), theta2))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    Kx = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).view(-1, 3, 3)
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    c = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / (theta * theta))
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(Kx)
    return eye + a[..., None] * Kx + c[..., None] * (Kx @ Kx)


def pose_vec_to_mat(vec: torch.Tensor, convention: str = "sc_depth") -> torch.Tensor:
    """6-DoF pose vector → 4×4 transform ``[R | t]`` (target → source).

    Args:
        vec: (B,6). Under ``convention="sc_depth"``: (tx, ty, tz, rx, ry, rz), Euler angles with
            ``R = Rx @ Ry @ Rz``. Under ``"axis_angle"``: (ax, ay, az, tx, ty, tz) (Monodepth2).
        convention: ``"sc_depth"`` or ``"axis_angle"``.

    Returns:
        (B,4,4) homogeneous transforms.
    """
    if vec.ndim != 2 or vec.shape[1] != 6:
        raise ValueError(f"pose_vec_to_mat: vec must have shape (B,6), got {tuple(vec.shape)}")
    if convention == "sc_depth":
        t, R = vec[:, :3], euler_to_rotation(vec[:, 3:])
    elif convention == "axis_angle":
        R, t = axis_angle_to_rotation(vec[:, :3]), vec[:, 3:]
    else:
        raise ValueError(f"pose_vec_to_mat: convention must be one of {POSE_CONVENTIONS}, got {convention!r}")
    bottom = vec.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(vec.shape[0], 1, 4)
    return torch.cat([torch.cat([R, t.unsqueeze(-1)], dim=2), bottom], dim=1)


def invert_pose(T: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms ``[R | t]`` → ``[Rᵀ | -Rᵀ t]`` (exact, no matrix inverse).

    Args:
        T: (B,4,4) or (B,3,4).

    Returns:
        (B,4,4).
    """
    R, t = T[:, :3, :3], T[:, :3, 3:]
    Rt = R.transpose(1, 2)
    bottom = T.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(T.shape[0], 1, 4)
    return torch.cat([torch.cat([Rt, -Rt @ t], dim=2), bottom], dim=1)


def as_pose_matrix(pose: torch.Tensor, convention: str = "sc_depth") -> torch.Tensor:
    """Accept a pose as (B,6) vector (read with ``convention``), (B,3,4) or (B,4,4); return (B,4,4)."""
    if pose.ndim == 2 and pose.shape[1] == 6:
        return pose_vec_to_mat(pose, convention)
    if pose.ndim == 3 and pose.shape[1:] == (4, 4):
        return pose
    if pose.ndim == 3 and pose.shape[1:] == (3, 4):
        bottom = pose.new_tensor([0.0, 0.0, 0.0, 1.0]).expand(pose.shape[0], 1, 4)
        return torch.cat([pose, bottom], dim=1)
    raise ValueError(f"pose: expected (B,6) vector, (B,3,4) or (B,4,4) matrix, got {tuple(pose.shape)}")


class WarpResult(NamedTuple):
    """What :func:`inverse_warp` returns; every field is (B,·,H,W) on the target grid."""

    warped: torch.Tensor
    """(B,C,H,W) source image sampled at the projection of each target pixel (zeros outside)."""
    valid: torch.Tensor
    """(B,1,H,W) bool: the point is in front of the source camera (z > min_depth) and projects
    inside the span of its pixel centres, [0, W-1] × [0, H-1], where bilinear sampling uses
    only real pixels (a 1e-3-pixel tolerance absorbs rounding)."""
    computed_depth: torch.Tensor
    """(B,1,H,W) depth of each target pixel's 3-D point seen from the source camera."""
    projected_depth: torch.Tensor | None
    """(B,1,H,W) source depth sampled at that projection, or None without ``src_depth``."""
    pixels: torch.Tensor
    """(B,2,H,W) (u, v) position in the source image of each target pixel."""


def inverse_warp(src_img: torch.Tensor, tgt_depth: torch.Tensor, T_src_tgt: torch.Tensor, K: torch.Tensor,
                 src_depth: torch.Tensor | None = None, K_inv: torch.Tensor | None = None,
                 pose_convention: str = "sc_depth", min_depth: float = 1e-3) -> WarpResult:
    """Synthesise the target view from a source image, the target depth and the relative pose.

    For every target pixel: back-project with ``tgt_depth``, move into the source camera with
    ``T_src_tgt``, project with ``K``, and bilinearly sample ``src_img`` (and ``src_depth``)
    there with ``grid_sample(align_corners=True, padding_mode="zeros")``.

    Args:
        src_img: (B,C,H,W) source image (any channels).
        tgt_depth: (B,1,H,W) target z-depth.
        T_src_tgt: target→source pose as (B,4,4), (B,3,4), or (B,6) vector read with
            ``pose_convention`` (see the module docstring).
        K: (B,3,3) or (3,3) intrinsics shared by both frames.
        src_depth: optional (B,1,H,W) source depth, sampled for geometry consistency.
        K_inv: optional precomputed inverse of ``K``.
        pose_convention: ``"sc_depth"`` or ``"axis_angle"``, only used for (B,6) poses.
        min_depth: points closer than this in the source camera count as invalid.

    Returns:
        :class:`WarpResult` (warped, valid, computed_depth, projected_depth, pixels).
    """
    _check_bchw("inverse_warp: src_img", src_img)
    _check_bchw("inverse_warp: tgt_depth", tgt_depth, 1)
    # Pixel coordinates need fp32: fp16 resolves only 0.5 px at u = 512. Under autocast (mixed-
    # precision training) the matmuls would silently run in half precision, so switch it off.
    with torch.autocast(device_type=src_img.device.type, enabled=False):
        return _inverse_warp_fp32(*(_upcast(x) for x in (src_img, tgt_depth, T_src_tgt, K, src_depth, K_inv)),
                                  pose_convention=pose_convention, min_depth=min_depth)


def _upcast(x: torch.Tensor | None) -> torch.Tensor | None:
    """Half / bfloat16 tensors → float32 (differentiably); others unchanged."""
    if x is not None and x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def _inverse_warp_fp32(src_img, tgt_depth, T_src_tgt, K, src_depth, K_inv, pose_convention, min_depth):
    b, _, h, w = src_img.shape
    if tgt_depth.shape[0] != b or tgt_depth.shape[-2:] != (h, w):
        raise ValueError(f"inverse_warp: tgt_depth {tuple(tgt_depth.shape)} does not match src_img {tuple(src_img.shape)}")
    if src_depth is not None:
        _check_bchw("inverse_warp: src_depth", src_depth, 1)
        if src_depth.shape != tgt_depth.shape:
            raise ValueError(f"inverse_warp: src_depth {tuple(src_depth.shape)} must match tgt_depth {tuple(tgt_depth.shape)}")
    K = _check_intrinsics("inverse_warp: K", K, b).to(tgt_depth.dtype)
    K_inv = torch.linalg.inv(K) if K_inv is None else _check_intrinsics("inverse_warp: K_inv", K_inv, b)
    T = as_pose_matrix(T_src_tgt, pose_convention).to(tgt_depth.dtype)

    points_src = transform_points(backproject(tgt_depth, K_inv), T)
    pixels, computed_depth = project(points_src, K)
    grid = pixels_to_grid(pixels)
    warped = F.grid_sample(src_img, grid.to(src_img.dtype), mode="bilinear", padding_mode="zeros",
                           align_corners=True)
    projected_depth = None
    if src_depth is not None:
        projected_depth = F.grid_sample(src_depth, grid.to(src_depth.dtype), mode="bilinear", padding_mode="zeros",
                                        align_corners=True)
    u, v = pixels[:, 0:1], pixels[:, 1:2]
    tol = 1e-3  # pixels: absorbs rounding at the border (a sample that far out is still 99.9 % image)
    valid = (computed_depth > min_depth) & (u >= -tol) & (u <= w - 1 + tol) & (v >= -tol) & (v <= h - 1 + tol)
    return WarpResult(warped, valid, computed_depth, projected_depth, pixels)
