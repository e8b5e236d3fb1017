"""Image loading, preprocessing and the inference CLI on every odd kind of input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bore_depth_lite.infer import depth_from_rgb, main
from bore_depth_lite.plotting import colorize_depth
from bore_depth_lite.checkpoint import save_depthnet
from bore_depth_lite.models import DepthNet
from bore_depth_lite.images import ImageLoadError, load_image
from bore_depth_lite.preprocess import (IMAGENET_MEAN, IMAGENET_STD, denormalize_imagenet, preprocess, preset_size,
                                        resize_bilinear)

torch.set_num_threads(2)


def bilinear_half_pixel_reference(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """OpenCV INTER_LINEAR rule written out: source coordinate (i + 0.5)·scale − 0.5, clamped."""
    H, W = img.shape[:2]

    def taps(n_out, n_in):
        src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, src - i0

    y0, y1, fy = taps(out_h, H)
    x0, x1, fx = taps(out_w, W)
    top = img[y0][:, x0] * (1 - fx)[None, :, None] + img[y0][:, x1] * fx[None, :, None]
    bot = img[y1][:, x0] * (1 - fx)[None, :, None] + img[y1][:, x1] * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bot * fy[:, None, None]


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)


@pytest.fixture
def odd_images(tmp_path, rgb):
    """A folder with one file of every odd kind, plus a file that is not an image."""
    d = tmp_path / "inputs"
    d.mkdir()
    Image.fromarray(rgb).save(d / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(d / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])).save(d / "rgba.png")
    Image.fromarray((rgb[..., 0].astype(np.uint16) * 257)).save(d / "deep16.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    Image.fromarray(rgb).save(d / "rotated.jpg", exif=exif, quality=95)
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    (d / "notes.txt").write_text("not an image")
    frames = [Image.fromarray(np.roll(rgb, 8 * i, axis=1)) for i in range(3)]
    frames[0].save(d / "clip.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return d


def test_load_image_kinds(odd_images, rgb):
    np.testing.assert_array_equal(load_image(odd_images / "rgb.png"), rgb.astype(np.float32))
    gray = load_image(odd_images / "gray.png")
    assert gray.shape == (48, 64, 3) and (gray == rgb[..., :1]).all()
    np.testing.assert_array_equal(load_image(odd_images / "rgba.png"), rgb.astype(np.float32))
    deep = load_image(odd_images / "deep16.png")
    np.testing.assert_allclose(deep[..., 1], rgb[..., 0].astype(np.float32), atol=1e-3)  # 257·v / 65535·255 = v
    rotated = load_image(odd_images / "rotated.jpg")
    assert rotated.shape == (64, 48, 3)  # EXIF applied: portrait
    # top-left of the displayed image is the stored bottom-left (rotated 90° clockwise)
    np.testing.assert_allclose(rotated[:4, :4].mean(axis=(0, 1)), rgb[-4:, :4].mean(axis=(0, 1)), atol=40)


def test_load_image_errors(odd_images):
    with pytest.raises(ImageLoadError, match=r"corrupt\.jpg: cannot be read"):
        load_image(odd_images / "corrupt.jpg")
    with pytest.raises(ImageLoadError, match=r"missing\.png: no such file"):
        load_image(odd_images / "missing.png")


def test_resize_matches_half_pixel_bilinear(rgb):
    img = rgb.astype(np.float32)
    for out in [(256, 320), (20, 30), (48, 64)]:
        ours = resize_bilinear(torch.from_numpy(img).permute(2, 0, 1), out).permute(1, 2, 0).numpy()
        np.testing.assert_allclose(ours, bilinear_half_pixel_reference(img, *out), atol=1e-3)


def test_preprocess_normalises_after_resizing_0_255(rgb):
    x = preprocess(rgb, "nyu")
    assert x.shape == (1, 3, 256, 320)
    resized = bilinear_half_pixel_reference(rgb.astype(np.float32), 256, 320)
    expected = (resized / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), expected, atol=1e-4)
    torch.testing.assert_close(denormalize_imagenet(x[0]) * 255, torch.from_numpy(resized).permute(2, 0, 1).float(),
                               atol=1e-3, rtol=0)
    assert preset_size("kitti") == (256, 832)
    with pytest.raises(ValueError, match="unknown preset"):
        preset_size("cityscapes")


def test_colorize_depth():
    depth = np.linspace(1, 10, 30 * 40, dtype=np.float32).reshape(30, 40)
    png = colorize_depth(depth)
    assert png.shape == (30, 40, 3) and png.dtype == np.uint8
    assert png[0, 0].sum() > png[-1, -1].sum()  # near is bright


def test_colorize_depth_shows_missing_depth_as_neutral_grey_not_as_near():
    from bore_depth_lite.plotting import NO_DEPTH_RGB, Panel, panel_figure

    depth = np.linspace(1, 10, 30 * 40, dtype=np.float32).reshape(30, 40)
    depth[:5] = 0.0                                   # sky: no depth
    png = colorize_depth(depth)
    assert (png[:5] == NO_DEPTH_RGB).all() and not (png[5:] == NO_DEPTH_RGB).all(-1).any()
    masked = colorize_depth(depth, valid=depth < 5)
    assert (masked[depth >= 5] == NO_DEPTH_RGB).all()
    fixed = colorize_depth(depth, value_range=(2.0, 3.0))   # one scale for several maps
    assert (fixed[5:] == fixed[5, 0]).all()                  # every 1/depth here is <= 1: all "far"
    with pytest.raises(ValueError, match=r"depth: expected one \(H, W\) map"):
        colorize_depth(depth[None])
    fig = panel_figure([[Panel(png, "a"), Panel(depth, "b", cmap="magma", colorbar=True)], [Panel(png, "c")]])
    assert len([ax for ax in fig.axes if ax.get_title()]) == 3 and len(fig.axes) == 5   # 2x2 grid + colorbar


def test_cli_handles_every_odd_kind(odd_images, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main([str(odd_images), "--random-weights", "tiny", "--preset", "none", "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1  # the corrupt file fails, the rest still runs
    assert "corrupt.jpg: cannot be read" in err and "SMOKE TEST" in err
    assert "ignored 1 file(s)" in err
    names = {p.name for p in out.iterdir()}
    for stem in ["rgb", "gray", "rgba", "deep16", "rotated", "clip_frame000000", "clip_frame000002"]:
        assert {f"{stem}.npy", f"{stem}.png"} <= names, stem
    assert not any(n.startswith("corrupt") for n in names)
    assert np.load(out / "rotated.npy").shape == (64, 48)
    assert Image.open(out / "rgb.png").size == (64, 48)


def test_cli_with_our_checkpoint_matches_depth_from_rgb(tmp_path, odd_images, capsys):
    torch.manual_seed(0)
    net = DepthNet("tiny").eval()
    ckpt = save_depthnet(tmp_path / "tiny.pt", net)
    out = tmp_path / "out"
    rc = main([str(odd_images / "rgb.png"), str(odd_images / "gray.png"), "--checkpoint", str(ckpt),
               "--preset", "nyu", "--out", str(out), "--keep-size"])
    assert rc == 0, capsys.readouterr().err
    expected = depth_from_rgb(net, load_image(odd_images / "rgb.png"), "nyu", torch.device("cpu"), keep_size=True)
    np.testing.assert_allclose(np.load(out / "rgb.npy"), expected, rtol=1e-6)
    assert expected.shape == (48, 64)


def test_cli_writes_point_clouds_that_match_the_depth_maps(tmp_path, odd_images, capsys):
    from bore_depth_lite.pointcloud import depth_to_points, intrinsics_for, read_ply

    torch.manual_seed(0)
    ckpt = save_depthnet(tmp_path / "tiny.pt", DepthNet("tiny").eval())
    out = tmp_path / "out"
    assert main([str(odd_images / "rgb.png"), "--checkpoint", str(ckpt), "--preset", "nyu", "--out", str(out),
                 "--ply"]) == 0, capsys.readouterr().err
    depth = np.load(out / "rgb.npy")
    points, colours = read_ply(out / "rgb.ply")
    expected, _ = depth_to_points(depth, intrinsics_for("nyu", depth.shape))   # the preset's camera
    np.testing.assert_allclose(points, expected, rtol=1e-6)
    assert colours.shape == points.shape and colours.dtype == np.uint8
    custom = tmp_path / "custom"                     # intrinsics of the 48x64 input, rescaled to the depth size
    assert main([str(odd_images / "rgb.png"), "--checkpoint", str(ckpt), "--preset", "nyu", "--out", str(custom),
                 "--ply", "--intrinsics", "60", "60", "32", "24"]) == 0
    K = intrinsics_for((60.0, 60.0, 32.0, 24.0), depth.shape, image_size=(48, 64))
    np.testing.assert_allclose(read_ply(custom / "rgb.ply")[0], depth_to_points(depth, K)[0], rtol=1e-6)
    capsys.readouterr()
    assert main([str(odd_images / "rgb.png"), "--checkpoint", str(ckpt), "--preset", "none", "--ply",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--ply with --preset none needs --intrinsics" in capsys.readouterr().err
    assert main([str(odd_images / "rgb.png"), "--checkpoint", str(ckpt), "--intrinsics", "1", "1", "0", "0",
                 "--out", str(tmp_path / "y")]) == 2
    assert "--intrinsics is used by --ply only" in capsys.readouterr().err
    assert main([str(odd_images / "rgb.png"), "--checkpoint", str(ckpt), "--ply", "--intrinsics", "0", "1", "0", "0",
                 "--out", str(tmp_path / "z")]) == 2
    assert "--intrinsics: expected finite fx, fy > 0" in capsys.readouterr().err
    assert main([str(odd_images / "rgb.png"), "--checkpoint", str(ckpt), "--ply", "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err


def test_cli_size_sets_the_network_input_and_the_preset_keeps_the_camera(tmp_path, odd_images, capsys):
    from bore_depth_lite.pointcloud import depth_to_points, intrinsics_for, read_ply

    torch.manual_seed(0)
    net = DepthNet("tiny").eval()
    ckpt = save_depthnet(tmp_path / "tiny.pt", net)
    out = tmp_path / "out"
    assert main([str(odd_images / "rgb.png"), "--checkpoint", str(ckpt), "--preset", "kitti", "--size", "64", "96",
                 "--ply", "--out", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    expected = depth_from_rgb(net, load_image(odd_images / "rgb.png"), (64, 96), torch.device("cpu"))
    np.testing.assert_allclose(np.load(out / "rgb.npy"), expected, rtol=1e-6)
    assert expected.shape == (64, 96)
    np.testing.assert_allclose(read_ply(out / "rgb.ply")[0], depth_to_points(expected, intrinsics_for("kitti", (64, 96)))[0],
                               rtol=1e-6)
    capsys.readouterr()
    assert main([str(odd_images / "rgb.png"), "--checkpoint", str(ckpt), "--size", "0", "96",
                 "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --size 0 96: expected a positive height and width in pixels", err
    assert not (tmp_path / "bad").exists()


def test_cli_refuses_without_weights(odd_images, capsys):
    assert main([str(odd_images / "rgb.png")]) == 2
    assert "no weights given" in capsys.readouterr().err


def test_cli_bad_checkpoint_and_missing_input(tmp_path, odd_images, capsys):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"nope")
    assert main([str(odd_images / "rgb.png"), "--checkpoint", str(junk)]) == 2
    assert "junk.ckpt" in capsys.readouterr().err
    rc = main([str(tmp_path / "nothing_here.png"), str(odd_images / "rgb.png"), "--random-weights", "tiny",
               "--preset", "none", "--out", str(tmp_path / "o")])
    assert rc == 1
    assert "nothing_here.png: no such file" in capsys.readouterr().err
    assert (tmp_path / "o" / "rgb.npy").exists()


def test_cli_video_without_backend_is_a_clear_error(tmp_path, capsys):
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    rc = main([str(fake), "--random-weights", "tiny", "--preset", "none", "--out", str(tmp_path / "o")])
    assert rc == 1
    assert "clip.mp4: cannot decode the video" in capsys.readouterr().err


def test_cli_onnxruntime_backend_matches_torch(tmp_path, odd_images):
    pytest.importorskip("onnxruntime", reason="the deploy extra provides onnxruntime")
    torch.manual_seed(0)
    ckpt = save_depthnet(tmp_path / "tiny.pt", DepthNet("tiny"))
    outputs = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / backend
        assert main(["--checkpoint", str(ckpt), "--preset", "nyu", "--backend", backend, "--out", str(out),
                     str(odd_images / "rgb.png")]) == 0
        outputs[backend] = np.load(next(out.glob("*.npy")))
    ref = outputs["torch"]
    assert np.abs(outputs["onnxruntime"] - ref).max() / np.abs(ref).max() < 1e-4
