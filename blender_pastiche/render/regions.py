"""Style regions at render time: each frame's masks and mixes for the worker.

The regions (props/regions.py) become, per frame, an H x W x K coverage map
(float32, rows top-down, one soft mask per enabled region) sent with the
frame as the worker's ``regions`` field, with each region's mix and strength
at that frame; the scene's mix is the base where the masks leave room.

Where the masks come from:
- Object, Collection (its objects, nested collections included) and Material
  rows: the Cryptomatte object or material pass (io/cryptomatte.py), whose
  antialiased coverage gives soft edges with no halo or seam. A Render Layers
  and a File Output node in the compositor capture the pass (passes.py). Render
  handlers run on the render thread in the UI, where bpy data must not change,
  so the nodes are put in place on the main thread whenever the regions change
  (sync_capture: on edits through REGIONS_CHANGED_HOOKS, at file load, before
  each run of our own operator) and stay in the file; they are removed, and
  whatever was turned on for them put back, once no region needs them. They
  don't change the rendered picture.
- Mask Image rows: the image's alpha where it has transparency, else the mean
  of its R, G and B (the CLI's --style-map rule), as stored (byte images:
  value / 255), resized to the frame bilinearly.

Overlaps: a later row (lower in the list) wins. Rows of one pass that share
objects (a collection and one of its objects) are exact: the later row takes
those objects' IDs, soft edges included, and the earlier row keeps the rest.
Then each row gets its mask where the rows after it leave room: coverage_k =
min(mask_k, 1 - sum of later rows' coverage). Cryptomatte masks of different
objects already sum to at most 1, and min() keeps their shared antialiased
edge pixels exact (the "over" operator would not). Across passes (a material
row over an object row) and with mask images the later row wins wherever it
covers a pixel fully; at its soft edge the earlier row gets what is left.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import bpy
import numpy as np

from ..io import cryptomatte, pixels
from ..props import regions as region_props
from ..support import compat
from . import passes

NODE_PREFIX = ".Pastiche Regions"
FILE_NAME = "crypto_"
METHOD = "composite"  # exact: one pass per mix, composited (docs/regions.md)


class RegionError(Exception):
    """The regions can't be rendered as set up; the message names the region and why."""


# -- the capture nodes (main thread) -------------------------------------------------------


def view_layer(scene: Any) -> Any:
    """The view layer the regions read: the first one that renders."""
    for layer in scene.view_layers:
        if layer.use:
            return layer
    return scene.view_layers[0]


def capture_folder(scene: Any) -> str:
    """This process's folder for the scene's captured passes (a farm node
    opening the file gets its own)."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", scene.name)[:40] or "scene"
    return os.path.join(tempfile.gettempdir(), f"pastiche-regions-{os.getpid()}", safe)


def crypto_outputs(scene: Any) -> list[str]:
    """The Render Layers outputs the enabled regions read (CryptoObject00...)."""
    use_object, use_material = region_props.needs_cryptomatte(scene)
    layers = max(1, math.ceil(int(view_layer(scene).pass_cryptomatte_depth) / 2))
    out = []
    if use_object:
        out += [f"CryptoObject{i:02d}" for i in range(layers)]
    if use_material:
        out += [f"CryptoMaterial{i:02d}" for i in range(layers)]
    return out


def capture_for(scene: Any) -> passes.PassCapture | None:
    """The capture the scene's regions need now; None when no row reads a pass."""
    outputs = crypto_outputs(scene)
    if not outputs:
        return None
    return passes.PassCapture(NODE_PREFIX, capture_folder(scene), view_layer(scene).name, outputs,
                              FILE_NAME)


def _state(scene: Any) -> dict:
    try:
        return json.loads(scene.pastiche.region_capture_state or "{}")
    except ValueError:
        return {}


def _set_state(scene: Any, state: dict) -> None:
    text = json.dumps(state, sort_keys=True) if state else ""
    if scene.pastiche.region_capture_state != text:
        scene.pastiche.region_capture_state = text


