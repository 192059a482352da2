"""Render > Render Stylized Animation: the scene's frame range, frame by frame.

Each frame: set the frame (so keyframed weights and node properties take
that frame's values), render, stylize through the worker, write the frame
atomically to the scene's output path (the unstylized one to unstylized/
when asked). With a Pastiche Stylize node in the compositor, each frame is
made with the node's two-pass pipeline instead (compositor_node.py).

In the UI it runs as a modal operator (one frame per timer tick, progress
and ETA in the status bar, Esc cancels after the current frame). From a
script or `blender -b file.blend --python-expr "import bpy;
bpy.ops.pastiche.render_animation()"` it runs synchronously, through the
same per-frame function.
"""

from __future__ import annotations

import os
import time

import bpy
from bpy.props import BoolProperty

from . import compositor_node, frame_files, render_hooks

_cancel_requested = False


def request_cancel() -> None:
    """Stop after the frame in progress (Esc in the UI; scripts and tests call it)."""
    global _cancel_requested
    _cancel_requested = True


def frame_range(scene) -> list[int]:
    return list(range(scene.frame_start, scene.frame_end + 1, max(1, scene.frame_step)))


def _node_stylizer(scene):
    options = render_hooks.frame_options(scene)

    def stylize(node, pixels):
        weights = node.weights(scene)
        if weights is None:
            return pixels  # no style at this frame: the node passes its input on
        opts = dict(options, strength=float(node.strength))
        return render_hooks.stylize_pixels(pixels, weights, colour_space="linear",
                                           premultiplied=True, **opts)
    return stylize


def render_one_frame(scene, frame: int, keep_original: bool) -> render_hooks.FrameOutcome:
    """Render, stylize and write one frame; never leaves a half-written file."""
    scene.frame_set(frame)
    path = bpy.path.abspath(scene.render.frame_path(frame=frame))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with render_hooks.suspended():
        if compositor_node.stylize_nodes(scene):
            return _render_with_nodes(scene, frame, path, keep_original)
        job = render_hooks.make_job(scene, frame, keep_original)
        rendered = frame_files.temp_path_for(path, "-render")
        bpy.ops.render.render(write_still=False)
        bpy.data.images["Render Result"].save_render(rendered, scene=scene)
        return render_hooks.stylize_frame_file(job, source=rendered)


def _render_with_nodes(scene, frame, path, keep_original) -> render_hooks.FrameOutcome:
    # (kept file, its temporary name while the frame is made), or None.
    kept: tuple[str, str] | None = None
    if keep_original:
        original = frame_files.unstylized_path(path)
        os.makedirs(os.path.dirname(original), exist_ok=True)
        kept = (original, frame_files.temp_path_for(original, "-render"))
    unstylized_tmp = kept[1] if kept else None
    try:
        try:
            compositor_node.render_frame_with_nodes(scene, _node_stylizer(scene), unstylized_tmp)
        except Exception as exc:
            if kept and os.path.exists(kept[1]):
                os.replace(kept[1], kept[0])
                return render_hooks.FrameOutcome(
                    frame, path, False, f"frame {frame} was not stylized ({exc}); its "
                    f"unstylized render is in {kept[0]}", kept[0])
            return render_hooks.FrameOutcome(frame, path, False, f"frame {frame} was not stylized ({exc})")
        with frame_files.atomic_write(path) as tmp:
            bpy.data.images["Render Result"].save_render(tmp, scene=scene)
        if kept:
            os.replace(kept[1], kept[0])
        return render_hooks.FrameOutcome(frame, path, True, original=kept[0] if kept else None)
    finally:
        if unstylized_tmp and os.path.exists(unstylized_tmp):
            os.remove(unstylized_tmp)


def check_scene(scene) -> str | None:
    """Why this scene can't be rendered stylized, or None."""
    if getattr(scene, "pastiche", None) is None:
        return "the Pastiche add-on is not registered"
    try:
        render_hooks.output_encoding(scene)
    except frame_files.FrameFormatError as exc:
        return str(exc)
    if not scene.camera:
        return "the scene has no camera"
    return None


def _eta(started: float, done: int, left: int) -> str:
    if done == 0:
        return "ETA: measuring"
    secs = (time.monotonic() - started) / done * left
    return f"ETA {int(secs // 60)}:{int(secs % 60):02d}"


