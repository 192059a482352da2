"""Pastiche for Blender: multi-style neural style transfer as a thin layer over
the core (``pastiche_core``), which runs in a worker process the add-on owns.

This file only registers the submodules listed in SUBMODULES, each with its
own register()/unregister(). Other features add their module's name to that
list (and touch nothing else here).
"""

from __future__ import annotations

import importlib

bl_info = {
    "name": "Pastiche",
    "author": "Pastiche contributors",
    "version": (0, 1, 0),
    "blender": (4, 5, 0),
    "location": "3D Viewport / Image Editor / Compositor > Sidebar > Pastiche",
    "description": "Real-time multi-style neural style transfer with keyframeable style mixes",
    "category": "Render",
}

# Registered in this order, unregistered in reverse. Append new modules at the end.
SUBMODULES = ["worker.client", "props.preferences", "props.scene", "ui.live_preview", "operators.stylize",
              "ui.panels", "worker.torch_installer", "render.hooks", "nodes.stylize_node",
              "operators.render_animation"]

_registered: list[str] = []


def _module(name: str):
    return importlib.import_module(f"{__package__ or __name__}.{name}")


def register() -> None:
    try:
        for name in SUBMODULES:
            _module(name).register()
            _registered.append(name)
    except Exception:
        unregister()  # leave Blender as it was, then say why
        raise
    _module("support.compat").unregister_at_exit(unregister)


def unregister() -> None:
    _module("support.compat").cancel_unregister_at_exit(unregister)
    while _registered:
        _module(_registered.pop()).unregister()