def sync_capture(scene: Any) -> None:
    """Put the capture nodes in place for what the regions need now (turning
    on the Cryptomatte passes and, if the scene has none, a pass-through
    compositor), or take everything out when nothing needs it. Main thread."""
    capture = capture_for(scene)
    state = _state(scene)
    if capture is None:
        remove_capture(scene)
        return
    if compat.compositor_shared_with(scene):
        # Our nodes would run in the other scenes' renders too (their Render Layers node
        # renders this scene): none there, and scene_problem() says why.
        passes.PassCapture(NODE_PREFIX, "", "", [], FILE_NAME).remove_nodes(compat.compositor_tree(scene))
        return
    layer = scene.view_layers[capture.layer]
    passes_before = state.setdefault("passes", {})
    passes_before.setdefault("layer", layer.name)
    for prop, wanted in (("use_pass_cryptomatte_object", any("Object" in o for o in capture.outputs)),
                         ("use_pass_cryptomatte_material", any("Material" in o for o in capture.outputs))):
        if wanted and not getattr(layer, prop):
            passes_before.setdefault(prop, False)
            setattr(layer, prop, True)
    tree = compat.compositor_tree(scene)
    if tree is None:
        state["use_compositing"] = bool(scene.render.use_compositing)
        scene.render.use_compositing = True
        state["made"] = compat.add_compositor(scene, f"{NODE_PREFIX} Compositor", layer.name)
        tree = compat.compositor_tree(scene)
    if not capture.installed(tree):
        capture.install(tree)
    _set_state(scene, state)


def remove_capture(scene: Any) -> None:
    """Take the capture nodes out and put back what they needed turned on."""
    state = _state(scene)
    tree = compat.compositor_tree(scene)
    passes.PassCapture(NODE_PREFIX, "", "", [], FILE_NAME).remove_nodes(tree)
    if "made" in state:
        compat.remove_compositor(scene, state["made"])
    if "use_compositing" in state:
        scene.render.use_compositing = state["use_compositing"]
    before = state.get("passes", {})
    layer = scene.view_layers.get(before.get("layer", ""))
    if layer is not None:
        for prop in ("use_pass_cryptomatte_object", "use_pass_cryptomatte_material"):
            if prop in before:
                setattr(layer, prop, before[prop])
    _set_state(scene, {})
    shutil.rmtree(capture_folder(scene), ignore_errors=True)


def sync_all_scenes(*_args: Any) -> None:
    """At file load: every scene's capture writes to this process's folder."""
    for scene in bpy.data.scenes:
        settings: Any = getattr(scene, "pastiche", None)
        if settings is not None and (settings.regions or settings.region_capture_state):
            sync_capture(scene)


sync_all_scenes = bpy.app.handlers.persistent(sync_all_scenes)


# -- what a frame needs -------------------------------------------------------------------


def scene_problem(scene: Any, installed: bool = True) -> str | None:
    """Why the scene's regions can't be rendered, or None. ``installed``:
    also check that the capture nodes are in place (render handlers can't
    add them)."""
    rows = region_props.enabled_regions(scene)
    if not rows:
        return None
    for _i, region in rows:
        if region.source in region_props.PASS_SOURCES and scene.render.engine == compat.ENGINE_WORKBENCH:
            kind = "material" if region.source == "MATERIAL" else "object"
            return (f"style region {region.name!r} reads the Cryptomatte {kind} pass, which "
                    "Workbench doesn't render: use Cycles or EEVEE, or a Mask Image region")
    capture = capture_for(scene)
    if capture is not None:
        tree = compat.compositor_tree(scene)
        shared = compat.compositor_shared_with(scene)
        if shared:
            return (f"style regions capture the Cryptomatte pass in the compositor, and this scene's "
                    f"compositor node group {tree.name!r} also runs in {', '.join(shared)}: give this "
                    "scene a compositor of its own (in the Compositor's header, make the node group "
                    "single-user)")
        if tree is not None and not scene.render.use_compositing:
            return ("style regions read the Cryptomatte pass through the compositor: turn on "
                    "Compositing (Output Properties > Post Processing)")
        if installed and not capture.installed(tree):
            return ("the style regions' Cryptomatte capture is not set up in the compositor: "
                    "toggle a region off and on, or reopen the file")
    return None


