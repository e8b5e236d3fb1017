"""Gradient and precision checks of the geometry and loss functions, in kornia's manner.

Three axes (issue "Architecture", item 6):

* ``torch.autograd.gradcheck`` in float64 (fast mode, as kornia: see ``_check``) on small
  inputs (6×8 images) for every public differentiable function of
  :mod:`bore_depth_lite.geometry`, :mod:`bore_depth_lite.ssim`, :mod:`bore_depth_lite.losses`
  and :mod:`bore_depth_lite.pseudo_depth_losses`, plus
  ``gradgradcheck`` where it is cheap. gradcheck compares autograd's Jacobian with central
  finite differences (eps = 1e-6), so it only means something where the function is
  differentiable: each test builds its inputs away from the kinks (integer grid_sample
  positions, ``abs`` at 0, ties of a min/argmin, mask thresholds, clamp bounds) and *asserts*
  the margin, so a future change of input cannot silently land on a kink.
* a dtype matrix: float32, float16 and bfloat16 against float64 on the same inputs: output
  dtype, value error and gradient error within stated tolerances. Everything below *works*
  in float16 and bfloat16 on CPU with torch 2.x (no function raises); the tolerances in
  ``_CASES`` record the precision found (about 4× the measured error, see each entry).
* a device axis: ``cpu`` and ``cuda`` (skipped without a GPU). Inputs are drawn on the CPU
  with ``torch.manual_seed`` and then moved, so both devices see the same numbers and the
  same margins.

What the other test files already check is not repeated: values against kornia / skimage /
scipy (test_geometry, test_losses), the pseudo-depth terms' float64 gradcheck w.r.t. depth
on the CPU and their float32/float64 values on a synthetic frame (test_pseudo_depth_losses).
Here the pseudo-depth gradchecks add the intrinsics as an input, batches of 2, the valid
mask of normal matching, second derivatives and the device axis.
"""
from __future__ import annotations

import math

import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from bore_depth_lite import geometry as geo
from bore_depth_lite import losses as L
from bore_depth_lite import pseudo_depth_losses as P
from bore_depth_lite.ssim import ssim, ssim_loss

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="CUDA not available"))]
H, W = 6, 8
F64 = torch.float64


