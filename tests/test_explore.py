"""bore_depth_lite.explore: figures to PNG bytes, and slider explorers built on an Image widget."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")  # no display needed

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from bore_depth_lite.explore import figure_to_png, slider_explorer  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _figure(value: float = 0.0, figsize=(3.0, 2.0), dpi=50):
    fig, ax = plt.subplots(figsize=figsize, dpi=dpi)
    ax.plot([0, 1], [0, value])
    ax.set_title(f"value {value}")
    return fig


def test_png_has_the_figures_size_and_closes_it():
    fig = _figure(figsize=(3.0, 2.0), dpi=50)
    data = figure_to_png(fig)
    assert data.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG" and img.size == (150, 100)  # figsize x dpi, no tight crop
        assert img.getpixel((0, 0))[:3] == (255, 255, 255)  # opaque white background
    assert not plt.fignum_exists(fig.number)


def test_png_dpi_and_keep_open():
    fig = _figure(figsize=(4.0, 1.5), dpi=50)
    with Image.open(io.BytesIO(figure_to_png(fig, dpi=20, close=False))) as img:
        assert img.size == (80, 30)
    assert plt.fignum_exists(fig.number)
    plt.close(fig)


def test_slider_change_updates_the_image():
    ipywidgets = pytest.importorskip("ipywidgets")
    calls = []

    def draw(value, label):
        calls.append((value, label))
        return _figure(value)

    sliders = {"value": ipywidgets.FloatSlider(value=0.0, min=-1.0, max=1.0),
               "label": ipywidgets.Dropdown(options=["a", "b"], value="a")}
    box = slider_explorer(draw, sliders)
    image = box.children[-1]
    assert isinstance(image, ipywidgets.Image) and list(box.children[:-1]) == list(sliders.values())
    assert calls == [(0.0, "a")]  # drawn once when built
    first = bytes(image.value)  # the Bytes trait may hold a memoryview
    assert first.startswith(PNG_SIGNATURE)

    sliders["value"].value = 0.5
    assert calls[-1] == (0.5, "a") and bytes(image.value) != first
    sliders["label"].value = "b"
    assert calls[-1] == (0.5, "b") and len(calls) == 3
    with Image.open(io.BytesIO(bytes(image.value))) as img:
        assert img.size == (150, 100)
    assert plt.get_fignums() == []  # every drawn figure was closed


def test_works_without_a_display(tmp_path):
    """In a fresh Python with no DISPLAY and no MPLBACKEND (a server, CI, a notebook runner)."""
    pytest.importorskip("ipywidgets")
    code = textwrap.dedent("""
        import matplotlib.pyplot as plt
        from ipywidgets import IntSlider
        from bore_depth_lite.explore import slider_explorer

        def draw(n):
            fig, ax = plt.subplots(figsize=(2, 1), dpi=40)
            ax.bar(range(n + 1), range(n + 1))
            return fig

        slider = IntSlider(value=1, min=0, max=3)
        box = slider_explorer(draw, {"n": slider})
        before = bytes(box.children[-1].value)
        slider.value = 3
        after = bytes(box.children[-1].value)
        assert after != before and after[:4] == b"\\x89PNG"
        print("ok", plt.get_backend().lower())
        """)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    env["MPLCONFIGDIR"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ok", "agg"]


def test_missing_ipywidgets_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # makes `import ipywidgets` raise ImportError
    with pytest.raises(ImportError, match=r'pip install "bore_depth_lite\[widgets\]"'):
        slider_explorer(_figure, {})
