"""Live preview: when a slider moves, re-stylize a small copy of the preview
source image, debounced, without blocking the UI.

Setting updates call ``schedule(scene)``; a ``bpy.app.timers`` function waits
until the settings have been still for DEBOUNCE seconds, submits one request
(the newest settings win; older pending changes are dropped) and, when the
worker answers, writes the image "Pastiche Preview" on the main thread.
Off in background mode.
"""

from __future__ import annotations

import time
from typing import Any

import bpy
import numpy as np

from ..io import pixels
from ..props import scene as properties
from ..render import regions as region_render
from ..worker import client as worker_client

DEBOUNCE = 0.25
POLL = 0.05
PREVIEW_NAME = "Pastiche Preview"

_pending_scene: str | None = None
_changed_at = 0.0
_request: worker_client.Request | None = None
_request_source: pixels.ImagePixels | None = None
last_error: str | None = None  # the latest preview failure; the panel shows it


def schedule(scene: Any) -> None:
    global _pending_scene, _changed_at
    settings = scene.pastiche
    if bpy.app.background or not settings.live_preview or settings.preview_source is None:
        return
    _pending_scene = scene.name
    _changed_at = time.monotonic()
    if not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=DEBOUNCE)


def downscale(rgba: np.ndarray, long_side: int) -> np.ndarray:
    """Area-averaged (box) downscale to at most ``long_side`` pixels."""
    h, w = rgba.shape[:2]
    factor = int(np.ceil(max(h, w) / long_side))
    if factor <= 1:
        return rgba
    hh, ww = h // factor * factor, w // factor * factor
    view = rgba[:hh, :ww].reshape(hh // factor, factor, ww // factor, factor, rgba.shape[2])
    return view.mean(axis=(1, 3)).astype(np.float32)


def _submit(scene: Any) -> None:
    global _request, _request_source, last_error
    settings = scene.pastiche
    source = settings.preview_source
    weights = properties.effective_weights(scene)
    if source is None:
        return
    try:
        # As Stylize Image: an image has no render passes, so Mask Image regions apply.
        regions = region_render.mask_image_regions(scene)
        if weights is None and regions is None:
            return
        src = pixels.read_image(source)
        small = pixels.ImagePixels(downscale(src.array, settings.preview_size), src.colour_space,
                                   src.premultiplied, src.alpha_is_coverage)
        options = properties.stylize_options(scene)
        mix = region_render.with_regions(regions, weights, options, small.array.shape)
        assert mix is not None
        _request = worker_client.submit_stylize(small.stylize_input(), mix, **small.stylize_kwargs(),
                                            **options)
        _request_source = small
        last_error = None
    except (worker_client.WorkerError, ValueError, region_render.RegionError) as e:
        last_error = str(e)
        _redraw()  # the panel shows the error


def _deliver(request: worker_client.Request, source: pixels.ImagePixels) -> None:
    global last_error
    try:
        result = source.with_result(request.wait())
    except worker_client.WorkerError as e:
        last_error = str(e)
        _redraw()  # the panel shows the error
        return
    image = bpy.data.images.get(PREVIEW_NAME)
    h, w = result.shape[:2]
    float_buffer = source.colour_space == "linear"
    if image is not None and (tuple(image.size) != (w, h) or bool(image.is_float) != float_buffer):
        bpy.data.images.remove(image)
        image = None
    if image is None:
        pixels.new_image(PREVIEW_NAME, result, float_buffer=float_buffer,
                         colorspace="Linear Rec.709" if float_buffer else "sRGB",
                         alpha_mode="PREMUL" if source.premultiplied else "STRAIGHT")
    else:
        pixels.write_image(image, result)
    _redraw()


def _redraw() -> None:
    """Redraw the editors that show the preview image or the panel."""
    wm = bpy.context.window_manager
    for window in wm.windows if wm is not None else []:
        for area in window.screen.areas:
            if area.type in ("IMAGE_EDITOR", "VIEW_3D", "NODE_EDITOR"):
                area.tag_redraw()


def _tick() -> float | None:
    global _request, _request_source, _pending_scene
    if _request is not None:
        if not _request.done():
            return POLL
        request, source = _request, _request_source
        _request, _request_source = None, None
        if source is not None:
            _deliver(request, source)
    if _pending_scene is None:
        return None
    wait = DEBOUNCE - (time.monotonic() - _changed_at)
    if wait > 0:
        return max(POLL, wait)
    scene = bpy.data.scenes.get(_pending_scene)
    _pending_scene = None
    if scene is not None:
        _submit(scene)
    return POLL if _request is not None else None
def stop() -> None:
    """Stop the debounce timer and drop the preview in the worker (at unregister)."""
    global _request, _pending_scene
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
    if _request is not None:
        _request.cancel()
    _request, _pending_scene = None, None
