"""NYUv2 labeled .mat (v7.3 / HDF5) and splits.mat parsing on fixtures (the book's appendix "Reference")."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from bore_depth_lite.data import nyu
from bore_depth_lite.data.datasets import TestDataset
from bore_depth_lite.data.layout import LayoutError

N, H, W = 3, 6, 8


def expected_depth():
    n, r, c = np.meshgrid(np.arange(N), np.arange(H), np.arange(W), indexing="ij")
    return (n + r / 10 + c / 100).astype(np.float32)


def expected_images():
    return np.random.default_rng(0).integers(0, 256, (N, H, W, 3), dtype=np.uint8)


def write_v73(path: Path, names=("wall", "floor"), header: bool = True) -> Path:
    """A MATLAB v7.3-like file: HDF5 with a 512-byte userblock holding the MATLAB header."""
    depth, images = expected_depth(), expected_images()
    labels = (np.arange(N * H * W).reshape(N, H, W) % 3).astype(np.uint16)
    with h5py.File(path, "w", userblock_size=512) as f:
        f["images"] = np.stack([im.transpose(2, 1, 0) for im in images])   # (N, 3, W, H)
        f["depths"] = np.stack([d.T for d in depth])                       # (N, W, H)
        f["labels"] = np.stack([lab.T for lab in labels])
        refs = f.create_group("#refs#")
        ref_list = []
        for i, name in enumerate(names):
            ds = refs.create_dataset(f"n{i}", data=np.array([ord(ch) for ch in name], np.uint16).reshape(-1, 1))
            ds.attrs["MATLAB_class"] = b"char"
            ref_list.append(ds.ref)
        f.create_dataset("names", data=np.array([ref_list], dtype=h5py.ref_dtype))
    if header:
        text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan 1 00:00:00 2024 HDF5 schema 1.00 ."
        block = text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
        with open(path, "r+b") as f:
            f.write(block)
    return path


@pytest.fixture
def mat(tmp_path):
    return write_v73(tmp_path / "nyu_depth_v2_labeled.mat")


@pytest.fixture
def splits(tmp_path):
    path = tmp_path / "splits.mat"
    scipy.io.savemat(path, {"trainNdxs": np.array([[2]], np.uint16), "testNdxs": np.array([[1], [3]], np.uint16)})
    return path


def test_fixture_has_the_real_structure(mat):
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(mat)  # exactly what a real v7.3 file does


def test_depths_and_images_are_transposed_back(mat):
    data = nyu.load_labeled(mat, with_labels=True)
    assert data["depths"].shape == (N, H, W) and data["images"].shape == (N, H, W, 3)
    assert data["depths"][1, 2, 3] == pytest.approx(1.23)
    np.testing.assert_array_equal(data["depths"], expected_depth())
    np.testing.assert_array_equal(data["images"], expected_images())
    assert data["names"] == ["wall", "floor"]
    assert data["labels"].shape == (N, H, W)


def test_splits_are_zero_based(splits):
    s = nyu.read_splits(splits, num_images=N)
    np.testing.assert_array_equal(s["test"], [0, 2])
    np.testing.assert_array_equal(s["train"], [1])


def test_camera_and_crop():
    K = nyu.intrinsics(zero_based=True)
    assert K[0, 2] == pytest.approx(nyu.TOOLBOX_RGB[2] - 1)  # 1-based toolbox -> 0-based
    mask = np.ones((480, 640))
    assert mask[nyu.BORE_CROP].sum() == 426 * 560 == 238560
    assert mask[nyu.TOOLBOX_CROP].sum() == 427 * 561


def test_prepare_nyu_test_split(mat, splits, tmp_path):
    out = tmp_path / "nyu"
    assert nyu.prepare_nyu(mat, splits, out)["frames"] == 2
    ds = TestDataset(out)
    assert len(ds) == 2
    item = ds[1]  # second test image = 0-based image 2
    assert item["image"].shape == (3, H, W)
    np.testing.assert_allclose(item["depth"][0].numpy(), expected_depth()[2], rtol=0, atol=0)
    np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy() * 255, expected_images()[2], atol=1e-3)
    assert item["semantic"].shape == (1, H, W)
    assert item["K"][0, 0] == pytest.approx(nyu.TOOLBOX_RGB[0])
    assert (out / "classes.txt").read_text().splitlines() == ["unlabeled", "wall", "floor"]


def test_bad_nyu_files(tmp_path, splits):
    v5 = tmp_path / "v5.mat"
    scipy.io.savemat(v5, {"depths": np.zeros((2, 2))})
    with pytest.raises(LayoutError, match="v5.mat: a MATLAB v5 .mat; expected the MATLAB v7.3"):
        nyu.load_labeled(v5)
    partial = tmp_path / "partial.mat"
    with h5py.File(partial, "w") as f:
        f["images"] = np.zeros((1, 3, 4, 2), np.uint8)
    with pytest.raises(LayoutError, match=r"partial.mat: missing datasets \['depths'\]"):
        nyu.load_labeled(partial)
    with pytest.raises(LayoutError, match="splits.mat: test indices outside"):
        nyu.read_splits(splits, num_images=2)
    bad = tmp_path / "bad_splits.mat"
    scipy.io.savemat(bad, {"testNdxs": np.array([[1]])})
    with pytest.raises(LayoutError, match=r"missing \['trainNdxs'\]"):
        nyu.read_splits(bad)
    with pytest.raises(LayoutError, match="not found"):
        nyu.load_labeled(tmp_path / "nope.mat")
