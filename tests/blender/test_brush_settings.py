"""Brush Size and Detail in the add-on, with real bpy: the scene settings and
their limits, the panel, keyframed values reaching each rendered frame (Render
Stylized Animation, per frame and temporal), the compositor node's own
values, and Live Preview's requests."""

from __future__ import annotations

import os

import bpy
import numpy as np
import pytest

from blender_pastiche.nodes import stylize_node
from blender_pastiche.props import scene as properties
from blender_pastiche.props import style_items
from blender_pastiche.render import hooks as render_hooks
from blender_pastiche.render import temporal as temporal_render
from blender_pastiche.ui import live_preview, panels

from .test_addon_panel import Recorder

OpenEXR = pytest.importorskip("OpenEXR")

from . import scenes  # noqa: E402  (needs OpenEXR, checked above)

pytestmark = pytest.mark.blender


def read_rgba(path) -> np.ndarray:
    with OpenEXR.File(str(path)) as f:
        return np.asarray(f.channels()["RGBA"].pixels, dtype=np.float32)


@pytest.fixture
def sent(monkeypatch):
    """The options of every stylize job the render paths hand to the worker."""
    calls: list[dict] = []
    real = render_hooks.submit_pixels

    def watch(image, weights, **options):
        calls.append(dict(options, shape=image.shape))
        return real(image, weights, **options)

    monkeypatch.setattr(render_hooks, "submit_pixels", watch)
    return calls


def test_settings_defaults_limits_and_options(clean_scene, tiny_model):
    from pastiche_core.inference import brush

    s = clean_scene.pastiche
    assert (s.brush_size, s.detail) == (1.0, 0.0)
    rna = s.bl_rna.properties
    assert (rna["brush_size"].hard_min, rna["brush_size"].hard_max) == (brush.MIN_BRUSH, brush.MAX_BRUSH)
    assert (properties.BRUSH_MIN, properties.BRUSH_MAX) == (brush.MIN_BRUSH, brush.MAX_BRUSH)
    assert (rna["detail"].hard_min, rna["detail"].hard_max) == (0.0, 1.0)
    assert rna["brush_size"].is_animatable and rna["detail"].is_animatable
    s.brush_size, s.detail = 9.0, -1.0
    assert (s.brush_size, s.detail) == (4.0, 0.0)  # Blender clamps to the core's range
    s.model_source, s.model_path = "FILE", str(tiny_model)
    s.brush_size, s.detail = 2.5, 0.3
    opts = properties.stylize_options(clean_scene)
    assert opts["brush_size"] == pytest.approx(2.5) and opts["detail"] == pytest.approx(0.3)


def test_panel_draws_them_next_to_strength_and_preserve_colour(clean_scene, tiny_model):
    clean_scene.pastiche.model_source = "FILE"
    clean_scene.pastiche.model_path = str(tiny_model)
    calls: list = []
    panels.draw_settings(Recorder(calls), bpy.context)
    props = [target for name, target, _ in calls if name == "prop"]
    i = props.index("strength")
    assert props[i:i + 4] == ["strength", "preserve_color", "brush_size", "detail"]


def test_changing_them_reaches_live_preview(clean_scene, tiny_model, monkeypatch):
    s = clean_scene.pastiche
    s.model_source, s.model_path = "FILE", str(tiny_model)
    seen: list = []
    # The list lives with the sliders (style_items.py); scene.py re-exports it.
    assert properties.SETTING_CHANGED_HOOKS is style_items.SETTING_CHANGED_HOOKS
    monkeypatch.setattr(style_items, "SETTING_CHANGED_HOOKS", [seen.append])
    s.brush_size = 2.0
    s.detail = 0.5
    assert seen == [clean_scene, clean_scene]  # live preview's schedule() subscribes here
    source = bpy.data.images.new("photo", 64, 48)
    s.preview_source = source
    jobs: list[dict] = []
    monkeypatch.setattr(live_preview.worker_client, "submit_stylize",
                        lambda pixels, weights, **kw: jobs.append(kw) or None)
    live_preview._submit(clean_scene)
    assert jobs and jobs[0]["brush_size"] == 2.0 and jobs[0]["detail"] == 0.5


