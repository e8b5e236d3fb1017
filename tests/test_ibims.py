"""iBims-1 .mat parsing and preparation on fixtures (the book's appendix "Reference")."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from bore_depth_lite.data import ibims
from bore_depth_lite.data.datasets import TestDataset
from bore_depth_lite.data.layout import LayoutError

H, W = 6, 8


def make_mat(path: Path, seed: int = 0, **overrides) -> dict:
    rng = np.random.default_rng(seed)
    depth = (1 + np.arange(H * W).reshape(H, W) / 10).astype(np.float32)
    depth[0, 0] = 0.0  # missing
    mask_invalid = np.ones((H, W), np.uint8)
    mask_invalid[1, 1] = 0
    mask_transp = np.ones((H, W), np.uint8)
    mask_transp[2, 2] = 0
    edges = np.zeros((H, W), np.uint8)
    edges[:, 4] = 1
    fields = {"rgb": rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "depth": depth, "edges": edges,
              "calib": np.array([[559.62, 0, 0], [0, 558.14, 0], [361.87, 241.99, 1]]),
              "mask_invalid": mask_invalid, "mask_transp": mask_transp,
              "mask_wall": np.zeros((H, W), np.uint8), "mask_wall_paras": np.zeros((0, 0))}
    fields.update(overrides)
    scipy.io.savemat(path, {"data": fields})
    return fields


@pytest.fixture
def ibims_dir(tmp_path):
    mat_dir = tmp_path / "ibims1_core_mat"
    mat_dir.mkdir()
    fields = {name: make_mat(mat_dir / f"{name}.mat", seed=i) for i, name in enumerate(["corridor_01", "office_04"])}
    (tmp_path / "imagelist.txt").write_text("corridor_01\n  office_04  \n\n")
    return tmp_path, fields


def test_load_mat(ibims_dir):
    root, fields = ibims_dir
    s = ibims.load_mat(root / "ibims1_core_mat" / "corridor_01.mat")
    np.testing.assert_array_equal(s["rgb"], fields["corridor_01"]["rgb"])
    assert s["depth"][2, 3] == pytest.approx(fields["corridor_01"]["depth"][2, 3])
    K = s["K"]  # the transposed, 1-based calib becomes a 0-based K
    assert (K[0, 0], K[1, 1], K[0, 2], K[1, 2]) == pytest.approx((559.62, 558.14, 360.87, 240.99))
    assert s["edges"].dtype == bool and s["edges"][:, 4].all() and s["edges"].sum() == H
    # valid = mask_invalid & mask_transp & depth > 0 (the masks mark VALID pixels)
    assert not s["valid"][0, 0] and not s["valid"][1, 1] and not s["valid"][2, 2]
    assert s["valid"].sum() == H * W - 3
    assert s["mask_wall_paras"].size == 0


def test_imagelist_strips_whitespace(ibims_dir):
    root, _ = ibims_dir
    assert ibims.read_imagelist(root / "imagelist.txt") == ["corridor_01", "office_04"]


def test_raw_depth_png(tmp_path):
    Image.fromarray(np.array([[65535, 0, 1311]], np.uint16)).save(tmp_path / "d.png")
    d = ibims.read_raw_depth(tmp_path / "d.png")
    assert d[0, 0] == pytest.approx(50.0) and d[0, 1] == 0 and d[0, 2] == pytest.approx(1311 * 50 / 65535)


def test_prepare_ibims(ibims_dir):
    root, fields = ibims_dir
    out = root / "out"
    ibims.prepare_ibims(root / "ibims1_core_mat", root / "imagelist.txt", out)
    ds = TestDataset(out)
    assert len(ds) == 2 and [ds[i]["name"] for i in range(2)] == ["corridor_01", "office_04"]
    item = ds[0]
    depth = item["depth"][0].numpy()
    assert depth[1, 1] == 0 and depth[2, 2] == 0 and depth[0, 0] == 0  # masked pixels have no GT
    assert depth[3, 3] == pytest.approx(fields["corridor_01"]["depth"][3, 3])
    assert item["boundary"][0, :, 4].all() and item["boundary"].sum() == H
    assert item["K"][0, 2] == pytest.approx(360.87)


def test_bad_ibims_files(ibims_dir, tmp_path):
    root, _ = ibims_dir
    bad = tmp_path / "bad.mat"
    make_mat(bad, depth=np.ones((H + 1, W), np.float32))
    with pytest.raises(LayoutError, match=r"bad.mat: rgb \(6, 8, 3\) and depth \(7, 8\) do not match"):
        ibims.load_mat(bad)
    scipy.io.savemat(bad, {"data": {"rgb": np.zeros((2, 2, 3), np.uint8)}})
    with pytest.raises(LayoutError, match="lacks fields"):
        ibims.load_mat(bad)
    scipy.io.savemat(bad, {"x": 1})
    with pytest.raises(LayoutError, match="no variable 'data'"):
        ibims.load_mat(bad)
    (root / "imagelist.txt").write_text("corridor_01\nmissing_07\n")
    with pytest.raises(LayoutError, match="missing_07.mat: iBims-1 .mat file not found"):
        ibims.prepare_ibims(root / "ibims1_core_mat", root / "imagelist.txt", root / "out2")
