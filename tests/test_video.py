"""The video pipeline (bore_depth_lite.video, ``bore-depth-infer clip.mp4``) on a rendered driving clip
whose poses and depth are known, and on every kind of bad video."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

av = pytest.importorskip("av", reason="videos need PyAV (the video and dev extras)")

from bore_depth_lite.checkpoint import CheckpointError, load_depthnet, load_posenet, save_checkpoint, save_depthnet  # noqa: E402,E501
from bore_depth_lite.data.synthetic import render_sequence  # noqa: E402
from bore_depth_lite.infer import main  # noqa: E402
from bore_depth_lite.models import PoseNet  # noqa: E402
from bore_depth_lite.pointcloud import depth_to_points, intrinsics_for, read_ply  # noqa: E402
from bore_depth_lite.pretrained import pretrained_path  # noqa: E402
from bore_depth_lite.trajectory import ate_rmse, read_tum  # noqa: E402
from bore_depth_lite.video import iter_frames, probe, process_video, write_video  # noqa: E402

torch.set_num_threads(1)   # a shared 2-core machine: two threads under load spin and run slower
FPS = 10


def encode(path: Path, frames, codec: str = "libx264", fps: int = FPS) -> Path:
    """Near-lossless (CRF 10), so that decoded frames ≈ rendered frames."""
    return write_video(path, frames, fps, codec=codec, quality=10)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    seq = render_sequence("driving", 12, 96, 160, seed=3)
    return seq, encode(tmp_path_factory.mktemp("clip") / "drive.mp4", seq.rgb)


@pytest.fixture(scope="module")
def pose_checkpoint(tmp_path_factory):
    """The shipped tiny DepthNet and its PoseNet (a seeded untrained small one where the shipped
    checkpoint has none: these tests check the pipeline, bench/video.py the accuracy)."""
    torch.manual_seed(0)
    try:
        pose_net = load_posenet(pretrained_path())
    except CheckpointError:
        pose_net = PoseNet("small").eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny_pose.pt"
    return save_checkpoint(path, depth_net=load_depthnet(pretrained_path()), pose_net=pose_net)


def _intrinsics_args(K: np.ndarray) -> list[str]:
    return ["--intrinsics", *(str(v) for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2]))]


def test_iter_frames_streams_with_stride_max_frames_and_timestamps(clip):
    seq, path = clip
    assert probe(path) == (FPS, 12) and probe(path, 5) == (FPS, 3) and probe(path, 2, 4)[1] == 4
    frames = list(iter_frames(path, stride=3, max_frames=3))
    assert [f.index for f in frames] == [0, 3, 6]
    np.testing.assert_allclose([f.time for f in frames], [0.0, 0.3, 0.6], atol=1e-6)
    assert frames[0].rgb.dtype == np.uint8 and frames[0].rgb.shape == (96, 160, 3)
    assert np.abs(frames[1].rgb.astype(int) - seq.rgb[3]).mean() < 4   # near-lossless encoding


def test_cli_on_a_rendered_clip_writes_depth_clouds_trajectory_and_preview(clip, pose_checkpoint, tmp_path, capsys):
    seq, path = clip
    out = tmp_path / "out"
    argv = [str(path), "--checkpoint", str(pose_checkpoint), "--preset", "none", *_intrinsics_args(seq.K),
            "--out", str(out), "--stride", "2", "--max-frames", "5", "--fuse-every", "2", "--ply"]
    assert main(argv) == 0, capsys.readouterr().err
    folder = out / "drive"
    kept = [0, 2, 4, 6, 8]
    assert sorted(p.name for p in (folder / "depth").iterdir()) == [f"{i:06d}.npy" for i in kept]
    assert sorted(p.name for p in (folder / "clouds").iterdir()) == [f"{i:06d}.ply" for i in kept]
    depths = [np.load(folder / "depth" / f"{i:06d}.npy") for i in kept]
    assert depths[0].shape == (96, 160) and depths[0].dtype == np.float32
    K = intrinsics_for(tuple(seq.K[[0, 1, 0, 1], [0, 1, 2, 2]]), (96, 160))
    points, colours = read_ply(folder / "clouds" / "000004.ply")
    np.testing.assert_allclose(points, depth_to_points(depths[2], K)[0], rtol=1e-6)
    # TUM: 8 columns, increasing timestamps (frame index / fps), unit quaternions, the first camera = world
    rows = np.loadtxt(folder / "trajectory.tum")
    assert rows.shape == (5, 8)
    np.testing.assert_allclose(rows[:, 0], np.array(kept) / FPS, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(rows[:, 4:], axis=1), 1.0, atol=1e-6)
    stamps, poses = read_tum(folder / "trajectory.tum")
    np.testing.assert_allclose(poses[0], np.eye(4), atol=1e-9)
    # fused.ply: processed frames 0, 2, 4 (video frames 0, 4, 8), each moved by its TUM pose
    fused, fused_colours = read_ply(folder / "fused.ply")
    expected = [depth_to_points(depths[n], K)[0] @ poses[n][:3, :3].T + poses[n][:3, 3] for n in (0, 2, 4)]
    np.testing.assert_allclose(fused, np.concatenate(expected), rtol=1e-4, atol=1e-4)
    assert fused_colours.shape == fused.shape
    ate, scale = ate_rmse(poses, seq.poses[kept])
    assert np.isfinite(ate) and np.isfinite(scale)
    with capsys.disabled():   # the number bench/results/video.json reports on a longer clip
        print(f"\nATE (5 frames, stride 2, after the scale {scale:.3f}): {ate:.3f} m")
    assert (folder / "trajectory.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with av.open(str(folder / "side_by_side.mp4")) as preview:
        frames = list(preview.decode(video=0))
        assert len(frames) == 5 and (frames[0].width, frames[0].height) == (320, 96)
    # never overwrite without --overwrite; with it, an earlier run's extra frames do not linger
    capsys.readouterr()
    assert main(argv) == 2 and "exists; pass --overwrite" in capsys.readouterr().err
    assert main(argv[:-7] + ["--max-frames", "2", "--overwrite"]) == 0
    assert len(list((folder / "depth").iterdir())) == 2 and not (folder / "clouds").exists()


def test_fused_cloud_of_the_true_depth_lies_on_the_surfaces(clip, tmp_path):
    """True depth and true relative poses through process_video: frame 0's fused points, moved into
    frame 4 by the true poses, land where frame 4 sees the same object at the same distance."""
    seq, path = clip
    depths = iter(seq.depth)
    frames = iter(range(12))

    def true_pose(previous, current):   # T_{t+1←t} = inv(pose_{t+1}) @ pose_t
        t = next(frames)
        return np.linalg.inv(seq.poses[t + 1]) @ seq.poses[t]

    summary = process_video(path, tmp_path / "v", lambda rgb: next(depths), true_pose,
                            lambda size, source: seq.K, fuse_every=4, progress=False)
    assert summary.frames == 12
    fused, _ = read_ply(tmp_path / "v" / "fused.ply")
    n0 = int((seq.depth[0] > 0).sum())
    assert len(fused) == n0 + sum(int((seq.depth[i] > 0).sum()) for i in (4, 8))
    first = fused[:n0].astype(np.float64)                      # frame 0 = world here
    T = np.linalg.inv(seq.poses[4]) @ seq.poses[0]
    cam = first @ T[:3, :3].T + T[:3, 3]
    u, v = (seq.K @ (cam / cam[:, 2:]).T)[:2]
    c, r = np.rint(u).astype(int), np.rint(v).astype(int)
    inside = (cam[:, 2] > 0) & (c >= 0) & (c < 160) & (r >= 0) & (r < 96)
    ids = seq.instance[0][seq.depth[0] > 0]
    same = inside.copy()
    same[inside] = seq.instance[4][r[inside], c[inside]] == ids[inside]
    assert same.mean() > 0.3, "frame 4 should see much of frame 0 again"
    rel = np.abs(seq.depth[4][r[same], c[same]] / cam[same, 2] - 1.0)
    assert np.median(rel) < 0.02      # nearest-pixel lookup; a wrong pose convention gives metres of error
    np.testing.assert_allclose(summary.poses[8], np.linalg.inv(seq.poses[0]) @ seq.poses[8], atol=1e-9)


def test_bad_videos_each_give_one_line_and_the_batch_goes_on(clip, tmp_path, capsys):
    seq, good = clip
    folder = tmp_path / "in"
    folder.mkdir()
    data = good.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    with av.open(str(folder / "audio_only.mp4"), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with av.open(str(folder / "empty.avi"), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        container.start_encoding()
    big = np.zeros((2160, 3840, 3), np.uint8)
    big[:, :1920] = 200
    encode(folder / "uhd.mp4", [big], codec="mpeg4")
    encode(folder / "ok.mkv", seq.rgb[:2])
    out = tmp_path / "out"
    rc = main([str(folder), "--random-weights", "tiny", "--preset", "nyu", "--out", str(out), "--fuse-every", "0"])
    err = capsys.readouterr().err
    assert rc == 1
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 3, err
    assert any("truncated.mp4: cannot decode the video" in line and "truncated" in line for line in lines)
    assert any("audio_only.mp4: no video stream (found: audio)" in line for line in lines)
    assert any("empty.avi: zero frames decoded" in line for line in lines)
    assert "uhd.mp4: 3840x2160 frames downscaled to 1920x1080" in err
    assert "no trajectory.tum/.png or fused.ply" in err and "--random-weights tiny has no PoseNet" in err
    assert len(list((out / "uhd" / "depth").iterdir())) == 1 and len(list((out / "ok" / "depth").iterdir())) == 2
    assert np.load(out / "uhd" / "depth" / "000000.npy").shape == (256, 320)
    assert not (out / "ok" / "trajectory.tum").exists()


def test_depth_only_checkpoint_says_why_there_is_no_trajectory(clip, tmp_path, capsys):
    seq, path = clip
    out = tmp_path / "out"
    depth_only = save_depthnet(tmp_path / "depth_only.pt", load_depthnet(pretrained_path()))
    assert main([str(path), "--checkpoint", str(depth_only), "--preset", "none", *_intrinsics_args(seq.K),
                 "--out", str(out), "--max-frames", "2", "--ply"]) == 0
    err = capsys.readouterr().err
    assert "holds no pose_net" in err and "no trajectory.tum" in err
    assert len(list((out / "drive" / "clouds").iterdir())) == 2 and not (out / "drive" / "fused.ply").exists()


def test_unwritable_output_folder_is_one_line(clip, tmp_path, capsys):
    _, path = clip
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main([str(path), "--random-weights", "tiny", "--out", str(blocker / "sub")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"--out {blocker / 'sub'}: cannot write there" in errors[0]
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: a 0o500 folder is still writable")
        assert main([str(path), "--random-weights", "tiny", "--out", str(locked)]) == 2
        assert f"--out {locked}: cannot write there" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_write_video_refuses_no_frames_and_odd_sides_naming_the_file(tmp_path):
    for frames, found in [([], "no frame"), ([np.zeros((5, 8, 3), np.uint8)], r"\(5, 8, 3\)")]:
        with pytest.raises(ValueError, match=rf"bad\.mp4: expected frames .*even H and W, found {found}"):
            write_video(tmp_path / "bad.mp4", frames)
    assert not (tmp_path / "bad.mp4").exists()


def test_no_progress_drops_the_bars_and_keeps_the_messages(clip, tmp_path, capsys):
    _, path = clip
    argv = [str(path), "--random-weights", "tiny", "--preset", "none", "--max-frames", "2", "--out",
            str(tmp_path / "o"), "--no-progress"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "drive.mp4: 2 frame(s) in" in err and "wrote 2 depth map(s)" in err, err
    assert "\r" not in err and "it/s" not in err and "frame/s]" not in err, err


@pytest.mark.parametrize("order", ["forward", "backward"])
def test_pose_function_puts_a_mean_depth_posenets_translation_in_depth_units(order):
    from bore_depth_lite.video import pose_function

    torch.manual_seed(0)
    pose_net = PoseNet("small", translation_unit="mean_depth").eval()
    plain = PoseNet("small").eval()
    plain.load_state_dict(pose_net.state_dict())

    class Five(torch.nn.Module):
        def forward(self, x):
            return torch.full_like(x[:, :1], 5.0)

    a, b = (np.random.default_rng(i).integers(0, 256, (64, 96, 3), dtype=np.uint8) for i in (1, 2))
    T = pose_function(pose_net, (64, 96), "cpu", order, depth_net=Five())(a, b)
    T_plain = pose_function(plain, (64, 96), "cpu", order)(a, b)
    assert np.allclose(T[:3, :3], T_plain[:3, :3])
    # backward inverts [R | 5t] to [R^T | -5 R^T t]: five times the plain inverse's translation too
    assert np.allclose(T[:3, 3], 5 * T_plain[:3, 3])
    with pytest.raises(ValueError, match="pass the DepthNet"):
        pose_function(pose_net, (64, 96), "cpu", order)
