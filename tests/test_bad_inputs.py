"""Issue 18: work lost, silent garbage, unsafe names, and errors that do not help.

Each test reproduces one numbered case of the issue with tiny inputs; every user error must
be one line on stderr naming the file or argument, exit 2 (usage) or 1 (failed input).
"""
from __future__ import annotations

import csv
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from bore_depth_lite import evaluate, infer, train
from bore_depth_lite.data import ibims, kitti, nyu
from bore_depth_lite.data.generate import SyntheticConfig
from bore_depth_lite.data.layout import LayoutError
from bore_depth_lite.metrics import compute_depth_metrics
from bore_depth_lite.checkpoint import CheckpointError, load_any_depthnet, safe_load, save_depthnet
from bore_depth_lite.data.cache import ensure_synthetic
from bore_depth_lite.models import DepthNet
from bore_depth_lite.images import ImageLoadError, load_image
from bore_depth_lite.training import SampleImages, TrainConfig, Trainer, training_datasets

torch.set_num_threads(2)


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    config = SyntheticConfig(preset="indoor", height=64, width=64, seed=0, train_scenes=2, val_scenes=0,
                             frames_per_scene=5, test_scenes=1, test_frames_per_scene=2)
    return ensure_synthetic(config, tmp_path_factory.mktemp("cache"))


def train_args(root, out, *extra) -> list[str]:
    return ["--data-root", str(root), "--val-protocol", "synthetic_indoor", "--model", "tiny", "--pose-arch", "small",
            "--height", "64", "--width", "64", "--batch-size", "2", "--steps", "2", "--steps-per-epoch", "2",
            "--val-images", "2", "--out", str(out), "--no-progress", *extra]


def tiny_config(root, out, **overrides) -> TrainConfig:
    values = dict(data_root=str(root), val_protocol="synthetic_indoor", model="tiny", height=64, width=64,
                  batch_size=2, steps=2, steps_per_epoch=2, val_images=2, out_dir=str(out), lr=1e-3)
    values.update(overrides)
    return TrainConfig(**values)


def one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def exit_code(fn, argv) -> int:
    with pytest.raises(SystemExit) as info:
        fn(argv)
    return info.value.code


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height (grey, 8 bit) with a tiny, truncated body:
    what a decompression bomb looks like to a reader, in a few bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
    return path


# ----------------------------------------------------------------------------- 1-5 work lost
def test_1_train_refuses_to_replace_a_finished_run_without_resume_or_overwrite(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main(train_args(data_root, out)) == 0
    before = (out / "checkpoint.pt").read_bytes()
    assert exit_code(train.main, train_args(data_root, out)) == 2
    one_line_error(capsys, str(out), "--resume", "--overwrite")
    assert (out / "checkpoint.pt").read_bytes() == before
    assert train.main(train_args(data_root, out, "--overwrite")) == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["step"] for r in rows] == ["2"]          # not 2, 2: the old run's rows are gone


def test_1_trainer_metrics_are_the_runs_own_history(data_root, tmp_path):
    out = tmp_path / "api"
    for _ in range(2):   # the library API (the chapters) re-runs into the same folder
        config = tiny_config(data_root, out)
        Trainer(config, *training_datasets(config), progress=False).fit()
    assert [r["step"] for r in csv.DictReader((out / "metrics.csv").open())] == ["2"]


def test_2_infer_refuses_two_inputs_that_write_the_same_outputs(tmp_path, photo, capsys):
    (tmp_path / "x").mkdir(), (tmp_path / "y").mkdir()
    a, b = tmp_path / "x" / "photo.png", tmp_path / "y" / "photo.png"
    a.write_bytes(photo.read_bytes()), b.write_bytes(photo.read_bytes())
    out = tmp_path / "o"
    assert infer.main([str(a), str(b), "--random-weights", "tiny", "--out", str(out)]) == 2
    one_line_error(capsys, "x/photo.png", "y/photo.png")
    assert not out.exists()
    folder = tmp_path / "f"
    folder.mkdir()
    Image.open(photo).save(folder / "a.png"), Image.open(photo).save(folder / "a.jpg")
    assert infer.main([str(folder), "--random-weights", "tiny", "--out", str(out)]) == 2
    one_line_error(capsys, "a.png", "a.jpg")


def test_2_infer_does_not_overwrite_earlier_depth_maps_without_overwrite(tmp_path, photo, capsys):
    out = tmp_path / "o"
    assert infer.main([str(photo), "--random-weights", "tiny", "--preset", "none", "--out", str(out)]) == 0
    capsys.readouterr()
    assert infer.main([str(photo), "--random-weights", "tiny", "--preset", "none", "--out", str(out)]) == 2
    one_line_error(capsys, "photo.npy", "--overwrite")
    assert infer.main([str(photo), "--random-weights", "tiny", "--preset", "none", "--out", str(out),
                       "--overwrite"]) == 0


