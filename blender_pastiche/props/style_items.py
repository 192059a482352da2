"""Per-style weight sliders: one item per style of the model, with an
animatable ``weight``. The scene's mix (``scene.pastiche.styles``) and each
style region's mix (``scene.pastiche.regions[i].styles``) are lists of these,
kept in the model's order by ``sync_item_names``, which also moves each
style's keyframes with it (animation.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty

from . import animation

# Called with the scene whenever a setting that changes the stylized look changes.
# Layers above this one subscribe (the live preview appends its schedule()).
SETTING_CHANGED_HOOKS: list[Callable[[Any], None]] = []


def on_setting_changed(self: Any, context: Any) -> None:
    scene = getattr(context, "scene", None)
    if scene is None:
        return
    for hook in SETTING_CHANGED_HOOKS:
        hook(scene)


class PASTICHE_PG_style(bpy.types.PropertyGroup):
    """One style of the model; ``name`` (built in) is the style's name."""

    weight: FloatProperty(  # type: ignore[valid-type]
        name="Weight", description="How much of this style goes into the mix (normalized over all styles)",
        default=0.0, min=0.0, soft_max=1.0, update=on_setting_changed)
    available: BoolProperty(  # type: ignore[valid-type]
        name="Available", default=True,
        description="False when the current model has no style of this name (kept for its keyframes)")
    title: StringProperty(  # type: ignore[valid-type]
        name="Title", description="The painting's title, from the model's credit (the slider's label)")

    @property
    def label(self) -> str:
        """What the slider shows: the painting's title, else the style's name."""
        return self.title or self.name


def sync_item_names(scene: Any, items: Any, prefix: str, names: list[str],
                    titles: dict[str, str] | None = None, first: str | None = None) -> None:
    """Make ``items`` (a collection of PASTICHE_PG_style at data path
    ``prefix``) match ``names``, keeping every style's weight and keyframes
    attached to it by name. Styles no longer in ``names`` stay (marked
    unavailable) while they have keyframes. ``first``: the style that gets
    weight 1 when none of ``names`` was there before (else all start at 0)."""
    old = [(it.name, it.weight) for it in items]
    animated = animation.animated_indices(scene, prefix)
    keep_missing = [n for i, (n, _) in enumerate(old) if n not in names and i in animated]
    new_names = names + keep_missing
    if [n for n, _ in old] != new_names or not all(it.available == (it.name in names) for it in items):
        new_index = {n: i for i, n in enumerate(new_names)}
        animation.move_item_curves(scene, prefix, {i: new_index[n] for i, (n, _) in enumerate(old)
                                                   if n in new_index})
        values = dict(old)
        first_load = not any(n in values for n in names)
        items.clear()
        for name in new_names:
            item = items.add()
            item.name = name
            item.weight = values.get(name, 1.0 if first_load and name == first else 0.0)
            item.available = name in names
    if titles is not None:
        for item in items:
            title = titles.get(item.name, "")
            if item.title != title:
                item.title = title


def item_weights(scene: Any, items: Any, prefix: str, frame: float | None = None) -> dict[str, float]:
    """Un-normalized weights of the available styles in ``items`` at
    ``frame`` (default: the current frame), from their F-curves where there are any."""
    curves = {fc.data_path for fc in animation.active_fcurves(scene)}
    out: dict[str, float] = {}
    for i, item in enumerate(items):
        if not item.available:
            continue
        path = f"{prefix}[{i}].weight"
        by_name = f'{prefix}["{item.name}"].weight'
        if path not in curves and by_name in curves:
            path = by_name
        out[item.name] = max(0.0, animation.value_at(scene, path, item.weight, frame))
    return out


def normalized(weights: dict[str, float]) -> dict[str, float] | None:
    """The mix summing to 1; None when every weight is zero ("no style")."""
    total = sum(weights.values())
    if total <= 0.0:
        return None
    return {name: w / total for name, w in weights.items()}
