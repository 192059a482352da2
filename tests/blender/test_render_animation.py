"""Stylized animations rendered with real bpy (Cycles 64x48, 2 samples, frames 5-7,
keys at frames 1 and 11 on two styles), through the handler path
(render(animation=True) on a reopened .blend, as `blender -b file.blend -a`
runs it) and the Render Stylized Animation operator. Each run is its own
bpy process (tests/blender/scenes.py); the expected frames are the core's
Stylizer output computed here on the kept unstylized frames.

Tolerances: 32-bit float EXR, so only float noise (1e-5); 8-bit PNG: 1/255
plus the rounding of the input (2/255)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("bpy")
OpenEXR = pytest.importorskip("OpenEXR")

from pastiche_core import Stylizer  # noqa: E402

from . import scenes  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return scenes.make_tiny_model(str(tmp_path_factory.mktemp("model") / "tiny.safetensors"))


@pytest.fixture(scope="module")
def stylizer(model):
    return Stylizer(model, device="cpu", precision="fp32")


def render(mode: str, outdir, model: str, **opts) -> dict:
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(outdir / ".bres"))
    proc = subprocess.run([sys.executable, os.path.join(HERE, "scenes.py"), mode, str(outdir), model,
                           json.dumps(opts)], capture_output=True, text=True, timeout=240, env=env)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0 or opts.get("expect_failure"), log
    path = outdir / "report.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    report["log"] = log
    report["returncode"] = proc.returncode
    return report


def read_exr(path) -> np.ndarray:
    with OpenEXR.File(str(path)) as f:
        return np.asarray(f.channels()["RGBA"].pixels, dtype=np.float32)


def read_png(path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGBA"), dtype=np.float32) / 255.0


def check_frames(outdir, report, stylizer, reader=read_exr, ext="exr", space="linear",
                 premultiplied=True, atol=1e-5):
    previous = None
    for frame in scenes.FRAMES:
        want_w = scenes.expected_weights(frame)
        got_w = report["weights"][str(frame)]
        assert got_w == pytest.approx(want_w, abs=1e-5), f"frame {frame}: Blender's keyframed mix"
        original = reader(outdir / "unstylized" / f"frame_{frame:04d}.{ext}")
        stylized = reader(outdir / f"frame_{frame:04d}.{ext}")
        expected = stylizer.stylize(original, want_w, colour_space=space, premultiplied=premultiplied)
        assert np.abs(stylized - original).max() > 0.05, f"frame {frame} was not stylized"
        np.testing.assert_allclose(stylized, expected, atol=atol, err_msg=f"frame {frame}")
        if previous is not None:
            assert np.abs(stylized - previous).max() > 0.01
        previous = stylized
    assert report["leftover_files"] == []


def test_handler_path_like_blender_b_a(tmp_path, model, stylizer):
    report = render("hooks", tmp_path, model)
    assert [o["ok"] for o in report["outcomes"]] == [True, True, True], report["log"]
    check_frames(tmp_path, report, stylizer)


def test_operator_path(tmp_path, model, stylizer):
    report = render("operator", tmp_path, model)
    assert report["result"] == ["FINISHED"], report["log"]
    check_frames(tmp_path, report, stylizer)


def test_operator_png_output(tmp_path, model, stylizer):
    """8-bit PNG holds display values: stylized as sRGB with straight alpha."""
    report = render("operator", tmp_path, model, format="PNG", depth="8")
    assert report["result"] == ["FINISHED"], report["log"]
    check_frames(tmp_path, report, stylizer, reader=read_png, ext="png", space="srgb",
                 premultiplied=False, atol=2.5 / 255)


def test_handler_and_operator_give_the_same_frames(tmp_path, model):
    a, b = tmp_path / "hooks", tmp_path / "op"
    a.mkdir()
    b.mkdir()
    render("hooks", a, model)
    render("operator", b, model)
    for frame in scenes.FRAMES:
        name = f"frame_{frame:04d}.exr"
        np.testing.assert_array_equal(read_exr(a / name), read_exr(b / name))
        np.testing.assert_array_equal(read_exr(a / "unstylized" / name), read_exr(b / "unstylized" / name))


def read_png16(path) -> np.ndarray:
    from pastiche_core.io import images as imageio

    loaded = imageio.read_image(path)
    assert loaded.bit_depth == 16
    return loaded.pixels


def test_operator_png16_output(tmp_path, model, stylizer):
    """16-bit PNG: display values, straight alpha, 1/65535 steps (tolerance 2e-4)."""
    report = render("operator", tmp_path, model, format="PNG", depth="16")
    assert report["result"] == ["FINISHED"], report["log"]
    check_frames(tmp_path, report, stylizer, reader=read_png16, ext="png", space="srgb",
                 premultiplied=False, atol=2e-4)
