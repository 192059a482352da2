"""The scene's F-curves on Pastiche settings, and keeping them on their items.

Blender stores the curves of collection items under index paths
(``pastiche.styles[2].weight``, ``pastiche.regions[1].styles[0].weight``):
removing, reordering or rebuilding a collection would leave every curve on
whatever item now sits at its old index. The helpers here rewrite the paths
so each curve follows its item, and evaluate a property at any frame from its
curve (render handlers and temporal mode need frames other than the current).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

from ..support import compat


def item_path(prefix: str) -> re.Pattern[str]:
    """Matches ``<prefix>[index].<rest>``: the curves of one collection's items."""
    return re.compile(rf"^{re.escape(prefix)}\[(\d+)\]\.(.+)$")


def active_fcurves(scene: Any) -> list:
    """F-curves of the scene's active action (the ones the sliders show)."""
    ad = scene.animation_data
    if ad is None or ad.action is None:
        return []
    return compat.action_fcurves(ad.action, getattr(ad, "action_slot", None))


def pastiche_fcurves(scene: Any) -> Iterator[Any]:
    """Every F-curve and driver of the scene on a Pastiche setting: the
    active action, NLA strips' actions, and drivers."""
    ad = scene.animation_data
    if ad is None:
        return
    seen: set[int] = set()
    sources = [(ad.action, getattr(ad, "action_slot", None))]
    for track in ad.nla_tracks:
        for strip in track.strips:
            sources.append((strip.action, getattr(strip, "action_slot", None)))
    for action, slot in sources:
        if action is None:
            continue
        for fc in compat.action_fcurves(action, slot):
            if fc.as_pointer() not in seen and fc.data_path.startswith("pastiche."):
                seen.add(fc.as_pointer())
                yield fc
    for fc in ad.drivers:
        if fc.data_path.startswith("pastiche."):
            yield fc


def remove_fcurve(scene: Any, fc: Any) -> None:
    ad = scene.animation_data
    for drv in ad.drivers:
        if drv == fc:
            ad.drivers.remove(fc)
            return
    sources = [(ad.action, getattr(ad, "action_slot", None))]
    sources += [(s.action, getattr(s, "action_slot", None)) for t in ad.nla_tracks for s in t.strips]
    for action, slot in sources:
        if action is not None and compat.remove_fcurve(action, slot, fc):
            return


def animated_indices(scene: Any, prefix: str) -> set[int]:
    """Indices of the items under ``prefix`` that have a curve."""
    pattern = item_path(prefix)
    return {int(m.group(1)) for fc in pastiche_fcurves(scene) if (m := pattern.match(fc.data_path))}


def move_item_curves(scene: Any, prefix: str, mapping: dict[int, int]) -> None:
    """Item ``old`` is now at ``mapping[old]``: its curves follow it."""
    pattern = item_path(prefix)
    for fc in list(pastiche_fcurves(scene)):
        m = pattern.match(fc.data_path)
        if m and int(m.group(1)) in mapping:
            fc.data_path = f"{prefix}[{mapping[int(m.group(1))]}].{m.group(2)}"


def remove_item_curves(scene: Any, prefix: str, index: int, count: int) -> None:
    """Before item ``index`` of ``count`` is removed: delete its curves, move
    the later items' curves up one."""
    pattern = item_path(prefix)
    for fc in list(pastiche_fcurves(scene)):
        m = pattern.match(fc.data_path)
        if m and int(m.group(1)) == index:
            remove_fcurve(scene, fc)
    move_item_curves(scene, prefix, {i: i - 1 for i in range(index + 1, count)})


def value_at(scene: Any, path: str, current: float, frame: float | None = None) -> float:
    """The property at ``path`` at ``frame`` (default: the current frame),
    from its F-curve where it has one, else ``current``; NaN becomes 0."""
    if frame is None:
        frame = scene.frame_current + scene.frame_subframe
    curves = {fc.data_path: fc for fc in active_fcurves(scene)}
    fc = curves.get(path)
    value = fc.evaluate(frame) if fc is not None and not fc.mute else current
    return float(value) if math.isfinite(value) else 0.0
