"""The "Pastiche" sidebar tab in the 3D Viewport, Image Editor and Compositor."""

from __future__ import annotations

from typing import Any

import bpy

from ..io import frame_files
from ..operators import stylize as operators
from ..props import regions as region_props
from ..props import scene as properties
from ..render import hooks as render_hooks
from ..render import temporal as temporal_render
from ..support import core_files as core_import
from . import live_preview, worker_status


def draw_settings(layout: Any, context: Any) -> None:
    scene = context.scene
    settings = scene.pastiche
    col = layout.column()
    if core_import.default_model_path() is not None:
        col.prop(settings, "model_source", expand=True)
    if settings.model_source == "FILE" or core_import.default_model_path() is None:
        col.prop(settings, "model_path", text="")
    row = col.row(align=True)
    row.operator("pastiche.reload_styles", icon="FILE_REFRESH")
    row.operator("pastiche.make_swatches", text="Swatches", icon="IMAGE_DATA")
    if settings.model_error:
        col.label(text=settings.model_error, icon="ERROR")

    box = layout.box()
    box.label(text="Styles (keyframe with I)")
    for i, item in enumerate(settings.styles):
        row = box.row(align=True)
        swatch = operators.swatch_image(item.name)
        if swatch is not None and swatch.preview is not None:
            row.template_icon(icon_value=swatch.preview.icon_id, scale=1.0)
        sub = row.row(align=True)
        sub.enabled = item.available
        sub.prop(item, "weight", text=item.label, slider=True)
        if not item.available:
            op = row.operator("pastiche.remove_style", text="", icon="X")
            op.index = i
    if not settings.styles:
        box.label(text="No styles: choose a model", icon="INFO")
    elif properties.effective_weights(scene) is None:
        box.label(text="All weights are zero: no style (renders pass through)", icon="INFO")

    col = layout.column()
    col.prop(settings, "strength", slider=True)
    col.prop(settings, "preserve_color")
    col.prop(settings, "brush_size", slider=True)
    col.prop(settings, "detail", slider=True)
    col.prop(settings, "tile_size")
    col.prop(settings, "device")

    col = layout.column(align=True)
    col.operator("pastiche.stylize_image", icon="IMAGE")
    col.operator("pastiche.stylize_render", icon="RENDER_RESULT")

    box = layout.box()
    box.label(text="Animation", icon="RENDER_ANIMATION")
    col = box.column(align=True)
    col.operator("pastiche.render_animation", icon="RENDER_ANIMATION")
    col.prop(settings, "enabled")
    col.prop(settings, "keep_original")
    draw_render_warnings(box, scene, settings)
    draw_temporal(box, scene, settings)

    box = layout.box()
    box.prop(settings, "live_preview")
    if settings.live_preview:
        box.template_ID(settings, "preview_source", open="image.open")
        box.prop(settings, "preview_size")
        if live_preview.last_error:
            box.label(text=f"Preview failed: {live_preview.last_error}", icon="ERROR")
    worker_status.draw_worker_status(layout)


class PASTICHE_UL_regions(bpy.types.UIList):
    """The style regions: name, what they cover, on/off."""

    def draw_item(self, context: Any, layout: Any, data: Any, item: Any, icon: Any,  # type: ignore[override]
                  active_data: Any, active_property: Any, index: Any = 0, flt_flag: Any = 0) -> None:
        source_icon = {key: ic for key, _n, _d, ic, _v in region_props.SOURCE_ITEMS}[item.source]
        row = layout.row(align=True)
        row.prop(item, "name", text="", emboss=False, icon=source_icon)
        target = item.target()
        row.label(text=target.name if target is not None else "(none)")
        row.prop(item, "enabled", text="")


def draw_regions(layout: Any, context: Any) -> None:
    """Style Regions: parts of the frame in their own mix (props/regions.py)."""
    scene = context.scene
    settings = scene.pastiche
    row = layout.row()
    row.template_list("PASTICHE_UL_regions", "", settings, "regions", settings, "active_region_index",
                      rows=3)
    col = row.column(align=True)
    col.operator("pastiche.region_add", text="", icon="ADD")
    col.operator("pastiche.region_remove", text="", icon="REMOVE")
    col.separator()
    col.operator("pastiche.region_move", text="", icon="TRIA_UP").direction = "UP"
    col.operator("pastiche.region_move", text="", icon="TRIA_DOWN").direction = "DOWN"
    layout.label(text="The rest of the frame keeps the scene's mix.", icon="INFO")
    if not 0 <= settings.active_region_index < len(settings.regions):
        return
    region = settings.regions[settings.active_region_index]
    col = layout.column()
    col.prop(region, "source")
    col.prop(region, {"OBJECT": "object", "COLLECTION": "collection", "MATERIAL": "material",
                      "MASK": "image"}[region.source])
    box = col.box()
    for item in region.styles:
        sub = box.row(align=True)
        sub.enabled = item.available
        sub.prop(item, "weight", text=item.label, slider=True)
    col.prop(region, "strength", slider=True)
    problem = render_hooks.regions_problem(scene, installed=False)
    if problem:
        col.label(text=problem, icon="ERROR")


