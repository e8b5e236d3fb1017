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
default (weight 0; v3 uses 0.1 each): normal matching, dynamic-region mask ranking and edge-guided
normal ranking. They live in :mod:`bore_depth_lite.pseudo_depth_losses`.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch

from .geometry import as_pose_matrix, invert_pose, inverse_warp
from .pseudo_depth_losses import dynamic_confidence, mask_ranking_loss, normal_matching_loss, normal_ranking_loss, surface_normals
from .ssim import ssim_loss

__all__ = [
    "photometric_error",
    "masked_mean",
    "edge_aware_smoothness",
    "depth_inconsistency",
    "PairwiseTerm",
    "pairwise_term",
    "stage1_loss",
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
