"""Style swatches: one small picture per style, made by the model, kept as
hidden images the panel shows next to the sliders."""

from __future__ import annotations

import bpy
import numpy as np
import pytest

from blender_pastiche.operators import stylize as operators

pytestmark = pytest.mark.blender


def test_make_swatches(clean_scene, tiny_model):
    s = clean_scene.pastiche
    s.model_source = "FILE"
    s.model_path = str(tiny_model)
    s.device = "CPU"
    assert bpy.ops.pastiche.make_swatches(size=32) == {"FINISHED"}
    images = [operators.swatch_image(name) for name in ("a", "b")]
    assert all(im is not None and tuple(im.size) == (32, 32) for im in images)
    data = []
    for im in images:
        flat = np.empty(32 * 32 * 4, np.float32)
        im.pixels.foreach_get(flat)
        data.append(flat)
    assert np.abs(data[0] - data[1]).mean() > 1e-3  # each style has its own look
