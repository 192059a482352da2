"""Everything the add-on registers with Blender, listed once, in dependency order.

register() runs the steps below in order and remembers how to undo each;
unregister() (and a failed register()) undoes them newest first, so Blender
is left exactly as it was. Modules define classes, handlers and hooks; only
this module hands them to Blender.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
from functools import partial
from typing import Any

import bpy
from bpy.props import PointerProperty

from .nodes import stylize_node
from .operators import regions as region_operators
from .operators import render_animation, stylize
from .props import preferences, scene
from .props import regions as region_props
from .render import hooks as render_hooks
from .render import regions as render_regions
from .support import compat
from .ui import live_preview, panels, worker_status
from .worker import client as worker_client
from .worker import config as worker_config
from .worker import torch_installer

# Registered in this order (a PropertyGroup before the groups that point to it).
CLASSES: tuple[type, ...] = (
    preferences.PASTICHE_AP_preferences,
    scene.PASTICHE_PG_style,
    region_props.PASTICHE_PG_region,
    scene.PASTICHE_PG_settings,
    torch_installer.PASTICHE_OT_install_torch,
    torch_installer.PASTICHE_OT_cancel_torch_install,
    torch_installer.PASTICHE_OT_remove_torch,
    stylize.PASTICHE_OT_stylize_image,
    stylize.PASTICHE_OT_stylize_render,
    stylize.PASTICHE_OT_make_swatches,
    stylize.PASTICHE_OT_reload_styles,
    stylize.PASTICHE_OT_remove_style,
    stylize.PASTICHE_OT_restart_worker,
    stylize_node.PasticheNodeStyleWeight,
    stylize_node.PasticheStylizeNode,
    stylize_node.PASTICHE_OT_node_sync_styles,
    render_animation.PASTICHE_OT_render_animation,
    region_operators.PASTICHE_OT_region_add,
    region_operators.PASTICHE_OT_region_remove,
    region_operators.PASTICHE_OT_region_move,
    panels.PASTICHE_UL_regions,
    panels.PASTICHE_PT_view3d,
    panels.PASTICHE_PT_image,
    panels.PASTICHE_PT_compositor,
    panels.PASTICHE_PT_view3d_regions,
    panels.PASTICHE_PT_image_regions,
    panels.PASTICHE_PT_compositor_regions,
)

# (owner type, attribute, property factory)
PROPERTIES: tuple[tuple[Any, str, Callable[[], Any]], ...] = (
    (bpy.types.Scene, "pastiche", lambda: PointerProperty(type=scene.PASTICHE_PG_settings)),
    (bpy.types.WindowManager, "pastiche_torch_variant", torch_installer.variant_property),
)

# (hook list of a lower layer, function of a higher one), appended in this order.
HOOKS: tuple[tuple[list, Callable], ...] = (
    (preferences.DRAW_HOOKS, worker_status.draw_preferences_status),
    (preferences.DRAW_HOOKS, torch_installer.draw_preferences),
    (preferences.WORKER_SETTINGS_HOOKS, worker_client.restart),
    (scene.SETTING_CHANGED_HOOKS, live_preview.schedule),
    (region_props.REGIONS_CHANGED_HOOKS, render_regions.sync_capture),
)

# (bpy.app.handlers list name, handler)
HANDLERS: tuple[tuple[str, Callable], ...] = (
    ("load_post", scene.on_load_post),
    ("load_post", render_regions.sync_all_scenes),
    ("render_init", render_regions.note_render_start),
    *render_hooks.HANDLERS,
)

# (menu type name, draw function)
# Menu entries are also what F3 search finds.
MENUS: tuple[tuple[str, Callable], ...] = (
    ("NODE_MT_add", stylize_node.draw_add_menu),
    ("TOPBAR_MT_render", render_animation.draw_render_menu),
    ("IMAGE_MT_image", stylize.draw_image_menu),
)

# Module state with timers or jobs to stop at unregister (stopped after the handlers go).
STOPS: tuple[Callable[[], None], ...] = (render_hooks.stop, torch_installer.stop, live_preview.stop)

_undo: list[Callable[[], object]] = []


Step = tuple[Callable[[], object], Callable[[], object]]


def _start_worker_client() -> None:
    atexit.register(worker_client.shutdown)


def _stop_worker_client() -> None:
    worker_client.shutdown()
    atexit.unregister(worker_client.shutdown)


def _stop_all() -> None:
    for stop in STOPS:
        stop()


def _add_property(owner: Any, name: str, factory: Callable[[], Any]) -> None:
    setattr(owner, name, factory())


def _remove_all(items: list, fn: Callable) -> None:
    while fn in items:
        items.remove(fn)


def _nothing() -> None:
    pass


def _unregister_timer(fn: Callable) -> None:
    if bpy.app.timers.is_registered(fn):
        bpy.app.timers.unregister(fn)


def _steps() -> list[Step]:
    steps: list[Step] = [
        (_start_worker_client, _stop_worker_client),
        (_nothing, _stop_all),
        (partial(worker_client.set_config_provider, worker_config.from_preferences),
         partial(worker_client.set_config_provider, worker_client.WorkerConfig)),
    ]
    steps += [(partial(bpy.utils.register_class, cls), partial(bpy.utils.unregister_class, cls))
              for cls in CLASSES]
    steps += [(partial(_add_property, owner, name, factory), partial(delattr, owner, name))
              for owner, name, factory in PROPERTIES]
    steps += [(partial(hooks.append, fn), partial(_remove_all, hooks, fn)) for hooks, fn in HOOKS]
    steps.append((torch_installer.wire_worker_paths, _nothing))
    # The bundled model's sliders on the scenes already open (load_post does it for files opened later).
    if not compat.IS_4X or bpy.app.binary_path:  # a pending timer hangs bpy 4.5 (module) at exit
        steps.append((partial(bpy.app.timers.register, scene.sync_all_scenes_soon, first_interval=0.0),
                      partial(_unregister_timer, scene.sync_all_scenes_soon)))
    for name, fn in HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        steps.append((partial(handlers.append, fn), partial(_remove_all, handlers, fn)))
    for menu, fn in MENUS:
        menu_type = getattr(bpy.types, menu)
        steps.append((partial(menu_type.append, fn), partial(menu_type.remove, fn)))
    return steps


def register() -> None:
    if _undo:
        return  # already registered
    try:
        for do, undo in _steps():
            do()
            _undo.append(undo)
    except Exception:
        unregister()  # leave Blender as it was, then say why
        raise
    compat.unregister_at_exit(unregister)


def unregister() -> None:
    compat.cancel_unregister_at_exit(unregister)
    while _undo:
        _undo.pop()()
