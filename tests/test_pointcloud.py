"""Point clouds: back-projection against the renderer's geometry, the released intrinsics, PLY files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bore_depth_lite import geometry
from bore_depth_lite.data.synthetic import render_sequence
from bore_depth_lite.pointcloud import (INTRINSICS, depth_to_points, intrinsics_for, intrinsics_matrix, read_ply,
                                        write_ply)


def _bilinear(image: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples of ``image`` at (u, v) and whether all four neighbours exist."""
    h, w = image.shape
    c0, r0 = np.floor(u).astype(int), np.floor(v).astype(int)
    inside = (c0 >= 0) & (r0 >= 0) & (c0 + 1 < w) & (r0 + 1 < h)
    c0, r0 = np.clip(c0, 0, w - 2), np.clip(r0, 0, h - 2)
    a, b = u - c0, v - r0
    corners = [image[r0, c0], image[r0, c0 + 1], image[r0 + 1, c0], image[r0 + 1, c0 + 1]]
    value = (1 - a) * (1 - b) * corners[0] + a * (1 - b) * corners[1] + (1 - a) * b * corners[2] + a * b * corners[3]
    return value, inside


@pytest.mark.parametrize("preset", ["driving", "indoor"])
def test_points_of_the_true_depth_lie_on_the_surfaces_another_camera_sees(preset):
    """Frame 0's exact depth, back-projected, moved into frame 1 by the true poses and projected
    with K, lands where frame 1 sees the same surface at the same distance: the inverse depth of
    a plane is affine in the pixel coordinates, so bilinear interpolation of frame 1's inverse
    depth is exact on planes; a half-pixel error in the convention would break it."""
    seq = render_sequence(preset, 2, 96, 128, seed=3)
    points, colours = depth_to_points(seq.depth[0], seq.K, seq.rgb[0])
    valid = seq.depth[0] > 0
    assert len(points) == valid.sum() and colours.dtype == np.uint8
    np.testing.assert_array_equal(colours, seq.rgb[0][valid])
    world = (seq.poses[0][:3, :3] @ points.T.astype(np.float64)).T + seq.poses[0][:3, 3]
    to_1 = np.linalg.inv(seq.poses[1])
    cam1 = (to_1[:3, :3] @ world.T).T + to_1[:3, 3]
    u, v = (seq.K @ (cam1 / cam1[:, 2:]).T)[:2]
    inv1 = np.where(seq.depth[1] > 0, 1.0 / np.maximum(seq.depth[1], 1e-9), 0.0)
    sampled, inside = _bilinear(inv1, u, v)
    same_object, _ = _bilinear(seq.instance[1].astype(np.float64), u, v)
    ids = seq.instance[0][valid]
    usable = inside & (cam1[:, 2] > 0) & (sampled > 0) & (np.abs(same_object - ids) < 1e-9)
    assert usable.mean() > 0.5, "most points should be seen again by the next frame"
    rel = np.abs(sampled[usable] * cam1[usable, 2] - 1.0)
    # Not occluded in frame 1 (the rest) and exact up to float32 points and curved surfaces.
    assert np.mean(rel < 1e-3) > 0.95


def test_depth_to_points_agrees_with_geometry_backproject_and_drops_invalid_pixels():
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 5, (6, 8))
    depth[0, 0], depth[1, 1], depth[2, 2] = 0.0, np.nan, -1.0
    K = intrinsics_matrix(50.0, 60.0, 3.7, 2.9)
    points, colours = depth_to_points(depth, K, valid=np.arange(48).reshape(6, 8) != 47)
    assert colours is None and len(points) == 48 - 4
    ref = geometry.backproject(torch.from_numpy(np.nan_to_num(depth))[None, None], torch.from_numpy(np.linalg.inv(K)))
    ref = ref[0].permute(1, 2, 0).numpy()
    keep = np.isfinite(depth) & (depth > 0)
    keep[5, 7] = False
    np.testing.assert_allclose(points, ref[keep], rtol=1e-6)