# ------------------------------------------------------------------------------ helpers
@pytest.fixture(autouse=True, scope="module")
def _one_intra_op_thread():
    """These tensors have a few hundred elements: intra-op threads only add barriers, and on a
    shared 2-core machine spinning OpenMP workers made this file 4× slower (43 s vs 11 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _leaf(x: torch.Tensor) -> torch.Tensor:
    return x.detach().clone().requires_grad_()


def _gen(seed: int) -> torch.Generator:
    """A fresh CPU generator: every call of a sampled loss must draw the same pairs."""
    return torch.Generator().manual_seed(seed)


def _check(fn, inputs, device, second_order: bool = False, fast_mode: bool = True, **kw) -> None:
    """gradcheck (and gradgradcheck) in fast mode by default, as kornia's tests do: it compares
    vᵀJu, autograd's against finite differences, for random u, v drawn from torch's global
    generator (seeded in each test). Any wrong Jacobian entry changes vᵀJu unless u or v is
    exactly orthogonal to the error, so it fails as surely as the full Jacobian comparison,
    which costs one backward per output element: 7 s for backproject alone on 2 slow cores."""
    # On CUDA, grid_sample's and index_put's backward accumulate with atomicAdd, whose order
    # (hence the last bits of a float64 sum) may change between two runs: allow for it.
    nondet = 1e-10 if device == "cuda" else 0.0
    assert gradcheck(fn, inputs, nondet_tol=nondet, fast_mode=fast_mode, **kw)
    if second_order:
        assert gradgradcheck(fn, inputs, nondet_tol=nondet, fast_mode=fast_mode, **kw)


def _K(device="cpu", dtype=F64) -> torch.Tensor:
    """fx ≠ fy and a principal point off the pixel grid, so no symmetry hides a wrong term;
    every entry is exact in bfloat16, so the dtype matrix compares the same camera."""
    return torch.tensor([[6.0, 0.0, 3.75], [0.0, 5.5, 2.375], [0.0, 0.0, 1.0]], dtype=dtype, device=device)


# A pure translation (tx, ty, 0) moves target pixel (u, v) at depth Z to (u + s, v + s/2) in the
# source with s = fx·tx/Z (= fy·ty/Z·2 for ty below), whatever the principal point. Drawing s in
# ±([0.2, 0.8] ∪ [1.2, 1.8]) and setting Z = fx·|tx|/s puts every sample at least 0.1 pixel away
# from the integer positions where bilinear grid_sample has a kink (its derivative jumps there),
# and the samples of the last row and column land between the last pixel and the zero padding
# (padding_mode="zeros", the only mode the package uses), so that path is checked too.
TX, TY = 0.3, 0.3 * 6.0 / (2 * 5.5)


def _depth_for_translation(shape, generator: torch.Generator) -> torch.Tensor:
    s = 0.2 + 0.6 * torch.rand(shape, generator=generator, dtype=F64)
    s = s + (torch.rand(shape, generator=generator, dtype=F64) < 0.5).to(F64)     # half of them past one pixel
    return 6.0 * TX / s


def _translation_vec(sign: float = 1.0, convention: str = "sc_depth") -> torch.Tensor:
    t = [sign * TX, sign * TY, 0.0]
    return torch.tensor([t + [0.0] * 3 if convention == "sc_depth" else [0.0] * 3 + t], dtype=F64)


def _grid_margin(pixels: torch.Tensor) -> float:
    """Smallest distance of a sample position to an integer (where bilinear sampling has a kink)."""
    return (pixels - pixels.round()).abs().min().item()


def _images(generator: torch.Generator, *shape) -> torch.Tensor:
    """Images in [0.1, 0.9]: never 0 (the in-view mask) and |difference| < 1 (the L1 clamp)."""
    return 0.1 + 0.8 * torch.rand(shape, generator=generator, dtype=F64)


def _min_abs_gap(x: torch.Tensor) -> float:
    return x.abs().min().item()


# ========================================================================== pose vectors
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("convention", geo.POSE_CONVENTIONS)
def test_gradcheck_pose_vec_to_mat(convention, device):
    torch.manual_seed(0)
    vec = 0.4 * torch.randn(4, 6, dtype=F64)
    if convention == "axis_angle":
        # Rodrigues has two branches: the exact formula and a Taylor series for θ² < 1e-6.
        # Row 0 is the zero rotation (Taylor; exact identity), row 1 has θ² = 1e-8 (Taylor),
        # row 2 θ² = 1e-5 (exact formula, near the switch); none sits on the switch itself,
        # where the two branches agree only to O(θ⁴).
        vec[0, :3] = 0.0
        vec[1, :3] = torch.tensor([1.0, -2.0, 2.0], dtype=F64) / 3 * 1e-4
        vec[2, :3] = torch.tensor([1.0, -2.0, 2.0], dtype=F64) / 3 * math.sqrt(1e-5)
    _check(lambda v: geo.pose_vec_to_mat(v, convention), (_leaf(vec.to(device)),), device, second_order=True)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_rotations_invert_pose_and_as_pose_matrix(device):
    torch.manual_seed(1)
    angles = _leaf(0.5 * torch.randn(3, 3, dtype=F64).to(device))
    _check(geo.euler_to_rotation, (angles,), device, second_order=True)
    _check(geo.axis_angle_to_rotation, (angles,), device, second_order=True)
    T = _leaf(geo.pose_vec_to_mat(0.3 * torch.randn(3, 6, dtype=F64))[:, :3].to(device))   # (B,3,4)
    _check(geo.invert_pose, (T,), device, second_order=True)
    _check(lambda t: geo.as_pose_matrix(t), (T,), device)


# ============================================================ back-projection, projection
@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_backproject_transform_project(device):
    torch.manual_seed(2)
    K = _K()
    depth = _leaf((2.0 + torch.rand(2, 1, H, W, dtype=F64)).to(device))
    K_inv = _leaf(torch.linalg.inv(K).to(device))
    _check(geo.backproject, (depth, K_inv), device, second_order=True)
    points = geo.backproject(depth.detach(), K_inv.detach())                 # Z in [2, 3], far from eps
    T = _leaf(geo.pose_vec_to_mat(0.1 * torch.randn(2, 6, dtype=F64)).to(device))
    _check(geo.transform_points, (_leaf(points), T), device, second_order=True)
    _check(geo.project, (_leaf(points), _leaf(K.to(device))), device, second_order=True)
    pixels, _ = geo.project(points, K.to(device))
    _check(geo.pixels_to_grid, (_leaf(pixels),), device)


# ======================================================================= inverse warping
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pose_form", ["sc_depth", "axis_angle", "matrix_3x4"])
def test_gradcheck_inverse_warp(pose_form, device):
    torch.manual_seed(3)
    g = _gen(3)
    src_img = _images(g, 1, 1, H, W)
    src_depth = 1.0 + 2.0 * torch.rand(1, 1, H, W, generator=g, dtype=F64)
    tgt_depth = _depth_for_translation((1, 1, H, W), g)
    if pose_form == "matrix_3x4":
        pose, convention = geo.pose_vec_to_mat(_translation_vec())[:, :3], "sc_depth"
    else:
        pose, convention = _translation_vec(convention=pose_form), pose_form
    inputs = tuple(_leaf(x.to(device)) for x in (src_img, tgt_depth, pose, _K(), src_depth))

    def warp(img, depth, T, K, sdepth):
        r = geo.inverse_warp(img, depth, T, K, src_depth=sdepth, pose_convention=convention)
        return r.warped, r.projected_depth, r.computed_depth, r.pixels

    r = geo.inverse_warp(*(x.detach() for x in inputs[:4]), src_depth=inputs[4].detach(), pose_convention=convention)
    assert _grid_margin(r.pixels) >= 0.1                     # no sample near a bilinear kink ...
    u = r.pixels[:, 0]
    assert ((u > W - 1) & (u < W)).any()                     # ... some straddle the zero padding
    assert not r.valid.all() and r.valid.any()
    # first order only: nothing in the package differentiates a warp twice, and the second-order
    # check of grid_sample costs 2-3 s here
    _check(warp, inputs, device)


# ===================================================================================== SSIM
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("window,size", [("box", 3), ("box", 5), ("gaussian", 3)])
def test_gradcheck_ssim(window, size, device):
    torch.manual_seed(4)
    g = _gen(4)
    x, y = _images(g, 1, 1, H, W), _images(g, 1, 1, H, W)
    # ssim_loss clamps (1 - SSIM)/2 into [0, 1]: both bounds are kinks, so stay inside them
    half_dissimilarity = (1 - ssim(x, y, size, window)) / 2
    assert half_dissimilarity.min() > 1e-3 and half_dissimilarity.max() < 1 - 1e-3
    inputs = (_leaf(x.to(device)), _leaf(y.to(device)))
    _check(lambda a, b: ssim(a, b, size, window), inputs, device, second_order=True)
    _check(lambda a, b: ssim_loss(a, b, size, window), inputs, device)


# ============================================================================ photometric
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("use_ssim", [True, False])
def test_gradcheck_photometric_error(use_ssim, device):
    torch.manual_seed(5)
    g = _gen(5)
    target, recon = _images(g, 1, 3, H, W), _images(g, 1, 3, H, W)
    assert _min_abs_gap(target - recon) > 1e-4               # |Δ| has a kink at 0 (and clamps at 1 > 0.8)
    inputs = (_leaf(target.to(device)), _leaf(recon.to(device)))
    _check(lambda a, b: L.photometric_error(a, b, use_ssim=use_ssim), inputs, device)


# ====================================================================== geometry consistency
@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_depth_inconsistency(device):
    torch.manual_seed(6)
    computed = 1.0 + 2.0 * torch.rand(1, 1, H, W, dtype=F64)
    projected = 1.0 + 2.0 * torch.rand(1, 1, H, W, dtype=F64)
    projected[..., 0, :3] = -0.5                              # sampled "behind": the constant-1 branch
    computed[..., 1, :2] = -0.7
    assert _min_abs_gap(computed - projected) > 1e-4          # |Dc - Dp| has a kink at Dc = Dp
    _check(L.depth_inconsistency, (_leaf(computed.to(device)), _leaf(projected.to(device))), device,
           second_order=True)


# ============================================================================= smoothness
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("normalise", [True, False])
def test_gradcheck_edge_aware_smoothness(normalise, device):
    torch.manual_seed(7)
    g = _gen(7)
    disparity = 0.2 + torch.rand(1, 1, H, W, generator=g, dtype=F64)
    image = _images(g, 1, 3, H, W)
    # every |forward difference| (of disparity and of each image channel) is a kink at 0
    for x in (disparity, image):
        assert _min_abs_gap(x[..., :, 1:] - x[..., :, :-1]) > 1e-4
        assert _min_abs_gap(x[..., 1:, :] - x[..., :-1, :]) > 1e-4
    inputs = (_leaf(disparity.to(device)), _leaf(image.to(device)))
    _check(lambda d, i: L.edge_aware_smoothness(d, i, normalise=normalise), inputs, device, second_order=True)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_masked_mean(device):
    torch.manual_seed(8)
    values = _leaf(torch.rand(1, 2, H, W, dtype=F64).to(device))
    mask = (torch.rand(1, 1, H, W) < 0.5).to(device)
    _check(lambda v: L.masked_mean(v, mask, min_pixels=5), (values,), device)
    # at or below the guard: a zero that keeps the graph (gradcheck alone would also accept a
    # detached constant), so its (zero) gradient must check too
    assert L.masked_mean(values, mask, min_pixels=10_000).requires_grad
    _check(lambda v: L.masked_mean(v, mask, min_pixels=10_000), (values,), device)


# ========================================================= pairwise term and stage-1 loss
def _pairwise_scene(generator: torch.Generator, h=H, w=W):
    """Target and two sources under ± the fixed translation, depths drawn as in the warp test."""
    return dict(tgt=_images(generator, 1, 3, h, w),
                srcs=[_images(generator, 1, 3, h, w) for _ in range(2)],
                tgt_depth=_depth_for_translation((1, 1, h, w), generator),
                src_depths=[_depth_for_translation((1, 1, h, w), generator) for _ in range(2)],
                poses=[_translation_vec(1.0), _translation_vec(-1.0)])


def _pairwise_margins(s, K) -> dict[str, float]:
    """Distances to every kink and threshold of the 2·S pairwise terms, in the documented order
    (tgt←src0, src0←tgt, tgt←src1, ...): the min over terms, the auto-mask, the in-view mask,
    the geometric mask, |Δ| of the colour error, and the grid_sample kinks."""
    colors, m = [], dict(auto=math.inf, in_view=math.inf, abs=math.inf, grid=math.inf, inconsistency=math.inf)
    for src, src_depth, vec in zip(s["srcs"], s["src_depths"], s["poses"]):
        T = geo.pose_vec_to_mat(vec)
        for a, b, da, db, pose in ((s["tgt"], src, s["tgt_depth"], src_depth, T),
                                   (src, s["tgt"], src_depth, s["tgt_depth"], geo.invert_pose(T))):
            t = L.pairwise_term(a, b, da, db, pose, K)
            r = geo.inverse_warp(b, da, pose, K, src_depth=db)
            colors.append(t.color)
            m["auto"] = min(m["auto"], _min_abs_gap(t.color - (a - b).abs().mean(1, keepdim=True)))
            m["in_view"] = min(m["in_view"], _min_abs_gap(t.warped.abs().mean(1, keepdim=True) - 1e-3))
            m["abs"] = min(m["abs"], _min_abs_gap(a - t.warped))
            m["grid"] = min(m["grid"], _grid_margin(r.pixels))   # also the distance to the valid span's ends
            both = (r.computed_depth > 0) & (r.projected_depth > 0)
            m["inconsistency"] = min(m["inconsistency"], _min_abs_gap((r.computed_depth - r.projected_depth)[both]))
    ordered = torch.cat(colors, 1).sort(1).values
    m["argmin"] = (ordered[:, 1] - ordered[:, 0]).min().item()
    return m


def _assert_away_from_kinks(m):
    # A finite-difference step of 1e-6 in one input moves a sample by at most ~7e-6 pixel
    # (|∂u/∂Z| = s/Z ≤ 1.8, |∂u/∂t| = fx/Z ≤ 6, about 7 px per radian of rotation) and so a colour
    # by at most ~6e-6 (neighbouring pixels differ by < 0.8), or an image value by 1e-6: margins
    # of 5e-5 cannot be crossed by gradcheck's perturbations. (Measured: ≥ 8.2e-5; 0.1 pixel.)
    assert m["argmin"] > 5e-5, m        # the per-pixel min over terms never (nearly) ties
    assert m["auto"] > 5e-5, m          # colour error never (nearly) equals the no-warp error
    assert m["in_view"] > 5e-5, m       # warped mean never near the 1e-3 "not black" threshold
    assert m["abs"] > 5e-5, m
    assert m["grid"] >= 0.1, m
    assert m["inconsistency"] > 5e-5, m


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_pairwise_term(device):
    torch.manual_seed(9)
    s = _pairwise_scene(_gen(9))
    K = _K()
    _assert_away_from_kinks(_pairwise_margins(s, K))
    tgt, src, tgt_depth, src_depth, vec = (_leaf(x.to(device)) for x in
                                           (s["tgt"], s["srcs"][0], s["tgt_depth"], s["src_depths"][0], s["poses"][0]))
    Kd = K.to(device)

    def term(ti, si, td, sd, v, dynamic=False):
        t = L.pairwise_term(ti, si, td, sd, v, Kd, use_dynamic_mask=dynamic)
        return t.photo, t.color, t.inconsistency, t.warped

    _check(term, (tgt, src, tgt_depth, src_depth, vec), device)
    # The self-discovered mask multiplies the photometric error by (1 - inconsistency).detach():
    # a constant for autograd by design (SC-Depth), so autograd's derivative along a depth
    # change must differ from the finite difference (by the mask's own variation), while the
    # images, which the mask does not depend on, still check.
    direction = torch.randn(tgt_depth.shape, dtype=F64).to(device)
    h = 1e-6
    with torch.no_grad():
        finite = (term(tgt, src, tgt_depth + h * direction, src_depth, vec, True)[0].sum()
                  - term(tgt, src, tgt_depth - h * direction, src_depth, vec, True)[0].sum()) / (2 * h)
    grad, = torch.autograd.grad(term(tgt, src, tgt_depth, src_depth, vec, True)[0].sum(), tgt_depth)
    autograd = (grad * direction).sum()
    assert (autograd - finite).abs() > 1e-3 * finite.abs(), (autograd.item(), finite.item())
    _check(lambda ti, si: term(ti, si, tgt_depth, src_depth, vec, True)[0], (tgt, src), device)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_stage1_loss(device):
    """Photometric (min over the four terms, auto-mask) + geometry + smoothness, w.r.t. every
    depth and pose (poses_inv=None: the inverse poses come from invert_pose, so its gradient is
    in the loop), and w.r.t. the three images."""
    torch.manual_seed(10)
    s = _pairwise_scene(_gen(10))
    K = _K()
    _assert_away_from_kinks(_pairwise_margins(s, K))
    kw = dict(use_dynamic_mask=False, min_valid_pixels=5)       # the mask is detached: see the pairwise test
    out = L.stage1_loss(s["tgt"], s["srcs"], s["tgt_depth"], s["src_depths"], s["poses"], None, K,
                        return_maps=True, **kw)
    assert 0.2 < out["valid_fraction"].item() < 1.0 and set(out["choice"].unique().tolist()) == {0, 1, 2, 3}
    dev = {k: ([x.to(device) for x in v] if isinstance(v, list) else v.to(device)) for k, v in s.items()}
    Kd = K.to(device)

    def loss(td, sd0, sd1, p0, p1, tgt=dev["tgt"], s0=dev["srcs"][0], s1=dev["srcs"][1]):
        return L.stage1_loss(tgt, [s0, s1], td, [sd0, sd1], [p0, p1], None, Kd, **kw)["loss"]

    geometry = tuple(_leaf(x) for x in (dev["tgt_depth"], *dev["src_depths"], *dev["poses"]))
    _check(loss, geometry, device)
    images = tuple(_leaf(x) for x in (dev["tgt"], *dev["srcs"]))
    _check(lambda t, a, b: loss(*(x.detach() for x in geometry), tgt=t, s0=a, s1=b), images, device)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_stage1_loss_with_pseudo_depth_terms(device):
    """The three SC-Depth v3 terms on (a 14×16 image, where the 5-pixel border of the normal
    ranking leaves anchors). The pairs depend on the pseudo-depth, the image and the
    detached dynamic confidence only; a fresh generator per call draws the same ones."""
    torch.manual_seed(11)
    h, w = 14, 16
    s = _pairwise_scene(_gen(11), h, w)
    K = _K()
    _assert_away_from_kinks(_pairwise_margins(s, K))
    # a fronto-parallel pseudo-depth with a raised block in a corner: depth and normal edges
    # only around the block (never anchors: the dilated depth edges are excluded), image edges
    # everywhere else, and the block/rest pairs of the mask ranking get a label
    pseudo = torch.full((1, 1, h, w), 2.0, dtype=F64)
    pseudo[..., :3, :3] = 3.0
    kw = dict(use_dynamic_mask=False, min_valid_pixels=5, pseudo_depth=pseudo.to(device),
              normal_weight=0.1, mask_rank_weight=0.1, normal_rank_weight=0.1)
    out = L.stage1_loss(s["tgt"], s["srcs"], s["tgt_depth"], s["src_depths"], s["poses"], None, K,
                        generator=_gen(0), return_maps=True, **{**kw, "pseudo_depth": pseudo})
    assert all(out[k].item() > 0 for k in ("normal", "mask_rank", "normal_rank")), out
    # the mask-ranking pairs follow the order of the confidence: no two distinct values so close
    # that a 1e-6 step of a depth could swap them (exact ties, e.g. 1 = never valid, stay ties)
    values = out["confidence_map"].reshape(-1).unique()
    assert (values[1:] - values[:-1]).min() > 2e-6      # ∂(1 - inc)/∂depth < 1/(Dc + Dp) < 0.5 here
    dev = {k: ([x.to(device) for x in v] if isinstance(v, list) else v.to(device)) for k, v in s.items()}
    Kd = K.to(device)

    def loss(td, sd0, sd1, p0, p1):
        return L.stage1_loss(dev["tgt"], dev["srcs"], td, [sd0, sd1], [p0, p1], None, Kd, generator=_gen(0),
                             **kw)["loss"]

    _check(loss, tuple(_leaf(x) for x in (dev["tgt_depth"], *dev["src_depths"], *dev["poses"])), device)


# ===================================================================== pseudo-depth terms
@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_surface_normals_wrt_depth_and_intrinsics(device):
    torch.manual_seed(12)
    depth = _leaf((2.0 + torch.rand(2, 1, 5, 6, dtype=F64)).to(device))
    K_inv = _leaf(torch.linalg.inv(_K()).to(device))
    _check(P.surface_normals, (depth, K_inv), device, second_order=True)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_normal_matching_with_valid_mask(device):
    torch.manual_seed(16)            # min |N - N*| = 3.9e-3 (seed 13 gave 4.8e-5)
    K_inv = torch.linalg.inv(_K())
    depth = 2.0 + torch.rand(2, 1, H, W, dtype=F64)
    pseudo_normals = P.surface_normals(1.0 + torch.rand(2, 1, H, W, dtype=F64), K_inv)
    valid = torch.rand(2, 1, H, W) < 0.6
    assert _min_abs_gap(P.surface_normals(depth, K_inv) - pseudo_normals) > 1e-4   # |ΔN| kink at 0
    K_inv, pseudo_normals, valid = K_inv.to(device), pseudo_normals.to(device), valid.to(device)
    for mask in (valid, None):
        _check(lambda d, k: P.normal_matching_loss(P.surface_normals(d, k), pseudo_normals, valid=mask),
               (_leaf(depth.to(device)), _leaf(K_inv)), device)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_ranking_and_mask_ranking(device):
    torch.manual_seed(14)
    a, b = (_leaf(torch.randn(20, dtype=F64).to(device)) for _ in range(2))
    target = torch.tensor([1.0, -1.0, 0.0, 1.0] * 5, dtype=F64, device=device)   # 0 = skipped pair
    _check(lambda x, y: P.ranking_loss(x, y, target), (a, b), device, second_order=True)
    # mask ranking: the pairs come from the confidence and a generator seeded explicitly on each
    # call, the labels from the pseudo-depth: piecewise constant in neither prediction input,
    # so the loss is a smooth (softplus) function of pred_depth
    pseudo = (1.0 + 3.0 * torch.rand(2, 1, H, W, dtype=F64)).to(device)
    confidence = torch.rand(2, 1, H, W, dtype=F64).to(device)
    pred = _leaf((0.5 + torch.rand(2, 1, H, W, dtype=F64)).to(device))
    assert P.mask_ranking_loss(pred, pseudo, confidence, _gen(5)).item() > 0
    _check(lambda p: P.mask_ranking_loss(p, pseudo, confidence, _gen(5)), (pred,), device, second_order=True)


@pytest.mark.parametrize("device", DEVICES)
def test_gradcheck_normal_ranking(device):
    torch.manual_seed(15)
    h, w = 12, 14
    K_inv = torch.linalg.inv(_K())
    image = torch.rand(2, 3, h, w, dtype=F64)
    pseudo = 2.0 + torch.rand(2, 1, h, w, dtype=F64)
    depth = 2.0 + torch.rand(2, 1, h, w, dtype=F64)
    pseudo_normals = P.surface_normals(pseudo, K_inv)
    opts = dict(border=2, depth_edge_fraction=None, max_distance=4)
    # L = mean | |<N*a, N*b>| - |<Na, Nb>| |: three abs kinks; check every sampled pair avoids them
    ia, ib = P.normal_ranking_pairs(image, pseudo, pseudo_normals, _gen(2), **opts)
    assert ia.numel() > 30
    pred = P.surface_normals(depth, K_inv).permute(0, 2, 3, 1).reshape(-1, 3)
    ref = pseudo_normals.permute(0, 2, 3, 1).reshape(-1, 3)
    pred_cos, ref_cos = (pred[ia] * pred[ib]).sum(-1), (ref[ia] * ref[ib]).sum(-1)
    distinct = ia != ib               # a pair may repeat a point (clamped into the image): cos = 1,
    assert _min_abs_gap(pred_cos) > 1e-4 and _min_abs_gap((ref_cos.abs() - pred_cos.abs())[distinct]) > 1e-4
    # ... and then both |cos| are exactly 1 for every depth: zero gradient both ways, no kink
    image, pseudo, pseudo_normals, K_inv = (x.to(device) for x in (image, pseudo, pseudo_normals, K_inv))

    def loss(d, k):
        return P.normal_ranking_loss(P.surface_normals(d, k), pseudo_normals, image, pseudo, _gen(2), **opts)

    _check(loss, (_leaf(depth.to(device)), _leaf(K_inv)), device)


def test_dynamic_confidence_is_detached():
    """Documented as detached (it only selects pairs): no gradient flows back, whatever the input."""
    torch.manual_seed(16)
    inc = _leaf(torch.rand(1, 1, H, W, dtype=F64))
    conf = P.dynamic_confidence([inc], [torch.rand(1, 1, H, W) > 0.3])
    assert not conf.requires_grad and conf.dtype == F64


# ============================================================================ dtype matrix
# Each case builds float64 inputs on the CPU (seeded) and returns (fn, inputs); fn returns one
# tensor. Tolerances map dtype → (max relative error of the output, of every input gradient),
# relative to the largest float64 value: about 4× the error measured on CPU (torch 2.14),
# rounded up to 1, 2 or 5 × 10^k; the measured values are in the comments. The output dtype is
# the input's unless a case says otherwise.
_T32, _T16, _TBF = torch.float32, torch.float16, torch.bfloat16
# measured at most: float32 1.4e-7 / 1.4e-7, float16 6.4e-4 / 7.8e-4, bfloat16 3.7e-3 / 6.9e-3
_PLAIN = {_T32: (1e-6, 1e-6), _T16: (5e-3, 5e-3), _TBF: (2e-2, 5e-2)}
# smoothness on a checkerboard: float32 1.2e-7 / 2.0e-7, float16 2.8e-4 / 1.4e-3, bfloat16 2.8e-4 / 1.3e-2
_SMOOTH = {_T32: (1e-6, 1e-6), _T16: (2e-3, 1e-2), _TBF: (2e-3, 1e-1)}
# normal matching: float32 2.3e-8 / 2.9e-7, bfloat16 1.6e-3 / 1.1e-2, float16 3.0e-4 / 5.4e-2:
# float16's gradients underflow (its smallest normal number is 6.1e-5, and the mean over
# 3·H·W terms makes every upstream gradient small); scaling the loss by 1024 first, as
# torch.amp.GradScaler does in float16 training, brings that to 1.4e-3. Tolerance 2.5e-1.
_NMATCH = {_T32: (1e-6, 2e-6), _T16: (2e-3, 2.5e-1), _TBF: (1e-2, 5e-2)}
_UPCAST = {_T16: _T32, _TBF: _T32}       # half inputs upcast to float32 (documented, see below)


def _case_pose(convention, zero_rotation=False):
    def build():
        vec = 0.4 * torch.randn(2, 6, dtype=F64)
        if zero_rotation:
            vec[:, :3] = 0.0
        return (lambda v: geo.pose_vec_to_mat(v, convention)), (vec,)
    return build


def _case_warp():
    g = _gen(20)
    img, depth = _images(g, 1, 3, H, W), _depth_for_translation((1, 1, H, W), g)
    src_depth = 1.5 + torch.rand(1, 1, H, W, generator=g, dtype=F64)

    def fn(i, d, v, s):
        return geo.inverse_warp(i, d, v, _K(i.device, i.dtype), src_depth=s).warped

    return fn, (img, depth, _translation_vec(), src_depth)


def _case_pairwise():
    s = _pairwise_scene(_gen(21))
    return (lambda t, sr, td, sd, v: L.pairwise_term(t, sr, td, sd, v, _K(t.device, t.dtype)).photo), (
        s["tgt"], s["srcs"][0], s["tgt_depth"], s["src_depths"][0], s["poses"][0])


def _case_stage1():
    s = _pairwise_scene(_gen(22))
    return (lambda t, a, b, td, sa, sb, pa, pb: L.stage1_loss(t, [a, b], td, [sa, sb], [pa, pb], None,
                                                               _K(t.device, t.dtype), min_valid_pixels=5)["loss"]), (
        s["tgt"], *s["srcs"], s["tgt_depth"], *s["src_depths"], *s["poses"])


def _case_ssim(window):
    def build():
        g = _gen(23)
        return (lambda a, b: ssim(a, b, 3, window)), (_images(g, 1, 3, H, W), _images(g, 1, 3, H, W))
    return build


def _case_mask_ranking():
    # Values exactly representable in bfloat16 (8 significant bits), pseudo-depth ratios of 1 or
    # 2 (far from the 1.15 threshold) and distinct confidences: every dtype ranks the same pairs.
    pseudo = torch.tensor([1.0, 2.0, 4.0])[torch.randint(0, 3, (1, 1, H, W))].to(F64)
    confidence = (torch.randperm(H * W).reshape(1, 1, H, W) / 64).to(F64)
    pred = 1.0 + torch.rand(1, 1, H, W, dtype=F64)
    return (lambda p, q, c: P.mask_ranking_loss(p, q, c, _gen(1))), (pred, pseudo, confidence)


def _case_normal_ranking():
    # A roof (two planes meeting along a column) under a flat image: the only anchors are on the
    # crease, found with the same strength ordering and direction (θ ≈ 0) in every dtype, so all
    # dtypes draw the same pairs.
    h, w = 12, 14
    K = _K()
    v, u = torch.meshgrid(torch.arange(h, dtype=F64), torch.arange(w, dtype=F64), indexing="ij")
    rays = torch.linalg.inv(K) @ torch.stack([u, v, torch.ones_like(u)]).reshape(3, -1)
    a = 0.3
    left, right = (4.0 / (torch.tensor([sx, 0.0, math.cos(a)], dtype=F64) @ rays)
                   for sx in (math.sin(a), -math.sin(a)))
    pseudo = torch.where(u.reshape(-1) <= K[0, 2], left, right).reshape(1, 1, h, w)
    depth = 2.0 + torch.rand(1, 1, h, w, dtype=F64)
    image = torch.full((1, 3, h, w), 0.5, dtype=F64)
    opts = dict(border=2, depth_edge_fraction=None, max_distance=4)

    def fn(d, k_inv, q, img):
        return P.normal_ranking_loss(P.surface_normals(d, k_inv), P.surface_normals(q, k_inv), img, q, _gen(3), **opts)

    return fn, (depth, torch.linalg.inv(K), pseudo, image)


@pytest.mark.parametrize("dtype", [_T32, _T16, _TBF], ids=lambda d: str(d)[6:])
def test_dtype_matrix_ranking_cases_draw_the_same_pairs(dtype):
    """The precondition of the two ranking cases below: their pairs (and labels) do not depend
    on the dtype, so the dtype matrix compares the same sum of terms."""
    torch.manual_seed(30)
    _, (pred, pseudo, confidence) = _case_mask_ranking()
    ref = P.mask_ranking_pairs(confidence, _gen(1))
    low = P.mask_ranking_pairs(confidence.to(dtype), _gen(1))
    assert all(torch.equal(x, y) for x, y in zip(ref, low))
    labels = [P.ranking_targets(q.reshape(-1)[ref[0]], q.reshape(-1)[ref[1]]) for q in (pseudo, pseudo.to(dtype))]
    assert torch.equal(labels[0], labels[1].double()) and labels[0].abs().sum() > 5
    _, (depth, K_inv, pseudo, image) = _case_normal_ranking()
    opts = dict(border=2, depth_edge_fraction=None, max_distance=4)
    pairs = [P.normal_ranking_pairs(image.to(dt), pseudo.to(dt), P.surface_normals(pseudo.to(dt), K_inv.to(dt)),
                                    _gen(3), **opts) for dt in (F64, dtype)]
    assert pairs[0][0].numel() > 20
    assert all(torch.equal(x, y) for x, y in zip(*pairs))


def _simple(fn, *makers):
    return lambda: (fn, tuple(m() for m in makers))


_depth = lambda: 2.0 + torch.rand(1, 1, H, W, dtype=F64)                 # noqa: E731
_noise = lambda c: torch.rand(1, c, H, W, dtype=F64)                     # noqa: E731
_checker = lambda c: ((torch.arange(H)[:, None] + torch.arange(W)) % 2).to(F64).expand(1, c, H, W)  # noqa: E731


def _tilted_depth():
    """Depth of the plane n·P = 3 with n ∝ (0.5, 0.4, 0.77), times 1 + 5 % noise."""
    v, u = torch.meshgrid(torch.arange(H, dtype=F64), torch.arange(W, dtype=F64), indexing="ij")
    rays = torch.linalg.inv(_K()) @ torch.stack([u, v, torch.ones_like(u)]).reshape(3, -1)
    n = torch.tensor([0.5, 0.4, 0.77], dtype=F64)
    return (3.0 / (n / n.norm() @ rays)).reshape(1, 1, H, W) * (1 + 0.05 * _noise(1))
_img = lambda: 0.1 + 0.8 * torch.rand(1, 3, H, W, dtype=F64)             # noqa: E731
_points = lambda: geo.backproject(_depth(), torch.linalg.inv(_K()))      # noqa: E731

# name → (builder, tolerances, output dtype overrides)
_CASES = {
    "pose_vec_to_mat[sc_depth]": (_case_pose("sc_depth"), _PLAIN, {}),
    "pose_vec_to_mat[axis_angle]": (_case_pose("axis_angle"), _PLAIN, {}),
    "pose_vec_to_mat[axis_angle,zero]": (_case_pose("axis_angle", zero_rotation=True), _PLAIN, {}),
    "invert_pose": (_simple(geo.invert_pose, lambda: geo.pose_vec_to_mat(torch.randn(2, 6, dtype=F64))), _PLAIN, {}),
    "backproject": (_simple(geo.backproject, _depth, lambda: torch.linalg.inv(_K())), _PLAIN, {}),
    "transform_points": (_simple(geo.transform_points, _points,
                                 lambda: geo.pose_vec_to_mat(0.2 * torch.randn(1, 6, dtype=F64))), _PLAIN, {}),
    "project": (_simple(lambda p, k: geo.project(p, k)[0], _points, _K), _PLAIN, {}),
    "pixels_to_grid": (_simple(geo.pixels_to_grid, lambda: 7 * torch.rand(1, 2, H, W, dtype=F64)), _PLAIN, {}),
    # inverse_warp upcasts float16/bfloat16 inputs to float32 (fp16 resolves 0.5 px at u = 512)
    # and returns float32, as accurate as float32 inputs (measured 5.7e-7 for all three); the
    # gradients go back to the inputs in their own dtype (measured 3.1e-4 fp16, 2.8e-3 bf16).
    "inverse_warp": (_case_warp, {_T32: (5e-6, 5e-6), _T16: (5e-6, 2e-3), _TBF: (5e-6, 2e-2)}, _UPCAST),
    # SSIM's variances E[x²] - E[x]² cancel. float16: measured 2.3e-2 / 1.8e-2 (box), 1.6e-2 /
    # 1.1e-2 (Gaussian); bfloat16 (8 significant bits) loses most of them: 1.2e-1 / 8.6e-2 (box),
    # 2.1e-1 / 1.6e-1 (Gaussian). It runs, but only float32 and up are usable (stage1_loss upcasts).
    "ssim[box]": (_case_ssim("box"), {_T32: (1e-5, 1e-5), _T16: (1e-1, 1e-1), _TBF: (5e-1, 5e-1)}, {}),
    "ssim[gaussian]": (_case_ssim("gaussian"), {_T32: (2e-5, 1e-5), _T16: (1e-1, 5e-2), _TBF: (1.0, 1.0)}, {}),
    # SSIM inside: float16 4.8e-3 / 1.3e-2, bfloat16 2.4e-2 / 7.0e-2
    "photometric_error": (_simple(L.photometric_error, _img, _img), {_T32: (5e-6, 1e-5), _T16: (2e-2, 1e-1),
                                                                      _TBF: (1e-1, 5e-1)}, {}),
    # Inputs on a checkerboard: neighbours differ by ≥ 0.1, so no |∂d| or |∂I| changes sign when
    # the mean-normalised disparity is rounded. (On random 1/depth in [1/3, 1/2], bfloat16's
    # 2⁻⁷ spacing ties a few neighbours and the disparity gradient, sign(∂d), is 2.2e-1 off.)
    "edge_aware_smoothness": (_simple(L.edge_aware_smoothness, lambda: 0.3 + 0.2 * _checker(1) + 0.05 * _noise(1),
                                      lambda: 0.2 + 0.5 * _checker(3) + 0.1 * _noise(3)), _SMOOTH, {}),
    "depth_inconsistency": (_simple(L.depth_inconsistency, _depth, _depth), _PLAIN, {}),
    "masked_mean": (_simple(lambda v: L.masked_mean(v, torch.ones(1, 1, H, W), 5), _depth), _PLAIN, {}),
    # pairwise_term: the warp is float32 for half inputs, so the photometric map is promoted to
    # float32; the target image stays half inside SSIM (x² in half): float16 1.4e-4 / 3.0e-3,
    # bfloat16 1.1e-3 / 1.5e-2.
    "pairwise_term": (_case_pairwise, {_T32: (2e-5, 2e-5), _T16: (1e-3, 2e-2), _TBF: (5e-3, 1e-1)}, _UPCAST),
    # stage1_loss: documented "runs in float32 even inside torch.autocast (half-precision inputs
    # are upcast)": the loss is as accurate as with float32 inputs (5.6e-8), the gradients are
    # rounded to the inputs' dtype (3.4e-4 float16, 2.6e-3 bfloat16).
    "stage1_loss": (_case_stage1, {_T32: (1e-6, 2e-5), _T16: (1e-6, 2e-3), _TBF: (1e-6, 2e-2)}, _UPCAST),
    # normals: float32 8.5e-8 / 1.7e-7, float16 1.1e-3 / 1.7e-3, bfloat16 1.1e-2 / 1.8e-2
    "surface_normals": (_simple(P.surface_normals, _depth, lambda: torch.linalg.inv(_K())),
                        {_T32: (1e-6, 1e-6), _T16: (5e-3, 1e-2), _TBF: (5e-2, 1e-1)}, {}),
    # A tilted plane (normal (0.5, 0.4, 0.77)) with 5 % depth noise against a fronto-parallel
    # pseudo-depth (normal (0, 0, 1)): every |N - N*| component is far from its kink at 0, which
    # the rounding of nearly equal normals would otherwise cross (3.4e-1 gradient error seen).
    "normal_matching_loss": (_simple(lambda d, k: P.normal_matching_loss(P.surface_normals(d, k), P.surface_normals(
        torch.full_like(d, 3.0), k)), _tilted_depth, lambda: torch.linalg.inv(_K())), _NMATCH, {}),
    "ranking_loss": (_simple(lambda a, b: P.ranking_loss(a, b, torch.tensor([1.0, -1.0, 0.0, 1.0] * 5, dtype=a.dtype,
                                                                            device=a.device)),
                             lambda: torch.randn(20, dtype=F64), lambda: torch.randn(20, dtype=F64)), _PLAIN, {}),
    "mask_ranking_loss": (_case_mask_ranking, _PLAIN, {}),
    # float32 2.7e-7 / 4.6e-7, float16 3.0e-3 / 4.1e-2, bfloat16 8.1e-3 / 2.0e-2
    "normal_ranking_loss": (_case_normal_ranking, {_T32: (2e-6, 5e-6), _T16: (2e-2, 2e-1), _TBF: (1e-1, 2e-1)}, {}),
}

# Known bug (reported, not fixed here): float16 gradients of a zero axis-angle rotation are NaN.
# axis_angle_to_rotation computes θ = sqrt(θ² + eps²) with eps = 1e-8: eps² = 1e-16 underflows
# to 0 in float16, θ = sqrt(0) has an infinite derivative, and sin(θ)/θ (0/0) poisons the
# unselected torch.where branch. bfloat16 (float32's exponent range) and float32 are fine.
# (name, dtype) -> reason, for a known defect that must still fail (strict xfail). Empty since
# axis_angle_to_rotation no longer takes sqrt(θ² + eps²) (eps² underflowed to 0 in float16 and
# gave a NaN gradient at zero rotation).
_XFAIL: dict = {}


def _dtype_params():
    for name in _CASES:
        for dtype in (_T32, _T16, _TBF):
            reason = _XFAIL.get((name, dtype))
            marks = [pytest.mark.xfail(reason=reason, strict=True, raises=AssertionError)] if reason else []
            yield pytest.param(name, dtype, marks=marks, id=f"{name}-{str(dtype)[6:]}")


def _dtype_errors(name, dtype, device):
    """Run case ``name`` in float64 and in ``dtype`` on the same inputs; return the output's
    dtype and relative error, and per input the gradient's dtype and relative error (None for
    an input the output does not depend on).

    The inputs are rounded to bfloat16 first (8 significant bits; exact in float16 too, as
    every value here is within its range), so both runs see identical numbers and the errors
    measure the function's arithmetic, not the rounding of its inputs, which could otherwise
    move a pair of nearly equal values across an abs/ratio kink."""
    build, _, _ = _CASES[name]
    torch.manual_seed(30)
    fn, inputs = build()
    inputs = tuple(x.to(torch.bfloat16).to(F64) for x in inputs)
    ref_in = tuple(_leaf(x.to(device)) for x in inputs)
    ref = fn(*ref_in)
    assert ref.dtype == F64, "float64 in, float64 out"
    cotangent = torch.randn(ref.shape, dtype=F64).to(device)
    ref_grads = torch.autograd.grad(ref, ref_in, cotangent, allow_unused=True)

    low_in = tuple(_leaf(x.to(device=device, dtype=dtype)) for x in inputs)
    out = fn(*low_in)
    assert torch.isfinite(out).all(), f"{name} {dtype}: non-finite output"
    err = ((out.double() - ref).abs().max() / ref.abs().max().clamp_min(1e-12)).item()
    grads = torch.autograd.grad(out, low_in, cotangent.to(out.dtype), allow_unused=True)
    grad_info = []
    for i, (g, rg) in enumerate(zip(grads, ref_grads)):
        if rg is None or not rg.abs().max() > 0:                 # an input the output does not depend on
            assert g is None or not g.abs().max() > 0, f"{name} {dtype}: gradient of input {i} should be 0"
            grad_info.append(None)
            continue
        assert torch.isfinite(g).all(), f"{name} {dtype}: non-finite gradient of input {i}"
        grad_info.append((g.dtype, ((g.double() - rg).abs().max() / rg.abs().max()).item()))
    return out.dtype, err, grad_info


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name,dtype", list(_dtype_params()))
def test_dtype_matrix(name, dtype, device, monkeypatch):
    if device == "cuda":   # the matrix documents IEEE float32, not TensorFloat-32 convolutions/matmuls
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    _, tolerances, out_dtypes = _CASES[name]
    out_dtype, err, grad_info = _dtype_errors(name, dtype, device)
    assert out_dtype == out_dtypes.get(dtype, dtype)
    out_tol, grad_tol = tolerances[dtype]
    assert err <= out_tol, f"{name} {dtype}: relative error {err:.2e} > {out_tol:.0e}"
    for i, info in enumerate(grad_info):
        if info is not None:
            g_dtype, g_err = info
            assert g_dtype == dtype, f"{name}: gradient of input {i} is {g_dtype}, not {dtype}"
            assert g_err <= grad_tol, f"{name} {dtype}: gradient {i} relative error {g_err:.2e} > {grad_tol:.0e}"