def test_3_unknown_val_protocol_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "run"
    assert exit_code(train.main, ["--val-protocol", "nosuch", "--out", str(out)]) == 2
    one_line_error(capsys, "--val-protocol", "nosuch")
    assert not out.exists()


def test_4_checkpoint_is_written_before_metrics_and_kills_leave_no_trace(data_root, tmp_path, monkeypatch):
    out = tmp_path / "run"

    def killed(self, trainer, row):
        raise KeyboardInterrupt   # the run dies while writing its samples

    monkeypatch.setattr(SampleImages, "on_epoch_end", killed)
    config = tiny_config(data_root, out)
    with pytest.raises(KeyboardInterrupt):
        Trainer(config, *training_datasets(config), progress=False).fit()
    monkeypatch.undo()

    assert safe_load(out / "checkpoint.pt")["extra"]["step"] == 2   # saved before the row and samples
    # what kills leave behind: temporaries of interrupted saves, rows the checkpoint never saw
    stale = [out / ".checkpoint.pt.ab12cd34.tmp", out / ".checkpoint.pt.999999999.x1y2z3w4.tmp"]
    for p in stale:
        p.write_bytes(b"partial")
    with (out / "metrics.csv").open("a") as f:
        f.write("4,1,2,3\n" * 3)
    config = tiny_config(data_root, out, steps=4)
    trainer = Trainer(config, *training_datasets(config), progress=False)
    assert trainer.resume()
    trainer.fit()
    assert [r["step"] for r in csv.DictReader((out / "metrics.csv").open())] == ["2", "4"]
    assert not any(p.exists() for p in stale)
    assert not list(out.glob(".*.tmp"))


def test_4_atomic_write_keeps_temporaries_of_a_live_writer(tmp_path):
    from bore_depth_lite.fileio import atomic_write_bytes

    live = tmp_path / f".f.bin.{os.getpid()}.abcdefgh.tmp"
    live.write_bytes(b"x")
    atomic_write_bytes(tmp_path / "f.bin", b"data")
    assert live.exists() and (tmp_path / "f.bin").read_bytes() == b"data"


def test_5_evaluate_checks_json_and_checkpoint_before_any_work(tmp_path, monkeypatch, capsys):
    def never(*a, **k):
        raise AssertionError("evaluation ran before the arguments were checked")

    monkeypatch.setattr(evaluate, "evaluate_depth_net", never)
    monkeypatch.setattr("bore_depth_lite.data.datasets.TestDataset.__init__", never)
    ckpt = save_depthnet(tmp_path / "c.pt", DepthNet("tiny"))
    (tmp_path / "under").mkdir()
    (tmp_path / "under" / "a").write_text("a file")
    argv = ["--checkpoint", str(ckpt), "--data-root", str(tmp_path), "--json", str(tmp_path / "under" / "a" / "file")]
    assert exit_code(evaluate.main, argv) == 2
    one_line_error(capsys, "--json", "is a file")
    assert exit_code(evaluate.main, ["--checkpoint", str(tmp_path / "nope.pt"), "--data-root", str(tmp_path)]) == 2
    one_line_error(capsys, "--checkpoint", "nope.pt")
    (tmp_path / "r.json").write_text("{}")
    assert exit_code(evaluate.main, ["--checkpoint", str(ckpt), "--data-root", str(tmp_path),
                                     "--json", str(tmp_path / "r.json")]) == 2
    one_line_error(capsys, "r.json", "--overwrite")


# ----------------------------------------------------------------------------- 6-8 silent garbage
def test_6_checkpoint_with_nan_weights_is_refused(tmp_path, photo, capsys):
    net = DepthNet("tiny")
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))
    path = save_depthnet(tmp_path / "nan.pt", net)
    with pytest.raises(CheckpointError, match="nan.pt: depth_net: 1 tensor.*NaN or inf"):
        load_any_depthnet(path)
    out = tmp_path / "o"
    assert infer.main([str(photo), "--checkpoint", str(path), "--out", str(out)]) == 2
    one_line_error(capsys, "nan.pt", "NaN")
    assert not out.exists()


@pytest.mark.parametrize("argv, needle", [(["--steps", "-5"], "--steps"),
                                          (["--steps-per-epoch", "0"], "--steps-per-epoch")])
def test_7_non_positive_step_counts_are_refused(tmp_path, capsys, argv, needle):
    assert exit_code(train.main, [*argv, "--out", str(tmp_path / "r")]) == 2
    one_line_error(capsys, needle, ">= 1")


