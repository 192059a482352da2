"""Operators: Stylize Image, Stylize Render, style swatches, worker control.

Long operators run asynchronously in the UI: invoke() submits a request to the
worker, a window timer polls it, the result is put into Blender on the main
thread, Esc cancels (stopping the worker, which frees its memory). Called
from scripts or in background mode (``blender -b``), execute() runs the same
steps synchronously. Errors are reported, never raised into Blender.
"""

from __future__ import annotations

from typing import Any

import bpy
import numpy as np
from bpy.props import IntProperty, StringProperty

from ..io import pixels
from ..props import scene as properties
from ..render import regions as region_render
from ..worker import client as worker_client

OpResult = set[Any]  # {'FINISHED'}, {'CANCELLED'}, ...
SUFFIX = " (Pastiche)"
SWATCH_PREFIX = ".Pastiche Swatch "  # leading dot: hidden from image lists


def result_name(name: str) -> str:
    return f"{name}{SUFFIX}"


def _show_in_image_editor(context: Any, image: Any) -> None:
    screen = getattr(context, "screen", None)
    if screen is None:
        return
    for area in screen.areas:
        if area.type == "IMAGE_EDITOR":
            area.spaces.active.image = image
            area.tag_redraw()
            return


class _WorkerRequestOperator(bpy.types.Operator):
    """Shared machinery: start a request, wait for it (modal or blocking), finish it."""

    _request: worker_client.Request | None = None
    _timer: Any = None

    # Subclasses implement these two.
    def start_request(self, context: Any) -> worker_client.Request | None:
        raise NotImplementedError

    def finish_request(self, context: Any, value: Any) -> OpResult:
        raise NotImplementedError

    def _start(self, context: Any) -> worker_client.Request | None:
        try:
            return self.start_request(context)
        except (worker_client.WorkerError, ValueError) as e:
            self.report({"ERROR"}, str(e))
            return None

    def _finish(self, context: Any, request: worker_client.Request) -> OpResult:
        try:
            value = request.wait()
        except worker_client.WorkerError as e:
            if e.kind == "Cancelled":
                self.report({"WARNING"}, f"Pastiche: {e.message}")
            else:
                self.report({"ERROR"}, f"Pastiche: {e}")
            return {"CANCELLED"}
        return self.finish_request(context, value)

    def execute(self, context: Any) -> OpResult:
        request = self._start(context)
        if request is None:
            return {"CANCELLED"}
        return self._finish(context, request)

    def invoke(self, context: Any, event: Any) -> OpResult:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        request = self._start(context)
        if request is None:
            return {"CANCELLED"}
        self._request = request
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: Any, event: Any) -> OpResult:
        request = self._request
        assert request is not None
        if event.type == "ESC" and event.value == "PRESS":
            request.cancel()
        if event.type != "TIMER" and not request.done():
            return {"PASS_THROUGH"}
        if context.workspace is not None:
            context.workspace.status_text_set(
                f"Pastiche: {request.message} ({request.fraction * 100:.0f}%) - Esc to cancel")
        for area in getattr(context.screen, "areas", []):
            if area.type in ("VIEW_3D", "IMAGE_EDITOR", "NODE_EDITOR"):
                area.tag_redraw()
        if not request.done():
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        self._request = None
        return self._finish(context, request)


def _weights_or_report(op: Any, scene: Any) -> dict[str, float] | None:
    """The mix to apply; None (with a warning) when every weight is zero.
    Raises when there is no model at all, which is an error, not "no style"."""
    if properties.model_path(scene) is None:
        raise worker_client.WorkerError(
            "NoModel", "no model chosen: pick a model file in the Pastiche panel")
    weights = properties.effective_weights(scene)
    if weights is None:
        op.report({"WARNING"}, "Pastiche: all style weights are zero, so there is no style to apply")
    return weights


