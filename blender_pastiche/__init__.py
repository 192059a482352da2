"""Pastiche for Blender: multi-style neural style transfer as a thin layer over
the core (``pastiche_core``), which runs in a worker process the add-on owns.

The packages are layered; each imports only the ones before it:
support -> io -> props -> worker -> render -> nodes -> operators -> ui.
registry.py registers every class, property, hook, handler and menu with
Blender. It is imported on register(), so the bpy-free modules (io.frame_files,
io.exr_file, io.model_header, worker.client) stay importable without Blender.
"""

from __future__ import annotations

bl_info = {
    "name": "Pastiche",
    "author": "Pastiche contributors",
    "version": (0, 1, 0),
    "blender": (4, 5, 0),
    "location": "3D Viewport / Image Editor / Compositor > Sidebar > Pastiche",
    "description": "Real-time multi-style neural style transfer with keyframeable style mixes",
    "category": "Render",
}


def register() -> None:
    from . import registry

    registry.register()


def unregister() -> None:
    from . import registry

    registry.unregister()