def test_8_metrics_refuse_complex_and_do_not_overflow():
    with pytest.raises(ValueError, match="pred must hold real numbers"):
        compute_depth_metrics(np.array([1.0, 2.0]), np.array([1.0 + 1j, 2.0]))
    with pytest.raises(ValueError, match="gt must hold real numbers"):
        compute_depth_metrics(torch.tensor([1.0 + 1j]), torch.tensor([1.0]))
    m = compute_depth_metrics([1e308, 1.0], [1e-308, 1.0])
    assert all(np.isfinite(v) for v in m.values())
    assert m["rmse"] == pytest.approx(1e308 / np.sqrt(2)) and m["delta1"] == 0.5
    m = compute_depth_metrics([1.0, 2.0], [1e150, 2.0])      # squares beyond float64, metrics within it
    assert m["rmse"] == pytest.approx(1e150 / np.sqrt(2)) and m["sq_rel"] == pytest.approx(1e300 / 2)
    with pytest.raises(ValueError, match=r"sq_rel exceed.*pred \[2, 1e\+300\]") as err:  # the true sq_rel is 5e599
        compute_depth_metrics([1.0, 2.0], [1e300, 2.0])
    assert "NaN/inf" not in str(err.value)                   # a finite prediction is not called inf


def write_calib(folder: Path, size="1242 375", p_rect="721.5 0 609.5 0 0 721.5 172.8 0 0 0 1 0") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "calib_cam_to_cam.txt").write_text(
        f"S_rect_02: {size}\nR_rect_00: 1 0 0 0 1 0 0 0 1\nP_rect_02: {p_rect}\n")
    (folder / "calib_velo_to_cam.txt").write_text("R: 1 0 0 0 1 0 0 0 1\nT: 0 0 0\n")
    return folder


def test_8_kitti_calibration_and_split_values_are_checked(tmp_path):
    assert kitti.load_calibration(write_calib(tmp_path / "ok"))["size"] == (375, 1242)
    with pytest.raises(LayoutError, match=r"calib_cam_to_cam.txt: S_rect_02 must be a whole-pixel image size"):
        kitti.load_calibration(write_calib(tmp_path / "big", size="1e12 375"))
    with pytest.raises(LayoutError, match=r"calib_cam_to_cam.txt: key 'P_rect_02' must hold 12 finite numbers"):
        kitti.load_calibration(write_calib(tmp_path / "inf", p_rect="inf 0 609.5 0 0 721.5 172.8 0 0 0 1 0"))
    with pytest.raises(LayoutError, match="test.txt:1: frame index must be >= 0, got -5"):
        kitti.parse_split_line("2011_09_26/2011_09_26_drive_0002_sync -5 l", "test.txt:1")


def test_8_ibims_rgb_out_of_8_bit_range_is_refused(tmp_path):
    from test_ibims import make_mat

    rgb = np.full((6, 8, 3), 300.0)
    make_mat(tmp_path / "bad.mat", rgb=rgb)
    with pytest.raises(LayoutError, match=r"bad.mat: rgb must hold whole numbers 0..255.*300"):
        ibims.load_mat(tmp_path / "bad.mat")


def test_8_backends_refuse_integer_input():
    from bore_depth_lite.deploy.backends import TorchBackend

    backend = TorchBackend(DepthNet("tiny"))
    for dtype in (torch.int64, torch.uint8):
        with pytest.raises(ValueError, match=f"float ImageNet-normalised batch.*{dtype}"):
            backend(torch.zeros(1, 3, 32, 32, dtype=dtype))


# ----------------------------------------------------------------------------- 9 security
def test_9_names_from_a_list_stay_inside_the_output_folder(tmp_path, capsys):
    from test_ibims import make_mat

    mat_dir = tmp_path / "mats"
    mat_dir.mkdir()
    make_mat(mat_dir / "ok.mat")
    escape = "../../../x"
    make_mat(mat_dir / "x.mat")
    (tmp_path / "imagelist.txt").write_text(f"ok\n{escape}\n")
    out = tmp_path / "deep" / "a" / "out"
    with pytest.raises(LayoutError, match=r"imagelist.txt:2: '\.\./\.\./\.\./x' is not a plain file or folder name"):
        ibims.prepare_ibims(mat_dir, tmp_path / "imagelist.txt", out)
    assert not list(tmp_path.rglob("x.png")) and not list(tmp_path.rglob("x.npy"))
    import importlib.util

    spec = importlib.util.spec_from_file_location("prepare_ibims", Path(__file__).parents[1] / "data_scripts" / "prepare_ibims.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert exit_code(script.main, ["--mat-dir", str(mat_dir), "--imagelist", str(tmp_path / "imagelist.txt"),
                                   "--out", str(out)]) == 1
    one_line_error(capsys, "imagelist.txt:2")
    (tmp_path / "training").mkdir()
    (tmp_path / "training" / "train.txt").write_text("/etc\n")
    from bore_depth_lite.data.layout import read_split

    with pytest.raises(LayoutError, match="train.txt:1"):
        read_split(tmp_path / "training" / "train.txt")


