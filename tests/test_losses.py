"""Tests of bore_depth_lite.ssim and bore_depth_lite.losses against independent references.

References: scikit-image's structural_similarity (box-window SSIM, interior pixels),
scipy's uniform_filter in 'mirror' mode (= reflection padding, whole map), kornia's ssim
(Gaussian window), kornia's inverse_depth_smoothness_loss, and a loop-by-loop rewrite of
SC-Depth's loss in this file built on kornia's warp.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import uniform_filter

from bore_depth_lite import losses as L
from bore_depth_lite.ssim import ssim, ssim_loss

kornia = pytest.importorskip("kornia")


def _images(seed=0, shape=(2, 3, 20, 24), dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=g, dtype=dtype)
    b = (a + 0.2 * torch.randn(shape, generator=g, dtype=dtype)).clamp(0, 1)
    return a, b


# ------------------------------------------------------------------------------------ SSIM
@pytest.mark.parametrize("k", [3, 7])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_box_ssim_matches_skimage_on_interior(k, dtype, tol):
    from skimage.metrics import structural_similarity

    a, b = _images(1, dtype=dtype)
    ours = ssim(a, b, window_size=k).double().numpy()
    p = k // 2
    for n in range(a.shape[0]):
        _, full = structural_similarity(a[n].double().numpy(), b[n].double().numpy(), win_size=k,
                                        gaussian_weights=False, use_sample_covariance=False, data_range=1,
                                        channel_axis=0, full=True)
        err = np.abs(ours[n][:, p:-p, p:-p] - full[:, p:-p, p:-p]).max()
        assert err < tol, f"k={k}: max |ours - skimage| on interior = {err:.2e}"


def test_box_ssim_whole_map_matches_mirror_padded_reference():
    """Border pixels too: torch 'reflect' padding is scipy's 'mirror' mode."""
    a, b = _images(2, shape=(1, 3, 9, 11))
    k = 3
    x, y = a[0].numpy(), b[0].numpy()

    def mean(z):
        return uniform_filter(z, size=(1, k, k), mode="mirror")

    mx, my = mean(x), mean(y)
    vx, vy, cxy = mean(x * x) - mx**2, mean(y * y) - my**2, mean(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    ref = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    np.testing.assert_allclose(ssim(a, b, 3)[0].numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("k", [5, 11])
def test_gaussian_ssim_matches_kornia(k):
    a, b = _images(3, shape=(2, 3, 32, 40), dtype=torch.float32)
    ours = ssim(a, b, window_size=k, window="gaussian")
    ref = kornia.metrics.ssim(a, b, window_size=k, max_val=1.0, eps=0.0, padding="same")
    assert (ours - ref).abs().max().item() < 1e-5


def test_ssim_basic_properties_and_errors():
    a, b = _images(4)
    torch.testing.assert_close(ssim(a, a), torch.ones_like(a))
    torch.testing.assert_close(ssim(a, b), ssim(b, a))
    loss = ssim_loss(a, b)
    assert loss.min() >= 0 and loss.max() <= 1 and loss.mean() > 0.05
    with pytest.raises(ValueError, match="odd"):
        ssim(a, b, window_size=4)
    with pytest.raises(ValueError, match="same shape"):
        ssim(a, b[:, :1])
    with pytest.raises(ValueError, match="window"):
        ssim(a, b, window="disk")


# ------------------------------------------------------------------------ photometric error
def test_photometric_error_formula():
    a, b = _images(5)
    ref = (0.15 * (a - b).abs().clamp(0, 1) + 0.85 * ((1 - ssim(a, b)) / 2).clamp(0, 1)).mean(1, keepdim=True)
    torch.testing.assert_close(L.photometric_error(a, b), ref)
    torch.testing.assert_close(L.photometric_error(a, b, use_ssim=False), (a - b).abs().mean(1, keepdim=True))
    assert L.photometric_error(a, a).abs().max() < 1e-12
    assert L.photometric_error(a, b).shape == (2, 1, 20, 24)


# --------------------------------------------------------------------------- smoothness
def test_smoothness_matches_kornia():
    g = torch.Generator().manual_seed(6)
    disp = torch.rand(2, 1, 16, 20, generator=g) + 0.1
    img = torch.rand(2, 3, 16, 20, generator=g)
    ref = kornia.losses.inverse_depth_smoothness_loss(disp, img)
    torch.testing.assert_close(L.edge_aware_smoothness(disp, img, normalise=False), ref)
    normalised = disp / disp.mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(L.edge_aware_smoothness(disp, img), kornia.losses.inverse_depth_smoothness_loss(normalised, img))
    # mean normalisation makes it scale-free: shrinking all disparity cannot win the term
    torch.testing.assert_close(L.edge_aware_smoothness(disp * 0.1, img), L.edge_aware_smoothness(disp, img),
                               rtol=1e-5, atol=0)


def test_masked_mean_and_guard():
    values = torch.arange(200.0).view(1, 1, 10, 20).requires_grad_()
    mask = torch.zeros(1, 1, 10, 20)
    mask[..., :6, :] = 1  # 120 pixels
    torch.testing.assert_close(L.masked_mean(values, mask), values[..., :6, :].mean())
    mask[..., 5:, :] = 0  # 100 pixels: at the guard
    out = L.masked_mean(values, mask)
    assert out.item() == 0.0 and out.requires_grad
    out.backward()


# ------------------------------------------------------- stage-1 loss vs an SC-Depth rewrite
def _ref_ssim_loss(x, y, k=3):
    pad = torch.nn.ReflectionPad2d(k // 2)
    x, y = pad(x), pad(y)

    def pool(z):
        return F.avg_pool2d(z, k, 1)

    mu_x, mu_y = pool(x), pool(y)
    sigma_x, sigma_y, sigma_xy = pool(x * x) - mu_x**2, pool(y * y) - mu_y**2, pool(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    n = (2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)
    d = (mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2)
    return torch.clamp((1 - n / d) / 2, 0, 1)


def _ref_pairwise(tgt, ref, tgt_depth, ref_depth, T, K, no_ssim, no_auto_mask, no_dynamic_mask):
    both = kornia.geometry.depth.warp_frame_depth(torch.cat([ref, ref_depth], 1), tgt_depth, T, K)
    warped, projected = both[:, :3], both[:, 3:]
    pts = kornia.geometry.depth.depth_to_3d_v2(tgt_depth[:, 0], K)  # B,H,W,3
    b, h, w, _ = pts.shape
    computed = kornia.geometry.linalg.transform_points(T, pts.reshape(b, -1, 3))[..., 2].reshape(b, 1, h, w)
    diff_depth = (computed - projected).abs() / (computed + projected)
    valid = (warped.abs().mean(1, keepdim=True) > 1e-3).float() * (tgt.abs().mean(1, keepdim=True) > 1e-3).float()
    diff_color = (tgt - warped).abs().mean(1, keepdim=True)
    if not no_auto_mask:
        valid = valid * (diff_color < (tgt - ref).abs().mean(1, keepdim=True)).float()
    diff_img = (tgt - warped).abs().clamp(0, 1)
    if not no_ssim:
        diff_img = 0.15 * diff_img + 0.85 * _ref_ssim_loss(tgt, warped)
    diff_img = diff_img.mean(1, keepdim=True)
    if not no_dynamic_mask:
        diff_img = diff_img * (1 - diff_depth).detach()
    return diff_img, diff_color, diff_depth, valid


def _ref_mean_on_mask(diff, mask):
    mask = mask.expand_as(diff)
    return (diff * mask).sum() / mask.sum() if mask.sum() > 100 else torch.zeros((), dtype=diff.dtype)


def _ref_stage1(tgt, srcs, tgt_depth, src_depths, poses, K, no_ssim=False, no_auto_mask=False,
                no_dynamic_mask=False, no_min=False):
    maps = [[], [], [], []]
    for ref, ref_depth, T in zip(srcs, src_depths, poses):
        for item in (_ref_pairwise(tgt, ref, tgt_depth, ref_depth, T, K, no_ssim, no_auto_mask, no_dynamic_mask),
                     _ref_pairwise(ref, tgt, ref_depth, tgt_depth, torch.linalg.inv(T), K, no_ssim, no_auto_mask,
                                   no_dynamic_mask)):
            for store, m in zip(maps, item):
                store.append(m)
    diff_img, diff_color, diff_depth, valid = (torch.cat(m, 1) for m in maps)
    if not no_min:
        idx = diff_color.argmin(1, keepdim=True)
        diff_img, diff_depth, valid = (torch.gather(x, 1, idx) for x in (diff_img, diff_depth, valid))
    disp = 1 / tgt_depth
    smooth = kornia.losses.inverse_depth_smoothness_loss(disp / (disp.mean((2, 3), keepdim=True) + 1e-7), tgt)
    return _ref_mean_on_mask(diff_img, valid), _ref_mean_on_mask(diff_depth, valid), smooth


@pytest.fixture(scope="module")
def triplet():
    """Target = frame 1 of a synthetic indoor sequence, sources = frames 0 and 2 (float64)."""
    synthetic = pytest.importorskip("bore_depth_lite.data.synthetic")
    seq = synthetic.render_sequence("indoor", num_frames=3, height=64, width=80, seed=1, speed=8.0)

    def t(x):
        return torch.as_tensor(np.asarray(x), dtype=torch.float64)

    img = t(seq.rgb / 255.0).permute(0, 3, 1, 2)
    depth = t(seq.depth)[:, None]
    poses = [t(np.linalg.inv(seq.poses[s]) @ seq.poses[1])[None] for s in (0, 2)]
    return dict(tgt=img[1:2], srcs=[img[0:1], img[2:3]], tgt_depth=depth[1:2], src_depths=[depth[0:1], depth[2:3]],
                poses=poses, K=t(seq.K)[None])


SWITCHES = [dict(), dict(use_ssim=False), dict(use_auto_mask=False), dict(use_dynamic_mask=False), dict(use_min=False)]


@pytest.mark.parametrize("switch", SWITCHES, ids=lambda s: next(iter(s), "default"))
def test_stage1_loss_matches_sc_depth_rewrite(triplet, switch):
    s = triplet
    g = torch.Generator().manual_seed(7)
    # a wrong-ish prediction, so that every term is non-trivial
    tgt_depth = (s["tgt_depth"] * (1 + 0.1 * torch.rand(s["tgt_depth"].shape, generator=g, dtype=torch.float64))
                 ).requires_grad_()
    src_depths = [d * 1.05 for d in s["src_depths"]]
    ours = L.stage1_loss(s["tgt"], s["srcs"], tgt_depth, src_depths, s["poses"], None, s["K"],
                         use_geometric_mask=False, **switch)
    names = {"use_ssim": "no_ssim", "use_auto_mask": "no_auto_mask", "use_dynamic_mask": "no_dynamic_mask",
             "use_min": "no_min"}
    photo, geometry, smooth = _ref_stage1(s["tgt"], s["srcs"], tgt_depth, src_depths, s["poses"], s["K"],
                                          **{names[k]: not v for k, v in switch.items()})
    # Thresholds (auto-mask "<", argmin) can flip on exact ties of uint8 colours at 1e-15:
    # one flipped pixel in 20,000 moves a mean by ~1e-5, so compare the means to 1e-3 relative
    # and require the gradients to agree on all but 1 % of pixels.
    torch.testing.assert_close(ours["photo"], photo, atol=1e-9, rtol=1e-3)
    torch.testing.assert_close(ours["geometry"], geometry, atol=1e-9, rtol=1e-3)
    torch.testing.assert_close(ours["smooth"], smooth, atol=1e-12, rtol=1e-9)
    torch.testing.assert_close(ours["loss"], photo + 0.1 * geometry + 0.1 * smooth, atol=1e-9, rtol=1e-3)
    # same gradient as the reference: in particular the self-discovered mask is detached
    grad_ours, = torch.autograd.grad(ours["loss"], tgt_depth)
    grad_ref, = torch.autograd.grad(photo + 0.1 * geometry + 0.1 * smooth, tgt_depth)
    close = torch.isclose(grad_ours, grad_ref, atol=1e-9, rtol=1e-2)
    assert close.double().mean() > 0.99, f"gradients differ on {(~close).sum().item()} pixels"


@pytest.mark.parametrize("direction", [0, 1])
def test_pairwise_maps_match_sc_depth_rewrite(triplet, direction):
    s = triplet
    tgt, src, dt, ds, T = s["tgt"], s["srcs"][0], s["tgt_depth"] * 1.07, s["src_depths"][0], s["poses"][0]
    if direction:
        tgt, src, dt, ds, T = src, tgt, ds, dt, torch.linalg.inv(T)
    ours = L.pairwise_term(tgt, src, dt, ds, T, s["K"], use_geometric_mask=False)
    photo, color, inconsistency, valid = _ref_pairwise(tgt, src, dt, ds, T, s["K"], False, False, False)
    torch.testing.assert_close(ours.photo, photo, atol=1e-10, rtol=0)
    torch.testing.assert_close(ours.color, color, atol=1e-10, rtol=0)
    torch.testing.assert_close(ours.inconsistency, inconsistency, atol=1e-10, rtol=0)
    assert (ours.valid != valid).double().mean() < 1e-3
    assert 0.3 < valid.mean() < 1.0


def test_switches_change_the_loss(triplet):
    s = triplet
    base = L.stage1_loss(s["tgt"], s["srcs"], s["tgt_depth"] * 1.1, s["src_depths"], s["poses"], None, s["K"])
    for switch in SWITCHES[1:]:
        other = L.stage1_loss(s["tgt"], s["srcs"], s["tgt_depth"] * 1.1, s["src_depths"], s["poses"], None, s["K"],
                              **switch)
        assert abs(other["photo"].item() - base["photo"].item()) > 1e-6, switch


def test_loss_is_smallest_at_true_depth_scale(triplet):
    s = triplet
    photo = {}
    for scale in (0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25):
        out = L.stage1_loss(s["tgt"], s["srcs"], s["tgt_depth"] * scale, [d * scale for d in s["src_depths"]],
                            s["poses"], None, s["K"], use_auto_mask=False)
        photo[scale] = out["photo"].item()
    assert min(photo, key=photo.get) == 1.0, photo


def test_auto_mask_removes_pixels_that_match_without_warping(triplet):
    """A source identical to the target (camera did not move, pose claims it did): all masked."""
    s = triplet
    T = s["poses"][0]
    out = L.stage1_loss(s["tgt"], [s["tgt"]], s["tgt_depth"], [s["tgt_depth"]], [T], None, s["K"], return_maps=True)
    assert out["valid_map"].sum() == 0 and out["photo"].item() == 0.0
    off = L.stage1_loss(s["tgt"], [s["tgt"]], s["tgt_depth"], [s["tgt_depth"]], [T], None, s["K"], use_auto_mask=False)
    assert off["photo"].item() > 0


def test_min_over_terms_picks_the_least_colour_error(triplet):
    s = triplet
    out = L.stage1_loss(s["tgt"], s["srcs"], s["tgt_depth"], s["src_depths"], s["poses"], None, s["K"],
                        return_maps=True)
    assert out["choice"].min() >= 0 and out["choice"].max() <= 3
    assert set(out["choice"].unique().tolist()) == {0, 1, 2, 3}  # every term wins somewhere
    avg = L.stage1_loss(s["tgt"], s["srcs"], s["tgt_depth"], s["src_depths"], s["poses"], None, s["K"], use_min=False)
    assert out["photo"].item() < avg["photo"].item()


def test_stage1_loss_with_pose_vectors_float32_and_backward(triplet):
    s = triplet
    tgt, srcs = s["tgt"].float(), [x.float() for x in s["srcs"]]
    tgt_depth = s["tgt_depth"].float().clamp_min(0.1).requires_grad_()
    src_depths = [d.float().clamp_min(0.1) for d in s["src_depths"]]
    vecs = [torch.zeros(1, 6, requires_grad=True) for _ in srcs]
    vecs_inv = [torch.zeros(1, 6, requires_grad=True) for _ in srcs]
    out = L.stage1_loss(tgt, srcs, tgt_depth, src_depths, vecs, vecs_inv, s["K"].float(), pose_convention="sc_depth")
    out["loss"].backward()
    for x in [tgt_depth, *vecs, *vecs_inv]:
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert set(out) == {"loss", "photo", "geometry", "smooth", "valid_fraction"}


def test_stage1_loss_rejects_mismatched_inputs(triplet):
    s = triplet
    with pytest.raises(ValueError, match="equal length"):
        L.stage1_loss(s["tgt"], s["srcs"], s["tgt_depth"], s["src_depths"][:1], s["poses"], None, s["K"])
    with pytest.raises(ValueError, match="poses_inv"):
        L.stage1_loss(s["tgt"], s["srcs"], s["tgt_depth"], s["src_depths"], s["poses"], s["poses"][:1], s["K"])
    with pytest.raises(ValueError, match="tgt_img"):
        L.stage1_loss(s["tgt"][:, :1], s["srcs"], s["tgt_depth"], s["src_depths"], s["poses"], None, s["K"])


def test_geometric_mask_only_removes_out_of_view_pixels(triplet):
    s = triplet
    kw = dict(return_maps=True, use_auto_mask=False)
    a = L.stage1_loss(s["tgt"], s["srcs"], s["tgt_depth"], s["src_depths"], s["poses"], None, s["K"], **kw)
    b = L.stage1_loss(s["tgt"], s["srcs"], s["tgt_depth"], s["src_depths"], s["poses"], None, s["K"],
                      use_geometric_mask=False, **kw)
    assert (a["valid_map"] <= b["valid_map"]).all()
    assert (b["valid_map"] - a["valid_map"]).mean() < 0.05


def test_stage1_loss_runs_in_fp32_under_autocast(triplet):
    """Mixed-precision training must not push SSIM or the projections into 16-bit floats."""
    s = triplet
    args = (s["tgt"].float(), [x.float() for x in s["srcs"]], s["tgt_depth"].float() * 1.1,
            [d.float() for d in s["src_depths"]], [p.float() for p in s["poses"]], None, s["K"].float())
    ref = L.stage1_loss(*args)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = L.stage1_loss(*args)
    half = L.stage1_loss(args[0].half(), [x.half() for x in args[1]], args[2].half(), [d.half() for d in args[3]],
                         *args[4:])
    assert out["loss"].dtype == torch.float32
    torch.testing.assert_close(out["loss"], ref["loss"])
    # half-precision *inputs* are rounded (depth to 1e-3 relative) but the computation is fp32
    torch.testing.assert_close(half["loss"], ref["loss"], rtol=2e-2, atol=0)


def test_ssim_bench_times_both_ways_and_they_agree():
    """bench/bench_ssim.py: avg_pool2d and the depth-wise convolution that replaced it in ssim() give
    the same local means (the script refuses to time two ways that differ by more than 1e-5), and it
    leaves torch's thread count as it found it."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("bench_ssim", Path(__file__).resolve().parents[1] / "bench" / "bench_ssim.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    threads = torch.get_num_threads()
    result = bench.main(["--height", "12", "--width", "20", "--batch", "1", "--threads", "1", "--repeats", "2"])
    assert torch.get_num_threads() == threads
    assert [(r["window"], r["threads"]) for r in result["runs"]] == [(3, 1), (7, 1)]
    assert all(r["max_difference"] <= 1e-5 and r["depthwise_conv_forward_backward_ms"] > 0 for r in result["runs"])


@pytest.mark.parametrize("window", ["box", "gaussian"])
def test_ssim_keeps_its_moments_out_of_autocast(window):
    """Under autocast the local moments would run in bf16, where E[x²] - E[x]² cancels (errors of
    ~0.07 in SSIM were measured): ssim computes them in the inputs' dtype, as without autocast."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(1, 3, 24, 32, generator=g), torch.rand(1, 3, 24, 32, generator=g)
    plain = ssim(x, y, window_size=7, window=window)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = ssim(x, y, window_size=7, window=window)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, plain, rtol=0, atol=1e-6)