@dataclass
class RegionRow:
    """One enabled region at one frame, as plain values."""
    name: str
    source: str
    ids: tuple[str, ...]            # Cryptomatte names (objects or the material)
    image: str                      # the mask image's name (Mask Image rows)
    mix: dict[str, float]
    strength: float


@dataclass
class FrameRegions:
    """The regions of one frame: the rows, and the files their passes were captured to."""
    rows: list[RegionRow]
    layers: dict[str, str] = field(default_factory=dict)  # Render Layers output -> EXR file
    owned: str | None = None        # a folder of ours holding ``layers`` (deleted by discard)

    def coverage(self, shape: tuple[int, ...]) -> np.ndarray:
        """The H x W x K coverage map (float32, rows top-down, each pixel
        summing to at most 1; later rows win). Reads mask images: main thread."""
        h, w = shape[:2]
        out = np.zeros((h, w, len(self.rows)), dtype=np.float32)
        room = np.ones((h, w), dtype=np.float32)
        claimed: dict[str, set[str]] = {}  # pass -> names a later row took
        for k in range(len(self.rows) - 1, -1, -1):
            row = self.rows[k]
            taken = claimed.setdefault(_pass_of(row), set())
            # A later row of the same pass takes its objects exactly, soft edges included.
            mask = self._mask(row, (h, w), tuple(n for n in row.ids if n not in taken))
            taken.update(row.ids)
            out[..., k] = np.minimum(mask, room)
            room = np.maximum(room - out[..., k], 0.0)
        return out

    def _mask(self, row: RegionRow, shape: tuple[int, int], ids: tuple[str, ...]) -> np.ndarray:
        if row.source == "MASK":
            image = bpy.data.images.get(row.image)
            if image is None:
                raise RegionError(f"style region {row.name!r}: its mask image {row.image!r} is gone")
            try:
                rgba = pixels.read_image(image).array
            except ValueError as e:
                raise RegionError(f"style region {row.name!r}: {e}") from None
            return resize(mask_from_rgba(rgba), shape)
        prefix = _pass_of(row)
        files = [path for name, path in sorted(self.layers.items()) if name.startswith(prefix)]
        if not files:
            raise RegionError(f"style region {row.name!r}: the render wrote no {prefix} pass")
        try:
            layers = [passes.read_pass(path, full_float=True) for path in files]
        except passes.CaptureError as e:
            raise RegionError(f"style region {row.name!r}: {e}") from None
        if layers[0].shape[:2] != tuple(shape):
            raise RegionError(f"the {prefix} pass is {layers[0].shape[1]} x {layers[0].shape[0]} "
                              f"but the frame is {shape[1]} x {shape[0]}")
        return cryptomatte.coverage(layers, ids)

    def request(self, coverage: Any) -> dict:
        """The worker's ``regions`` field; ``coverage``: the map or {"path": .npy}."""
        return {"coverage": coverage, "mixes": [dict(r.mix) for r in self.rows],
                "strengths": [float(r.strength) for r in self.rows], "method": METHOD,
                "names": [f"style region {r.name!r}" for r in self.rows]}

    def discard(self) -> None:
        """Delete the captured files (after coverage() read them)."""
        if self.owned:
            shutil.rmtree(self.owned, ignore_errors=True)
        else:
            for path in self.layers.values():
                if os.path.exists(path):
                    os.remove(path)
        self.layers = {}


def _pass_of(row: RegionRow) -> str:
    """The Cryptomatte pass a row reads ("" for a mask image)."""
    if row.source == "MASK":
        return ""
    return "CryptoMaterial" if row.source == "MATERIAL" else "CryptoObject"


