"""Operators of the Style Regions list: add, remove, move (props/regions.py
does the work, keyframes included)."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import EnumProperty

from ..props import regions as region_props

OpResult = set[Any]


def _has_settings(context: Any) -> bool:
    return context.scene is not None and hasattr(context.scene, "pastiche")


class PASTICHE_OT_region_add(bpy.types.Operator):
    """Add a style region: the active object, or pick what it covers"""

    bl_idname = "pastiche.region_add"
    bl_label = "Add Style Region"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: Any) -> bool:
        return _has_settings(context)

    def execute(self, context: Any) -> OpResult:
        scene = context.scene
        obj = getattr(context, "active_object", None)
        if obj is not None and scene.objects.get(obj.name) is None:
            obj = None
        region_props.add_region(scene, obj.name if obj is not None else "", "OBJECT", obj)
        return {"FINISHED"}


class PASTICHE_OT_region_remove(bpy.types.Operator):
    """Remove the selected style region and its keyframes"""

    bl_idname = "pastiche.region_remove"
    bl_label = "Remove Style Region"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: Any) -> bool:
        return _has_settings(context) and len(context.scene.pastiche.regions) > 0

    def execute(self, context: Any) -> OpResult:
        settings = context.scene.pastiche
        index = settings.active_region_index
        if not 0 <= index < len(settings.regions):
            self.report({"ERROR"}, f"Pastiche: no style region at index {index}")
            return {"CANCELLED"}
        region_props.remove_region(context.scene, index)
        return {"FINISHED"}


class PASTICHE_OT_region_move(bpy.types.Operator):
    """Move the selected style region up or down (a later region wins where regions overlap)"""

    bl_idname = "pastiche.region_move"
    bl_label = "Move Style Region"
    bl_options = {"REGISTER", "UNDO"}

    direction: EnumProperty(  # type: ignore[valid-type]
        name="Direction", items=[("UP", "Up", ""), ("DOWN", "Down", "")], default="UP")

    @classmethod
    def poll(cls, context: Any) -> bool:
        return _has_settings(context) and len(context.scene.pastiche.regions) > 1

    def execute(self, context: Any) -> OpResult:
        settings = context.scene.pastiche
        index = settings.active_region_index
        to = index - 1 if self.direction == "UP" else index + 1
        if not (0 <= index < len(settings.regions) and 0 <= to < len(settings.regions)):
            return {"CANCELLED"}
        region_props.move_region(context.scene, index, to)
        return {"FINISHED"}
