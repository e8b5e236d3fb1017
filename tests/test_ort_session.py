"""make_session's ONNX Runtime options (issue #15): idle pool threads spin (ORT's default) unless
``spinning=False``, and
further SessionOptions attributes or configuration entries pass through ``options``."""
from __future__ import annotations

import warnings

import pytest
import torch

from bore_depth_lite.deploy import export_onnx, make_session, onnx_operator_counts
from bore_depth_lite.models import DepthNet

from test_deploy import SIZE

pytest.importorskip("onnxruntime", reason="onnxruntime comes with the deploy extra")


def test_make_session_spinning_on_by_default_and_options(tmp_path):
    torch.manual_seed(0)
    path = export_onnx(DepthNet("tiny").eval(), tmp_path / "t.onnx", SIZE).path

    def entry(sess):
        return sess.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    assert entry(make_session(path, threads=2)) == "1"
    assert entry(make_session(path, threads=2, spinning=False)) == "0"
    sess = make_session(path, threads=2, options={"session.intra_op.allow_spinning": "0", "enable_mem_pattern": False})
    assert entry(sess) == "0" and sess.get_session_options().enable_mem_pattern is False
    opt = tmp_path / "optimised.onnx"
    make_session(path, threads=1, options={"optimized_model_filepath": str(opt)})
    assert "ReorderInput" in onnx_operator_counts(opt)   # ORT's NCHWc layout: what the profile runs
    with pytest.raises(ValueError, match="neither a SessionOptions attribute"):
        make_session(path, options={"no_such_option": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        x = torch.randn(1, 3, *SIZE).numpy()
        assert make_session(path, threads=2).run(None, {"image": x})[0].shape == (1, 1, *SIZE)
