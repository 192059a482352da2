"""The "Pastiche Stylize" compositor node and its two-pass frame pipeline.

Python can't run inside the compositor, so the node is a custom group node
whose own tree is:

    Group Input ──┬─────────────────────────── Switch(Off) ──> Group Output
      (Image, Mask)└─> File Output "Capture"   Image "Stylized" ─> Switch(On)

and a frame is made in two passes:
pass 1 renders normally with Capture on, which writes the node's input to an
EXR; the worker stylizes it and the result fills the Stylized image; pass 2
mutes every Render Layers node (the engine is skipped) and composites again
with the Switch on, so downstream nodes and the Render Result see the
stylized pixels. Outside a Pastiche render the node passes its input through.

The node's properties (strength, brush size, detail, its own style weights, or a link to the
scene's) are ordinary node properties, so they animate with keyframes on
the compositor tree and are read per frame after scene.frame_set().

The Mask input (0-1, default 1: everywhere) says where the style goes: the
node's mix and strength apply where the mask is white and the input shows
where it is black. Capture writes it next to the image in pass 1, and the
frame goes to the worker as one style region (the mask, the node's mix and
strength) over a base of strength 0 (the input unchanged; regions.py).
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
import uuid
from typing import Any, cast

import bpy
import numpy as np
from bpy.props import BoolProperty, CollectionProperty, FloatProperty, StringProperty

from ..props import scene as properties
from ..render import hooks as render_hooks
from ..render import passes
from ..render.compositor import NODE_IDNAME, render_layer_nodes, stylize_nodes
from ..support import compat

NODE_LABEL = "Pastiche Stylize"


class PasticheNodeStyleWeight(bpy.types.PropertyGroup):
    # `name` (built in) holds the style name.
    weight: FloatProperty(  # type: ignore[valid-type]
                          name="Weight", min=0.0, max=1.0, default=0.0,
                          description="How much of this style the node mixes in (animatable)")


def _node_weights(node) -> dict[str, float]:
    total = sum(max(0.0, it.weight) for it in node.style_weights)
    if total <= 0:
        return {}
    return {it.name: it.weight / total for it in node.style_weights if it.weight > 0}


class PasticheStylizeNode(bpy.types.CompositorNodeCustomGroup):
    """Stylizes its input with Pastiche (needs Render > Render Stylized Animation)."""
    bl_idname = NODE_IDNAME
    bl_label = NODE_LABEL

    use_scene_weights: BoolProperty(  # type: ignore[valid-type]
        name="Scene Mix", default=True,
        description="Use the scene's Pastiche style mix; off: this node's own weights")
    style_weights: CollectionProperty(type=PasticheNodeStyleWeight)  # type: ignore[valid-type]
    strength: FloatProperty(  # type: ignore[valid-type]
        name="Strength", min=0.0, max=1.0, default=1.0,
        description="Blend between the input (0) and the stylized result (1)")
    brush_size: FloatProperty(  # type: ignore[valid-type]
        name="Brush Size", min=properties.BRUSH_MIN, max=properties.BRUSH_MAX, soft_max=3.0, default=1.0,
        step=10,
        description="Stroke scale: 1 as trained, 2 twice as large (animatable)")
    detail: FloatProperty(  # type: ignore[valid-type]
        name="Detail", min=0.0, max=1.0, default=0.0, subtype="FACTOR",
        description="How much of the input's fine structure is put back (animatable)")
    uid: StringProperty(options={"HIDDEN"})  # type: ignore[valid-type]

    def init(self, context):
        self.uid = uuid.uuid4().hex[:12]
        self.node_tree = build_group_tree(self.uid)
        fill_styles_from_scene(self, getattr(context, "scene", None) or bpy.context.scene)

    def copy(self, node):
        self.uid = uuid.uuid4().hex[:12]
        self.node_tree = build_group_tree(self.uid)

    def free(self):
        tree = self.node_tree
        if tree is not None and tree.users <= 1:
            image = _stylized_image_node(tree).image
            bpy.data.node_groups.remove(tree)
            if image is not None and image.users == 0:
                bpy.data.images.remove(image)

    def draw_buttons(self, context, layout):
        layout.prop(self, "strength")
        layout.prop(self, "brush_size")
        layout.prop(self, "detail")
        layout.prop(self, "use_scene_weights")
        if not self.use_scene_weights:
            for item in self.style_weights:
                layout.prop(item, "weight", text=item.name)
            if not _node_weights(self):
                layout.label(text="All weights are zero: passes its input on", icon="INFO")
            layout.operator(PASTICHE_OT_node_sync_styles.bl_idname, icon="FILE_REFRESH")

    def weights(self, scene) -> dict[str, float] | None:
        """This frame's normalized mix; None when it is all zero (no style:
        the node passes its input on, and the frame is counted and reported
        as passed through, exactly like the scene's all-zero mix)."""
        if self.use_scene_weights:
            return render_hooks.frame_weights(scene)
        return _node_weights(self) or None