class PASTICHE_OT_stylize_image(_WorkerRequestOperator):
    """Stylize the active image into a new image "<name> (Pastiche)"; the original is untouched.
    Enabled Mask Image style regions apply (resized to the image); other regions need a render"""

    bl_idname = "pastiche.stylize_image"
    bl_label = "Stylize Image"
    bl_options = {"REGISTER", "UNDO"}

    image_name: StringProperty(  # type: ignore[valid-type]
        name="Image", description="Image to stylize (default: the one in the Image Editor)",
        options={"SKIP_SAVE"})

    _source: pixels.ImagePixels | None = None
    _source_name: str = ""

    def _image(self, context: Any) -> Any:
        if self.image_name:
            return bpy.data.images.get(self.image_name)
        image = getattr(context, "edit_image", None)
        if image is None:
            space = getattr(context, "space_data", None)
            image = getattr(space, "image", None) if space is not None else None
        return image

    @classmethod
    def poll(cls, context: Any) -> bool:
        return context.scene is not None and hasattr(context.scene, "pastiche")

    def start_request(self, context: Any) -> worker_client.Request | None:
        image = self._image(context)
        if image is None:
            raise ValueError("no image to stylize: open one in the Image Editor"
                             + (f" (no image named {self.image_name!r})" if self.image_name else ""))
        if image.type == "RENDER_RESULT":
            raise ValueError("this is the Render Result: use Stylize Render instead")
        scene = context.scene
        try:
            regions = region_render.mask_image_regions(scene)
        except region_render.RegionError as e:
            raise ValueError(str(e)) from None
        options = properties.stylize_options(scene)
        weights = properties.effective_weights(scene) if regions is not None else _weights_or_report(self, scene)
        if weights is None and regions is None:
            return None
        src = pixels.read_image(image)
        self._source = src
        self._source_name = image.name
        try:
            weights = region_render.with_regions(regions, weights, options, src.array.shape)
        except region_render.RegionError as e:
            raise ValueError(str(e)) from None
        assert weights is not None
        return worker_client.submit_stylize(src.stylize_input(), weights, **src.stylize_kwargs(), **options)

    def finish_request(self, context: Any, value: Any) -> OpResult:
        source = bpy.data.images.get(self._source_name)
        assert self._source is not None
        if source is None:
            self.report({"ERROR"}, f"Pastiche: image {self._source_name!r} was removed meanwhile")
            return {"CANCELLED"}
        out = pixels.new_image_like(source, result_name(source.name), self._source.with_result(value))
        pixels.pack_image(out)
        _show_in_image_editor(context, out)
        self.report({"INFO"}, f"Pastiche: made {out.name!r}")
        return {"FINISHED"}


class PASTICHE_OT_stylize_render(_WorkerRequestOperator):
    """Stylize the last still render and keep it as the image "Render Result (Pastiche)".
    Style regions apply (Object, Collection and Material rows read the passes that render captured)"""

    bl_idname = "pastiche.stylize_render"
    bl_label = "Stylize Render"
    bl_options = {"REGISTER", "UNDO"}

    _render: np.ndarray | None = None

    @classmethod
    def poll(cls, context: Any) -> bool:
        return context.scene is not None and hasattr(context.scene, "pastiche")

    def start_request(self, context: Any) -> worker_client.Request | None:
        scene = context.scene
        problem = region_render.scene_problem(scene)
        if problem:
            raise ValueError(problem)
        try:
            regions = region_render.frame_regions(scene)
            region_render.find_last_capture(scene, regions)
        except region_render.RegionError as e:
            raise ValueError(str(e)) from None
        weights = properties.effective_weights(scene) if regions is not None else _weights_or_report(self, scene)
        if weights is None and regions is None:
            return None
        self._render = pixels.read_render_result(scene)
        options = properties.stylize_options(scene)
        try:
            weights = region_render.with_regions(regions, weights, options, self._render.shape)
        except region_render.RegionError as e:
            raise ValueError(str(e)) from None
        assert weights is not None
        # Renders are scene-linear with premultiplied alpha.
        return worker_client.submit_stylize(self._render, weights, colour_space="linear",
                                            premultiplied=True, **options)

    def finish_request(self, context: Any, value: Any) -> OpResult:
        name = result_name("Render Result")
        out = pixels.new_image(name, value, float_buffer=True, colorspace="Linear Rec.709",
                               alpha_mode="PREMUL")
        pixels.pack_image(out)
        _show_in_image_editor(context, out)
        self.report({"INFO"}, f"Pastiche: made {out.name!r}")
        return {"FINISHED"}


