"""Scene settings (``scene.pastiche``): model, per-style weight sliders, options.

Each style of the model is an item of ``scene.pastiche.styles`` with an
animatable ``weight``; the user keyframes sliders like any property and the
F-curves drive the mix frame by frame. Blender stores those F-curves under
index paths (``pastiche.styles[2].weight``), so when the model's style list
changes, ``sync_styles`` rewrites the paths to follow each style by name
(style_items.py, animation.py). ``scene.pastiche.regions`` holds the style
regions (regions.py), each with sliders of its own that follow the model too.

Public helpers for the other modules:
- ``effective_weights(scene, frame=None)``: normalized weights at a frame, or
  None when every weight is zero ("no style": pass pixels through).
- ``stylize_options(scene)``: keyword options for ``worker_client.stylize``.
- ``model_path(scene)``: the model file in use, or None.
- ``sync_styles(scene)`` / ``sync_style_names(scene, names)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from ..io.model_header import ModelHeaderError, read_model_header
from ..support import core_files as core_import
from . import animation, preferences, style_items
from . import regions as regions_props

# The core's limit (pastiche_core.temporal.coherence.MAX_HISTORY; tests/blender checks they agree).
MAX_HISTORY = 4
# The core's brush size range (pastiche_core.inference.brush.MIN_BRUSH/MAX_BRUSH; tests check).
BRUSH_MIN, BRUSH_MAX = 0.5, 4.0

STYLES_PREFIX = "pastiche.styles"

DEVICE_ITEMS = [
    ("DEFAULT", "Preferences", "Use the device chosen in the add-on preferences"),
    *preferences.DEVICE_ITEMS,
]


def _on_model_changed(self: Any, context: Any) -> None:
    sync_styles(context.scene if context and context.scene else _owner_scene(self))


SETTING_CHANGED_HOOKS = style_items.SETTING_CHANGED_HOOKS
_on_setting_changed = style_items.on_setting_changed


def _on_temporal_changed(self: Any, context: Any) -> None:
    # The Vector pass is what temporal mode reads: turn it on where the user sees it.
    if self.temporal:
        enable_vector_pass(_owner_scene(self))


def vector_view_layer(scene: Any) -> Any:
    """The view layer whose Vector pass temporal mode reads: the first one that renders."""
    for layer in scene.view_layers:
        if layer.use:
            return layer
    return scene.view_layers[0]


def enable_vector_pass(scene: Any) -> None:
    """Turn on the Vector pass the temporal mode reads (the checkbox does this)."""
    vector_view_layer(scene).use_pass_vector = True


def _owner_scene(settings: Any) -> Any:
    scene = getattr(settings, "id_data", None)
    return scene if isinstance(scene, bpy.types.Scene) else bpy.context.scene


PASTICHE_PG_style = style_items.PASTICHE_PG_style


class PASTICHE_PG_settings(bpy.types.PropertyGroup):
    model_source: EnumProperty(  # type: ignore[valid-type]
        name="Model", default="BUNDLED", update=_on_model_changed,
        items=[("BUNDLED", "Bundled", "The model shipped with the add-on"),
               ("FILE", "File", "A model file (.safetensors) of your own")])
    model_path: StringProperty(  # type: ignore[valid-type]
        name="Model File", subtype="FILE_PATH", update=_on_model_changed,
        description="A Pastiche model (.safetensors) made with 'pastiche train'")
    model_error: StringProperty(name="Model Error", options={"SKIP_SAVE"})  # type: ignore[valid-type]
    styles: CollectionProperty(type=PASTICHE_PG_style)  # type: ignore[valid-type]
    active_style_index: IntProperty(name="Active Style", default=0)  # type: ignore[valid-type]
    strength: FloatProperty(  # type: ignore[valid-type]
        name="Strength", default=1.0, min=0.0, max=1.0, subtype="FACTOR", update=_on_setting_changed,
        description="Blend between the original (0) and the fully stylized image (1)")
    preserve_color: BoolProperty(  # type: ignore[valid-type]
        name="Preserve Colour", default=False, update=_on_setting_changed,
        description="Keep the original colours, take only the style's light and texture")
    # Brush Size and Detail (pastiche_core/inference/brush.py): plain floats, so
    # they animate like strength and every frame's render reads its own value.
    brush_size: FloatProperty(  # type: ignore[valid-type]
        name="Brush Size", default=1.0, min=BRUSH_MIN, max=BRUSH_MAX, soft_max=3.0, step=10,
        update=_on_setting_changed,
        description="Stroke scale: 1 paints strokes as trained, 2 twice as large (the network "
                    "runs at half the size, about 4x faster); below 1 finer")
    detail: FloatProperty(  # type: ignore[valid-type]
        name="Detail", default=0.0, min=0.0, max=1.0, subtype="FACTOR", update=_on_setting_changed,
        description="How much of the original's fine structure is put back into the stylized result")
    tile_size: IntProperty(  # type: ignore[valid-type]
        name="Tile Size", default=0, min=0, max=16384, subtype="PIXEL",
        description="0: automatic (tiles only very large images); otherwise tiles of this size "
                    "(at least 64) to bound GPU memory")
    device: EnumProperty(name="Device", items=DEVICE_ITEMS, default="DEFAULT")  # type: ignore[valid-type]
    enabled: BoolProperty(  # type: ignore[valid-type]
        name="Stylize Renders", default=False,
        description="Stylize each animation frame file as Blender writes it (Ctrl+F12, "
                    "blender -b -a): image sequences only")
    keep_original: BoolProperty(  # type: ignore[valid-type]
        name="Keep Unstylized Frames", default=False,
        description="Also keep every frame as rendered, in an 'unstylized' folder next to the output")
    temporal: BoolProperty(  # type: ignore[valid-type]
        name="Temporal Coherence", default=False, update=_on_temporal_changed,
        description="Render Stylized Animation only: blend each frame with the previous frame's "
                    "stylization along Blender's motion vectors (turns on the Vector pass), so "
                    "strokes stay on surfaces instead of flickering")
    temporal_history: IntProperty(  # type: ignore[valid-type]
        name="History", default=1, min=1, max=MAX_HISTORY,
        description="Earlier frames blended into each frame: more is steadier but lags on changes "
                    "the motion vectors don't show (lights, shadows); each render primes this "
                    "many extra frames before its first one")
    live_preview: BoolProperty(  # type: ignore[valid-type]
        name="Live Preview", default=False, update=_on_setting_changed,
        description="Re-stylize the preview image at reduced size when a setting changes")
    preview_source: PointerProperty(  # type: ignore[valid-type]
        name="Preview Source", type=bpy.types.Image, update=_on_setting_changed,
        description="The image the live preview stylizes")
    preview_size: IntProperty(  # type: ignore[valid-type]
        name="Preview Size", default=256, min=32, max=2048, subtype="PIXEL",
        description="Long side of the live preview")
    # Style regions (props/regions.py): parts of the frame with their own mix.
    regions: CollectionProperty(type=regions_props.PASTICHE_PG_region)  # type: ignore[valid-type]
    active_region_index: IntProperty(name="Active Region", default=0)  # type: ignore[valid-type]
    # What the add-on changed in the scene to capture the regions' pass, as
    # JSON, so it can be put back when no region needs it (render/regions.py).
    region_capture_state: StringProperty(options={"HIDDEN"})  # type: ignore[valid-type]


# -- model and style list ---------------------------------------------------------

def model_path(scene: Any) -> str | None:
    """The model file the scene uses, or None when none is chosen."""
    settings = scene.pastiche
    if settings.model_source == "BUNDLED":
        bundled = core_import.default_model_path()
        if bundled is not None:
            return str(bundled)
    path = settings.model_path.strip()
    return bpy.path.abspath(path) if path else None


def sync_styles(scene: Any) -> bool:
    """Read the model's style list and update the sliders; False on error
    (the message is kept in ``scene.pastiche.model_error`` for the panel)."""
    settings = scene.pastiche
    path = model_path(scene)
    if path is None:
        settings.model_error = "No model: choose a model file"
        return False
    try:
        header = read_model_header(path)
    except (ModelHeaderError, OSError) as e:
        settings.model_error = str(e)
        return False
    settings.model_error = ""
    titles = {name: str(credit.get("title", "")).strip()
              for name, credit in zip(header.styles, header.credits, strict=True)}
    sync_style_names(scene, header.styles, titles)
    return True


def sync_style_names(scene: Any, names: Iterable[str], titles: dict[str, str] | None = None) -> None:
    """Make the sliders match ``names`` (the model's order), keeping every
    style's weight and keyframes attached to it by name. Styles the model
    no longer has stay (marked unavailable) while they have keyframes.
    ``titles``: the paintings' titles by style name, for the slider labels.
    Every style region's sliders follow too."""
    names = list(names)
    settings = scene.pastiche
    # A model none of whose styles were here before (the first, or one replacing
    # another) starts on its first style, not on an all-zero "no style" mix.
    style_items.sync_item_names(scene, settings.styles, STYLES_PREFIX, names, titles,
                                names[0] if names else None)
    settings.active_style_index = min(settings.active_style_index, max(0, len(settings.styles) - 1))
    regions_props.sync_region_styles(scene, names, titles)


def remove_style(scene: Any, index: int) -> None:
    """Remove a slider and its keyframes; later sliders' curves move up."""
    settings = scene.pastiche
    animation.remove_item_curves(scene, STYLES_PREFIX, index, len(settings.styles))
    settings.styles.remove(index)
    settings.active_style_index = min(settings.active_style_index, max(0, len(settings.styles) - 1))


# -- animation data (animation.py) ---------------------------------------------------

active_fcurves = animation.active_fcurves
# Every F-curve and driver on a Pastiche setting (the name predates regions).
style_fcurves = animation.pastiche_fcurves


# -- what the other modules call ----------------------------------------------------

def raw_weights(scene: Any, frame: float | None = None) -> dict[str, float]:
    """Un-normalized slider values of the available styles at ``frame``
    (default: the current frame), from the F-curves where there are any."""
    return style_items.item_weights(scene, scene.pastiche.styles, STYLES_PREFIX, frame)


def effective_weights(scene: Any, frame: float | None = None) -> dict[str, float] | None:
    """The normalized style mix at ``frame``; None when all weights are zero
    (or there are no styles): then nothing is stylized."""
    return style_items.normalized(raw_weights(scene, frame))


def device_name(scene: Any) -> str:
    choice = scene.pastiche.device
    if choice == "DEFAULT":
        return preferences.get().device.lower()
    return choice.lower()


def stylize_options(scene: Any) -> dict[str, Any]:
    """Keyword options for ``worker_client.stylize`` (model, device, precision,
    strength, preserve_color, brush_size, detail, tile). Colour space and alpha are the caller's:
    they depend on where the pixels come from."""
    settings = scene.pastiche
    tile = int(settings.tile_size)
    return {
        "model": model_path(scene),
        "device": device_name(scene),
        "precision": preferences.get().precision.lower(),
        "strength": float(settings.strength),
        "preserve_color": bool(settings.preserve_color),
        "brush_size": float(settings.brush_size),
        "detail": float(settings.detail),
        "tile": None if tile == 0 else max(64, tile),
    }


def sync_all_scenes() -> None:
    """Give every scene its model's sliders: a new scene on the bundled model
    has none until its style list is read, and renders of it would silently
    pass through. A model file may also have changed since the .blend was
    saved. Reads only the models' headers (milliseconds)."""
    for scene in bpy.data.scenes:
        settings = getattr(scene, "pastiche", None)
        if settings is not None and (settings.styles or settings.model_path
                                     or settings.model_source == "BUNDLED"):
            sync_styles(scene)


def on_load_post(*_args: Any) -> None:
    sync_all_scenes()


on_load_post = bpy.app.handlers.persistent(on_load_post)


def sync_all_scenes_soon() -> None:
    """Timer callback for register(): the add-on may be enabled in a running
    session, where no load_post follows and data can't change during
    register() itself. Returns None: runs once."""
    try:
        sync_all_scenes()
    except AttributeError:  # data not reachable yet (restricted context): load_post will do it
        pass
