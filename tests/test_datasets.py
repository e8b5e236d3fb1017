"""The shared on-disk layout, the two datasets, geometry-consistent augmentations, bad input,
and the resumable downloader (with local sources only)."""
from __future__ import annotations

import hashlib
import io
import shutil

import numpy as np
import pytest
import torch

from bore_depth_lite.data import download as dl
from bore_depth_lite.data import transforms as T
from bore_depth_lite.data.datasets import TestDataset, TrainTripletDataset
from bore_depth_lite.images import ImageLoadError
from bore_depth_lite.data.generate import SyntheticConfig, scene_seed, write_synthetic_dataset
from bore_depth_lite.data.layout import LayoutError, read_intrinsics, write_split
from bore_depth_lite.data.synthetic import render_sequence

CFG = SyntheticConfig(height=32, width=40, train_scenes=2, val_scenes=1, frames_per_scene=5,
                      val_frames_per_scene=4, test_scenes=2, test_frames_per_scene=3, seed=1)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    summary = write_synthetic_dataset(root, CFG, workers=1)
    assert summary["frames"] == CFG.num_frames == 2 * 5 + 4 + 6
    return root


def test_layout_files(dataset_root):
    assert (dataset_root / "training/train.txt").read_text() == "indoor_train_000\nindoor_train_001\n"
    assert (dataset_root / "training/val.txt").read_text() == "indoor_val_000\n"
    scene = dataset_root / "training/indoor_train_000"
    assert sorted(p.name for p in scene.glob("*.png")) == [f"{i:06d}.png" for i in range(5)]
    assert not (scene / "depth").exists() and (dataset_root / "training/indoor_val_000/depth").is_dir()
    assert len(list((dataset_root / "testing/color").glob("*.png"))) == 6
    assert (dataset_root / "classes.txt").read_text().startswith("sky\n")


def test_train_triplets_match_the_renderer(dataset_root):
    ds = TrainTripletDataset(dataset_root, "train", with_poses=True)
    assert len(ds) == 2 * 3
    item = ds[1]
    assert item["tgt"].shape == (3, 32, 40) and item["srcs"].shape == (2, 3, 32, 40)
    assert item["tgt"].dtype == torch.float32 and 0 <= item["tgt"].min() and item["tgt"].max() <= 1
    assert item["K"].dtype == torch.float32
    torch.testing.assert_close(item["K"] @ item["K_inv"], torch.eye(3), atol=1e-5, rtol=0)
    seq = render_sequence("indoor", 5, 32, 40, seed=scene_seed(1, 0, 0))
    i = item["index"]
    np.testing.assert_array_equal((item["tgt"].permute(1, 2, 0).numpy() * 255).round(), seq.rgb[i])
    np.testing.assert_array_equal((item["srcs"][0].permute(1, 2, 0).numpy() * 255).round(), seq.rgb[i - 1])
    np.testing.assert_array_equal((item["srcs"][1].permute(1, 2, 0).numpy() * 255).round(), seq.rgb[i + 1])
    np.testing.assert_allclose(item["K"].numpy(), seq.K, rtol=1e-6)
    expected = np.linalg.inv(seq.poses[i - 1]) @ seq.poses[i]
    np.testing.assert_allclose(item["T_src_tgt"][0].numpy(), expected, atol=1e-6)


def test_every_step_up_to_k_adds_the_narrower_gaps(dataset_root):
    """5 frames per scene, 2 scenes: gap 1 gives targets 1-3, gap 2 target 2 only: 2 × (3 + 1) triplets,
    each with its sources k frames before and after its target."""
    ds = TrainTripletDataset(dataset_root, "train", frame_step=2, with_poses=True, every_step_up_to=True)
    assert len(ds) == 2 * (3 + 1)
    assert len(TrainTripletDataset(dataset_root, "train", frame_step=2)) == 2 * 1
    seq = render_sequence("indoor", 5, 32, 40, seed=scene_seed(1, 0, 0))
    gaps = set()
    for n in range(4):                     # the first scene's triplets
        item, (_, i, k) = ds[n], ds.samples[n]
        gaps.add(k)
        np.testing.assert_array_equal((item["srcs"][0].permute(1, 2, 0).numpy() * 255).round(), seq.rgb[i - k])
        np.testing.assert_array_equal((item["srcs"][1].permute(1, 2, 0).numpy() * 255).round(), seq.rgb[i + k])
        np.testing.assert_allclose(item["T_src_tgt"][1].numpy(), np.linalg.inv(seq.poses[i + k]) @ seq.poses[i],
                                   atol=1e-6)
    assert gaps == {1, 2}


