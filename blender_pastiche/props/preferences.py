"""Add-on preferences: which Python runs the worker, default device, precision.

The packaging feature (torch_installer.py) adds its "Install PyTorch" UI by
appending a function to ``DRAW_HOOKS`` in its own register(); this module
never imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from ..worker import client as worker_client

# The add-on's module name: "blender_pastiche" as a legacy add-on or on sys.path,
# "bl_ext.<repo>.blender_pastiche" as an extension.
ADDON_ID = (__package__ or "blender_pastiche.props").rpartition(".")[0]

# ---- DRAW HOOKS: other modules append draw(layout, context) here (e.g. torch_installer) ----
DRAW_HOOKS: list[Callable[[Any, Any], None]] = []


def _on_worker_setting_changed(self: Any, context: Any) -> None:
    worker_client.restart()  # the next job starts a worker with the new settings


class PASTICHE_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    worker_python: StringProperty(  # type: ignore[valid-type]
        name="Worker Python", subtype="FILE_PATH", update=_on_worker_setting_changed,
        description="A Python with PyTorch to run the style network (e.g. your own CUDA "
                    "environment). Empty: Blender's own Python")
    device: EnumProperty(  # type: ignore[valid-type]
        name="Device", default="AUTO", update=_on_worker_setting_changed,
        items=[("AUTO", "Automatic", "CUDA, then Apple Metal, then CPU"),
               ("CPU", "CPU", "Always the CPU"),
               ("CUDA", "CUDA", "An NVIDIA GPU"),
               ("MPS", "Metal", "Apple Silicon GPU")])
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

    def draw(self, context: Any) -> None:
        layout = self.layout
        layout.prop(self, "worker_python")
        row = layout.row()
        row.prop(self, "device")
        row.prop(self, "precision")
        layout.prop(self, "keep_worker")
        draw_worker_status(layout)
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


def get() -> Any:
    """The preferences, or defaults when the add-on has no preferences entry."""
    root = bpy.context.preferences
    addon = root.addons.get(ADDON_ID) if root is not None else None
    prefs = getattr(addon, "preferences", None) if addon is not None else None
    return prefs if prefs is not None else _Defaults()


def worker_config() -> worker_client.WorkerConfig:
    prefs = get()
    # Empty stays empty: the worker client then runs Blender's own Python and
    # gives it the PyTorch the installer put in the add-on's folder.
    python = bpy.path.abspath(prefs.worker_python) if prefs.worker_python.strip() else ""
    return worker_client.WorkerConfig(python=python, keep_alive=bool(prefs.keep_worker))


def draw_worker_status(layout: Any) -> None:
    """The worker's state (device, busy, last error) and a restart button."""
    st = worker_client.status()
    box = layout.box()
    row = box.row()
    icon = {"busy": "SORTTIME", "idle": "CHECKMARK", "starting": "TIME"}.get(st["state"], "PAUSE")
    text = f"Worker: {st['state']}"
    if st.get("device"):
        text += f" on {st['device']}"
    row.label(text=text, icon=icon)
    row.operator("pastiche.restart_worker", text="", icon="FILE_REFRESH")
    job = st.get("job")
    if job:
        box.label(text=f"{job['message']} ({job['fraction'] * 100:.0f}%)")
    if st.get("last_error"):
        for i, line in enumerate(str(st["last_error"]).splitlines()[:3]):
            box.label(text=line, icon="ERROR" if i == 0 else "BLANK1")


def register() -> None:
    bpy.utils.register_class(PASTICHE_AP_preferences)
    worker_client.set_config_provider(worker_config)


def unregister() -> None:
    worker_client.set_config_provider(worker_client.WorkerConfig)
    bpy.utils.unregister_class(PASTICHE_AP_preferences)
