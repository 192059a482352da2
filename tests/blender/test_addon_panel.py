"""The Pastiche panel's contents, drawn into a recorder that checks every call
against Blender's own UILayout API (panels can't be drawn headless)."""

from __future__ import annotations

import bpy
import pytest

from blender_pastiche.render import hooks as render_hooks
from blender_pastiche.ui import panels

pytestmark = pytest.mark.blender


class Recorder:
    """Stands in for a UILayout: records (function, first argument, property or
    operator name) and fails on any function or keyword UILayout lacks."""

    def __init__(self, calls: list):
        self.calls = calls
        self.enabled = True

    def __getattr__(self, name):
        fn = bpy.types.UILayout.bl_rna.functions.get(name)
        assert fn is not None, f"UILayout has no function {name!r}"
        params = set(fn.parameters.keys())

        def call(*args, **kwargs):
            unknown = set(kwargs) - params
            assert not unknown, f"UILayout.{name} has no parameter(s) {unknown}"
            target = args[1] if name == "prop" and len(args) > 1 else (args[0] if args else "")
            self.calls.append((name, target, kwargs.get("text")))
            return Recorder(self.calls) if name in ("box", "row", "column") else _Anything()

        return call


class _Anything:
    """What operator() returns: takes the operator's properties."""


def test_panel_shows_animation_rendering_and_keep_unstylized(clean_scene, tiny_model):
    clean_scene.pastiche.model_source = "FILE"
    clean_scene.pastiche.model_path = str(tiny_model)
    calls: list = []
    panels.draw_settings(Recorder(calls), bpy.context)
    operators = [target for name, target, _ in calls if name == "operator"]
    props = [target for name, target, _ in calls if name == "prop"]
    assert "pastiche.render_animation" in operators
    assert {"enabled", "keep_original"} <= set(props)
    # The animation button sits with the render options.
    i = operators.index("pastiche.render_animation")
    assert operators[i - 1] == "pastiche.stylize_render"


def test_keep_unstylized_frames_is_a_scene_setting(clean_scene):
    assert not hasattr(bpy.types.Scene, "pastiche_keep_original")  # the old stand-in is gone
    assert render_hooks.keep_original_setting(clean_scene) is False
    clean_scene.pastiche.keep_original = True
    assert render_hooks.keep_original_setting(clean_scene) is True
    enabled = clean_scene.pastiche.bl_rna.properties["enabled"]
    assert "Ctrl+F12" in enabled.description and "blender -b -a" in enabled.description


def test_style_regions_sub_panel_lists_regions_and_the_selected_ones_sliders(clean_scene, tiny_model):
    from blender_pastiche.props import regions as region_props

    scene = clean_scene
    scene.pastiche.model_source = "FILE"
    scene.pastiche.model_path = str(tiny_model)
    obj = bpy.data.objects.new("Hero", None)
    scene.collection.objects.link(obj)
    region_props.add_region(scene, "hero", "OBJECT", obj)
    assert panels.PASTICHE_PT_view3d_regions.bl_parent_id == "PASTICHE_PT_view3d"
    assert panels.PASTICHE_PT_view3d_regions.poll(bpy.context)
    calls: list = []
    panels.draw_regions(Recorder(calls), bpy.context)
    names = [name for name, _t, _x in calls]
    assert "template_list" in names
    operators = [target for name, target, _ in calls if name == "operator"]
    assert {"pastiche.region_add", "pastiche.region_remove", "pastiche.region_move"} <= set(operators)
    props = [target for name, target, _ in calls if name == "prop"]
    assert {"source", "object", "weight", "strength"} <= set(props)
    labels = [text for name, _t, text in calls if name == "label"]
    assert "The rest of the frame keeps the scene's mix." in labels
    # The list's rows draw with real UIList API names too.
    row_calls: list = []
    panels.PASTICHE_UL_regions.draw_item(None, bpy.context, Recorder(row_calls), scene.pastiche,
                                         scene.pastiche.regions[0], 0, scene.pastiche, "active_region_index")
    assert ("label", "", "Hero") in row_calls or any(t == "Hero" for _n, _a, t in row_calls)