def test_train_speed_moves_training_cameras_faster_and_leaves_the_test_split(dataset_root, tmp_path):
    from dataclasses import replace

    from bore_depth_lite.data.cache import ensure_synthetic

    def path_length(poses):
        return np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1).sum()

    fast = replace(CFG, train_scenes=1, val_scenes=1, train_speed=3.0)
    root = tmp_path / "fast"
    write_synthetic_dataset(root, fast, workers=1)
    for split, group, frames in (("train", 0, fast.frames_per_scene), ("val", 1, fast.val_frames_per_scene)):
        seed = scene_seed(1, group, 0)
        fast_poses = render_sequence("indoor", frames, 32, 40, seed=seed, speed=3.0).poses
        slow_poses = render_sequence("indoor", frames, 32, 40, seed=seed).poses
        # The same bounded walk run faster: about three times the distance per frame.
        assert 2.5 < path_length(fast_poses) / path_length(slow_poses) < 4.0
        item = TrainTripletDataset(root, split, with_poses=True)[0]
        i = item["index"]
        np.testing.assert_allclose(item["T_src_tgt"][0].numpy(), np.linalg.inv(fast_poses[i - 1]) @ fast_poses[i],
                                   atol=1e-6)
    # The test split is rendered at test_speed whatever the training speed: the same frames.
    for name in ("000000.png", "000005.png"):
        assert (root / "testing/color" / name).read_bytes() == (dataset_root / "testing/color" / name).read_bytes()
    # Another speed is another data set: its own cache folder.
    small = replace(CFG, train_scenes=1, val_scenes=0, test_scenes=0, frames_per_scene=3)
    assert ensure_synthetic(small, tmp_path / "cache") != ensure_synthetic(replace(small, train_speed=2.0),
                                                                           tmp_path / "cache")


def test_val_and_test_depth_are_lossless(dataset_root):
    val = TrainTripletDataset(dataset_root, "val", with_depth=True)
    seq = render_sequence("indoor", 4, 32, 40, seed=scene_seed(1, 1, 0))
    item = val[0]
    np.testing.assert_array_equal(item["tgt_depth"][0].numpy(), seq.depth[item["index"]])
    test = TestDataset(dataset_root)
    assert len(test) == 6
    seq = render_sequence("indoor", 3, 32, 40, seed=scene_seed(1, 2, 1), speed=CFG.test_speed)
    item = test[4]  # scene 1, frame 1
    assert item["name"] == "000004"
    np.testing.assert_array_equal(item["depth"][0].numpy(), seq.depth[1])
    np.testing.assert_array_equal(item["semantic"][0].numpy(), seq.semantic[1])
    np.testing.assert_array_equal(item["boundary"][0].numpy(), seq.boundary[1])
    resized = TestDataset(dataset_root, image_size=(16, 20))[4]
    assert resized["image"].shape == (3, 16, 20) and resized["depth"].shape == (1, 32, 40)


def test_parallel_writing_gives_the_same_data(dataset_root, tmp_path):
    write_synthetic_dataset(tmp_path, CFG, workers=2)
    for rel in ("training/indoor_train_001/000003.png", "testing/depth/000005.npy", "training/indoor_val_000/cam.txt"):
        assert (tmp_path / rel).read_bytes() == (dataset_root / rel).read_bytes()


# ----------------------------------------------------------------------------- augmentations
def _blob_image(u0: float, v0: float, h: int = 48, w: int = 64, sigma: float = 2.0) -> torch.Tensor:
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    blob = torch.exp(-((u - u0) ** 2 + (v - v0) ** 2) / (2 * sigma ** 2))
    return blob.expand(3, h, w)[None].float()  # (1,3,H,W)


def _centroid(img: torch.Tensor) -> tuple[float, float]:
    m = img[0, 0].double()
    v, u = torch.meshgrid(torch.arange(m.shape[0], dtype=torch.float64), torch.arange(m.shape[1], dtype=torch.float64),
                          indexing="ij")
    return float((m * u).sum() / m.sum()), float((m * v).sum() / m.sum())


