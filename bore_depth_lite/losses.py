"""Stage-1 self-supervised losses: photometric error, masks, geometry consistency, smoothness.

The objective is SC-Depth v3's (``sc_depth_pl``), which BoRe-Depth's stage 1 most likely
kept (see the book's appendix "Reference", training). Per training sample (a target frame and
its neighbours) there are two *pairwise terms per source*: target ← source (warp the source
into the target view with the target depth) and source ← target. Each term gives per pixel

* a photometric error ``0.15·clamp(|Δ|, 0, 1) + 0.85·clamp((1 - SSIM)/2, 0, 1)``, averaged
  over RGB (:func:`photometric_error`);
* a depth inconsistency ``|D_computed - D_projected| / (D_computed + D_projected)``;
* a valid mask: in view (warped and target pixels not black) and, with auto-masking,
  "warping helps" (colour error after warping < error without warping).

The photometric error is multiplied by ``1 - inconsistency`` (detached: SC-Depth's
self-discovered mask). Each pixel keeps the term with the smallest colour error; the
photometric and geometry losses are masked means of the chosen values.

SC-Depth v3 adds three terms fed by a monocular *pseudo-depth* of the target frame (any
relative depth: right order and shapes, unknown scale and shift), all switched off by
default (weight 0; v3 uses 0.1 each): normal matching (:func:`normal_matching_loss`),
dynamic-region mask ranking (:func:`mask_ranking_loss`) and edge-guided normal ranking
(:func:`normal_ranking_loss`); normals come from :func:`surface_normals`.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

from .geometry import as_pose_matrix, backproject, invert_pose, inverse_warp
from .ssim import ssim_loss

__all__ = [
    "photometric_error",
    "masked_mean",
    "edge_aware_smoothness",
    "depth_inconsistency",
    "PairwiseTerm",
    "pairwise_term",
    "stage1_loss",
    "surface_normals",
    "normal_matching_loss",
    "ranking_targets",
    "ranking_loss",
    "mask_ranking_pairs",
    "mask_ranking_loss",
    "edge_map",
    "edge_guided_pairs",
    "normal_ranking_pairs",
    "normal_ranking_loss",
    "dynamic_confidence",
]


def photometric_error(target: torch.Tensor, reconstruction: torch.Tensor, use_ssim: bool = True,
                      ssim_window: int = 3, ssim_weight: float = 0.85) -> torch.Tensor:
    """Per-pixel photometric error, averaged over channels.

    ``ssim_weight·clamp((1-SSIM)/2, 0, 1) + (1-ssim_weight)·clamp(|target - reconstruction|, 0, 1)``,
    or only the clamped L1 term when ``use_ssim=False``.

    Args:
        target, reconstruction: (B,C,H,W) images in [0, 1].
        use_ssim: include the SSIM term (ablation switch "no SSIM" = False).
        ssim_window: SSIM box window side (3 by default; 7 in SC-Depth v3).
        ssim_weight: weight α of the SSIM term (0.85).

    Returns:
        (B,1,H,W).
    """
    l1 = (target - reconstruction).abs().clamp(0.0, 1.0)
    if use_ssim:
        err = (1.0 - ssim_weight) * l1 + ssim_weight * ssim_loss(target, reconstruction, ssim_window)
    else:
        err = l1
    return err.mean(dim=1, keepdim=True)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, min_pixels: int = 100) -> torch.Tensor:
    """Mean of ``values`` over pixels where ``mask`` is set; 0 when ``mask`` has ≤ ``min_pixels`` pixels.

    Args:
        values: (B,K,H,W).
        mask: (B,K,H,W) or broadcastable; bool or {0, 1} float.
        min_pixels: guard against almost-empty masks (SC-Depth: 100).

    Returns:
        scalar tensor (keeps the graph of ``values``).
    """
    mask = mask.to(values.dtype).expand_as(values)
    count = mask.sum()
    if count.item() <= min_pixels:
        return values.sum() * 0.0  # a zero that stays connected to the graph
    return (values * mask).sum() / count


def edge_aware_smoothness(disparity: torch.Tensor, image: torch.Tensor, normalise: bool = True) -> torch.Tensor:
    """Edge-aware first-order smoothness of (mean-normalised) disparity.

    ``mean|∂x d|·exp(-mean_c|∂x I|) + mean|∂y d|·exp(-mean_c|∂y I|)`` with forward
    differences, ``d = disparity / mean_hw(disparity)`` when ``normalise`` (Monodepth2 /
    SC-Depth v1–v2; normalising stops the network from shrinking disparity to win the term).

    Args:
        disparity: (B,1,H,W) inverse depth.
        image: (B,C,H,W) image in [0, 1] that sets the edge weights.
        normalise: divide by the per-image mean disparity first.

    Returns:
        scalar.
    """
    if normalise:
        disparity = disparity / (disparity.mean(dim=(2, 3), keepdim=True) + 1e-7)
    grad_d_x = (disparity[:, :, :, :-1] - disparity[:, :, :, 1:]).abs()
    grad_d_y = (disparity[:, :, :-1, :] - disparity[:, :, 1:, :]).abs()
    grad_i_x = (image[:, :, :, :-1] - image[:, :, :, 1:]).abs().mean(1, keepdim=True)
    grad_i_y = (image[:, :, :-1, :] - image[:, :, 1:, :]).abs().mean(1, keepdim=True)
    return (grad_d_x * torch.exp(-grad_i_x)).mean() + (grad_d_y * torch.exp(-grad_i_y)).mean()


def depth_inconsistency(computed_depth: torch.Tensor, projected_depth: torch.Tensor) -> torch.Tensor:
    """``|Dc - Dp| / (Dc + Dp)`` in [0, 1] for positive depths (0 = consistent); (B,1,H,W).

    Pixels where either depth is ≤ 0 (behind the camera, sampled outside the image) get 1.
    """
    ok = (computed_depth > 0) & (projected_depth > 0)
    total = (computed_depth + projected_depth).clamp_min(1e-7)
    diff = (computed_depth - projected_depth).abs() / total
    return torch.where(ok, diff, torch.ones_like(diff))


class PairwiseTerm(NamedTuple):
    """Per-pixel maps of one warping direction; all (B,1,H,W)."""

    photo: torch.Tensor
    """photometric error (weighted by 1 - inconsistency when the dynamic mask is on)."""
    color: torch.Tensor
    """mean |target - warped| over channels (no clamp): the argmin criterion."""
    inconsistency: torch.Tensor
    """depth inconsistency (the geometry-consistency loss per pixel)."""
    valid: torch.Tensor
    """float {0, 1}: valid pixels (in view, and auto-mask when on)."""
    warped: torch.Tensor
    """(B,C,H,W) the warped source image."""


def pairwise_term(tgt_img: torch.Tensor, src_img: torch.Tensor, tgt_depth: torch.Tensor, src_depth: torch.Tensor,
                  T_src_tgt: torch.Tensor, K: torch.Tensor, K_inv: torch.Tensor | None = None, *,
                  use_ssim: bool = True, use_auto_mask: bool = True, use_dynamic_mask: bool = True,
                  use_geometric_mask: bool = True, ssim_window: int = 3,
                  pose_convention: str = "sc_depth") -> PairwiseTerm:
    """One SC-Depth pairwise term: reconstruct ``tgt_img`` from ``src_img`` and score it.

    Args:
        tgt_img, src_img: (B,3,H,W) images in [0, 1].
        tgt_depth, src_depth: (B,1,H,W) positive depths.
        T_src_tgt: target→source pose, (B,4,4)/(B,3,4) or (B,6) read with ``pose_convention``.
        K, K_inv: (B,3,3) or (3,3) intrinsics and optional inverse.
        use_ssim, use_auto_mask, use_dynamic_mask: the SC-Depth ablation switches.
        use_geometric_mask: [ours] also require the point to be in front of the source camera
            and to project inside it. SC-Depth relies only on "the warped pixel is not black";
            this adds a guard against points behind the camera.
        ssim_window: SSIM window side.
    """
    warp = inverse_warp(src_img, tgt_depth, T_src_tgt, K, src_depth=src_depth, K_inv=K_inv,
                        pose_convention=pose_convention)
    warped = warp.warped
    inconsistency = depth_inconsistency(warp.computed_depth, warp.projected_depth)
    valid = (warped.abs().mean(1, keepdim=True) > 1e-3) & (tgt_img.abs().mean(1, keepdim=True) > 1e-3)
    if use_geometric_mask:
        valid = valid & warp.valid
    color = (tgt_img - warped).abs().mean(1, keepdim=True)
    if use_auto_mask:
        identity_color = (tgt_img - src_img).abs().mean(1, keepdim=True)
        valid = valid & (color < identity_color)
    photo = photometric_error(tgt_img, warped, use_ssim=use_ssim, ssim_window=ssim_window)
    if use_dynamic_mask:
        photo = photo * (1.0 - inconsistency).detach()
    return PairwiseTerm(photo, color, inconsistency, valid.to(photo.dtype), warped)


def stage1_loss(tgt_img: torch.Tensor, src_imgs: Sequence[torch.Tensor], tgt_depth: torch.Tensor,
                src_depths: Sequence[torch.Tensor], poses: Sequence[torch.Tensor],
                poses_inv: Sequence[torch.Tensor] | None, K: torch.Tensor, K_inv: torch.Tensor | None = None, *,
                photo_weight: float = 1.0, geometry_weight: float = 0.1, smooth_weight: float = 0.1,
                ssim_window: int = 3, use_ssim: bool = True, use_auto_mask: bool = True,
                use_dynamic_mask: bool = True, use_min: bool = True, use_geometric_mask: bool = True,
                pose_convention: str = "sc_depth", min_valid_pixels: int = 100,
                pseudo_depth: torch.Tensor | None = None, normal_weight: float = 0.0,
                mask_rank_weight: float = 0.0, normal_rank_weight: float = 0.0,
                generator: torch.Generator | None = None,
                return_maps: bool = False) -> dict[str, torch.Tensor]:
    """SC-Depth-v3-style stage-1 objective (photometric + geometry consistency + smoothness,
    optionally + the three pseudo-depth terms).

    For each source i, two pairwise terms: target ← source i (pose ``poses[i]``) and
    source i ← target (pose ``poses_inv[i]``), i.e. ``2·len(src_imgs)`` terms. Each pixel
    keeps the term with the smallest colour error (``use_min``; otherwise all terms are
    averaged), then ``photo`` and ``geometry`` are masked means over the batch.

    Args:
        tgt_img: (B,3,H,W) target frame in [0, 1] (not ImageNet-normalised).
        src_imgs: sequence of (B,3,H,W) source frames (e.g. t-1 and t+1).
        tgt_depth: (B,1,H,W) DepthNet output on the target (positive depth).
        src_depths: sequence of (B,1,H,W) DepthNet outputs on each source.
        poses: sequence of target→source poses ``T_src_tgt`` (maps target-camera points into
            source i): PoseNet(target, source) as (B,6) vectors read with ``pose_convention``,
            or (B,4,4)/(B,3,4) matrices.
        poses_inv: sequence of source→target poses, PoseNet(source, target); None uses the exact
            inverse of ``poses`` (handy when poses are known).
        K: (B,3,3) or (3,3) intrinsics in pixels at this resolution; K_inv optional.
        photo_weight, geometry_weight, smooth_weight: weights of the three terms (1.0, 0.1, 0.1;
            SC-Depth v3 with pseudo-depth sets smoothness to 0).
        ssim_window: SSIM window (3 for teaching, 7 in the v3 / paper preset).
        use_ssim, use_auto_mask, use_dynamic_mask, use_min: ablation switches (False =
            "no SSIM", "no auto-mask", "no self-discovered mask", "average instead of min").
        use_geometric_mask: [ours] require points in front of and inside the other camera.
            False reproduces SC-Depth exactly (it relies on "the warped pixel is not black").
        pose_convention: ``"sc_depth"`` or ``"axis_angle"`` for (B,6) pose vectors.
        min_valid_pixels: masked means over at most this many pixels are 0.
        pseudo_depth: (B,1,H,W) pseudo-depth of the target (positive; scale and shift
            unknown); required when any of the three weights below is > 0.
        normal_weight, mask_rank_weight, normal_rank_weight: weights of normal matching,
            dynamic-region mask ranking and edge-guided normal ranking (0 = off, the
            default; SC-Depth v3 uses 0.1 each). A term with weight 0 is not computed.
        generator: CPU ``torch.Generator`` for the ranking terms' pair draws (None: torch's
            global generator).
        return_maps: also return per-pixel maps (for figures), see below.

    Runs in float32 even inside ``torch.autocast`` (half-precision inputs are upcast).

    Returns:
        dict of scalar tensors ``loss`` (weighted total, differentiable), ``photo``,
        ``geometry``, ``smooth``, ``valid_fraction`` (of the chosen terms' pixels, detached),
        plus ``normal``, ``mask_rank``, ``normal_rank`` for each pseudo-depth term whose
        weight is > 0. With ``return_maps``: ``photo_map``, ``geometry_map``, ``valid_map``
        (B,1,H,W) of the chosen terms (or the averages), and ``choice`` (B,1,H,W) long, the chosen term index
        (order: tgt←src0, src0←tgt, tgt←src1, src1←tgt, ...; -1 without ``use_min``);
        with mask ranking on, also ``confidence_map`` (:func:`dynamic_confidence`).
    """
    if len(src_imgs) == 0 or len(src_imgs) != len(src_depths) or len(src_imgs) != len(poses):
        raise ValueError(f"stage1_loss: src_imgs ({len(src_imgs)}), src_depths ({len(src_depths)}) and "
                         f"poses ({len(poses)}) must be non-empty and of equal length")
    if poses_inv is not None and len(poses_inv) != len(poses):
        raise ValueError(f"stage1_loss: poses_inv has {len(poses_inv)} entries, poses has {len(poses)}")
    if tgt_img.ndim != 4 or tgt_img.shape[1] != 3:
        raise ValueError(f"stage1_loss: tgt_img must be (B,3,H,W), got {tuple(tgt_img.shape)}")
    pseudo_weights = dict(normal_weight=normal_weight, mask_rank_weight=mask_rank_weight,
                          normal_rank_weight=normal_rank_weight)
    if pseudo_depth is None and any(pseudo_weights.values()):
        on = ", ".join(f"{k}={v}" for k, v in pseudo_weights.items() if v)
        raise ValueError(f"stage1_loss: {on} needs a pseudo-depth of the target (pseudo_depth=None)")
    if pseudo_depth is not None and tuple(pseudo_depth.shape) != tuple(tgt_depth.shape):
        raise ValueError(f"stage1_loss: pseudo_depth {tuple(pseudo_depth.shape)} must match tgt_depth "
                         f"{tuple(tgt_depth.shape)}")
    # The whole objective runs in fp32 even inside an autocast region: SSIM's variances
    # (E[x²] - E[x]²) and the projections lose everything in fp16.
    with torch.autocast(device_type=tgt_img.device.type, enabled=False):
        up = _upcast_all
        return _stage1_loss_fp32(
            up(tgt_img), up(src_imgs), up(tgt_depth), up(src_depths), up(poses), up(poses_inv), up(K), up(K_inv),
            photo_weight=photo_weight, geometry_weight=geometry_weight, smooth_weight=smooth_weight,
            ssim_window=ssim_window, use_ssim=use_ssim, use_auto_mask=use_auto_mask,
            use_dynamic_mask=use_dynamic_mask, use_min=use_min, use_geometric_mask=use_geometric_mask,
            pose_convention=pose_convention, min_valid_pixels=min_valid_pixels, return_maps=return_maps,
            pseudo_depth=up(pseudo_depth), generator=generator, **pseudo_weights)


def _upcast_all(x):
    if x is None:
        return None
    if isinstance(x, torch.Tensor):
        return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    return [_upcast_all(t) for t in x]


def _stage1_loss_fp32(tgt_img, src_imgs, tgt_depth, src_depths, poses, poses_inv, K, K_inv, *, photo_weight,
                      geometry_weight, smooth_weight, ssim_window, use_ssim, use_auto_mask, use_dynamic_mask,
                      use_min, use_geometric_mask, pose_convention, min_valid_pixels, return_maps,
                      pseudo_depth, normal_weight, mask_rank_weight, normal_rank_weight, generator):
    if K_inv is None:
        K_inv = torch.linalg.inv(K)
    opts = dict(use_ssim=use_ssim, use_auto_mask=use_auto_mask, use_dynamic_mask=use_dynamic_mask,
                use_geometric_mask=use_geometric_mask, ssim_window=ssim_window)
    terms: list[PairwiseTerm] = []
    for i, (src_img, src_depth, pose) in enumerate(zip(src_imgs, src_depths, poses)):
        T = as_pose_matrix(pose, pose_convention)
        T_inv = invert_pose(T) if poses_inv is None else as_pose_matrix(poses_inv[i], pose_convention)
        terms.append(pairwise_term(tgt_img, src_img, tgt_depth, src_depth, T, K, K_inv, **opts))
        terms.append(pairwise_term(src_img, tgt_img, src_depth, tgt_depth, T_inv, K, K_inv, **opts))

    photo = torch.cat([t.photo for t in terms], dim=1)            # (B,2S,H,W)
    inconsistency = torch.cat([t.inconsistency for t in terms], dim=1)
    valid = torch.cat([t.valid for t in terms], dim=1)
    if use_min:
        choice = torch.cat([t.color for t in terms], dim=1).argmin(dim=1, keepdim=True)
        photo, inconsistency, valid = (torch.gather(x, 1, choice) for x in (photo, inconsistency, valid))
    else:
        choice = torch.full_like(tgt_depth, -1, dtype=torch.long)
    loss_photo = masked_mean(photo, valid, min_valid_pixels)
    loss_geometry = masked_mean(inconsistency, valid, min_valid_pixels)
    loss_smooth = edge_aware_smoothness(1.0 / tgt_depth, tgt_img) if smooth_weight else tgt_depth.sum() * 0.0
    total = photo_weight * loss_photo + geometry_weight * loss_geometry + smooth_weight * loss_smooth
    out = {"loss": total, "photo": loss_photo, "geometry": loss_geometry, "smooth": loss_smooth,
           "valid_fraction": valid.detach().mean()}
    confidence = None
    if normal_weight or normal_rank_weight:
        pred_normals = surface_normals(tgt_depth, K_inv)
        with torch.no_grad():
            pseudo_normals = surface_normals(pseudo_depth, K_inv)
        if normal_weight:
            out["normal"] = normal_matching_loss(pred_normals, pseudo_normals, valid=pseudo_depth > 0)
            total = total + normal_weight * out["normal"]
        if normal_rank_weight:
            out["normal_rank"] = normal_ranking_loss(pred_normals, pseudo_normals, tgt_img, pseudo_depth, generator)
            total = total + normal_rank_weight * out["normal_rank"]
    if mask_rank_weight:
        forward = terms[0::2]                                       # the target ← source terms
        confidence = dynamic_confidence([t.inconsistency for t in forward], [t.valid for t in forward])
        out["mask_rank"] = mask_ranking_loss(tgt_depth, pseudo_depth, confidence, generator)
        total = total + mask_rank_weight * out["mask_rank"]
    out["loss"] = total
    if return_maps:
        if not use_min:
            photo, inconsistency, valid = (x.mean(1, keepdim=True) for x in (photo, inconsistency, valid))
        out.update(photo_map=photo.detach(), geometry_map=inconsistency.detach(), valid_map=valid.detach(),
                   choice=choice)
        if confidence is not None:
            out["confidence_map"] = confidence
    return out


def dynamic_confidence(inconsistencies: Sequence[torch.Tensor], valids: Sequence[torch.Tensor]) -> torch.Tensor:
    """SC-Depth v3's self-discovered mask of the target: ``mean_i (1 - inconsistency_i)`` over
    the target ← source terms, counting invalid pixels (out of view, auto-masked) as 1.

    Low values mark moving objects and occlusions, where the mask ranking loss
    (:func:`mask_ranking_loss`) takes over from photometry.

    Args:
        inconsistencies, valids: one (B,1,H,W) map each per source (target ← source terms).

    Returns:
        (B,1,H,W) in [0, 1], detached.
    """
    maps = [torch.where(v > 0, 1.0 - c, torch.ones_like(c)) for c, v in zip(inconsistencies, valids)]
    return torch.stack(maps).mean(0).detach()


# ----------------------------------------------------------------- pseudo-depth terms (v3)
# SC-Depth v3 adds three terms fed by a monocular pseudo-depth D* of the target frame (a
# network's relative depth: right order and shapes, unknown scale, shift and curvature):
#   * normal matching      L_nm = mean |N(D) - N(D*)|            (weight 0.1 in v3)
#   * mask ranking         L_mr = ranking loss on pixel pairs, inside vs outside the
#                                 dynamic region, order taken from D*  (0.1)
#   * normal ranking       L_nr = pairs across image and D*-normal edges, the pairs'
#                                 normal similarity matched to D*'s     (0.1)
# Pair sampling draws from a torch.Generator (CPU; None = torch's global generator) so that
# a run is reproducible and resumable; the pairs depend only on D*, the image and the
# dynamic mask, never on the prediction, so each term is a smooth function of the depth.

def _sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised Sobel derivatives along columns and rows, replicate padding; same size.

    ``gx[r, c] = Σ_k w_k (x[r+k, c+1] - x[r+k, c-1])`` and ``gy[r, c] = Σ_k w_k (x[r+1, c+k] - x[r-1, c+k])``
    with ``w = (1, 2, 1)`` for ``k = -1, 0, 1``: central differences smoothed across.

    Args:
        x: (B,C,H,W).

    Returns:
        gx, gy: (B,C,H,W) each (``gx`` grows to the right, ``gy`` downwards).
    """
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    d_col = xp[..., :, 2:] - xp[..., :, :-2]                          # (B,C,H+2,W)
    gx = d_col[..., :-2, :] + 2.0 * d_col[..., 1:-1, :] + d_col[..., 2:, :]
    d_row = xp[..., 2:, :] - xp[..., :-2, :]                          # (B,C,H,W+2)
    gy = d_row[..., :, :-2] + 2.0 * d_row[..., :, 1:-1] + d_row[..., :, 2:]
    return gx, gy


def surface_normals(depth: torch.Tensor, K_inv: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit surface normals of a depth map, from its back-projected point map.

    ``P = D · K⁻¹ (u, v, 1)ᵀ``; the tangents ``∂P/∂u`` and ``∂P/∂v`` are Sobel derivatives of
    P (central differences of neighbouring points, smoothed across; replicate padding, so
    one-sided at the border); ``N = (∂P/∂u × ∂P/∂v) / |∂P/∂u × ∂P/∂v|``. This is the normal
    that SC-Depth v3 computes (with kornia's ``depth_to_normals``).

    Convention (camera x right, y down, z forward): the normal points *away* from the camera,
    so a fronto-parallel plane gives (0, 0, 1), and a plane ``n·P = d`` with ``n_z > 0`` gives
    ``n`` at every pixel, borders included (all tangents lie in the plane). Normals do not
    change when depth is scaled (they do when it is shifted).

    Args:
        depth: (B,1,H,W) positive z-depth (any unit).
        K_inv: (B,3,3) or (3,3) inverse intrinsics.
        eps: smallest cross-product norm divided by.

    Returns:
        (B,3,H,W) unit normals (x, y, z), in ``depth``'s dtype.
    """
    _check_depth("surface_normals: depth", depth)
    points = backproject(depth, K_inv)                                 # (B,3,H,W)
    (ux, uy, uz), (vx, vy, vz) = (t.unbind(1) for t in _sobel(points))
    # the cross product and norm written out: torch.linalg.cross and .norm along the channel
    # axis of a (B,3,H,W) tensor are an order of magnitude slower on CPU
    normal = torch.stack([uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx], dim=1)
    return normal / (normal * normal).sum(1, keepdim=True).clamp_min(eps * eps).sqrt()


def _check_depth(name: str, depth: torch.Tensor) -> None:
    if not isinstance(depth, torch.Tensor) or depth.ndim != 4 or depth.shape[1] != 1:
        got = tuple(depth.shape) if isinstance(depth, torch.Tensor) else type(depth).__name__
        raise ValueError(f"{name}: expected (B,1,H,W), got {got}")


def normal_matching_loss(pred_normals: torch.Tensor, pseudo_normals: torch.Tensor,
                         valid: torch.Tensor | None = None) -> torch.Tensor:
    """SC-Depth v3's normal matching: mean absolute difference of unit normals.

    ``L = mean_{pixels, xyz} |N_pred - N_pseudo|`` (the mean runs over the three components
    too, i.e. a third of the per-pixel L1 norm). ``N_pseudo`` comes from the pseudo-depth,
    whose unknown scale does not change normals; it is treated as a constant.

    Args:
        pred_normals, pseudo_normals: (B,3,H,W) unit normals (:func:`surface_normals`).
        valid: optional (B,1,H,W) mask of pixels to average over (e.g. pseudo-depth > 0).

    Returns:
        scalar; 0 (connected to the graph) when ``valid`` is empty.
    """
    diff = (pred_normals - pseudo_normals.detach()).abs()
    if valid is None:
        return diff.mean()
    mask = valid.to(diff.dtype).expand_as(diff)
    count = mask.sum()
    if count.item() == 0:
        return diff.sum() * 0.0
    return (diff * mask).sum() / count


def ranking_targets(pseudo_a: torch.Tensor, pseudo_b: torch.Tensor, ratio_threshold: float = 0.15) -> torch.Tensor:
    """Ordinal labels of point pairs from the pseudo-depth: +1, -1 or 0 (no clear order).

    ``+1`` where ``a ≥ (1+θ)·b`` (A is farther), ``-1`` where ``b > (1+θ)·a``, ``0`` otherwise
    and wherever either pseudo-depth is ≤ 0 (θ = ``ratio_threshold``, 0.15 in SC-Depth v3).
    A ratio is all a pseudo-depth of unknown scale can vouch for.

    Args:
        pseudo_a, pseudo_b: (N,) pseudo-depths of the two points of each pair.

    Returns:
        (N,) in {-1, 0, 1}, the inputs' dtype.
    """
    a, b = pseudo_a.detach(), pseudo_b.detach()
    ok = (a > 0) & (b > 0)
    far = (a >= (1.0 + ratio_threshold) * b) & ok
    near = (b > (1.0 + ratio_threshold) * a) & ok
    return far.to(a.dtype) - near.to(a.dtype)


def ranking_loss(pred_a: torch.Tensor, pred_b: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Logistic ranking loss over the pairs with a label: ``mean_{t≠0} log(1 + exp(-t·(z_A - z_B)))``.

    Zero-labelled pairs are skipped. A pair ordered as its label gets ``log(1 + e^-margin)``,
    which falls towards 0 as the margin grows; a reversed pair gets more than log 2.

    Args:
        pred_a, pred_b: (N,) predicted depths of the two points of each pair.
        target: (N,) labels from :func:`ranking_targets`.

    Returns:
        scalar; 0 (connected to the graph) when no pair has a label.
    """
    keep = target != 0
    if not bool(keep.any()):
        return (pred_a.sum() + pred_b.sum()) * 0.0
    return F.softplus(-target[keep] * (pred_a[keep] - pred_b[keep])).mean()


def _randint(high: int, size: tuple[int, ...], generator: torch.Generator | None, low: int = 0) -> torch.Tensor:
    """Integers in [low, high) drawn on the CPU (the generator's device), reproducibly."""
    return torch.randint(low, high, size, generator=generator, dtype=torch.long)


def mask_ranking_pairs(confidence: torch.Tensor, generator: torch.Generator | None = None,
                       unreliable_fraction: float = 0.2, global_fraction: float = 0.1
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Point pairs of the dynamic-region mask ranking loss (SC-Depth v3).

    Per image: the ``unreliable_fraction`` of pixels with the lowest ``confidence`` (the
    self-discovered mask: moving objects, occlusions) are each paired with a reliable pixel
    drawn uniformly from the rest; plus ``global_fraction·H·W`` pairs of two pixels drawn
    uniformly from the whole image. Ties in confidence are broken by pixel order. [ours] The
    global pairs are drawn independently per image (v3's code draws one random 10 % subset
    for the whole batch and pairs it with a shuffled copy of itself).

    Args:
        confidence: (B,1,H,W), high = static and consistent (see :func:`stage1_loss`).
        generator: CPU ``torch.Generator`` for the draws (None: torch's global generator).
        unreliable_fraction, global_fraction: 0.2 and 0.1 in SC-Depth v3.

    Returns:
        (idx_a, idx_b): (N,) long indices into the flattened (B·H·W) image, on ``confidence``'s
        device; the unreliable pairs of image 0, its global pairs, then image 1, ...
    """
    _check_depth("mask_ranking_pairs: confidence", confidence)
    b, _, h, w = confidence.shape
    n = h * w
    k, m = int(unreliable_fraction * n), int(global_fraction * n)
    conf = confidence.detach().reshape(b, n).cpu()
    idx_a, idx_b = [], []
    for i in range(b):
        offset = i * n
        if 0 < k < n:
            order = torch.argsort(conf[i], stable=True)
            idx_a.append(order[:k] + offset)
            idx_b.append(order[k:][_randint(n - k, (k,), generator)] + offset)
        if m > 0:
            idx_a.append(_randint(n, (m,), generator) + offset)
            idx_b.append(_randint(n, (m,), generator) + offset)
    empty = torch.zeros(0, dtype=torch.long)
    cat = (lambda xs: torch.cat(xs) if xs else empty)  # noqa: E731
    return cat(idx_a).to(confidence.device), cat(idx_b).to(confidence.device)


def mask_ranking_loss(pred_depth: torch.Tensor, pseudo_depth: torch.Tensor, confidence: torch.Tensor,
                      generator: torch.Generator | None = None, unreliable_fraction: float = 0.2,
                      global_fraction: float = 0.1, ratio_threshold: float = 0.15) -> torch.Tensor:
    """Dynamic-region mask ranking loss: the pseudo-depth's order where photometry is unreliable.

    Pairs from :func:`mask_ranking_pairs` (dynamic region vs the rest, plus global pairs),
    labels from the pseudo-depth by :func:`ranking_targets`, the logistic
    :func:`ranking_loss` on the predicted depths of both pair sets together.

    Args:
        pred_depth: (B,1,H,W) predicted depth.
        pseudo_depth: (B,1,H,W) pseudo-depth (only its order is used).
        confidence: (B,1,H,W) self-discovered mask, low = dynamic.
        generator: CPU generator for the pair draws (None: the global one).
        unreliable_fraction, global_fraction, ratio_threshold: 0.2, 0.1, 0.15 in SC-Depth v3.

    Returns:
        scalar.
    """
    for name, x in (("pred_depth", pred_depth), ("pseudo_depth", pseudo_depth), ("confidence", confidence)):
        _check_depth(f"mask_ranking_loss: {name}", x)
        if x.shape != pred_depth.shape:
            raise ValueError(f"mask_ranking_loss: {name} {tuple(x.shape)} != pred_depth {tuple(pred_depth.shape)}")
    idx_a, idx_b = mask_ranking_pairs(confidence, generator, unreliable_fraction, global_fraction)
    pred, pseudo = pred_depth.reshape(-1), pseudo_depth.reshape(-1)
    target = ranking_targets(pseudo[idx_a], pseudo[idx_b], ratio_threshold)
    return ranking_loss(pred[idx_a], pred[idx_b], target)


def edge_map(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge strength and across-edge direction of a (multi-channel) map.

    From the Sobel derivatives (:func:`_sobel`) summed over channels into the structure
    tensor ``J = Σ_c [gx², gx·gy; gx·gy, gy²]``: strength ``sqrt(tr J)`` and direction
    ``θ = ½·atan2(2J_xy, J_xx - J_yy)``, the dominant gradient orientation (for one channel,
    the gradient's direction up to sign). A step across columns has θ = 0. [ours] SC-Depth
    v3's code takes ``atan2(|gy|, |gx|)`` (channel means of absolute derivatives for normal
    maps), which folds every direction into one quadrant, so anti-diagonal edges are sampled
    along the wrong diagonal; the structure tensor keeps the true orientation.

    Args:
        x: (B,C,H,W).

    Returns:
        strength (B,1,H,W) ≥ 0 and θ (B,1,H,W) in radians (unit direction (cos θ, sin θ) in
        (column, row) steps).
    """
    gx, gy = _sobel(x)
    jxx, jyy, jxy = (gx * gx).sum(1, keepdim=True), (gy * gy).sum(1, keepdim=True), (gx * gy).sum(1, keepdim=True)
    return torch.sqrt(jxx + jyy), 0.5 * torch.atan2(2.0 * jxy, jxx - jyy)


def edge_guided_pairs(strength: torch.Tensor, theta: torch.Tensor, allowed: torch.Tensor,
                      generator: torch.Generator | None = None, edge_fraction: float = 0.1,
                      min_distance: int = 3, max_distance: int = 19) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge-guided sampling (Xian et al. 2020, as used by SC-Depth v3), one image.

    Edge pixels: ``allowed`` pixels whose strength is ≥ ``edge_fraction`` × the largest
    allowed strength. As many anchors as edge pixels are drawn from them with replacement.
    Each anchor gets four points along its across-edge direction (cos θ, sin θ) at distances
    ``-d1, -d2, +d3, +d4`` (each uniform in [min_distance, max_distance], rounded to the
    nearest pixel, clamped into the image): a, b on one side, c, d on the other. Pairs:
    (a, b), (b, c), (c, d), so one pair in three straddles the edge.

    Args:
        strength, theta, allowed: (H,W) edge strength, direction, bool candidate mask.
        generator: CPU generator (None: the global one).
        edge_fraction, min_distance, max_distance: 0.1, 3, 19 in SC-Depth v3.

    Returns:
        (idx_a, idx_b): (3·anchors,) long flat indices into the (H·W) image, on the CPU
        (empty when no pixel qualifies).
    """
    h, w = strength.shape
    s = torch.where(allowed, strength, torch.zeros_like(strength)).detach().cpu()
    top = s.max()
    empty = torch.zeros(0, dtype=torch.long)
    if not bool(top > 0):
        return empty, empty
    edges = torch.nonzero((s >= edge_fraction * top).reshape(-1), as_tuple=False)[:, 0]
    n = edges.numel()
    anchors = edges[_randint(n, (n,), generator)]
    distance = _randint(max_distance + 1, (4, n), generator, low=min_distance).to(torch.float64)
    distance = distance * torch.tensor([-1.0, -1.0, 1.0, 1.0], dtype=torch.float64)[:, None]
    angle = theta.detach().reshape(-1).cpu().to(torch.float64)[anchors]
    row = (anchors // w)[None] + torch.round(distance * torch.sin(angle)[None]).long()
    col = (anchors % w)[None] + torch.round(distance * torch.cos(angle)[None]).long()
    points = row.clamp(0, h - 1) * w + col.clamp(0, w - 1)           # (4, n): a, b, c, d
    return torch.cat([points[0], points[1], points[2]]), torch.cat([points[1], points[2], points[3]])


def normal_ranking_pairs(image: torch.Tensor, pseudo_depth: torch.Tensor, pseudo_normals: torch.Tensor,
                         generator: torch.Generator | None = None, edge_fraction: float = 0.1,
                         depth_edge_fraction: float | None = 0.1, border: int = 5, min_distance: int = 3,
                         max_distance: int = 19) -> tuple[torch.Tensor, torch.Tensor]:
    """Point pairs of the edge-guided normal ranking loss (SC-Depth v3).

    Per image, :func:`edge_guided_pairs` around two kinds of edges: image edges (of the
    channel-mean image) and edges of the pseudo-depth's normal map (creases, where the
    surface orientation changes). Anchors avoid a ``border``-pixel band, pixels whose
    pseudo-depth is ≤ 0, and the pseudo-depth's own discontinuities, where normals mean
    nothing: pixels whose Sobel depth-gradient strength is ≥ ``depth_edge_fraction`` × its
    maximum, dilated by one pixel (None: no such exclusion). Pairs touching a pseudo-depth
    ≤ 0 are dropped.

    Args:
        image: (B,C,H,W) target image (any affine range; edges are relative).
        pseudo_depth: (B,1,H,W) pseudo-depth.
        pseudo_normals: (B,3,H,W) its normals (:func:`surface_normals`).
        generator: CPU generator (None: the global one).
        edge_fraction, depth_edge_fraction, border, min_distance, max_distance: see above
            (0.1, 0.1, 5, 3, 19; SC-Depth v3 uses a 1-pixel border for image edges, and the
        first colour channel where we use the channel mean).

    Returns:
        (idx_a, idx_b): (N,) long flat indices into the (B·H·W) image, on ``image``'s device.
    """
    _check_depth("normal_ranking_pairs: pseudo_depth", pseudo_depth)
    b, _, h, w = pseudo_depth.shape
    with torch.no_grad():
        valid = pseudo_depth > 0
        allowed = valid.clone()
        band = torch.zeros_like(allowed)
        band[..., border:h - border, border:w - border] = True
        allowed &= band
        if depth_edge_fraction is not None:
            depth_strength, _ = edge_map(pseudo_depth)
            top = depth_strength.amax(dim=(2, 3), keepdim=True)
            jumps = (depth_strength >= depth_edge_fraction * top) & (top > 0)
            allowed &= ~(F.max_pool2d(jumps.to(pseudo_depth.dtype), 3, stride=1, padding=1) > 0)
        image_strength, image_theta = edge_map(image.mean(1, keepdim=True))
        normal_strength, normal_theta = edge_map(pseudo_normals)
    flat_valid = valid.reshape(-1).cpu()
    idx_a, idx_b = [], []
    for i in range(b):
        for strength, theta in ((image_strength, image_theta), (normal_strength, normal_theta)):
            a, c = edge_guided_pairs(strength[i, 0], theta[i, 0], allowed[i, 0], generator, edge_fraction,
                                     min_distance, max_distance)
            idx_a.append(a + i * h * w)
            idx_b.append(c + i * h * w)
    idx_a, idx_b = torch.cat(idx_a), torch.cat(idx_b)
    keep = flat_valid[idx_a] & flat_valid[idx_b]
    return idx_a[keep].to(image.device), idx_b[keep].to(image.device)


def normal_ranking_loss(pred_normals: torch.Tensor, pseudo_normals: torch.Tensor, image: torch.Tensor,
                        pseudo_depth: torch.Tensor, generator: torch.Generator | None = None,
                        **sampling) -> torch.Tensor:
    """Edge-guided normal ranking loss (SC-Depth v3): relative normals across edges.

    For the pairs (A, B) of :func:`normal_ranking_pairs`,
    ``L = mean_pairs | |⟨N*_A, N*_B⟩| - |⟨N_A, N_B⟩| |``: the predicted surface must bend
    across an edge as much as the pseudo-depth's surface does (as in SC-Depth v3's code, the
    similarity is matched rather than ranked).

    Args:
        pred_normals, pseudo_normals: (B,3,H,W) unit normals of the prediction and the
            pseudo-depth (the latter is a constant).
        image: (B,C,H,W) target image; pseudo_depth: (B,1,H,W).
        generator: CPU generator for the pair draws (None: the global one).
        **sampling: options of :func:`normal_ranking_pairs`.

    Returns:
        scalar; 0 (connected to the graph) when there is no pair.
    """
    if pred_normals.shape != pseudo_normals.shape or pred_normals.shape[1] != 3:
        raise ValueError(f"normal_ranking_loss: normals must both be (B,3,H,W), got {tuple(pred_normals.shape)} "
                         f"and {tuple(pseudo_normals.shape)}")
    idx_a, idx_b = normal_ranking_pairs(image, pseudo_depth, pseudo_normals, generator, **sampling)
    if idx_a.numel() == 0:
        return pred_normals.sum() * 0.0
    pred = pred_normals.permute(0, 2, 3, 1).reshape(-1, 3)
    pseudo = pseudo_normals.detach().permute(0, 2, 3, 1).reshape(-1, 3)
    pred_cos = (pred[idx_a] * pred[idx_b]).sum(-1).abs()
    pseudo_cos = (pseudo[idx_a] * pseudo[idx_b]).sum(-1).abs()
    return (pseudo_cos - pred_cos).abs().mean()