def test_released_intrinsics_rescale_to_the_network_size():
    K = intrinsics_for("kitti", (256, 832))
    # The released depth2pointcloud.py KITTI values: KITTI's camera 02 rescaled to 832×256.
    np.testing.assert_allclose([K[0, 0], K[1, 1], K[0, 2], K[1, 2]], [483.3489, 492.5697, 408.33602, 118.00166],
                               rtol=1e-6)
    np.testing.assert_allclose(intrinsics_for("nyu", (480, 640)), intrinsics_matrix(*INTRINSICS["nyu"][0]))
    half = intrinsics_for((100.0, 100.0, 50.0, 40.0), (40, 50), image_size=(80, 100))
    np.testing.assert_allclose(half, intrinsics_matrix(50.0, 50.0, 25.0, 20.0))
    with pytest.raises(ValueError, match="intrinsics: unknown preset 'cityscapes'"):
        intrinsics_for("cityscapes", (10, 10))
    with pytest.raises(ValueError, match="intrinsics: expected finite fx, fy > 0"):
        intrinsics_matrix(0.0, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="expected 4 numbers"):
        intrinsics_for((1.0, 2.0, 3.0), (10, 10))


def test_ply_round_trip_and_header(tmp_path):
    rng = np.random.default_rng(1)
    points = rng.normal(size=(17, 3)).astype(np.float32)
    colours = rng.integers(0, 256, (17, 3)).astype(np.uint8)
    path = write_ply(tmp_path / "c.ply", points, colours)
    header = path.read_bytes().split(b"end_header\n")[0].decode()
    assert "element vertex 17" in header and "property uchar red" in header
    back, back_colours = read_ply(path)
    np.testing.assert_array_equal(back, points)
    np.testing.assert_array_equal(back_colours, colours)
    bare, none = read_ply(write_ply(tmp_path / "p.ply", points))
    assert none is None and np.array_equal(bare, points)
    with pytest.raises(ValueError, match=r"points: expected shape \(N, 3\)"):
        write_ply(tmp_path / "bad.ply", points[:, :2])
    (tmp_path / "junk.ply").write_bytes(b"hello")
    with pytest.raises(ValueError, match="junk.ply: not a PLY file"):
        read_ply(tmp_path / "junk.ply")


def test_ground_plane_gives_the_metric_scale_of_true_depth_at_any_scale():
    from bore_depth_lite.data.synthetic import C
    from bore_depth_lite.metric_scale import fit_ground_plane, ground_scale

    seq = render_sequence("driving", 2, 96, 160, seed=10_001)
    for j in range(2):
        for unknown in (0.05, 1.0, 37.0):               # the network's depth has any scale
            fit = ground_scale(seq.depth[j] * unknown, seq.K, 1.65)    # the world's camera: 1.65 m up
            assert abs(fit.scale * unknown - 1.0) < 2e-3 and fit.inlier_fraction > 0.5
            assert fit.normal[1] < -0.9                   # the road's normal points up (camera y is down)
        road = seq.semantic[j] == C["road"]
        assert abs(ground_scale(seq.depth[j], seq.K, 1.65, ground_mask=road).scale - 1.0) < 1e-5
    with pytest.raises(ValueError, match="camera_height: expected a positive number"):
        ground_scale(seq.depth[0], seq.K, -1.65)
    wall = np.stack(np.meshgrid(np.linspace(-1, 1, 10), np.linspace(-1, 1, 10)), -1).reshape(-1, 2)
    with pytest.raises(ValueError, match="no ground plane below the camera"):
        fit_ground_plane(np.column_stack([wall, np.full(len(wall), 5.0)]))   # a wall facing the camera
    with pytest.raises(ValueError, match=r"points: expected \(N >= 3, 3\)"):
        fit_ground_plane(np.zeros((2, 3)))
