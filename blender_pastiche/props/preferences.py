"""Add-on preferences: which Python runs the worker, default device, precision.

This layer sits below the worker and the UI, so it never imports them: they
subscribe instead. ``DRAW_HOOKS`` holds draw(layout, context) functions the
preferences draw after their own settings (the worker status box, the
Install PyTorch box); ``WORKER_SETTINGS_HOOKS`` holds functions called when
a setting that needs a new worker process changes (the worker client's
restart).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty

from ..support.package import ADDON_PACKAGE

ADDON_ID = ADDON_PACKAGE  # Blender finds the preferences by the add-on's package name
RESPONSE_TIMEOUT = 60.0  # s; the worker client's default (worker/client.py RESPONSE_TIMEOUT)

DRAW_HOOKS: list[Callable[[Any, Any], None]] = []
WORKER_SETTINGS_HOOKS: list[Callable[[], None]] = []


def _on_worker_setting_changed(self: Any, context: Any) -> None:
    for hook in WORKER_SETTINGS_HOOKS:
        hook()  # the worker client restarts: the next job starts a worker with the new settings


# The worker's devices; the scene's device menu adds "use the preferences" to these.
DEVICE_ITEMS = [
    ("AUTO", "Automatic", "CUDA, then Apple Metal, then CPU"),
    ("CPU", "CPU", "Always the CPU"),
    ("CUDA", "CUDA", "An NVIDIA GPU"),
    ("MPS", "Metal", "Apple Silicon GPU"),
]


class PASTICHE_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    worker_python: StringProperty(  # type: ignore[valid-type]
        name="Worker Python", subtype="FILE_PATH", update=_on_worker_setting_changed,
        description="A Python with PyTorch to run the style network (e.g. your own CUDA "
                    "environment). Empty: Blender's own Python")
    device: EnumProperty(  # type: ignore[valid-type]
        name="Device", default="AUTO", update=_on_worker_setting_changed,
        items=DEVICE_ITEMS)
    precision: EnumProperty(  # type: ignore[valid-type]
        name="Precision", default="AUTO",
        items=[("AUTO", "Automatic", "Half precision on GPUs, full on CPU"),
               ("FP32", "Full (fp32)", "Slowest, exact"),
               ("FP16", "Half (fp16)", "Fast on GPUs"),
               ("BF16", "bfloat16", "For GPUs with bfloat16 support")])
    keep_worker: BoolProperty(  # type: ignore[valid-type]
        name="Keep Worker Running", default=True,
        description="Keep the model loaded between jobs (faster); off: stop the worker after "
                    "each job to free GPU memory")
    response_timeout: FloatProperty(  # type: ignore[valid-type]
        name="Worker Response Timeout", default=RESPONSE_TIMEOUT, min=1.0, soft_max=600.0, unit="TIME_ABSOLUTE",
        description="A worker that sends nothing (no progress, no heartbeat) for this long during a "
                    "job is killed, and the job fails with a message; the next job starts a fresh one")

    def draw(self, context: Any) -> None:
        layout = self.layout
        layout.prop(self, "worker_python")
        row = layout.row()
        row.prop(self, "device")
        row.prop(self, "precision")
        layout.prop(self, "keep_worker")
        layout.prop(self, "response_timeout")
        for hook in DRAW_HOOKS:
            hook(layout, context)


@dataclass
class _Defaults:
    """Preference values when the add-on is not enabled through Blender's
    add-on list (e.g. imported from sys.path in tests)."""

    worker_python: str = ""
    device: str = "AUTO"
    precision: str = "AUTO"
    keep_worker: bool = True
    response_timeout: float = RESPONSE_TIMEOUT


def get() -> Any:
    """The preferences, or defaults when the add-on has no preferences entry."""
    root = bpy.context.preferences
    addon = root.addons.get(ADDON_ID) if root is not None else None
    prefs = getattr(addon, "preferences", None) if addon is not None else None
    return prefs if prefs is not None else _Defaults()