def _row(scene: Any, index: int, region: Any, frame: float | None) -> RegionRow:
    label = f"style region {region.name!r}"
    target = region.target()
    if target is None:
        what = {"OBJECT": "object", "COLLECTION": "collection", "MATERIAL": "material",
                "MASK": "mask image"}[region.source]
        raise RegionError(f"{label} has no {what} chosen (it may have been deleted): pick one or "
                          "turn the region off")
    ids: tuple[str, ...] = ()
    if region.source == "OBJECT":
        if scene.objects.get(target.name) is None:
            raise RegionError(f"{label}: its object {target.name!r} is not in the scene {scene.name!r}")
        ids = (target.name,)
    elif region.source == "COLLECTION":
        ids = tuple(o.name for o in target.all_objects)
        if not ids:
            raise RegionError(f"{label}: its collection {target.name!r} holds no objects")
    elif region.source == "MATERIAL":
        ids = (target.name,)
    mix = region_props.region_mix(scene, index, frame)
    if mix is None:
        raise RegionError(f"{label} has every style weight at zero: give it a style or turn it off")
    return RegionRow(region.name, region.source, ids, target.name if region.source == "MASK" else "",
                     mix, region_props.region_strength(scene, index, frame))


def frame_regions(scene: Any, frame: float | None = None) -> FrameRegions | None:
    """The enabled regions at ``frame`` (default: the current one), before
    their passes are captured; None when no region is on."""
    rows = [_row(scene, i, region, frame) for i, region in region_props.enabled_regions(scene)]
    return FrameRegions(rows) if rows else None


def mask_image_regions(scene: Any) -> FrameRegions | None:
    """The enabled Mask Image rows alone (Stylize Image: an image has no
    render passes, so only painted masks apply); None when there are none."""
    rows = [_row(scene, i, region, None) for i, region in region_props.enabled_regions(scene)
            if region.source == "MASK"]
    return FrameRegions(rows) if rows else None


def enabled_at(scene: Any, frame: float) -> bool:
    """Whether any enabled region has a style at ``frame`` (temporal cuts)."""
    return any(region_props.region_mix(scene, i, frame) is not None
               for i, _r in region_props.enabled_regions(scene))


def reads_passes(regions: FrameRegions | None) -> bool:
    return regions is not None and any(r.source in region_props.PASS_SOURCES for r in regions.rows)


def take_capture(scene: Any, regions: FrameRegions | None) -> None:
    """After a render of our own (a still, main thread): move the captured
    passes aside for the frame, so the next render can't overwrite them."""
    capture = capture_for(scene)
    if not reads_passes(regions) or capture is None:
        return
    assert regions is not None
    folder = tempfile.mkdtemp(prefix="pastiche-regions-frame-")
    try:
        regions.layers = capture.take(folder)
    except passes.CaptureError:
        # No pass: coverage() names the missing pass, and the frame fails, not the run.
        shutil.rmtree(folder, ignore_errors=True)
        return
    regions.owned = folder


def find_capture(scene: Any, regions: FrameRegions | None, frame: int, still: bool = False) -> None:
    """In a render handler (any thread): the files the capture wrote for
    ``frame`` of an animation render, or for a still (``still``); no bpy data changes."""
    capture = capture_for(scene)
    if not reads_passes(regions) or capture is None:
        return
    assert regions is not None
    try:
        regions.layers = {o: capture.latest(o, frame, still) for o in capture.outputs}
    except passes.CaptureError as e:
        raise RegionError(str(e)) from None


def note_render_start(scene: Any, *_args: Any) -> None:
    """render_init (any thread: a plain value only): which scene the latest render
    is of and when it began, so Stylize Render takes only the passes that render
    captured (the Render Result is one for all scenes)."""
    global _latest_render
    _latest_render = (scene.name, time.time())


