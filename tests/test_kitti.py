"""KITTI raw parsing on tiny fixture drives written by the tests (the book's appendix "Reference")."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bore_depth_lite.data import kitti
from bore_depth_lite.data.datasets import TestDataset, TrainTripletDataset
from bore_depth_lite.data.layout import LayoutError

TOY_CAM = """calib_time: 09-Jan-2012 13:57:47
corner_dist: 9.950000e-02
S_rect_02: 1.200000e+01 8.000000e+00
R_rect_00: 1 0 0 0 1 0 0 0 1
P_rect_02: 100 0 5 0 0 100 4 0 0 0 1 0
"""
TOY_VELO = """calib_time: 15-Mar-2012 11:37:16
R: 0 -1 0 0 0 -1 1 0 0
T: 0 0 0
delta_f: 0 0
delta_c: 0 0
"""
REAL_CAM = """calib_time: 09-Jan-2012 13:57:47
S_rect_02: 1.242000e+03 3.750000e+02
R_rect_00: 9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 -4.278459e-03 7.402527e-03 4.351614e-03 9.999631e-01
P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03
"""
REAL_VELO = """calib_time: 15-Mar-2012 11:37:16
R: 7.533745e-03 -9.999714e-01 -6.166020e-04 1.480249e-02 7.280733e-04 -9.998902e-01 9.998621e-01 7.523790e-03 1.480755e-02
T: -4.069766e-03 -7.631618e-02 -2.717806e-01
"""
DRIVE = "2011_09_26/2011_09_26_drive_0002_sync"


def make_drive(root: Path, cam_text: str, velo_text: str, points: dict[int, list], size=(8, 12),
               drive: str = DRIVE, frames: int = 5) -> Path:
    date = root / drive.split("/")[0]
    date.mkdir(parents=True, exist_ok=True)
    (date / "calib_cam_to_cam.txt").write_text(cam_text)
    (date / "calib_velo_to_cam.txt").write_text(velo_text)
    (date / "calib_imu_to_velo.txt").write_text("R: 1 0 0 0 1 0 0 0 1\nT: 0 0 0\n")
    img_dir = root / drive / "image_02" / "data"
    velo_dir = root / drive / "velodyne_points" / "data"
    img_dir.mkdir(parents=True, exist_ok=True)
    velo_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for f in range(frames):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(img_dir / f"{f:010d}.png")
        np.asarray(points.get(f, [[10, 0, 0, 1]]), np.float32).tofile(velo_dir / f"{f:010d}.bin")
    return root


TOY_POINTS = [[10, 0, 0, 0.5], [20, 0, 0, 0.5], [5, -0.25, 0.1, 0.5], [-3, 0, 0, 0.5], [10, 1, 0, 0.5]]


@pytest.fixture
def toy(tmp_path):
    return make_drive(tmp_path / "raw", TOY_CAM, TOY_VELO, {0: TOY_POINTS})


def test_calibration_parsing_keeps_strings(toy):
    calib = kitti.read_calib_file(toy / "2011_09_26" / "calib_cam_to_cam.txt")
    assert calib["calib_time"] == "09-Jan-2012 13:57:47"
    np.testing.assert_array_equal(calib["S_rect_02"], [12, 8])


@pytest.mark.parametrize("vel_depth", [True, False])
def test_toy_projection(toy, vel_depth):
    depth = kitti.generate_depth_map(toy / "2011_09_26", toy / DRIVE / "velodyne_points/data/0000000000.bin",
                                     cam=2, vel_depth=vel_depth)
    assert depth.shape == (8, 12) and depth.dtype == np.float64
    assert np.count_nonzero(depth) == 2
    assert depth[3, 4] == 10.0  # the 20 m point at the same pixel loses: nearest wins
    assert depth[1, 9] == pytest.approx(5.0)


@pytest.mark.parametrize("quirk, expected", [(True, (3.0, 3.0)), (False, (7.0, 3.0))])
def test_sub2ind_quirk(tmp_path, quirk, expected):
    # P maps camera (x, y, z) to (100x/z + 5, 100y/z + 4); camera x = -y_velo, y = -z_velo.
    # Target pixels (row 0, col 11) and (row 1, col 0) -> u = col + 1, v = row + 1.
    def velo_point(depth, row, col):
        u, v = col + 1, row + 1
        return [depth, -(u - 5) * depth / 100, -(v - 4) * depth / 100, 1]

    root = make_drive(tmp_path / "raw", TOY_CAM, TOY_VELO, {0: [velo_point(7, 0, 11), velo_point(3, 1, 0)]})
    depth = kitti.generate_depth_map(root / "2011_09_26", root / DRIVE / "velodyne_points/data/0000000000.bin",
                                     reproduce_sub2ind_quirk=quirk)
    assert (depth[0, 11], depth[1, 0]) == pytest.approx(expected)


@pytest.mark.parametrize("point, pixel, vel, cam_z", [
    ((10, 0, 0), (174, 613), 10.0, 9.730067),
    ((20, 2, -1), (214, 538), 20.0, 19.719318),
    ((5, -1, 0.5), (91, 769), 5.0, 4.735441)])
def test_real_2011_09_26_calibration(tmp_path, point, pixel, vel, cam_z):
    root = make_drive(tmp_path / "raw", REAL_CAM, REAL_VELO, {0: [[*point, 1]]}, size=(375, 1242), frames=1)
    bin_path = root / DRIVE / "velodyne_points/data/0000000000.bin"
    d_vel = kitti.generate_depth_map(root / "2011_09_26", bin_path, vel_depth=True)
    d_cam = kitti.generate_depth_map(root / "2011_09_26", bin_path, vel_depth=False)
    assert d_vel.shape == (375, 1242)
    assert list(zip(*np.nonzero(d_vel))) == [pixel]
    assert d_vel[pixel] == pytest.approx(vel)
    assert d_cam[pixel] == pytest.approx(cam_z, abs=2e-6)
    K = kitti.intrinsics(root / "2011_09_26", 2, size=(256, 832))
    # our K is 0-based (cx − 1) and half-pixel rescaled; BoRe's rescaled values are 1-based
    assert K[0, 0] == pytest.approx(483.3489, abs=1e-4) and K[1, 1] == pytest.approx(492.5697, abs=1e-4)
    assert K[0, 2] == pytest.approx(832 / 1242 * (609.5593 - 0.5) - 0.5)


def test_split_parsing_and_paths(tmp_path):
    a = kitti.parse_split_line("2011_09_26/2011_09_26_drive_0002_sync 0000000069 l")
    b = kitti.parse_split_line("2011_09_26/2011_09_26_drive_0002_sync 69 l")
    assert a == b == ("2011_09_26/2011_09_26_drive_0002_sync", 69, "l")
    paths = kitti.frame_paths(tmp_path, *a)
    assert paths["calib_dir"] == tmp_path / "2011_09_26"
    assert paths["velodyne"] == tmp_path / "2011_09_26/2011_09_26_drive_0002_sync/velodyne_points/data/0000000069.bin"
    with pytest.raises(LayoutError, match="expected '<date>"):
        kitti.parse_split_line("2011_09_26/x 12")
    split = tmp_path / "empty.txt"
    split.write_text("\n")
    with pytest.raises(LayoutError, match="empty"):
        kitti.read_split_file(split)


def test_improved_gt_png(tmp_path):
    arr = np.array([[2560, 0]], np.uint16)
    Image.fromarray(arr).save(tmp_path / "gt.png")
    depth = kitti.read_improved_gt(tmp_path / "gt.png")
    assert depth[0, 0] == 10.0 and depth[0, 1] == 0.0


def test_bad_calibration_and_velodyne(toy):
    date = toy / "2011_09_26"
    (date / "calib_cam_to_cam.txt").write_text(TOY_CAM.replace("P_rect_02: 100 0 5 0 0 100 4 0 0 0 1 0", "P_rect_02: 1 2 3"))
    with pytest.raises(LayoutError, match=r"calib_cam_to_cam.txt: key 'P_rect_02' must hold 12 numbers \(3 values\)"):
        kitti.load_calibration(date)
    (date / "calib_cam_to_cam.txt").write_text(TOY_CAM)
    bin_path = toy / DRIVE / "velodyne_points/data/0000000001.bin"
    bin_path.write_bytes(bin_path.read_bytes()[:-3])
    with pytest.raises(LayoutError, match="0000000001.bin: 13 bytes is not a whole number"):
        kitti.load_velodyne_points(bin_path)
    with pytest.raises(LayoutError, match="calib_velo_to_cam.txt: KITTI calibration file not found"):
        (date / "calib_velo_to_cam.txt").unlink()
        kitti.load_calibration(date)


def test_image_size_must_match_calibration(tmp_path):
    root = make_drive(tmp_path / "raw", TOY_CAM, TOY_VELO, {}, size=(9, 12))
    with pytest.raises(LayoutError, match="wrong calibration"):
        kitti.load_test_frame(root, DRIVE, 0)


def test_prepare_kitti_into_the_shared_layout(tmp_path):
    raw = make_drive(tmp_path / "raw", TOY_CAM, TOY_VELO, {0: TOY_POINTS})
    make_drive(raw, TOY_CAM, TOY_VELO, {}, drive="2011_09_26/2011_09_26_drive_0001_sync")
    make_drive(raw, TOY_CAM, TOY_VELO, {}, drive="2011_09_26/2011_09_26_drive_0005_sync")
    split = tmp_path / "test_files.txt"
    split.write_text(f"{DRIVE} 0000000000 l\n{DRIVE} 3 l\n")
    out = tmp_path / "kitti"
    kitti.prepare_kitti(raw, out, test_split=split)
    kitti.prepare_kitti(raw, out, train_drives=["2011_09_26/2011_09_26_drive_0001_sync",
                                               "2011_09_26/2011_09_26_drive_0005_sync"], size=(16, 24), val_fraction=0.5)
    test = TestDataset(out)
    assert len(test) == 2
    item = test[0]
    assert item["image"].shape == (3, 8, 12) and item["depth"].shape == (1, 8, 12)
    assert item["depth"][0, 3, 4] == 10.0 and item["depth"][0, 1, 9] == pytest.approx(5.0)
    assert item["K"][0, 2] == pytest.approx(4.0)  # cx = 5 (1-based) -> 4
    train = TrainTripletDataset(out, "train")
    val = TrainTripletDataset(out, "val")
    assert len(train) == len(val) == 3  # 5 frames per drive -> 3 triplets
    sample = train[0]
    assert sample["tgt"].shape == (3, 16, 24)
    assert sample["K"][0, 0] == pytest.approx(200.0)  # fx 100 x 2
