"""SC-Depth v3's pseudo-depth terms of the stage-1 objective (switched off by default).

Longer than 400 lines because the three terms share the normals and the pair sampling, and each
carries the derivation of the formula it implements (the tests check each against it).

They are fed by a monocular *pseudo-depth* of the target frame (any relative depth: right
order and shapes, unknown scale and shift; the synthetic world writes a simulated one, v3 used
LeReS): normal matching (:func:`normal_matching_loss`), dynamic-region mask ranking
(:func:`mask_ranking_loss`) and edge-guided normal ranking (:func:`normal_ranking_loss`);
normals come from :func:`surface_normals`. :func:`bore_depth_lite.losses.stage1_loss` adds
them with their weights (v3 uses 0.1 each).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .geometry import backproject

__all__ = [
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