def fill_styles_from_scene(node, scene) -> None:
    """Give the node one weight per style of the scene's model (keeps existing values)."""
    settings = getattr(scene, "pastiche", None) if scene is not None else None
    names = [it.name for it in getattr(settings, "styles", [])] if settings is not None else []
    current = {it.name: it.weight for it in node.style_weights}
    if names == list(current):
        return
    node.style_weights.clear()
    for i, name in enumerate(names):
        item = node.style_weights.add()
        item.name = name
        item.weight = current.get(name, 1.0 if i == 0 else 0.0)


class PASTICHE_OT_node_sync_styles(bpy.types.Operator):
    """Match this node's style list to the scene's model"""
    bl_idname = "pastiche.node_sync_styles"
    bl_label = "Sync Styles"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        node = getattr(context, "node", None)
        if node is None or node.bl_idname != NODE_IDNAME:
            self.report({"ERROR"}, "select a Pastiche Stylize node")
            return {"CANCELLED"}
        fill_styles_from_scene(node, context.scene)
        return {"FINISHED"}


# -- the group's inner tree -------------------------------------------------------


CAPTURE_FILE = "capture_"
CAPTURED = ("Image", "Mask")  # the group's inputs, written by Capture in pass 1


def capture_folder(uid: str) -> str:
    return os.path.join(tempfile.gettempdir(), "pastiche-capture", uid)


def build_group_tree(uid: str) -> bpy.types.CompositorNodeTree:
    # node_groups.new / nodes.new return the type named by their string argument.
    tree = cast(bpy.types.CompositorNodeTree,
                bpy.data.node_groups.new(f".Pastiche Stylize {uid}", "CompositorNodeTree"))
    interface = tree.interface
    if interface is None:
        raise RuntimeError("Blender made a node group without an interface")
    interface.new_socket("Image", in_out="INPUT", socket_type="NodeSocketColor")
    mask: Any = interface.new_socket("Mask", in_out="INPUT", socket_type="NodeSocketFloat")
    mask.default_value, mask.min_value, mask.max_value = 1.0, 0.0, 1.0
    mask.description = "Where the style applies: white stylized, black the input unchanged"
    interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    nodes, links = tree.nodes, tree.links
    group_in = nodes.new("NodeGroupInput")
    group_out = nodes.new("NodeGroupOutput")

    capture = cast(bpy.types.CompositorNodeOutputFile, nodes.new("CompositorNodeOutputFile"))
    capture.name = capture.label = "Capture"
    capture.mute = True  # only on during pass 1
    compat.setup_pass_outputs(capture, capture_folder(uid), CAPTURE_FILE, list(CAPTURED))
    # Stubs: a node's inputs/outputs are never None.
    links.new(group_in.outputs[0], capture.inputs[0])  # type: ignore[index]
    links.new(group_in.outputs[1], capture.inputs[1])  # type: ignore[index]

    image = bpy.data.images.new(f".Pastiche Stylized {uid}", 16, 16, alpha=True, float_buffer=True)
    stylized = cast(bpy.types.CompositorNodeImage, nodes.new("CompositorNodeImage"))
    stylized.name = stylized.label = "Stylized"
    stylized.image = image

    switch = nodes.new("CompositorNodeSwitch")
    switch.name = switch.label = "Use Stylized"
    links.new(group_in.outputs[0], switch.inputs["Off"])
    links.new(stylized.outputs["Image"], switch.inputs["On"])  # type: ignore[index]
    links.new(switch.outputs[0], group_out.inputs[0])
    _set_switch(switch, False)
    for i, n in enumerate((group_in, capture, stylized, switch, group_out)):
        n.location = (i * 200, -150 * (n is capture))
    return tree


def _set_switch(switch, on: bool) -> None:
    compat.set_switch(switch, on)


def _stylized_image_node(tree):
    return tree.nodes["Stylized"]


# -- the two-pass frame ------------------------------------------------------------


def _capture_files(node, item: str) -> list[str]:
    folder = capture_folder(node.uid)
    pattern = re.compile(rf"^{re.escape(CAPTURE_FILE + item)}\d*\.exr$")
    files = [f for f in glob.glob(os.path.join(glob.escape(folder), "*.exr"))
             if pattern.match(os.path.basename(f))]
    if not files and item == "Image":  # a node made before the Mask input: one unnamed file
        files = glob.glob(os.path.join(glob.escape(folder), "*.exr"))
    return sorted(files, key=os.path.getmtime)


def _read_capture(node) -> np.ndarray:
    """The node's input as captured in pass 1: float32 H x W x 4, top row first,
    scene-linear premultiplied (what the compositor works in)."""
    files = _capture_files(node, "Image")
    if not files:
        raise RuntimeError(f"the node {node.name!r} captured no input: is it connected to a render?")
    image = bpy.data.images.load(files[-1], check_existing=False)
    try:
        w, h = image.size
        flat = np.empty(w * h * 4, dtype=np.float32)
        image.pixels.foreach_get(flat)  # type: ignore[attr-defined]  # stubs: pixels is a float
    finally:
        bpy.data.images.remove(image)
    return flat.reshape(h, w, 4)[::-1].copy()


