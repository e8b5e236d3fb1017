"""The synthetic world: exact depth, consistent geometry across frames, determinism."""
from __future__ import annotations

import numpy as np
import pytest

from bore_depth_lite.data import render
from bore_depth_lite.data.render import BOX, CYLINDER, PLANE, ROOM, SPHERE, depth_boundaries
from bore_depth_lite.data.synthetic import CLASS_NAMES, render_sequence


@pytest.fixture(scope="module", params=["indoor", "driving"])
def seq(request):
    return render_sequence(request.param, num_frames=3, height=48, width=64, seed=3)


def _local(scene, i, points):
    """Points (n,3) world -> primitive i's frame (independent of the renderer's code)."""
    c, s = np.cos(scene.yaw[i]), np.sin(scene.yaw[i])
    R = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return (points - scene.centre[i]) @ R  # R^T applied to row vectors


def _sdf(scene, i, points):
    """Signed distance (n,) from points to primitive i (positive in free space)."""
    q, h, kind = _local(scene, i, points), scene.half[i], scene.kind[i]
    if kind == PLANE:
        return q[:, 2]
    if kind == SPHERE:
        return np.linalg.norm(q, axis=1) - h[0]
    if kind == ROOM:
        return np.min(h - np.abs(q), axis=1)
    if kind == BOX:
        d = np.abs(q) - h
    else:
        d = np.stack([np.hypot(q[:, 0], q[:, 1]) - h[0], np.abs(q[:, 2]) - h[2]], 1)
    return np.linalg.norm(np.maximum(d, 0), axis=1) + np.minimum(d.max(1), 0)


def _backproject(seq, frame):
    h, w = seq.depth.shape[1:]
    rows, cols = np.nonzero(seq.depth[frame] > 0)
    z = seq.depth[frame][rows, cols].astype(np.float64)
    rays = np.linalg.inv(seq.K) @ np.stack([cols, rows, np.ones_like(cols)]).astype(np.float64)
    cam = rays * z
    world = (seq.poses[frame][:3, :3] @ cam + seq.poses[frame][:3, 3:4]).T
    return rows, cols, z, world


def test_contract(seq):
    n, h, w = 3, 48, 64
    assert seq.rgb.shape == (n, h, w, 3) and seq.rgb.dtype == np.uint8
    assert seq.depth.shape == (n, h, w) and seq.depth.dtype == np.float32
    assert seq.semantic.shape == (n, h, w) and seq.semantic.dtype == np.uint8
    assert seq.boundary.shape == (n, h, w) and seq.boundary.dtype == bool
    assert seq.K.shape == (3, 3) and seq.K.dtype == np.float64
    assert seq.poses.shape == (n, 4, 4) and seq.poses.dtype == np.float64
    assert seq.class_names == CLASS_NAMES and seq.semantic.max() < len(CLASS_NAMES)
    R = seq.poses[:, :3, :3]
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    assert seq.depth.max() <= seq.max_depth
    assert np.all(seq.rgb.std(axis=(1, 2)) > 10), "frames must be textured"


def test_depth_ranges():
    indoor = render_sequence("indoor", 2, 40, 50, seed=0)
    assert indoor.depth.min() > 0 and indoor.depth.max() <= 10.0
    driving = render_sequence("driving", 2, 40, 50, seed=0)
    sky = driving.semantic == CLASS_NAMES.index("sky")
    assert sky.any() and np.all(driving.depth[sky] == 0)
    assert driving.depth.max() <= 80.0 and driving.depth.max() > 30


def test_backprojected_pixels_lie_on_the_hit_primitive(seq):
    """The exactness promise: K^-1 [col, row, 1] · depth lands on the primitive's surface."""
    for frame in range(len(seq)):
        rows, cols, z, world = _backproject(seq, frame)
        inst = seq.instance[frame][rows, cols]
        err = np.empty(len(z))
        for i in np.unique(inst):
            m = inst == i
            err[m] = np.abs(_sdf(seq.scene, i, world[m])) / z[m]
        assert err.max() < 1e-4, f"frame {frame}: worst relative distance to the surface {err.max():.2e}"


def _sphere_trace(scene, origin, dirs, iters=3000):
    """Independent reference: march unit rays by the scene's signed distance (float64)."""
    t = np.full(len(dirs), 1e-3)
    done = np.zeros(len(dirs), bool)
    for _ in range(iters):
        p = origin + t[:, None] * dirs
        d = np.min(np.stack([_sdf(scene, i, p) for i in range(len(scene))]), 0)
        d = np.where(done, 0, d)
        t += d
        done |= d < 1e-7 * t
        if done.all():
            break
    return t, done