class PASTICHE_OT_make_swatches(_WorkerRequestOperator):
    """Render a small preview of every style with the model itself"""

    bl_idname = "pastiche.make_swatches"
    bl_label = "Make Style Swatches"
    bl_options = {"REGISTER"}

    size: IntProperty(name="Size", default=64, min=16, max=256)  # type: ignore[valid-type]

    def start_request(self, context: Any) -> worker_client.Request | None:
        options = properties.stylize_options(context.scene)
        if options["model"] is None:
            raise worker_client.WorkerError("NoModel", "no model chosen: pick a model file")
        client = worker_client.get_client()
        out = client.pixel_dir() / f"swatches-{id(self)}.npy"

        def finish(result: dict) -> tuple[list[str], np.ndarray]:
            return result["styles"], np.load(result["output"]["path"], allow_pickle=False)

        return client.submit("swatches", {"model": options["model"], "device": options["device"],
                                          "precision": options["precision"], "size": self.size,
                                          "output": {"path": str(out)}},
                             finish=finish, cleanup=lambda: out.unlink(missing_ok=True))

    def finish_request(self, context: Any, value: Any) -> OpResult:
        names, stack = value
        for name, rgb in zip(names, stack, strict=True):
            set_swatch(name, rgb)
        self.report({"INFO"}, f"Pastiche: made {len(names)} style swatch(es) at {self.size} px")
        for area in getattr(getattr(context, "screen", None), "areas", []):
            area.tag_redraw()  # the panel shows them next to the sliders
        return {"FINISHED"}


def swatch_image(style: str) -> Any:
    return bpy.data.images.get(SWATCH_PREFIX + style)


def set_swatch(style: str, rgb: np.ndarray) -> Any:
    """Store a style's swatch (display sRGB, top row first) as a hidden image."""
    h, w = rgb.shape[:2]
    rgba = np.concatenate([rgb, np.ones((h, w, 1), np.float32)], axis=2)
    image = swatch_image(style)
    if image is not None and tuple(image.size) != (w, h):
        bpy.data.images.remove(image)
        image = None
    if image is None:
        image = pixels.new_image(SWATCH_PREFIX + style, rgba, float_buffer=False, colorspace="sRGB")
    else:
        pixels.write_image(image, rgba)
    image.preview_ensure()
    return image


class PASTICHE_OT_reload_styles(bpy.types.Operator):
    """Read the style list from the model file again"""

    bl_idname = "pastiche.reload_styles"
    bl_label = "Reload Styles"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: Any) -> OpResult:
        if not properties.sync_styles(context.scene):
            self.report({"ERROR"}, f"Pastiche: {context.scene.pastiche.model_error}")
            return {"CANCELLED"}
        return {"FINISHED"}


class PASTICHE_OT_remove_style(bpy.types.Operator):
    """Remove this style's slider and its keyframes (for styles the model no longer has)"""

    bl_idname = "pastiche.remove_style"
    bl_label = "Remove Style"
    bl_options = {"REGISTER", "UNDO"}

    index: IntProperty(name="Index", default=-1)  # type: ignore[valid-type]

    def execute(self, context: Any) -> OpResult:
        styles = context.scene.pastiche.styles
        if not 0 <= self.index < len(styles):
            self.report({"ERROR"}, f"Pastiche: no style at index {self.index}")
            return {"CANCELLED"}
        properties.remove_style(context.scene, self.index)
        return {"FINISHED"}


class PASTICHE_OT_restart_worker(bpy.types.Operator):
    """Stop the worker process (frees its GPU memory); the next request starts a new one"""

    bl_idname = "pastiche.restart_worker"
    bl_label = "Restart Worker"

    def execute(self, context: Any) -> OpResult:
        worker_client.restart()
        return {"FINISHED"}


def draw_image_menu(self: Any, context: Any) -> None:
    """Image Editor > Image: Stylize Image (and so F3 search finds it)."""
    self.layout.separator()
    self.layout.operator(PASTICHE_OT_stylize_image.bl_idname, icon="IMAGE")


CLASSES = (PASTICHE_OT_stylize_image, PASTICHE_OT_stylize_render, PASTICHE_OT_make_swatches,
           PASTICHE_OT_reload_styles, PASTICHE_OT_remove_style, PASTICHE_OT_restart_worker)