def draw_render_warnings(layout: Any, scene: Any, settings: Any) -> None:
    """Why Stylize Renders would leave this scene's frames unstylized, before
    the render, and why the last render did (render_hooks.refuse)."""
    if not settings.enabled:
        return
    try:
        render_hooks.output_encoding(scene)
    except frame_files.FrameFormatError as exc:
        layout.label(text="Stylize Renders: frames will NOT be stylized", icon="ERROR")
        layout.label(text=str(exc).split(":")[0])
    problem = render_hooks.style_problem(scene)
    if problem:
        layout.label(text=problem, icon="ERROR")
    if render_hooks.STATE.refusal:
        layout.label(text=f"Last render not stylized: {render_hooks.STATE.refusal}", icon="ERROR")


def draw_temporal(layout: Any, scene: Any, settings: Any) -> None:
    """The Temporal Coherence option and what it needs from the scene."""
    col = layout.column(align=True)
    row = col.row(align=True)
    row.prop(settings, "temporal")
    sub = row.row(align=True)
    sub.enabled = settings.temporal
    sub.prop(settings, "temporal_history")
    if not settings.temporal:
        return
    problem = temporal_render.scene_problem(scene)
    if problem:
        col.label(text=problem, icon="ERROR")
    elif not properties.vector_view_layer(scene).use_pass_vector:
        col.label(text="The Vector pass is turned on for each render", icon="INFO")
    col.label(text="Render Stylized Animation only; primes "
                   f"{settings.temporal_history} frame(s) before each render", icon="INFO")
    if settings.enabled:
        col.label(text="Stylize Renders (Ctrl+F12) leaves frames unstylized in this mode",
                  icon="ERROR")


class _PastichePanel(bpy.types.Panel):
    bl_region_type = "UI"
    bl_category = "Pastiche"
    bl_label = "Pastiche"

    @classmethod
    def poll(cls, context: Any) -> bool:
        return context.scene is not None and hasattr(context.scene, "pastiche")

    def draw(self, context: Any) -> None:
        draw_settings(self.layout, context)


class PASTICHE_PT_view3d(_PastichePanel):
    bl_idname = "PASTICHE_PT_view3d"
    bl_space_type = "VIEW_3D"


class PASTICHE_PT_image(_PastichePanel):
    bl_idname = "PASTICHE_PT_image"
    bl_space_type = "IMAGE_EDITOR"


class PASTICHE_PT_compositor(_PastichePanel):
    bl_idname = "PASTICHE_PT_compositor"
    bl_space_type = "NODE_EDITOR"

    @classmethod
    def poll(cls, context: Any) -> bool:
        space = context.space_data
        return (super().poll(context) and space is not None
                and getattr(space, "tree_type", "") == "CompositorNodeTree")


class _RegionsPanel(bpy.types.Panel):
    """The "Style Regions" sub-panel under each Pastiche panel."""
    bl_region_type = "UI"
    bl_category = "Pastiche"
    bl_label = "Style Regions"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context: Any) -> bool:
        return context.scene is not None and hasattr(context.scene, "pastiche")

    def draw(self, context: Any) -> None:
        draw_regions(self.layout, context)


class PASTICHE_PT_view3d_regions(_RegionsPanel):
    bl_idname = "PASTICHE_PT_view3d_regions"
    bl_parent_id = PASTICHE_PT_view3d.bl_idname
    bl_space_type = "VIEW_3D"


class PASTICHE_PT_image_regions(_RegionsPanel):
    bl_idname = "PASTICHE_PT_image_regions"
    bl_parent_id = PASTICHE_PT_image.bl_idname
    bl_space_type = "IMAGE_EDITOR"


class PASTICHE_PT_compositor_regions(_RegionsPanel):
    bl_idname = "PASTICHE_PT_compositor_regions"
    bl_parent_id = PASTICHE_PT_compositor.bl_idname
    bl_space_type = "NODE_EDITOR"

    @classmethod
    def poll(cls, context: Any) -> bool:
        return PASTICHE_PT_compositor.poll(context)
