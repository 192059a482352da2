"""The Pastiche Stylize compositor node through the two-pass pipeline, with real
bpy: an Exposure node (+1 stop) after it must see the stylized pixels, and the
Render Result shows them. 32-bit float EXR throughout: tolerance 1e-5."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("bpy")
pytest.importorskip("OpenEXR")

from pastiche_core import Stylizer

from . import scenes
from .test_render_animation import read_exr, render

pytestmark = pytest.mark.blender


def test_node_output_reaches_downstream_nodes_and_render_result(tmp_path):
    model = scenes.make_tiny_model(str(tmp_path / "tiny.safetensors"))
    stylizer = Stylizer(model, device="cpu", precision="fp32")
    report = render("nodes", tmp_path, model)
    assert report["result"] == ["FINISHED"], report["log"]
    assert report["render_layers_muted_after"] == [False]  # Blender state restored
    gain = 2.0 ** scenes.EXPOSURE
    previous = None
    for frame in scenes.FRAMES:
        w = scenes.expected_weights(frame)
        assert report["weights"][str(frame)] == pytest.approx(w, abs=1e-5)
        # unstylized/ holds pass 1's composite: Exposure applied to the raw render.
        unstylized = read_exr(tmp_path / "unstylized" / f"frame_{frame:04d}.exr")
        node_input = unstylized.copy()
        node_input[..., :3] /= gain
        expected = stylizer.stylize(node_input, w, colour_space="linear", premultiplied=True)
        expected[..., :3] *= gain  # the Exposure node after Pastiche Stylize
        got = read_exr(tmp_path / f"frame_{frame:04d}.exr")
        assert np.abs(got - unstylized).max() > 0.05
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=f"frame {frame}")
        if previous is not None:
            assert np.abs(got - previous).max() > 0.01
        previous = got
    # The Render Result after the run is the last frame's stylized composite.
    np.testing.assert_allclose(read_exr(tmp_path / "render_result.exr"), previous, atol=1e-6)
