"""Finding Pastiche's nodes in a scene's compositor (the render paths check for
them before rendering; nodes/stylize_node.py defines the node itself)."""

from __future__ import annotations

from ..support import compat

NODE_IDNAME = "PasticheCompositorNodeStylize"


def _walk(tree, seen):
    for node in tree.nodes:
        if node.bl_idname == NODE_IDNAME:
            yield tree, node
        elif node.bl_idname == "CompositorNodeGroup" and node.node_tree and node.node_tree not in seen:
            seen.add(node.node_tree)
            yield from _walk(node.node_tree, seen)


def stylize_nodes(scene) -> list:
    """The unmuted Pastiche Stylize nodes the scene's compositor runs."""
    tree = compat.compositor_tree(scene)
    if tree is None or not scene.render.use_compositing:
        return []
    return [node for _t, node in _walk(tree, set()) if not node.mute]


def render_layer_nodes(scene) -> list:
    """Every Render Layers node of the scene's compositor, inside groups too."""
    tree = compat.compositor_tree(scene)
    found = []
    stack, seen = [tree], set()
    while stack:
        t = stack.pop()
        if t is None or t in seen:
            continue
        seen.add(t)
        for n in t.nodes:
            if n.bl_idname == "CompositorNodeRLayers":
                found.append(n)
            elif n.bl_idname == "CompositorNodeGroup":
                stack.append(n.node_tree)
    return found