@pytest.mark.parametrize("preset", ["indoor", "driving"])
def test_depth_is_the_nearest_surface(preset):
    """Every rendered depth equals an independent sphere tracer's nearest hit."""
    s = render_sequence(preset, 1, 24, 32, seed=5)
    rows, cols = np.nonzero(s.depth[0] > 0)
    rays = (s.poses[0][:3, :3] @ np.linalg.inv(s.K) @ np.stack([cols, rows, np.ones_like(cols)])).T
    norm = np.linalg.norm(rays, axis=1)
    t, done = _sphere_trace(s.scene, s.poses[0][:3, 3], rays / norm[:, None])
    assert done.mean() > 0.97  # grazing rays may not converge within the budget
    rel = np.abs(t / norm - s.depth[0][rows, cols]) / s.depth[0][rows, cols]
    assert np.max(rel[done]) < 1e-4


def _face_id(scene, inst, points):
    """A unique id per planar face: 8 * primitive + face (box faces by dominant local axis)."""
    face = np.zeros(len(points), int)
    for i in np.unique(inst):
        m = inst == i
        if scene.kind[i] in (BOX, ROOM):
            q = _local(scene, i, points[m]) / scene.half[i]
            axis = np.argmax(np.abs(q), 1)
            face[m] = 1 + axis * 2 + (q[np.arange(len(q)), axis] > 0)
    return inst * 8 + face


def _bilinear(img, u, v):
    u0, v0 = np.floor(u).astype(int), np.floor(v).astype(int)
    a, b = u - u0, v - v0
    if img.ndim == 3:
        a, b = a[:, None], b[:, None]
    return ((1 - a) * (1 - b) * img[v0, u0] + a * (1 - b) * img[v0, u0 + 1]
            + (1 - a) * b * img[v0 + 1, u0] + a * b * img[v0 + 1, u0 + 1])


@pytest.mark.parametrize("preset", ["indoor", "driving"])
def test_two_frames_are_geometrically_and_photometrically_consistent(preset):
    """Reproject frame A's depth into frame B with the known relative pose: on planar,
    co-visible pixels, B's inverse depth (affine on a plane, so bilinear is exact) agrees."""
    s = render_sequence(preset, 4, 96, 128, seed=7)
    a, b = 0, 3
    rows, cols, z, world = _backproject(s, a)
    T_b_w = np.linalg.inv(s.poses[b])
    cam_b = world @ T_b_w[:3, :3].T + T_b_w[:3, 3]
    uvw = cam_b @ s.K.T
    u, v = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
    h, w = s.depth.shape[1:]
    inside = (cam_b[:, 2] > 0) & (u >= 0) & (u < w - 1) & (v >= 0) & (v < h - 1)
    inst_a = s.instance[a][rows, cols]
    u0, v0 = np.floor(u[inside]).astype(int), np.floor(v[inside]).astype(int)
    rows_b, cols_b, _, world_b = _backproject(s, b)
    face_b = np.full((h, w), -99)
    face_b[rows_b, cols_b] = _face_id(s.scene, s.instance[b][rows_b, cols_b], world_b)
    face_a = _face_id(s.scene, inst_a, world)[inside]
    neighbours = np.stack([face_b[v0 + dv, u0 + du] for dv in (0, 1) for du in (0, 1)])
    same = np.all(neighbours == face_a, 0)  # all four on the same plane of the same primitive
    planar = np.isin(s.scene.kind[inst_a[inside]], [PLANE, BOX, ROOM])
    keep = same & planar
    assert keep.sum() > 0.3 * inside.sum(), "frames should share most of their view"
    inv_b = np.where(s.depth[b] > 0, 1.0 / np.maximum(s.depth[b], 1e-9), 0).astype(np.float64)
    z_pred = cam_b[inside, 2][keep]
    z_b = 1.0 / _bilinear(inv_b, u[inside][keep], v[inside][keep])
    rel = np.abs(z_b - z_pred) / z_pred
    assert np.median(rel) < 1e-6 and rel.max() < 1e-4
    # colour: a surface point looks the same from both frames (fixed world light, world-
    # anchored texture), far closer than it does under a wrong (identity) motion
    rgb_a = s.rgb[a][rows, cols][inside][keep].astype(float)
    rgb_b = _bilinear(s.rgb[b].astype(float), u[inside][keep], v[inside][keep])
    wrong = s.rgb[b][rows, cols][inside][keep].astype(float)
    err, err_wrong = np.abs(rgb_a - rgb_b).mean(), np.abs(rgb_a - wrong).mean()
    assert err < 0.5 * err_wrong, (err, err_wrong)