def read_mask(node) -> np.ndarray | float:
    """The node's Mask in pass 1: H x W float32 0-1 (top row first) when
    something is linked to it, else its value (1 by default: everywhere).
    Read raw (a grey value is data, not colour)."""
    socket = node.inputs.get("Mask")
    if socket is None:
        return 1.0  # a node made before the Mask input
    if not socket.is_linked:
        return float(min(1.0, max(0.0, socket.default_value)))
    files = _capture_files(node, "Mask")
    if not files:
        raise RuntimeError(f"the node {node.name!r} captured no mask")
    return np.clip(passes.read_pass(files[-1])[..., 0], 0.0, 1.0)


def mask_request(mask: np.ndarray | float, weights: dict[str, float], strength: float,
                 name: str) -> tuple[float, dict | None]:
    """The node's request for ``mask``: (base strength, regions field or None).
    The style applies where the mask is white: one region with the node's mix
    and strength, over a base of strength 0 (the input where the mask is
    black). The base gets the node's mix too, so a soft mask edge blends the
    same stylization with the input. None: a plain request (a full mask)."""
    if isinstance(mask, float):
        return strength * mask, None
    if float(mask.min()) >= 1.0:
        return strength, None
    if float(mask.max()) <= 0.0:
        return 0.0, None  # nowhere: the input as it is
    regions = {"coverage": np.ascontiguousarray(mask[..., None], dtype=np.float32),
               "mixes": [dict(weights)], "strengths": [float(strength)], "method": "composite",
               "names": [f"the mask of node {name!r}"]}
    return 0.0, regions


def _fill_stylized(node, pixels: np.ndarray) -> None:
    image = _stylized_image_node(node.node_tree).image
    h, w = pixels.shape[:2]
    if tuple(image.size) != (w, h):
        image.scale(w, h)
    # Scene-linear, like every compositor buffer; set before the pixels (a
    # colourspace change afterwards discards them).
    if image.colorspace_settings.name != "Linear Rec.709":
        image.colorspace_settings.name = "Linear Rec.709"
    image.alpha_mode = "PREMUL"
    image.pixels.foreach_set(np.ascontiguousarray(pixels[::-1], dtype=np.float32).ravel())
    image.update()


def _clear_captures(nodes) -> None:
    for node in nodes:
        for f in glob.glob(os.path.join(capture_folder(node.uid), "*")):
            os.remove(f)


class _PassState:
    """Sets the nodes up for pass 1 or 2 and puts everything back afterwards."""

    def __init__(self, scene, nodes):
        self.scene = scene
        self.nodes = nodes
        self.layers = render_layer_nodes(scene)
        self.layer_mutes = [n.mute for n in self.layers]

    def pass_one(self):
        for node in self.nodes:
            node.node_tree.nodes["Capture"].mute = False
            _set_switch(node.node_tree.nodes["Use Stylized"], False)

    def pass_two(self):
        for node in self.nodes:
            node.node_tree.nodes["Capture"].mute = True
            _set_switch(node.node_tree.nodes["Use Stylized"], True)
        for n in self.layers:
            n.mute = True

    def restore(self):
        for node in self.nodes:
            node.node_tree.nodes["Capture"].mute = True
            _set_switch(node.node_tree.nodes["Use Stylized"], False)
        for n, m in zip(self.layers, self.layer_mutes, strict=True):
            n.mute = m


def capture_frame(scene, unstylized_path: str | None = None) -> list[tuple[Any, np.ndarray, Any]]:
    """Pass 1: render the scene's current frame with every Pastiche Stylize node
    capturing its input. Returns (node, its input pixels, its mask: read_mask) per node. Blender's
    state is put back afterwards. unstylized_path: where to save pass 1's
    composite (the unstylized frame)."""
    nodes = stylize_nodes(scene)
    state = _PassState(scene, nodes)
    _clear_captures(nodes)
    try:
        state.pass_one()
        bpy.ops.render.render(write_still=False)
        if unstylized_path:
            bpy.data.images["Render Result"].save_render(unstylized_path, scene=scene)
        return [(node, _read_capture(node), read_mask(node)) for node in nodes]
    finally:
        state.restore()
        _clear_captures(nodes)


def composite_stylized(scene, stylized: dict[str, np.ndarray]) -> None:
    """Pass 2: give each node its stylized pixels (keyed by the node's uid) and
    composite again with the render engine skipped; afterwards the Render
    Result holds the stylized composite."""
    nodes = stylize_nodes(scene)
    for node in nodes:
        if node.uid not in stylized:
            raise RuntimeError(f"the node {node.name!r} was not in the frame's first pass "
                               "(was it added or unmuted during the render?)")
    state = _PassState(scene, nodes)
    try:
        for node in nodes:
            _fill_stylized(node, stylized[node.uid])
        state.pass_two()
        bpy.ops.render.render(write_still=False)
    finally:
        state.restore()


# -- the Add menu ----------------------------------------------------------------------


def draw_add_menu(self, context):
    space = context.space_data
    if getattr(space, "tree_type", "") != "CompositorNodeTree":
        return
    self.layout.separator()
    op = self.layout.operator("node.add_node", text=NODE_LABEL, icon="BRUSHES_ALL")
    op.type = NODE_IDNAME
    op.use_transform = True
