"""SC-Depth v3's pseudo-depth terms: normals, normal matching, mask ranking, normal ranking.

Each term is checked on cases whose value is known by hand (planes and roofs with analytic
normals, pairs with known order), against an independent re-derivation (kornia's
``depth_to_normals``; explicit per-pair loops), by float64 gradcheck, over float32/float64,
and for reproducible pair sampling. Then the plumbing: ``stage1_loss`` switches, the
training batch's pseudo-depth, and a short training run with the terms on.
"""
from __future__ import annotations

import math

import kornia
import numpy as np
import pytest
import torch

from bore_depth_lite import losses
from bore_depth_lite import pseudo_depth_losses as L


def _K(h: int, w: int, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor([[0.8 * w, 0.0, (w - 1) / 2], [0.0, 0.8 * w, (h - 1) / 2], [0.0, 0.0, 1.0]], dtype=dtype)


def _plane_depth(n, d: float, K: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Depth of the plane n·P = d seen through K: D = d / (n · K⁻¹(u, v, 1)), (1,1,H,W)."""
    v, u = torch.meshgrid(torch.arange(h, dtype=K.dtype), torch.arange(w, dtype=K.dtype), indexing="ij")
    rays = torch.linalg.inv(K) @ torch.stack([u, v, torch.ones_like(u)]).reshape(3, -1)
    n = torch.as_tensor(n, dtype=K.dtype)
    return (d / (n @ rays)).reshape(1, 1, h, w)


def _roof(alpha: float, K: torch.Tensor, h: int, w: int, d: float = 4.0) -> tuple[torch.Tensor, tuple]:
    """Two planes n1 = (sin α, 0, cos α) (left of column cx) and n2 = (-sin α, 0, cos α)
    meeting along X = 0, whose image is the column cx: depth continuous, normals not."""
    n1, n2 = (math.sin(alpha), 0.0, math.cos(alpha)), (-math.sin(alpha), 0.0, math.cos(alpha))
    left, right = _plane_depth(n1, d, K, h, w), _plane_depth(n2, d, K, h, w)
    cols = torch.arange(w, dtype=K.dtype)
    return torch.where(cols <= K[0, 2], left, right), (n1, n2)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------ normals
def test_fronto_parallel_plane_has_normal_0_0_1_everywhere():
    K = _K(9, 11)
    n = L.surface_normals(torch.full((2, 1, 9, 11), 3.7, dtype=torch.float64), torch.linalg.inv(K))
    expected = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).view(1, 3, 1, 1).expand_as(n)
    torch.testing.assert_close(n, expected, atol=1e-14, rtol=0)


@pytest.mark.parametrize("normal", [(0.3, 0.0, 0.9539392014169456), (0.0, -0.5, 0.8660254037844386),
                                    (0.36, 0.48, 0.8)])
def test_tilted_plane_gives_its_normal_at_every_pixel_borders_included(normal):
    h, w = 10, 13
    K = _K(h, w)
    depth = _plane_depth(normal, 5.0, K, h, w)
    assert (depth > 0).all()
    n = L.surface_normals(depth, torch.linalg.inv(K))
    expected = torch.tensor(normal, dtype=torch.float64).view(1, 3, 1, 1).expand_as(n)
    torch.testing.assert_close(n, expected, atol=1e-12, rtol=0)
    # normals do not see the depth's scale
    torch.testing.assert_close(L.surface_normals(depth * 7.5, torch.linalg.inv(K)), n, atol=1e-12, rtol=0)


def test_normals_match_kornia_depth_to_normals():
    """kornia's depth_to_normals (the function SC-Depth v3 calls) as an independent oracle."""
    g = _gen(1)
    depth = 2.0 + torch.rand(2, 1, 15, 17, generator=g, dtype=torch.float64)
    K = torch.stack([_K(15, 17), _K(15, 17) * torch.tensor([[1.3], [1.1], [1.0]], dtype=torch.float64)])
    ours = L.surface_normals(depth, torch.linalg.inv(K))
    ref = kornia.geometry.depth.depth_to_normals(depth, K)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(ours.norm(dim=1), torch.ones(2, 15, 17, dtype=torch.float64))


def test_surface_normals_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\(B,1,H,W\)"):
        L.surface_normals(torch.ones(1, 3, 4, 4), torch.eye(3))


# ---------------------------------------------------------------------- normal matching
def test_normal_matching_hand_values():
    h, w = 8, 10
    K = _K(h, w)
    alpha = 0.3
    tilted = L.surface_normals(_plane_depth((math.sin(alpha), 0.0, math.cos(alpha)), 4.0, K, h, w), torch.linalg.inv(K))
    flat = L.surface_normals(torch.full((1, 1, h, w), 2.0, dtype=torch.float64), torch.linalg.inv(K))
    assert L.normal_matching_loss(flat, flat).item() == 0.0
    # |sin α - 0| + |0 - 0| + |cos α - 1|, averaged over the three components
    expected = (math.sin(alpha) + 1.0 - math.cos(alpha)) / 3.0
    assert L.normal_matching_loss(tilted, flat).item() == pytest.approx(expected, abs=1e-12)
    # only valid pixels count: half of them flat in both maps halves nothing but the count
    mixed = tilted.clone()
    mixed[..., :, : w // 2] = flat[..., :, : w // 2]
    valid = torch.zeros(1, 1, h, w, dtype=torch.bool)
    valid[..., :, w // 2:] = True
    assert L.normal_matching_loss(mixed, flat, valid).item() == pytest.approx(expected, abs=1e-12)
    assert L.normal_matching_loss(mixed, flat).item() == pytest.approx(expected / 2, abs=1e-12)
    empty = L.normal_matching_loss(mixed.requires_grad_(), flat, torch.zeros_like(valid))
    assert empty.item() == 0.0 and empty.requires_grad


# ----------------------------------------------------------------------------- ranking
def test_ranking_targets_by_ratio():
    a = torch.tensor([2.0, 1.0, 1.2, 1.0, 1.1, 1.0, 0.0, 2.0])
    b = torch.tensor([1.0, 2.0, 1.0, 1.2, 1.0, 1.1, 2.0, -1.0])
    #                 far  near  far  near  tie  tie  invalid  invalid
    torch.testing.assert_close(L.ranking_targets(a, b), torch.tensor([1.0, -1, 1, -1, 0, 0, 0, 0]))
    torch.testing.assert_close(L.ranking_targets(a, b, ratio_threshold=0.05),
                               torch.tensor([1.0, -1, 1, -1, 1, -1, 0, 0]))


def test_ranking_loss_hand_values():
    t = torch.tensor([1.0])
    # ordered as the label by a margin of 2: log(1 + e^-2); reversed: log(1 + e^2) > log 2
    assert L.ranking_loss(torch.tensor([3.0]), torch.tensor([1.0]), t).item() == pytest.approx(math.log1p(math.exp(-2)))
    assert L.ranking_loss(torch.tensor([1.0]), torch.tensor([3.0]), t).item() == pytest.approx(math.log1p(math.exp(2)))
    assert L.ranking_loss(torch.tensor([1.0]), torch.tensor([1.0]), t).item() == pytest.approx(math.log(2))
    # the loss falls towards 0 as the margin grows (no overflow at large margins)
    values = [L.ranking_loss(torch.tensor([m], dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64),
                             t.double()).item() for m in (0.5, 2, 10, 40)]
    assert values == sorted(values, reverse=True) and values[-1] < 1e-17
    assert L.ranking_loss(torch.tensor([0.0]), torch.tensor([800.0]), t).item() == pytest.approx(800.0)
    # unlabelled pairs are skipped; -1 labels flip the order
    za, zb = torch.tensor([3.0, 5.0, 1.0]), torch.tensor([1.0, 0.0, 2.0])
    got = L.ranking_loss(za, zb, torch.tensor([1.0, 0.0, -1.0])).item()
    assert got == pytest.approx((math.log1p(math.exp(-2)) + math.log1p(math.exp(-1))) / 2)
    none = L.ranking_loss(za.requires_grad_(), zb, torch.zeros(3))
    assert none.item() == 0.0 and none.requires_grad


def test_mask_ranking_pairs_pair_the_dynamic_region_with_the_rest():
    h, w = 10, 10
    confidence = torch.ones(2, 1, h, w)
    moving = torch.zeros(2, 1, h, w, dtype=torch.bool)
    moving[0, 0, 2:6, 3:8] = True          # 20 pixels = 20 %: the "moving object" of image 0
    moving[1, 0, 5:9, 0:5] = True
    confidence[moving] = torch.linspace(0.1, 0.6, 40)
    a, b = L.mask_ranking_pairs(confidence, _gen(0))
    k, m = 20, 10                           # 20 % and 10 % of 100 pixels per image
    assert a.shape == b.shape == (2 * (k + m),)
    flat = moving.reshape(-1)
    for i in range(2):
        part_a, part_b = a[i * (k + m): i * (k + m) + k], b[i * (k + m): i * (k + m) + k]
        assert flat[part_a].all() and not flat[part_b].any()          # inside vs outside
        assert sorted(part_a.tolist()) == sorted(torch.nonzero(flat[i * 100:(i + 1) * 100])[:, 0].add(i * 100).tolist())
        glob = torch.cat([a[i * (k + m) + k:(i + 1) * (k + m)], b[i * (k + m) + k:(i + 1) * (k + m)]])
        assert ((glob >= i * 100) & (glob < (i + 1) * 100)).all()     # each image draws its own pixels
    # reproducible with the same generator seed, different with another
    again = L.mask_ranking_pairs(confidence, _gen(0))
    assert torch.equal(a, again[0]) and torch.equal(b, again[1])
    other = L.mask_ranking_pairs(confidence, _gen(1))
    assert not torch.equal(b, other[1])


def _loop_mask_ranking(pred, pseudo, a, b, theta=0.15):
    """The mask ranking loss pair by pair, in plain Python."""
    p, q = pred.reshape(-1).tolist(), pseudo.reshape(-1).tolist()
    total, count = 0.0, 0
    for i, j in zip(a.tolist(), b.tolist()):
        if q[i] <= 0 or q[j] <= 0:
            continue
        label = 1 if q[i] / q[j] >= 1 + theta else (-1 if q[j] / q[i] > 1 + theta else 0)
        if label:
            total += math.log(1 + math.exp(-label * (p[i] - p[j])))
            count += 1
    return total / count


def test_mask_ranking_loss_matches_a_pair_by_pair_rewrite_and_the_order():
    g = _gen(3)
    pseudo = 1.0 + 4.0 * torch.rand(2, 1, 12, 16, generator=g, dtype=torch.float64)
    pred = 0.5 + torch.rand(2, 1, 12, 16, generator=g, dtype=torch.float64)
    confidence = torch.rand(2, 1, 12, 16, generator=g, dtype=torch.float64)
    a, b = L.mask_ranking_pairs(confidence, _gen(5))
    got = L.mask_ranking_loss(pred, pseudo, confidence, _gen(5))
    assert got.item() == pytest.approx(_loop_mask_ranking(pred, pseudo, a, b), rel=1e-12)
    # a prediction in the pseudo-depth's order scores well, the reversed order badly, and a
    # larger depth range in the right order better still (the loss sees depth differences)
    right = L.mask_ranking_loss(2.0 * pseudo, pseudo, confidence, _gen(5)).item()
    wrong = L.mask_ranking_loss(10.0 / pseudo, pseudo, confidence, _gen(5)).item()
    wider = L.mask_ranking_loss(20.0 * pseudo, pseudo, confidence, _gen(5)).item()
    assert wider < right < math.log(2) < wrong
    # labels are depth ratios: the pseudo-depth's unknown scale does not matter
    same = L.mask_ranking_loss(pred, 3.0 * pseudo, confidence, _gen(5))
    torch.testing.assert_close(same, got)


# --------------------------------------------------------------------- edge-guided pairs
def _rows_cols(idx, w):
    return idx // w, idx % w


@pytest.mark.parametrize("vertical", [True, False])
def test_edge_guided_pairs_cross_a_step_along_its_normal(vertical):
    h, w = 40, 60
    image = torch.zeros(1, 3, h, w, dtype=torch.float64)
    if vertical:
        image[..., 30:] = 1.0                # a step between columns 29 and 30
    else:
        image[..., 20:, :] = 1.0             # a step between rows 19 and 20
    pseudo = torch.full((1, 1, h, w), 3.0, dtype=torch.float64)   # flat: no normal or depth edges
    normals = L.surface_normals(pseudo, torch.linalg.inv(_K(h, w)))
    a, b = L.normal_ranking_pairs(image, pseudo, normals, _gen(0))
    # anchors: the two pixel lines beside the step, minus the 5-pixel border band
    anchors = 2 * ((h if vertical else w) - 10)
    assert a.numel() == 3 * anchors
    (ra, ca), (rb, cb) = _rows_cols(a, w), _rows_cols(b, w)
    along_a, along_b, across_a, across_b, edge = (ra, rb, ca, cb, 30) if vertical else (ca, cb, ra, rb, 20)
    assert torch.equal(along_a, along_b)     # every pair lies on one line across the step
    n = anchors
    side_a, side_b = across_a >= edge, across_b >= edge
    assert torch.equal(side_a[:n], side_b[:n])                 # (a, b): both on one side
    assert (side_a[n:2 * n] != side_b[n:2 * n]).all()          # (b, c): across the step
    assert torch.equal(side_a[2 * n:], side_b[2 * n:])         # (c, d): both on the other side
    assert not torch.equal(side_b[:n], side_b[2 * n:])
    assert (across_a - across_b)[n:2 * n].abs().min() >= 6     # b and c each ≥ 3 pixels from the anchor
    again = L.normal_ranking_pairs(image, pseudo, normals, _gen(0))
    assert torch.equal(a, again[0]) and torch.equal(b, again[1])


def test_depth_discontinuities_are_not_anchors():
    """Normals across a depth step mean nothing: its neighbourhood is excluded (v3)."""
    h, w = 30, 40
    pseudo = torch.full((1, 1, h, w), 2.0, dtype=torch.float64)
    pseudo[..., 20:] = 6.0
    normals = L.surface_normals(pseudo, torch.linalg.inv(_K(h, w)))
    image = torch.full((1, 3, h, w), 0.5, dtype=torch.float64)
    a, _ = L.normal_ranking_pairs(image, pseudo, normals, _gen(0))
    assert a.numel() == 0
    assert L.normal_ranking_loss(normals.clone().requires_grad_(), normals, image, pseudo, _gen(0)).item() == 0.0
    a, _ = L.normal_ranking_pairs(image, pseudo, normals, _gen(0), depth_edge_fraction=None)
    assert a.numel() > 0


# ----------------------------------------------------------------------- normal ranking
def test_normal_ranking_on_a_roof_hand_value():
    """Roof faces n1, n2; a flat prediction. Pairs on one face: |cos| 1 vs 1 → 0. Pairs
    across the crease (one in three): |n1·n2| = cos 2α vs 1. So L = (1 - cos 2α)/3."""
    h, w = 32, 61
    K = _K(h, w)
    alpha = 0.25
    pseudo, _ = _roof(alpha, K, h, w)
    K_inv = torch.linalg.inv(K)
    pseudo_normals = L.surface_normals(pseudo, K_inv)
    image = torch.full((1, 3, h, w), 0.5, dtype=torch.float64)   # no image edges: crease anchors only
    flat = L.surface_normals(torch.full_like(pseudo, 3.0), K_inv)
    opts = dict(depth_edge_fraction=None)
    got = L.normal_ranking_loss(flat, pseudo_normals, image, pseudo, _gen(0), **opts)
    assert got.item() == pytest.approx((1 - math.cos(2 * alpha)) / 3, abs=1e-12)
    assert L.normal_ranking_loss(pseudo_normals, pseudo_normals, image, pseudo, _gen(0), **opts).item() == 0.0
    other, _ = _roof(0.1, K, h, w)
    got = L.normal_ranking_loss(L.surface_normals(other, K_inv), pseudo_normals, image, pseudo, _gen(0), **opts)
    assert got.item() == pytest.approx(abs(math.cos(0.2) - math.cos(2 * alpha)) / 3, abs=1e-12)


def _loop_normal_ranking(pred, pseudo, a, b):
    p = pred.permute(0, 2, 3, 1).reshape(-1, 3).tolist()
    q = pseudo.permute(0, 2, 3, 1).reshape(-1, 3).tolist()
    dot = lambda x, y: sum(s * t for s, t in zip(x, y))  # noqa: E731
    terms = [abs(abs(dot(q[i], q[j])) - abs(dot(p[i], p[j]))) for i, j in zip(a.tolist(), b.tolist())]
    return sum(terms) / len(terms)


@pytest.fixture(scope="module")
def frame():
    """One synthetic driving frame with its true depth and simulated pseudo-depth (float64)."""
    synthetic = pytest.importorskip("bore_depth_lite.data.synthetic")
    seq = synthetic.render_sequence("driving", num_frames=3, height=48, width=80, seed=2, pseudo_depth=True, speed=6.0)

    def t(x):
        return torch.as_tensor(np.asarray(x), dtype=torch.float64)

    img = t(seq.rgb / 255.0).permute(0, 3, 1, 2)
    depth = t(seq.depth)[:, None]
    depth = torch.where(depth > 0, depth, torch.full_like(depth, seq.max_depth))   # sky: far
    poses = [t(np.linalg.inv(seq.poses[s]) @ seq.poses[1])[None] for s in (0, 2)]
    return dict(tgt=img[1:2], srcs=[img[0:1], img[2:3]], tgt_depth=depth[1:2], src_depths=[depth[0:1], depth[2:3]],
                poses=poses, K=t(seq.K)[None], pseudo=t(seq.pseudo_depth[1:2])[:, None])


def test_normal_ranking_matches_a_pair_by_pair_rewrite(frame):
    K_inv = torch.linalg.inv(frame["K"])
    pred = L.surface_normals(frame["tgt_depth"] * 1.3 + 0.5, K_inv)
    pseudo_normals = L.surface_normals(frame["pseudo"], K_inv)
    a, b = L.normal_ranking_pairs(frame["tgt"], frame["pseudo"], pseudo_normals, _gen(4))
    assert a.numel() > 300
    got = L.normal_ranking_loss(pred, pseudo_normals, frame["tgt"], frame["pseudo"], _gen(4))
    assert got.item() == pytest.approx(_loop_normal_ranking(pred, pseudo_normals, a, b), rel=1e-12)
    # the true depth bends like the pseudo-depth better than a flat wall does
    true = L.normal_ranking_loss(L.surface_normals(frame["tgt_depth"], K_inv), pseudo_normals, frame["tgt"],
                                 frame["pseudo"], _gen(4))
    wall = L.normal_ranking_loss(L.surface_normals(torch.full_like(frame["pseudo"], 5.0), K_inv), pseudo_normals,
                                 frame["tgt"], frame["pseudo"], _gen(4))
    assert true.item() < wall.item()


# ----------------------------------------------------------------------------- gradcheck
def test_gradcheck_surface_normals_and_normal_matching():
    g = _gen(7)
    K_inv = torch.linalg.inv(_K(5, 6))
    depth = (2.0 + torch.rand(1, 1, 5, 6, generator=g, dtype=torch.float64)).requires_grad_()
    pseudo_normals = L.surface_normals(1.0 + torch.rand(1, 1, 5, 6, generator=g, dtype=torch.float64), K_inv)
    assert torch.autograd.gradcheck(lambda d: L.surface_normals(d, K_inv), (depth,))
    assert torch.autograd.gradcheck(lambda d: L.normal_matching_loss(L.surface_normals(d, K_inv), pseudo_normals),
                                    (depth,))


def test_gradcheck_mask_ranking():
    g = _gen(8)
    pseudo = 1.0 + 3.0 * torch.rand(2, 1, 6, 7, generator=g, dtype=torch.float64)
    confidence = torch.rand(2, 1, 6, 7, generator=g, dtype=torch.float64)
    pred = (0.5 + torch.rand(2, 1, 6, 7, generator=g, dtype=torch.float64)).requires_grad_()
    # a fresh generator per call: every evaluation sees the same pairs
    assert torch.autograd.gradcheck(lambda p: L.mask_ranking_loss(p, pseudo, confidence, _gen(1)), (pred,))


def test_gradcheck_normal_ranking():
    g = _gen(9)
    h, w = 14, 16
    K_inv = torch.linalg.inv(_K(h, w))
    image = torch.rand(1, 3, h, w, generator=g, dtype=torch.float64)
    pseudo = 2.0 + torch.rand(1, 1, h, w, generator=g, dtype=torch.float64)
    pseudo_normals = L.surface_normals(pseudo, K_inv)
    depth = (2.0 + torch.rand(1, 1, h, w, generator=g, dtype=torch.float64)).requires_grad_()
    opts = dict(border=2, depth_edge_fraction=None, max_distance=4)
    assert L.normal_ranking_pairs(image, pseudo, pseudo_normals, _gen(2), **opts)[0].numel() > 30

    def loss(d):
        return L.normal_ranking_loss(L.surface_normals(d, K_inv), pseudo_normals, image, pseudo, _gen(2), **opts)

    assert torch.autograd.gradcheck(loss, (depth,))


# ---------------------------------------------------------------------------- dtypes
def _three_terms(f, depth, confidence):
    K_inv = torch.linalg.inv(f["K"])
    normals, pseudo_normals = L.surface_normals(depth, K_inv), L.surface_normals(f["pseudo"], K_inv)
    return {"normal": L.normal_matching_loss(normals, pseudo_normals),
            "mask_rank": L.mask_ranking_loss(depth, f["pseudo"], confidence, _gen(6)),
            "normal_rank": L.normal_ranking_loss(normals, pseudo_normals, f["tgt"], f["pseudo"], _gen(6))}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_matrix(frame, dtype):
    f = {k: (v.to(dtype) if isinstance(v, torch.Tensor) else [x.to(dtype) for x in v]) for k, v in frame.items()}
    confidence = torch.rand(f["pseudo"].shape, generator=_gen(3), dtype=torch.float64)
    depth = (f["tgt_depth"] * 1.2).requires_grad_()
    out = _three_terms(f, depth, confidence.to(dtype))
    ref = _three_terms(frame, frame["tgt_depth"] * 1.2, confidence)
    assert L.surface_normals(depth, torch.linalg.inv(f["K"])).dtype == dtype
    # float32 edge directions round a few sampled points (0.2 % here) to the neighbouring pixel
    pairs = L.normal_ranking_pairs(f["tgt"], f["pseudo"], L.surface_normals(f["pseudo"], torch.linalg.inv(f["K"])),
                                   _gen(6))
    pairs64 = L.normal_ranking_pairs(frame["tgt"], frame["pseudo"],
                                     L.surface_normals(frame["pseudo"], torch.linalg.inv(frame["K"])), _gen(6))
    assert pairs[0].shape == pairs64[0].shape
    assert ((pairs[0] == pairs64[0]) & (pairs[1] == pairs64[1])).double().mean() > 0.99
    tolerance = {"normal": 1e-4, "mask_rank": 1e-4, "normal_rank": 1e-2} if dtype == torch.float32 else {}
    for name, value in out.items():
        assert value.dtype == dtype, name
        torch.testing.assert_close(value.double(), ref[name], rtol=tolerance.get(name, 1e-12), atol=0,
                                   msg=lambda m: f"{name}: {m}")
        grad, = torch.autograd.grad(value, depth, retain_graph=True)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name


# ------------------------------------------------------------------- stage1_loss switches
def _stage1(frame, **kw):
    f = frame
    return losses.stage1_loss(f["tgt"], f["srcs"], f["tgt_depth"] * 1.1, [d * 1.1 for d in f["src_depths"]], f["poses"],
                         None, f["K"], **kw)


def test_stage1_terms_are_off_by_default_and_add_up_when_on(frame):
    base = _stage1(frame)
    assert set(base) == {"loss", "photo", "geometry", "smooth", "valid_fraction"}
    same = _stage1(frame, pseudo_depth=frame["pseudo"])          # pseudo-depth alone changes nothing
    assert set(same) == set(base) and same["loss"].item() == base["loss"].item()
    weights = dict(normal_weight=0.1, mask_rank_weight=0.2, normal_rank_weight=0.3)
    on = _stage1(frame, pseudo_depth=frame["pseudo"], generator=_gen(0), return_maps=True, **weights)
    assert {"normal", "mask_rank", "normal_rank", "confidence_map"} <= set(on)
    total = base["loss"] + 0.1 * on["normal"] + 0.2 * on["mask_rank"] + 0.3 * on["normal_rank"]
    torch.testing.assert_close(on["loss"], total, rtol=1e-12, atol=0)
    for key in ("photo", "geometry", "smooth"):
        assert on[key].item() == base[key].item()
    # each switch alone adds only its own term
    for key, weight in weights.items():
        one = _stage1(frame, pseudo_depth=frame["pseudo"], generator=_gen(0), **{key: weight})
        name = key[: -len("_weight")]
        assert set(one) == set(base) | {name}
        torch.testing.assert_close(one["loss"], base["loss"] + weight * one[name], rtol=1e-12, atol=0)
    # the terms check the independent functions
    K_inv = torch.linalg.inv(frame["K"])
    pred_n = L.surface_normals(frame["tgt_depth"] * 1.1, K_inv)
    pseudo_n = L.surface_normals(frame["pseudo"], K_inv)
    torch.testing.assert_close(on["normal"], L.normal_matching_loss(pred_n, pseudo_n))
    # the confidence map: low on inconsistent pixels, 1 where no term is valid, in [0, 1]
    c = on["confidence_map"]
    assert c.shape == frame["pseudo"].shape and c.min() >= 0 and c.max() <= 1 and c.min() < 0.95


def test_stage1_pseudo_terms_are_reproducible_with_a_generator(frame):
    kw = dict(pseudo_depth=frame["pseudo"], mask_rank_weight=0.1, normal_rank_weight=0.1)
    a, b = _stage1(frame, generator=_gen(11), **kw), _stage1(frame, generator=_gen(11), **kw)
    assert a["mask_rank"].item() == b["mask_rank"].item() and a["normal_rank"].item() == b["normal_rank"].item()
    torch.manual_seed(0)
    c = _stage1(frame, **kw)
    torch.manual_seed(0)
    d = _stage1(frame, **kw)                  # None: the global generator, seeded by the caller
    assert c["loss"].item() == d["loss"].item()


def test_stage1_needs_a_pseudo_depth_when_a_weight_is_on(frame):
    with pytest.raises(ValueError, match="mask_rank_weight=0.1 needs a pseudo-depth"):
        _stage1(frame, mask_rank_weight=0.1)
    with pytest.raises(ValueError, match="must match tgt_depth"):
        _stage1(frame, pseudo_depth=frame["pseudo"][..., :-1], normal_weight=0.1)


def test_stage1_pseudo_terms_backward_under_autocast(frame):
    f = frame
    depth = (f["tgt_depth"].float() * 1.1).requires_grad_()
    kw = dict(pseudo_depth=f["pseudo"].half(), normal_weight=0.1, mask_rank_weight=0.1, normal_rank_weight=0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = losses.stage1_loss(f["tgt"].float(), [x.float() for x in f["srcs"]], depth,
                            [d.float() for d in f["src_depths"]], [p.float() for p in f["poses"]], None,
                            f["K"].float(), generator=_gen(0), **kw)
    assert out["loss"].dtype == torch.float32 and all(out[k].dtype == torch.float32 for k in ("normal", "mask_rank"))
    out["loss"].backward()
    assert torch.isfinite(depth.grad).all()


# ------------------------------------------------------------- data and a training run
@pytest.fixture(scope="module")
def pseudo_root(tmp_path_factory):
    from bore_depth_lite.data.generate import SyntheticConfig
    from bore_depth_lite.data.cache import ensure_synthetic

    config = SyntheticConfig(preset="driving", height=64, width=64, seed=0, train_scenes=1, val_scenes=0,
                             frames_per_scene=5, test_scenes=1, test_frames_per_scene=2, pseudo_depth=True)
    return ensure_synthetic(config, tmp_path_factory.mktemp("cache"))


def _config(root, out, **kw):
    from bore_depth_lite.training import TrainConfig

    values = dict(data_root=str(root), val_protocol="synthetic_driving", model="tiny", height=64, width=64,
                  batch_size=2, steps=2, steps_per_epoch=2, val_images=2, out_dir=str(out), lr=1e-3)
    values.update(kw)
    return TrainConfig(**values)


def test_training_items_carry_the_augmented_target_pseudo_depth(pseudo_root, tmp_path):
    from bore_depth_lite.data.layout import read_depth
    from bore_depth_lite.images import read_image
    from bore_depth_lite.sampling import SeededSamples
    from bore_depth_lite.training import training_datasets

    plain, _ = training_datasets(_config(pseudo_root, tmp_path, normal_weight=0.1, augment=False))
    item = plain[0]
    scene = plain.scenes[plain.samples[0][0]]
    i = item["index"]
    raw = torch.from_numpy(read_depth(scene.folder / "pseudo_depth" / f"{i:06d}.npy"))
    assert item["tgt_pseudo_depth"].shape == (1, 64, 64)
    torch.testing.assert_close(item["tgt_pseudo_depth"][0], raw)        # the target's own map
    # with augmentation: the very flip and scale-crop of the frames (the same draws)
    train, _ = training_datasets(_config(pseudo_root, tmp_path, normal_weight=0.1))
    frames = torch.stack([torch.from_numpy(read_image(scene.frames[j])).permute(2, 0, 1).float() / 255
                          for j in (i, i - 1, i + 1)])
    moved = 0
    for seed in range(4):
        got = SeededSamples(train)[(0, seed)]
        torch.manual_seed(seed)
        want = train.transform({"images": frames, "K": torch.from_numpy(scene.K).float(),
                                "maps": {"p": raw[None, None]}})
        torch.testing.assert_close(got["tgt"], want["images"][0])
        torch.testing.assert_close(got["tgt_pseudo_depth"], want["maps"]["p"][0])
        moved += int(not torch.equal(got["tgt_pseudo_depth"], item["tgt_pseudo_depth"]))
    assert moved > 0                                        # the draws did move the maps
    # without the terms, no pseudo-depth is read
    assert "tgt_pseudo_depth" not in training_datasets(_config(pseudo_root, tmp_path, augment=False))[0][0]


def test_missing_pseudo_depth_is_a_clear_error(tmp_path):
    from bore_depth_lite.data.generate import SyntheticConfig
    from bore_depth_lite.data.layout import LayoutError
    from bore_depth_lite.data.cache import ensure_synthetic
    from bore_depth_lite.training import training_datasets, training_step

    root = ensure_synthetic(SyntheticConfig(preset="indoor", height=32, width=32, train_scenes=1, val_scenes=0,
                                            frames_per_scene=3, test_scenes=0), tmp_path)
    with pytest.raises(LayoutError, match="pseudo-depth terms .* need pseudo_depth/"):
        training_datasets(_config(root, tmp_path, height=32, width=32, mask_rank_weight=0.1))
    with pytest.raises(ValueError, match="normal_weight=0.1 needs pseudo-depth maps, but the batch has none"):
        batch = {"tgt": torch.zeros(1, 3, 32, 32), "K": torch.eye(3), "srcs": torch.zeros(1, 2, 3, 32, 32)}
        training_step(None, None, batch, _config(root, tmp_path, normal_weight=0.1))


def test_training_with_the_terms_on_runs_and_resumes_identically(pseudo_root, tmp_path):
    from bore_depth_lite.training import Trainer
    from bore_depth_lite.training import training_datasets

    weights = dict(normal_weight=0.1, mask_rank_weight=0.1, normal_rank_weight=0.1, smooth_weight=0.0)

    def run(out, steps, resume=False):
        config = _config(pseudo_root, out, steps=steps, steps_per_epoch=1, **weights)
        trainer = Trainer(config, *training_datasets(config), progress=False)
        if resume:
            assert trainer.resume()
        trainer.fit()
        return trainer

    straight = run(tmp_path / "a", 2)
    row = straight.history[-1]
    for key in ("train_normal", "train_mask_rank", "train_normal_rank"):
        assert math.isfinite(row[key]) and row[key] > 0, key
    run(tmp_path / "b", 1)
    resumed = run(tmp_path / "b", 2, resume=True)
    assert [r["train_loss"] for r in straight.history] == [r["train_loss"] for r in resumed.history]
    a, b = straight.depth_net.state_dict(), resumed.depth_net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
