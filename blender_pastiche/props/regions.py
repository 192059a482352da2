"""Style regions (``scene.pastiche.regions``): parts of the frame with their own mix.

Each region names what it covers (an object, a collection's objects, a
material, or a painted mask image), has its own per-style weights (the same
sliders as the scene's, style_items.py) and a strength; weights and strength
animate like any property. The rest of the frame keeps the scene's mix.

Regions are a collection, so their keyframes live under index paths
(``pastiche.regions[1].strength``): removing or moving a region rewrites the
paths of every region after it (animation.py), so no curve changes region.

Turning regions on needs a Cryptomatte pass captured in the compositor;
the render layer subscribes to REGIONS_CHANGED_HOOKS to install or remove
that capture on the main thread whenever what the regions need changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, FloatProperty, PointerProperty

from . import animation, style_items

SOURCE_ITEMS = [
    ("OBJECT", "Object", "The pixels of one object (Cryptomatte object pass)", "OBJECT_DATA", 0),
    ("COLLECTION", "Collection", "The pixels of every object in a collection, nested ones included "
     "(Cryptomatte object pass)", "OUTLINER_COLLECTION", 1),
    ("MATERIAL", "Material", "The pixels showing a material (Cryptomatte material pass)", "MATERIAL", 2),
    ("MASK", "Mask Image", "A painted greyscale image: white is inside (the alpha where the image "
     "has transparency)", "IMAGE_DATA", 3),
]
PASS_SOURCES = ("OBJECT", "COLLECTION", "MATERIAL")  # the sources read from a Cryptomatte pass
PREFIX = "pastiche.regions"

# Called with the scene when what the regions need from the render changes
# (a region added, removed, enabled, or its source changed).
REGIONS_CHANGED_HOOKS: list[Callable[[Any], None]] = []


def _owner_scene(item: Any) -> Any:
    scene = getattr(item, "id_data", None)
    return scene if isinstance(scene, bpy.types.Scene) else bpy.context.scene


def regions_changed(scene: Any) -> None:
    for hook in REGIONS_CHANGED_HOOKS:
        hook(scene)


def _on_source_changed(self: Any, context: Any) -> None:
    regions_changed(_owner_scene(self))
    style_items.on_setting_changed(self, context)


class PASTICHE_PG_region(bpy.types.PropertyGroup):
    """One style region; ``name`` (built in) is what the list shows."""

    enabled: BoolProperty(  # type: ignore[valid-type]
        name="Enabled", default=True, update=_on_source_changed,
        description="Paint this region with its own mix (off: it keeps the scene's mix)")
    source: EnumProperty(  # type: ignore[valid-type]
        name="Source", items=SOURCE_ITEMS, default="OBJECT", update=_on_source_changed,
        description="What the region covers")
    object: PointerProperty(  # type: ignore[valid-type]
        name="Object", type=bpy.types.Object, update=_on_source_changed,
        description="The object this region covers")
    collection: PointerProperty(  # type: ignore[valid-type]
        name="Collection", type=bpy.types.Collection, update=_on_source_changed,
        description="The collection whose objects (nested collections included) this region covers")
    material: PointerProperty(  # type: ignore[valid-type]
        name="Material", type=bpy.types.Material, update=_on_source_changed,
        description="The material this region covers")
    image: PointerProperty(  # type: ignore[valid-type]
        name="Mask Image", type=bpy.types.Image, update=_on_source_changed,
        description="Greyscale mask, white inside: the alpha channel where the image has "
                    "transparency, else the mean of R, G and B; resized to the frame")
    styles: CollectionProperty(type=style_items.PASTICHE_PG_style)  # type: ignore[valid-type]
    strength: FloatProperty(  # type: ignore[valid-type]
        name="Strength", default=1.0, min=0.0, max=1.0, subtype="FACTOR",
        update=style_items.on_setting_changed,
        description="Blend between the original (0) and this region's stylized pixels (1)")

    def target(self) -> Any:
        """The datablock the region's source points to (None if not chosen)."""
        return {"OBJECT": self.object, "COLLECTION": self.collection, "MATERIAL": self.material,
                "MASK": self.image}[self.source]


def region_prefix(index: int) -> str:
    """The data path of region ``index``'s style sliders."""
    return f"{PREFIX}[{index}].styles"


def sync_region_styles(scene: Any, names: list[str], titles: dict[str, str] | None = None) -> None:
    """Give every region one slider per style of the model (keyframes follow)."""
    for i, region in enumerate(scene.pastiche.regions):
        first = names[0] if names else None
        style_items.sync_item_names(scene, region.styles, region_prefix(i), names, titles, first)


def add_region(scene: Any, name: str = "", source: str = "OBJECT", target: Any = None) -> Any:
    """A new region at the end of the list, on the model's first style, active."""
    settings = scene.pastiche
    region = settings.regions.add()
    index = len(settings.regions) - 1
    region.name = name or f"Region {index + 1}"
    region.source = source
    if target is not None:
        setattr(region, {"OBJECT": "object", "COLLECTION": "collection", "MATERIAL": "material",
                         "MASK": "image"}[source], target)
    names = [it.name for it in settings.styles if it.available]
    titles = {it.name: it.title for it in settings.styles}
    style_items.sync_item_names(scene, region.styles, region_prefix(index), names, titles,
                                names[0] if names else None)
    settings.active_region_index = index
    regions_changed(scene)
    return region


def remove_region(scene: Any, index: int) -> None:
    """Remove region ``index`` and its keyframes; later regions keep theirs."""
    settings = scene.pastiche
    count = len(settings.regions)
    if not 0 <= index < count:
        raise IndexError(f"no style region at index {index}")
    animation.remove_item_curves(scene, PREFIX, index, count)
    settings.regions.remove(index)
    settings.active_region_index = min(settings.active_region_index, max(0, count - 2))
    regions_changed(scene)


def move_region(scene: Any, index: int, to: int) -> None:
    """Move region ``index`` to place ``to``; every region keeps its keyframes."""
    settings = scene.pastiche
    count = len(settings.regions)
    if not (0 <= index < count and 0 <= to < count) or index == to:
        return
    order = list(range(count))
    order.insert(to, order.pop(index))
    animation.move_item_curves(scene, PREFIX, {old: new for new, old in enumerate(order)})
    settings.regions.move(index, to)
    settings.active_region_index = to
    regions_changed(scene)


def region_mix(scene: Any, index: int, frame: float | None = None) -> dict[str, float] | None:
    """Region ``index``'s normalized mix at ``frame``; None when all zero."""
    region = scene.pastiche.regions[index]
    return style_items.normalized(style_items.item_weights(scene, region.styles, region_prefix(index),
                                                           frame))


def region_strength(scene: Any, index: int, frame: float | None = None) -> float:
    region = scene.pastiche.regions[index]
    value = animation.value_at(scene, f"{PREFIX}[{index}].strength", region.strength, frame)
    return min(1.0, max(0.0, value))


def enabled_regions(scene: Any) -> list[tuple[int, Any]]:
    """(index, region) of the regions that are on."""
    settings = getattr(scene, "pastiche", None)
    if settings is None:
        return []
    return [(i, r) for i, r in enumerate(settings.regions) if r.enabled]


def needs_cryptomatte(scene: Any) -> tuple[bool, bool]:
    """Whether the enabled regions read the (object, material) Cryptomatte pass."""
    sources = {r.source for _, r in enabled_regions(scene)}
    return bool(sources & {"OBJECT", "COLLECTION"}), "MATERIAL" in sources