# ----------------------------------------------------------------------------- 10-11 robustness
def test_10_decompression_bomb_is_one_failed_input_and_the_batch_goes_on(tmp_path, photo, capsys):
    bomb = png_header_only(tmp_path / "bomb.png", 15000, 12000)
    with pytest.raises(ImageLoadError, match="bomb.png: .*at most 100 MP"):
        load_image(bomb)
    with pytest.raises(ImageLoadError, match=r"big.png: 12000x9000 = 108 megapixels .* \(100 MP"):
        load_image(png_header_only(tmp_path / "big.png", 12000, 9000))
    out = tmp_path / "o"
    assert infer.main([str(bomb), str(photo), "--random-weights", "tiny", "--out", str(out)]) == 1
    assert "bomb.png" in capsys.readouterr().err
    assert (out / "photo.npy").exists()


def test_11_preset_none_warns_up_front_about_a_large_photo(tmp_path, capsys):
    big = png_header_only(tmp_path / "big.png", 6000, 4000)
    small = png_header_only(tmp_path / "small.png", 640, 480)
    infer._warn_large([(big, "big"), (small, "small")])
    err = capsys.readouterr().err
    assert "big.png is 6000x4000 (24.0 MP)" in err and "GiB" in err and "small.png" not in err


# ----------------------------------------------------------------------------- 12 errors that help
@pytest.mark.parametrize("text, suffix, needles", [
    ("steps: [1\n", ".yaml", ["bad.yaml", "line 2"]),
    ('{"steps": }', ".json", ["bad.json", "line 1"]),
    ('steps: "ten"\n', ".yaml", ["--steps", "'ten'", "bad.yaml"]),
])
def test_12_bad_config_file_is_one_line_naming_it(tmp_path, capsys, text, suffix, needles):
    config = tmp_path / f"bad{suffix}"
    config.write_text(text)
    assert exit_code(train.main, ["--config", str(config), "--out", str(tmp_path / "r")]) == 2
    one_line_error(capsys, *needles)


@pytest.mark.parametrize("argv, needle", [
    (["--model", "nosuch"], "--model"), (["--pose-arch", "nosuch"], "--pose-arch"),
    (["--data-root", "/nonexistent/data", "--val-protocol", "bore_nyu"], "--data-root"),
    (["--init-from", "/nonexistent/c.pt"], "--init-from"), (["--device", "banana"], "--device"),
    (["--synthetic-speed", "0"], "--synthetic-speed"), (["--synthetic-speed", "inf"], "--synthetic-speed"),
])
def test_12_bad_train_arguments_are_refused_before_any_data(tmp_path, capsys, argv, needle):
    assert exit_code(train.main, [*argv, "--out", str(tmp_path / "r")]) == 2
    one_line_error(capsys, needle)


def test_12_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("mine")
    assert exit_code(train.main, ["--out", str(tmp_path / "f")]) == 2
    one_line_error(capsys, "--out", "is a file")
    assert (tmp_path / "f").read_text() == "mine"