class PASTICHE_OT_render_animation(bpy.types.Operator):
    """Render the frame range and stylize every frame with that frame's style mix"""
    bl_idname = "pastiche.render_animation"
    bl_label = "Render Stylized Animation"
    bl_options = {"REGISTER"}

    keep_original: BoolProperty(  # type: ignore[valid-type]
        name="Keep Unstylized Frames", default=False,
        description="Also keep every frame as rendered, in an 'unstylized' folder next to the output")

    @classmethod
    def poll(cls, context):
        return context.scene is not None and not bpy.app.is_job_running("RENDER")

    # -- shared ---------------------------------------------------------------------
    def _start(self, context) -> bool:
        global _cancel_requested
        _cancel_requested = False
        scene = context.scene
        problem = check_scene(scene)
        if problem:
            self.report({"ERROR"}, problem)
            return False
        if not self.properties.is_property_set("keep_original"):
            self.keep_original = render_hooks.keep_original_setting(scene)
        self.frames = frame_range(scene)
        self.index = 0
        self.outcomes: list[render_hooks.FrameOutcome] = []
        self.frame_before = scene.frame_current
        self.started = time.monotonic()
        folder = os.path.dirname(bpy.path.abspath(scene.render.frame_path(frame=self.frames[0])))
        frame_files.sweep_stale_temps(folder)
        return True

    def _step(self, context) -> str | None:
        """Render the next frame; returns a progress line, or None when finished."""
        frame = self.frames[self.index]
        outcome = render_one_frame(context.scene, frame, self.keep_original)
        self.outcomes.append(outcome)
        self.index += 1
        left = len(self.frames) - self.index
        line = f"frame {frame} ({self.index}/{len(self.frames)}), {_eta(self.started, self.index, left)}"
        render_hooks.report(line if outcome.ok else f"ERROR: {outcome.message}")
        return line if outcome.ok and left else None

    def _finish(self, context) -> set[str]:
        scene = context.scene
        scene.frame_set(self.frame_before)
        done = [o for o in self.outcomes if o.ok]
        failed = [o for o in self.outcomes if not o.ok]
        elapsed = time.monotonic() - self.started
        if failed:
            self.report({"ERROR"}, f"Pastiche: stopped at frame {failed[0].frame}: {failed[0].message}; "
                                   f"{len(done)} frame(s) finished")
            return {"CANCELLED"}
        if len(done) < len(self.frames):
            self.report({"WARNING"}, f"Pastiche: cancelled after {len(done)} of {len(self.frames)} "
                                     f"frame(s); every written frame is complete")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Pastiche: {len(done)} stylized frame(s) in {elapsed:.1f} s, "
                              f"written to {os.path.dirname(done[-1].path) if done else '-'}")
        return {"FINISHED"}

    # -- synchronous (scripts, background) ---------------------------------------------
    def execute(self, context):
        if not self._start(context):
            return {"CANCELLED"}
        try:
            while self.index < len(self.frames) and not _cancel_requested:
                if self._step(context) is None and self.outcomes and not self.outcomes[-1].ok:
                    break
        except Exception as exc:  # a render error: report it, keep Blender usable
            self.report({"ERROR"}, f"Pastiche: render failed at frame {self.frames[self.index]}: {exc}")
            context.scene.frame_set(self.frame_before)
            return {"CANCELLED"}
        return self._finish(context)

    # -- modal (UI) ----------------------------------------------------------------------
    def invoke(self, context, event):
        if not self._start(context):
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.05, window=context.window)
        wm.progress_begin(0, len(self.frames))
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            request_cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if _cancel_requested:
            return self._end_modal(context)
        try:
            line = self._step(context)
        except Exception as exc:
            self.report({"ERROR"}, f"Pastiche: render failed at frame {self.frames[self.index]}: {exc}")
            self.outcomes.append(render_hooks.FrameOutcome(self.frames[self.index], "", False, str(exc)))
            return self._end_modal(context)
        context.window_manager.progress_update(self.index)
        if context.workspace is not None:
            context.workspace.status_text_set(f"Pastiche: {line} (Esc to cancel)" if line else None)
        if line is None:
            return self._end_modal(context)
        return {"RUNNING_MODAL"}

    def _end_modal(self, context):
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        return self._finish(context)


def draw_render_menu(self, context):
    self.layout.operator(PASTICHE_OT_render_animation.bl_idname, icon="RENDER_ANIMATION")


def register():
    bpy.utils.register_class(PASTICHE_OT_render_animation)
    bpy.types.TOPBAR_MT_render.append(draw_render_menu)


def unregister():
    bpy.types.TOPBAR_MT_render.remove(draw_render_menu)
    bpy.utils.unregister_class(PASTICHE_OT_render_animation)