K0 = torch.tensor([[50.0, 0.0, 30.2], [0.0, 52.0, 22.7], [0.0, 0.0, 1.0]], dtype=torch.float64)
POINT = torch.tensor([0.3, -0.1, 2.0], dtype=torch.float64)


def _project(K, X):
    p = K @ X
    return float(p[0] / p[2]), float(p[1] / p[2])


def test_flip_maps_the_mirrored_point_with_the_new_K():
    u0, v0 = _project(K0, POINT)
    sample = {"images": _blob_image(u0, v0), "K": K0}
    out = T.RandomHorizontalFlip(p=1.0)(sample)
    mirrored = POINT * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    u1, v1 = _project(out["K"], mirrored)
    cu, cv = _centroid(out["images"])
    assert abs(cu - u1) < 1e-3 and abs(cv - v1) < 1e-3
    assert out["K"][0, 2] == pytest.approx(63 - 30.2)


@pytest.mark.parametrize("seed", range(4))
def test_scale_crop_moves_points_as_the_new_K_says(seed):
    u0, v0 = _project(K0, POINT)
    depth = torch.full((1, 1, 48, 64), 2.0)
    sample = {"images": _blob_image(u0, v0), "K": K0, "maps": {"depth": depth}}
    out = T.RandomScaleCrop(1.15, generator=torch.Generator().manual_seed(seed))(sample)
    assert out["images"].shape == (1, 3, 48, 64) and out["maps"]["depth"].shape == (1, 1, 48, 64)
    u1, v1 = _project(out["K"], POINT)
    cu, cv = _centroid(out["images"])
    assert abs(cu - u1) < 0.02 and abs(cv - v1) < 0.02, (cu, u1, cv, v1)
    assert torch.all(out["maps"]["depth"] == 2.0)  # depth values do not change under zoom


def test_resize_intrinsics_agree_with_rendering_at_two_resolutions():
    small = render_sequence("indoor", 1, 32, 40, seed=0)
    big = render_sequence("indoor", 1, 64, 80, seed=0)
    K = T.resize_intrinsics(torch.from_numpy(big.K), 0.5, 0.5).numpy()
    np.testing.assert_allclose(K, small.K, rtol=1e-12)


def test_colour_jitter_is_identical_across_the_triplet():
    frame = torch.rand(1, 3, 8, 10)
    out = T.ColorJitter(0.3, 0.3, 0.3, generator=torch.Generator().manual_seed(0))({"images": frame.repeat(3, 1, 1, 1),
                                                                                    "K": K0})
    assert not torch.equal(out["images"][0], frame[0])
    assert torch.equal(out["images"][0], out["images"][1]) and torch.equal(out["images"][0], out["images"][2])


def test_augmented_dataset_keeps_K_consistent(dataset_root):
    ds = TrainTripletDataset(dataset_root, "train", transform=T.train_augmentation(torch.Generator().manual_seed(3)))
    item = ds[0]
    assert item["tgt"].shape == (3, 32, 40) and item["K"][0, 0] >= read_intrinsics(
        dataset_root / "training/indoor_train_000/cam.txt")[0, 0] - 1e-4


# ----------------------------------------------------------------------------- bad input
def test_bad_training_layouts(dataset_root, tmp_path):
    with pytest.raises(LayoutError, match="training folder not found"):
        TrainTripletDataset(tmp_path / "nowhere")
    root = tmp_path / "d"
    shutil.copytree(dataset_root / "training", root / "training")
    (root / "training/train.txt").write_text("\n\n")
    with pytest.raises(LayoutError, match="train.txt: split file is empty"):
        TrainTripletDataset(root)
    write_split(root / "training/train.txt", ["indoor_train_000", "ghost"])
    with pytest.raises(LayoutError, match="ghost: scene folder listed in the split file does not exist"):
        TrainTripletDataset(root)
    write_split(root / "training/train.txt", ["indoor_train_000"])
    with pytest.raises(LayoutError, match="5 frames, but a triplet with frame_step=3 needs at least 7"):
        TrainTripletDataset(root, frame_step=3)
    cam = root / "training/indoor_train_000/cam.txt"
    cam.write_text("1 0 0\n0 1 0\n0 0\n")
    with pytest.raises(LayoutError, match="cam.txt: expected 9 numbers"):
        TrainTripletDataset(root)
    cam.write_text("100 0 10\n0 100 10\n0 0 0\n")
    with pytest.raises(LayoutError, match="cam.txt: not a pinhole intrinsics matrix"):
        TrainTripletDataset(root)
    cam.write_text("100 0 10\n0 100 10\n0 0 1\n")
    frame = root / "training/indoor_train_000/000002.png"
    frame.write_bytes(frame.read_bytes()[:200])  # truncated PNG
    ds = TrainTripletDataset(root)
    with pytest.raises(ImageLoadError, match="000002.png: cannot be read as an image"):
        ds[1]
    (root / "training/indoor_val_000/depth/000001.npy").unlink()
    with pytest.raises(LayoutError, match=r"depth: 3 depth maps for 4 frames"):
        TrainTripletDataset(root, "val", with_depth=True)