def test_deterministic_from_seed():
    a = render_sequence("driving", 2, 32, 40, seed=11)
    b = render_sequence("driving", 2, 32, 40, seed=11)
    c = render_sequence("driving", 2, 32, 40, seed=12)
    for field in ("rgb", "depth", "semantic", "boundary", "poses"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.rgb, c.rgb)


def test_any_resolution_scales_intrinsics():
    small = render_sequence("indoor", 1, 37, 53, seed=2)
    big = render_sequence("indoor", 1, 74, 106, seed=2)
    assert small.rgb.shape == (1, 37, 53, 3)
    assert big.K[0, 0] == pytest.approx(2 * small.K[0, 0])
    np.testing.assert_array_equal(small.poses, big.poses)
    # same world: pixel centres of the small image sit at big-image coordinates 2u + 0.5
    assert big.K[0, 2] == pytest.approx(2 * small.K[0, 2] + 0.5)


def test_boundary_definition_on_a_hand_made_case():
    depth = np.array([[2.0, 2.0, 4.0, 4.0],
                      [2.0, 2.0, 4.0, 4.0],
                      [2.0, 2.05, 2.06, 0.0]], np.float32)
    inst = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [0, 2, 2, 3]])
    edge = depth_boundaries(depth, inst)
    expected = np.array([[0, 1, 0, 0],
                         [0, 1, 0, 1],
                         [0, 0, 1, 0]], bool)
    # (0,1),(1,1): near side of the 2 m / 4 m step; (2,2): 2.06 m below a 4 m pixel;
    # (1,3): 4 m above an invalid pixel (0 = infinitely far); the invalid pixel itself is
    # never marked. (2,0)-(2,1): 2.5 % apart, below the 5 % threshold.
    np.testing.assert_array_equal(edge, expected)


def test_rendered_boundaries_follow_the_definition(seq):
    d = np.where(seq.depth > 0, seq.depth, np.inf)
    for f in range(len(seq)):
        ref = np.zeros(d.shape[1:], bool)
        di, ii = d[f], seq.instance[f]
        for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            nb = np.full_like(di, np.nan)
            nbi = np.full_like(ii, -2)
            src = (slice(max(dr, 0), di.shape[0] + min(dr, 0)), slice(max(dc, 0), di.shape[1] + min(dc, 0)))
            dst = (slice(max(-dr, 0), di.shape[0] + min(-dr, 0)), slice(max(-dc, 0), di.shape[1] + min(-dc, 0)))
            nb[dst], nbi[dst] = di[src], ii[src]
            with np.errstate(invalid="ignore"):
                ref |= np.isfinite(di) & (nbi != ii) & (nbi != -2) & ((nb - di) / di > 0.05)
        np.testing.assert_array_equal(seq.boundary[f], ref)
    assert seq.boundary.any()


def test_pseudo_depth_is_monotone_but_not_metric():
    s = render_sequence("indoor", 2, 48, 64, seed=1, pseudo_depth=True)
    assert s.pseudo_depth.shape == s.depth.shape and s.pseudo_depth.dtype == np.float32
    d, p = s.depth[0].ravel(), s.pseudo_depth[0].ravel()
    rank = lambda x: np.argsort(np.argsort(x))
    assert np.corrcoef(rank(d), rank(p))[0, 1] > 0.9
    ratio = p / d
    assert ratio.std() / ratio.mean() > 0.01  # not a scaled copy of the metric depth


def test_exposure_and_noise_options_break_brightness_constancy():
    base = render_sequence("indoor", 3, 32, 40, seed=4)
    jit = render_sequence("indoor", 3, 32, 40, seed=4, exposure_jitter=0.2, noise_std=0.02)
    np.testing.assert_array_equal(base.depth, jit.depth)
    assert np.abs(base.rgb.astype(int) - jit.rgb).mean() > 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="preset"):
        render_sequence("outdoor")
    with pytest.raises(TypeError, match="unknown options"):
        render_sequence("indoor", colour_jitter=1)


def test_screen_rect_culling_is_conservative():
    """Culling by projected bounding boxes must not drop hits: compare with no culling."""
    s = render_sequence("driving", 1, 40, 56, seed=9)
    full = np.array([[0, 40, 0, 56]] * len(s.scene))
    orig = render._screen_rects
    try:
        render._screen_rects = lambda scene, *a, **k: (full, np.ones(len(scene), bool))
        z_ref, inst_ref, _ = render.cast_rays(s.scene, s.K, s.poses[0], 40, 56)
    finally:
        render._screen_rects = orig
    z, inst, _ = render.cast_rays(s.scene, s.K, s.poses[0], 40, 56)
    np.testing.assert_array_equal(inst, inst_ref)
    np.testing.assert_array_equal(z, z_ref)