def test_keyframed_brush_size_gives_each_frame_its_own_value(clean_scene, tiny_model, tmp_path, sent):
    from pastiche_core import Stylizer

    scene = clean_scene
    scenes.build_scene(scene, str(tmp_path))
    scenes.setup_pastiche(scene, str(tiny_model), keep_original=True)
    s = scene.pastiche
    for frame, value in ((5, 1.0), (6, 2.0)):
        s.brush_size = value
        s.keyframe_insert("brush_size", frame=frame)
    s.detail = 0.25
    scene.frame_start, scene.frame_end = 5, 6
    assert bpy.ops.pastiche.render_animation() == {"FINISHED"}
    assert [round(o["brush_size"], 6) for o in sent] == [1.0, 2.0]
    assert all(o["detail"] == 0.25 for o in sent)
    stylizer = Stylizer(str(tiny_model), device="cpu", precision="fp32")
    for frame, value in ((5, 1.0), (6, 2.0)):
        original = read_rgba(tmp_path / "unstylized" / f"frame_{frame:04d}.exr")
        got = read_rgba(tmp_path / f"frame_{frame:04d}.exr")
        kw = dict(colour_space="linear", premultiplied=True, detail=0.25)
        want = stylizer.stylize(original, scenes.expected_weights(frame), brush_size=value, **kw)
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=f"frame {frame}")
        if value != 1.0:
            other = stylizer.stylize(original, scenes.expected_weights(frame), brush_size=1.0, **kw)
            assert np.abs(got - other).max() > 0.02  # the brush size made a difference


def test_temporal_requests_carry_each_frames_brush_size(clean_scene, tiny_model, tmp_path, monkeypatch):
    from .test_temporal_render import build

    fields: list[tuple[str, int, float, float]] = []
    real = temporal_render.submit

    def watch(kind, f, **kwargs):
        if kind in ("temporal_prime", "temporal_stylize"):
            fields.append((kind, f["frame"], f["brush_size"], f["detail"]))
        return real(kind, f, **kwargs)

    monkeypatch.setattr(temporal_render, "submit", watch)
    scene = clean_scene
    build(scene, tmp_path, tiny_model)
    s = scene.pastiche
    for frame, value in ((1, 1.5), (2, 2.0)):
        s.brush_size = value
        s.keyframe_insert("brush_size", frame=frame)
    s.detail = 0.5
    scene.render.filepath = os.path.join(str(tmp_path), "frame_")
    scene.frame_start, scene.frame_end = 1, 2
    assert bpy.ops.pastiche.render_animation() == {"FINISHED"}
    assert [(k, f, round(b, 6), d) for k, f, b, d in fields] == [
        ("temporal_prime", 0, 1.5, 0.5), ("temporal_stylize", 1, 1.5, 0.5), ("temporal_stylize", 2, 2.0, 0.5)]
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".exr")) == ["frame_0001.exr", "frame_0002.exr"]


def test_compositor_node_has_its_own_animatable_values(clean_scene, tiny_model, tmp_path, sent):
    scene = clean_scene
    scenes.build_scene(scene, str(tmp_path))
    scenes.setup_pastiche(scene, str(tiny_model), keep_original=False)
    tree = scenes.add_compositor(scene, with_node=True)
    node = next(n for n in tree.nodes if n.bl_idname == stylize_node.NODE_IDNAME)
    assert (node.brush_size, node.detail) == (1.0, 0.0)
    for frame, value in ((5, 1.0), (6, 3.0)):
        node.brush_size = value
        node.keyframe_insert("brush_size", frame=frame)
    node.detail = 0.75
    scene.pastiche.brush_size = 2.0  # the node's own values win, like its strength
    calls: list = []
    stylize_node.PasticheStylizeNode.__dict__["draw_buttons"](node, bpy.context, Recorder(calls))
    assert {"strength", "brush_size", "detail"} <= {t for n, t, _ in calls if n == "prop"}
    scene.frame_start, scene.frame_end = 5, 6
    assert bpy.ops.pastiche.render_animation() == {"FINISHED"}
    assert [(round(o["brush_size"], 6), o["detail"]) for o in sent] == [(1.0, 0.75), (3.0, 0.75)]
    assert sorted(os.listdir(tmp_path)) == ["frame_0005.exr", "frame_0006.exr"]
