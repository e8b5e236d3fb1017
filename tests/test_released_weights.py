"""The authors' released weights in one call (`released("nyu")`, `--checkpoint released:nyu`).

Offline: a local HTTP server on 127.0.0.1 serves a stand-in checkpoint in the released layout;
``BORE_DEPTH_DATA`` points the cache at ``tmp_path``. Nothing here contacts the internet.
"""
from __future__ import annotations

import functools
import http.server
import shutil
import socket
import sys
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from bore_depth_lite import pretrained
from bore_depth_lite.checkpoint import CheckpointError, atomic_save, load_released_depthnet
from bore_depth_lite.checkpoint.released_layout import lightning_checkpoint
from bore_depth_lite.data.download import sha256_of
from bore_depth_lite.pretrained import (README_WEIGHTS_LINK, ReleasedWeightsError, released, released_cache_path,
                                        released_path)

pytest.importorskip("pooch")
torch.set_num_threads(2)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A folder to serve: ``bore_nyu.ckpt`` in the released layout, and ``junk/bore_nyu.ckpt``."""
    root = tmp_path_factory.mktemp("served")
    atomic_save(lightning_checkpoint(0), root / "bore_nyu.ckpt")
    (root / "junk").mkdir()
    (root / "junk" / "bore_nyu.ckpt").write_bytes(b"<html>Google Drive - quota exceeded</html>")
    return root


class _Server:
    def __init__(self, folder):
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(served):
    s = _Server(served)
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def offline_env(tmp_path, monkeypatch):
    """The cache in tmp_path, no URL from the environment, no proxy for 127.0.0.1."""
    monkeypatch.setenv("BORE_DEPTH_DATA", str(tmp_path / "cache"))
    for var in ("BORE_DEPTH_RELEASED_BASE_URL", "BORE_DEPTH_RELEASED_URL_NYU", "BORE_DEPTH_RELEASED_URL_KITTI"):
        monkeypatch.delenv(var, raising=False)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(var, "127.0.0.1,localhost")


def _dead_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/released"


def _one_line(text: str) -> str:
    assert "\n" not in text.strip(), text
    return text


def test_download_verifies_records_and_reuses_the_cache(server, served, monkeypatch):
    monkeypatch.setenv("BORE_DEPTH_RELEASED_BASE_URL", server.url)
    net = released("nyu")
    assert not net.training
    reference = load_released_depthnet(served / "bore_nyu.ckpt")
    ours, theirs = net.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    path = released_cache_path("nyu")
    record = path.with_name("bore_nyu.ckpt.sha256")
    original = sha256_of(served / "bore_nyu.ckpt")
    assert record.read_text().split() == [original, "bore_nyu.ckpt"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["bore_nyu.ckpt", "bore_nyu.ckpt.sha256"]

    server.stop()  # the second use reads the cache (checked against the record), not the network
    assert released_path("nyu") == path

    with open(path, "ab") as f:  # the cached file changes: every later use refuses it
        f.write(b"\0")
    with pytest.raises(ReleasedWeightsError) as err:
        released_path("nyu")
    text = _one_line(str(err.value))
    assert str(path) in text and sha256_of(path) in text and original in text
    assert "delete" in text and str(record) in text


def test_junk_download_is_the_loaders_error_and_is_not_kept(server, monkeypatch):
    monkeypatch.setenv("BORE_DEPTH_RELEASED_URL_NYU", f"{server.url}/junk/bore_nyu.ckpt")
    with pytest.raises(CheckpointError) as err:
        released("nyu")
    text = _one_line(str(err.value))
    assert f"{server.url}/junk/bore_nyu.ckpt" in text and "not a PyTorch checkpoint" in text
    folder = released_cache_path("nyu").parent
    assert list(folder.iterdir()) == []  # neither the final name nor a temporary


def test_no_url_names_the_readme_link_and_the_destination():
    with pytest.raises(ReleasedWeightsError) as err:
        released_path("kitti")
    text = _one_line(str(err.value))
    assert README_WEIGHTS_LINK in text and str(released_cache_path("kitti")) in text
    assert "BORE_DEPTH_RELEASED_URL_KITTI" in text


def test_server_down_names_the_url_and_the_destination(monkeypatch):
    base = _dead_url()
    monkeypatch.setenv("BORE_DEPTH_RELEASED_BASE_URL", base)
    with pytest.raises(ReleasedWeightsError) as err:
        released_path("nyu")
    text = _one_line(str(err.value))
    assert f"{base}/bore_nyu.ckpt" in text and str(released_cache_path("nyu")) in text
    assert not released_cache_path("nyu").exists()


def test_pinned_sha256_mismatch_is_not_kept(server, monkeypatch):
    monkeypatch.setenv("BORE_DEPTH_RELEASED_URL_NYU", f"{server.url}/junk/bore_nyu.ckpt")
    monkeypatch.setitem(pretrained.RELEASED, "nyu", {**pretrained.RELEASED["nyu"], "sha256": "0" * 64})
    with pytest.raises(ReleasedWeightsError) as err:
        released_path("nyu")
    assert server.url in _one_line(str(err.value))
    assert list(released_cache_path("nyu").parent.iterdir()) == []


def test_drive_links_go_through_gdown(monkeypatch):
    gdown = pytest.importorskip("gdown")
    calls = []

    def fake_download(url, output, **kwargs):
        calls.append(url)
        with open(output, "wb") as f:
            f.write(b"not a checkpoint")
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    url = "https://drive.google.com/file/d/FILE_ID/view?usp=sharing"
    monkeypatch.setenv("BORE_DEPTH_RELEASED_URL_NYU", url)
    with pytest.raises(CheckpointError, match="not kept"):
        released_path("nyu")
    assert calls == [url] and list(released_cache_path("nyu").parent.iterdir()) == []


def test_missing_library_says_what_to_install(monkeypatch):
    monkeypatch.setenv("BORE_DEPTH_RELEASED_BASE_URL", _dead_url())
    monkeypatch.setitem(sys.modules, "pooch", None)
    with pytest.raises(ReleasedWeightsError, match=r'pip install "bore_depth_lite\[released\]"'):
        released_path("nyu")


def test_infer_cli_with_a_manually_placed_file(served, tmp_path, capsys):
    from bore_depth_lite.infer import main

    dest = released_cache_path("nyu")  # no URL at all: the file put there by hand is used as is
    dest.parent.mkdir(parents=True)
    shutil.copy(served / "bore_nyu.ckpt", dest)
    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(image)
    out = tmp_path / "out"
    rc = main([str(image), "--checkpoint", "released:nyu", "--preset", "none", "--out", str(out), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    depth = np.load(out / "photo.npy")
    assert depth.shape[-2:] == (64, 96) and np.isfinite(depth).all() and (depth > 0).all()
    assert (out / "photo.png").is_file()
    assert dest.with_name("bore_nyu.ckpt.sha256").read_text().split()[0] == sha256_of(dest)


def test_unknown_released_name_is_one_line(tmp_path, capsys):
    from bore_depth_lite.evaluate import main as evaluate_main
    from bore_depth_lite.infer import main

    image = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    assert main([str(image), "--checkpoint", "released:foo", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "released:foo" not in err.split("known:")[1]
    assert "'foo'" in err and "kitti, nyu" in err
    with pytest.raises(SystemExit) as exit_:
        evaluate_main(["--checkpoint", "released:foo", "--device", "cpu"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "kitti, nyu" in err
    with pytest.raises(ValueError, match="known: kitti, nyu"):
        released("foo")