def test_12_resume_from_a_truncated_or_mismatched_checkpoint(data_root, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    ours = save_depthnet(tmp_path / "c.pt", DepthNet("tiny"))
    data = ours.read_bytes()
    (out / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    assert exit_code(train.main, train_args(data_root, out, "--resume")) == 1
    one_line_error(capsys, "checkpoint.pt", "truncated")
    assert train.main(train_args(data_root, tmp_path / "small")) == 0
    capsys.readouterr()
    small = tmp_path / "small" / "checkpoint.pt"
    assert exit_code(train.main, train_args(data_root, tmp_path / "s2", "--init-from", str(small),
                                            "--pose-arch", "resnet18")) == 1
    one_line_error(capsys, "checkpoint.pt", "pose_net", "--pose-arch")


# ----------------------------------------------------------------------------- 13 messages
def test_13_checkpoint_load_failures_say_what_the_file_is(tmp_path):
    junk = tmp_path / "random.pt"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError, match="random.pt: not a PyTorch checkpoint") as err:
        safe_load(junk)
    assert "unpickle" not in str(err.value)

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    evil = tmp_path / "evil.pt"
    torch.save({"a": Evil()}, evil)
    with pytest.raises(CheckpointError, match=r"evil.pt: refused to unpickle posix\.system"):
        safe_load(evil)


def test_13_wrong_state_dict_message_is_short(tmp_path):
    from bore_depth_lite.checkpoint import FORMAT

    sd = {f"layer{i}.weight": torch.zeros(1) for i in range(953)}
    path = tmp_path / "wrong.pt"
    torch.save({"format": FORMAT, "version": 1, "depth_net": {"config": DepthNet("tiny").config.to_dict(),
                                                              "state_dict": sd}}, path)
    with pytest.raises(CheckpointError) as err:
        load_any_depthnet(path)
    assert "wrong.pt" in str(err.value) and "more" in str(err.value)
    assert len(str(err.value)) < 2000 and "\n" not in str(err.value)
    released = tmp_path / "released.ckpt"
    torch.save({"state_dict": {f"depth_net.x{i}": torch.zeros(1) for i in range(953)}}, released)
    with pytest.raises(CheckpointError) as err:
        load_any_depthnet(released)
    assert len(str(err.value)) < 2000 and "\n" not in str(err.value)


def test_13_damaged_video_with_a_decoder_installed_does_not_advise_installing_one(tmp_path, capsys):
    pytest.importorskip("av", reason="videos are decoded with PyAV (the video and dev extras)")
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    assert infer.main([str(fake), "--random-weights", "tiny", "--preset", "none", "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "clip.mp4" in err and "pip install" not in err and "damaged, truncated" in err


def test_13_damaged_data_files_are_named(tmp_path):
    from test_nyu import write_v73

    mat = write_v73(tmp_path / "nyu.mat")
    data = mat.read_bytes()
    truncated = tmp_path / "truncated.mat"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(LayoutError, match="truncated.mat"):
        nyu.load_labeled(truncated)
    calib = tmp_path / "garbage"
    calib.mkdir()
    (calib / "calib_cam_to_cam.txt").write_bytes(np.random.default_rng(1).bytes(512))
    (calib / "calib_velo_to_cam.txt").write_text("R: 1 0 0 0 1 0 0 0 1\nT: 0 0 0\n")
    with pytest.raises(LayoutError, match="calib_cam_to_cam.txt"):
        kitti.load_calibration(calib)


def test_13_static_onnx_accepts_its_own_size_and_names_the_accepted_ones():
    from bore_depth_lite.deploy.backends import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend.__new__(OnnxRuntimeBackend)   # a static graph exported elsewhere at 50x64
    backend.path, backend.static_hw, backend.static_batch = Path("m.onnx"), (50, 64), 1
    backend._run = lambda x: torch.ones(x.shape[0], 1, *x.shape[-2:])
    assert backend(torch.zeros(1, 3, 50, 64)).shape == (1, 1, 50, 64)
    with pytest.raises(ValueError, match="exported for 50×64 inputs .* got 40×64"):
        backend(torch.zeros(1, 3, 40, 64))


# ----------------------------------------------------------------------------- probes of the other entry points
def test_probe_kitti_download_name_cannot_leave_the_download_folder():
    from bore_depth_lite.data.download import kitti_source

    assert kitti_source("2011_09_26_drive_0002").filename == "2011_09_26_drive_0002_sync.zip"
    with pytest.raises(ValueError, match="KITTI drive '../../x'"):
        kitti_source("../../x")


def test_probe_synthetic_config_is_checked_before_rendering(tmp_path):
    from bore_depth_lite.data.generate import write_synthetic_dataset

    for bad, needle in ((dict(height=-5), "--height"), (dict(preset="moon"), "--preset"),
                        (dict(frames_per_scene=0), "--frames-per-scene"), (dict(train_speed=0.0), "--train-speed"),
                        (dict(train_speed=float("nan")), "--train-speed"), (dict(test_speed=True), "--test-speed")):
        with pytest.raises(ValueError, match=needle):
            write_synthetic_dataset(tmp_path / "s", SyntheticConfig(**bad))
    assert not (tmp_path / "s").exists()


def test_probe_infer_device_and_int8_options_are_checked(tmp_path, photo, capsys):
    assert infer.main([str(photo), "--random-weights", "tiny", "--device", "banana", "--out", str(tmp_path / "o")]) == 2
    one_line_error(capsys, "--device", "banana")
    assert infer.main([str(photo), "--random-weights", "tiny", "--int8-keep-fp32", "-1", "--out", str(tmp_path / "o")]) == 2
    one_line_error(capsys, "--int8-keep-fp32")