def test_bad_test_layouts(dataset_root, tmp_path):
    with pytest.raises(LayoutError, match="testing folder not found"):
        TestDataset(tmp_path)
    root = tmp_path / "t"
    shutil.copytree(dataset_root / "testing", root / "testing")
    (root / "testing/depth/000003.npy").unlink()
    with pytest.raises(LayoutError, match=r"testing/depth: 5 depth maps but 6 images"):
        TestDataset(root)
    np.save(root / "testing/depth/000099.npy", np.zeros((32, 40), np.float32))
    with pytest.raises(LayoutError, match="000004.npy: expected the depth map of 000003.png"):
        TestDataset(root)
    assert len(TestDataset(root, pair_by="order")) == 6
    np.save(root / "testing/depth/000000.npy", np.zeros((32, 40), np.int32))
    with pytest.raises(LayoutError, match="000000.npy: expected a 2-D float depth map"):
        TestDataset(root, pair_by="order")[0]


def test_a_corrupt_label_map_is_named_with_what_was_expected_and_why(tmp_path):
    from bore_depth_lite.data.layout import read_label_png

    bad = tmp_path / "000000.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)       # a PNG signature, then nothing decodable
    with pytest.raises(LayoutError) as info:
        read_label_png(bad)
    message = str(info.value)
    assert message.startswith(f"{bad}: could not decode as a PNG label map (UnidentifiedImageError")
    with pytest.raises(LayoutError, match="label file not found"):
        read_label_png(tmp_path / "missing.png")


# ----------------------------------------------------------------------------- downloads
class _FakeServer:
    """Serves bytes like an HTTP server that honours Range, failing once mid-way."""

    def __init__(self, payload: bytes, fail_after: int | None = None):
        self.payload, self.fail_after, self.ranges = payload, fail_after, []

    def __call__(self, request):
        rng = request.get_header("Range")
        self.ranges.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng else 0
        body = self.payload[start:]
        server = self

        class Response(io.BytesIO):
            status = 206 if rng else 200

            def read(self, n=-1):
                if server.fail_after is not None and self.tell() >= server.fail_after:
                    server.fail_after = None
                    raise ConnectionError("connection reset")
                return super().read(n)

            def getcode(self):
                return self.status

        return Response(body)


def test_download_resumes_and_verifies(tmp_path):
    payload = bytes(range(256)) * 40
    digest = hashlib.sha256(payload).hexdigest()
    server = _FakeServer(payload, fail_after=3000)
    dest = tmp_path / "file.bin"
    with pytest.raises(ConnectionError):
        dl.download("https://example.invalid/file.bin", dest, sha256=digest, opener=server, chunk=1000, log=lambda m: None)
    assert not dest.exists() and (tmp_path / "file.bin.part").stat().st_size == 3000
    dl.download("https://example.invalid/file.bin", dest, sha256=digest, opener=server, chunk=1000, log=lambda m: None)
    assert server.ranges == [None, "bytes=3000-"]
    assert dest.read_bytes() == payload and not (tmp_path / "file.bin.part").exists()


def test_download_rejects_a_wrong_checksum_and_reads_file_urls(tmp_path):
    src = tmp_path / "src.txt"
    src.write_bytes(b"hello")
    with pytest.raises(dl.DownloadError, match="expected 0000"):
        dl.download(src.as_uri(), tmp_path / "a.txt", sha256="0" * 64, log=lambda m: None)
    assert not (tmp_path / "a.txt").exists()
    messages = []
    dl.download(src.as_uri(), tmp_path / "b.txt", log=messages.append)
    assert (tmp_path / "b.txt").read_bytes() == b"hello"
    assert hashlib.sha256(b"hello").hexdigest() in messages[-1]
    assert "licence" in dl.SOURCES["nyu_labeled"].describe()