note_render_start = bpy.app.handlers.persistent(note_render_start)
_latest_render: tuple[str, float] | None = None
# File times can trail the clock by a tick on some file systems.
_MTIME_SLACK_S = 0.05


def find_last_capture(scene: Any, regions: FrameRegions | None) -> None:
    """Stylize Render (main thread): the passes the scene's latest render captured,
    left in place so the render can be stylized again. A RegionError when that
    render captured none (the regions were turned on after it, or Compositing is off)."""
    capture = capture_for(scene)
    if not reads_passes(regions) or capture is None:
        return
    assert regions is not None
    if _latest_render is not None and _latest_render[0] != scene.name:
        raise RegionError(
            f"the latest render is of the scene {_latest_render[0]!r}, and the style regions of "
            f"{scene.name!r} need this scene's own render: render it (F12), then Stylize Render")
    started = _latest_render[1] if _latest_render is not None else None
    layers = {}
    for output in capture.outputs:
        found = list(capture.files(output).values())
        newest = max(found, key=os.path.getmtime) if found else None
        if started is None or newest is None or os.path.getmtime(newest) < started - _MTIME_SLACK_S:
            raise RegionError(
                f"the style regions need the {output} pass of the render, and the latest render of "
                f"{scene.name!r} did not capture it: render again (F12) with the regions on, and "
                "Compositing on (Output Properties > Post Processing)")
        layers[output] = newest
    regions.layers = layers


def with_regions(regions: FrameRegions | None, weights: dict[str, float] | None, options: dict,
                 shape: tuple[int, ...]) -> dict[str, float] | None:
    """The mix to send for a picture of ``shape``; the regions' coverage map goes
    into ``options`` (main thread: mask images are read). With no scene style, the
    rest of the picture stays as it is: the base gets strength 0."""
    if regions is None:
        return weights
    options["regions"] = regions.request(regions.coverage(shape))
    if weights is None:
        options["strength"] = 0.0
        return dict(regions.rows[0].mix)
    return weights


def drop_capture(scene: Any, frame: int) -> None:
    """Delete what the capture wrote for ``frame`` of an animation render
    nobody stylizes (plain renders must not fill the temporary folder); no
    bpy data changes, so any thread."""
    capture = capture_for(scene)
    if capture is None:
        return
    for output in capture.outputs:
        path = capture.files(output).get(frame)
        if path is not None and os.path.exists(path):
            os.remove(path)


def clear_capture(scene: Any) -> None:
    """Before a render: no earlier render's pass may be taken for this one's."""
    capture = capture_for(scene)
    if capture is not None:
        capture.clear()


# -- mask images ------------------------------------------------------------------------------


def mask_from_rgba(rgba: np.ndarray) -> np.ndarray:
    """A 0-1 mask from a painted image (H x W x 4): the alpha where the image
    has transparency, else the mean of R, G and B (as the CLI's --style-map)."""
    if float(rgba[..., 3].min()) < 1.0:
        return np.clip(rgba[..., 3], 0.0, 1.0).astype(np.float32)
    return np.clip(rgba[..., :3].mean(axis=2), 0.0, 1.0).astype(np.float32)


def resize(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an H x W mask to ``shape`` (pixel centres aligned)."""
    h, w = shape
    sh, sw = mask.shape
    if (sh, sw) == (h, w):
        return mask.astype(np.float32, copy=False)
    ys = np.clip((np.arange(h) + 0.5) * sh / h - 0.5, 0, sh - 1)
    xs = np.clip((np.arange(w) + 0.5) * sw / w - 0.5, 0, sw - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, sh - 1), np.minimum(x0 + 1, sw - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = mask[y0][:, x0] * (1 - fx) + mask[y0][:, x1] * fx
    bottom = mask[y1][:, x0] * (1 - fx) + mask[y1][:, x1] * fx
    return np.clip(top * (1 - fy) + bottom * fy, 0.0, 1.0).astype(np.float32)
