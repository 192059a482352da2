"""What differs between the Blender versions the add-on supports (4.5 LTS and 5.x).

Everything that branches on ``bpy.app.version`` lives here, so the rest of the
add-on reads the same on every version:

- the scene's compositor: 4.5 has ``scene.node_tree`` (on with ``use_nodes``)
  ending in a Composite node; 5.0 has ``scene.compositing_node_group``, a node
  group ending in a Group Output;
- the File Output node: 4.5 has ``base_path`` and ``file_slots``; 5.0 has
  ``directory``, ``file_name``, ``file_output_items`` and ``format.media_type``;
- the Switch node: a ``check`` property in 4.5, a "Switch" input in 5.0;
- F-curves: 5.0's slotted actions keep them in a channelbag per slot
  (``Action.fcurves`` is gone); 4.5 has channelbags too, and ``Action.fcurves``
  for legacy (layer-less) actions;
- engine names: EEVEE is ``BLENDER_EEVEE_NEXT`` in 4.5, ``BLENDER_EEVEE`` in 5.0;
- bpy as a Python module (4.5) can hang at process exit while the add-on is
  registered: ``unregister_at_exit`` avoids it.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable
from typing import Any

import bpy

VERSION: tuple[int, int, int] = tuple(bpy.app.version)  # type: ignore[assignment]
# Before 5.0: the compositor is the scene's own tree and File Output has slots.
IS_4X = VERSION < (5, 0, 0)

ENGINE_EEVEE = "BLENDER_EEVEE_NEXT" if IS_4X else "BLENDER_EEVEE"
ENGINE_CYCLES = "CYCLES"
ENGINE_WORKBENCH = "BLENDER_WORKBENCH"


# -- the scene's compositor -------------------------------------------------------------

def compositor_tree(scene: Any) -> Any:
    """The node tree the scene composites with, or None when it has none."""
    if IS_4X:
        return scene.node_tree if scene.use_nodes else None
    return scene.compositing_node_group


def compositor_shared_with(scene: Any) -> list[str]:
    """Where else this scene's compositor node tree runs, for messages: "the scene
    'B'" for each other scene compositing with it, "the node group 'G'" for each
    node group holding it in a group node (5.0's compositor is a node group any
    number of scenes and groups can use; 4.5's belongs to its scene)."""
    tree = compositor_tree(scene)
    if IS_4X or tree is None:
        return []
    where = [f"the scene {s.name!r}" for s in bpy.data.scenes
             if s != scene and s.compositing_node_group == tree]
    where += [f"the node group {group.name!r}" for group in bpy.data.node_groups
              if group.users and any(getattr(node, "node_tree", None) == tree for node in group.nodes)]
    return where


def add_compositor(scene: Any, name: str, layer: str) -> dict:
    """Give a scene that composites with nothing a compositor whose picture is
    what the render engine made (Render Layers straight to the output), so
    nodes added to it (e.g. a File Output capturing a pass) run along.
    Returns what ``remove_compositor`` needs to put the scene back, as plain
    values (JSON-able: it may be kept in the .blend); ``compositor_tree``
    gives the tree.

    4.5 keeps the compositor in the scene itself (``scene.node_tree``, which
    may hold a tree the user switched off): its nodes are muted while ours
    is on, not deleted. 5.0 gets a new node group. Only names are kept, never
    pointers, so a reload of the data in between can't leave one dangling.
    """
    muted: dict[str, bool] = {}
    tree: Any
    if IS_4X:
        scene.use_nodes = True  # makes Blender's default tree if the scene had none
        tree = scene.node_tree
        muted = {n.name: n.mute for n in tree.nodes}
        for node in tree.nodes:
            node.mute = True  # a switched-off tree must not change the picture
        output = tree.nodes.new("CompositorNodeComposite")
        output.name = f"{name} Output"
    else:
        tree = bpy.data.node_groups.new(name, "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        output = tree.nodes.new("NodeGroupOutput")
        scene.compositing_node_group = tree
        name = tree.name  # Blender may have added a suffix
    layers: Any = tree.nodes.new("CompositorNodeRLayers")
    layers.name = f"{name} Layers"
    layers.layer = layer
    tree.links.new(layers.outputs["Image"], output.inputs[0])
    return {"name": name, "nodes": [layers.name, output.name], "muted": muted}


def remove_compositor(scene: Any, made: dict) -> None:
    """Undo ``add_compositor`` (``made`` is what it returned)."""
    if IS_4X:
        tree = scene.node_tree
        if tree is not None:
            for name in made.get("nodes", ()):
                node = tree.nodes.get(name)
                if node is not None:
                    tree.nodes.remove(node)
            for name, mute in made.get("muted", {}).items():
                node = tree.nodes.get(name)
                if node is not None:
                    node.mute = mute
        scene.use_nodes = False
        return
    group = bpy.data.node_groups.get(made.get("name", ""))
    if group is not None and scene.compositing_node_group == group:
        scene.compositing_node_group = None
    if group is not None:
        bpy.data.node_groups.remove(group)


class TemporaryCompositor:
    """``add_compositor`` for one render run: ``remove()`` puts the scene back."""

    def __init__(self, scene: Any, name: str, layer: str) -> None:
        self._made = add_compositor(scene, name, layer)
        self.name = self._made["name"]
        self.tree: Any = compositor_tree(scene)

    def remove(self, scene: Any) -> None:
        remove_compositor(scene, self._made)


# -- nodes ------------------------------------------------------------------------------

def setup_pass_outputs(node: Any, folder: str, file_name: str, item_names: list[str]) -> list[str]:
    """Make a File Output node write each of its inputs ``item_names`` as a
    32-bit float RGBA EXR, ZIP-compressed (lossless: data passes survive bit
    for bit). Returns each input's file stem: the files are
    ``<folder>/<stem>[frame].exr`` (5.0 leaves the frame number out of a
    still render's file)."""
    fmt = node.format
    if fmt is None:
        raise RuntimeError("Blender made a File Output node without format settings")
    if IS_4X:
        node.base_path = folder + os.sep
    else:
        node.directory = folder
        node.file_name = file_name
        fmt.media_type = "IMAGE"
    fmt.file_format = "OPEN_EXR"
    fmt.color_depth = "32"
    fmt.color_mode = "RGBA"
    fmt.exr_codec = "ZIP"
    stems = [f"{file_name}{name}" for name in item_names]
    for i, (name, stem) in enumerate(zip(item_names, stems, strict=True)):
        if IS_4X:
            if i > 0:
                node.file_slots.new(name)
            node.file_slots[i].path = stem
        else:
            node.file_output_items.new("RGBA", name)  # 5.0 names the file file_name + item
    return stems


def set_switch(switch: Any, on: bool) -> None:
    """Set a compositor Switch node to its On (True) or Off input."""
    if IS_4X:
        switch.check = on
    else:
        switch.inputs["Switch"].default_value = on


# -- animation data ---------------------------------------------------------------------

def action_fcurves(action: Any, slot: Any) -> list:
    """The F-curves an action holds for one slot; with no slot, a legacy
    (4.5, layer-less) action's own list. Never another slot's curves."""
    if action is None:
        return []
    if slot is None:
        return list(getattr(action, "fcurves", ()))  # 5.0: no slot, no curves
    bag = channelbag(action, slot)
    return list(bag.fcurves) if bag is not None else []


def channelbag(action: Any, slot: Any) -> Any:
    """The action's channelbag for slot, or None (nothing keyed in it)."""
    from bpy_extras import anim_utils

    get_bag: Any = anim_utils.action_get_channelbag_for_slot  # 4.4+ and 5.x
    return get_bag(action, slot)


def remove_fcurve(action: Any, slot: Any, fcurve: Any) -> bool:
    """Remove fcurve from the action (its slot's channelbag, or a legacy
    action's own list); True when it was there."""
    if slot is not None:
        bag = channelbag(action, slot)
        curves = bag.fcurves if bag is not None else None
    else:
        curves = getattr(action, "fcurves", None)
    if curves is not None and any(c == fcurve for c in curves):
        curves.remove(fcurve)
        return True
    return False


# -- process exit (bpy as a Python module) ---------------------------------------------

def unregister_at_exit(unregister: Callable[[], None]) -> None:
    """bpy 4.5 as a Python module hangs forever at process exit when registered
    classes hold Python callbacks (they keep bpy alive through interpreter
    teardown, so its sound thread is never stopped and a C++ destructor waits
    for it). Unregistering first avoids it; Blender itself unregisters add-ons
    before it exits, and 5.0 has no such hang."""
    if IS_4X and not bpy.app.binary_path:
        atexit.register(unregister)


def cancel_unregister_at_exit(unregister: Callable[[], None]) -> None:
    atexit.unregister(unregister)
