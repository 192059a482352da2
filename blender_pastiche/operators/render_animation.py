"""Render > Render Stylized Animation: the scene's frame range, frame by frame.

Each frame: set the frame (so keyframed weights and node properties take
that frame's values), render, stylize through the worker, write the frame
atomically to the scene's output path (the unstylized one to unstylized/
when asked). With a Pastiche Stylize node in the compositor, each frame is
made with the node's two-pass pipeline instead (nodes/stylize_node.py). With
Temporal Coherence on, each run first renders and primes the frames before
its range, and every frame goes with its Vector pass (render/temporal.py).

AnimationRun holds where a run stands. In the UI the operator is modal: each
timer tick either renders the next frame and submits it to the worker, or
looks whether the worker has answered, so the interface stays responsive
while frames are stylized (progress and ETA in the status bar; Esc cancels
the frame in the worker and stops). From a script or `blender -b file.blend
--python-expr "import bpy; bpy.ops.pastiche.render_animation()"` it runs
synchronously, through the same steps, waiting for the worker.
"""

from __future__ import annotations

import os
import time
from typing import Any

import bpy
from bpy.props import BoolProperty

from ..io import failure_marker, frame_files
from ..nodes import stylize_node as compositor_node
from ..render import compositor
from ..render import hooks as render_hooks
from ..render import regions as region_render
from ..render import temporal as temporal_render
from ..render.hooks import FrameOutcome
from ..worker import client as worker_client

_cancel_requested = False


def request_cancel() -> None:
    """Stop after the frame in progress (scripts and tests call it; Esc in the
    UI also cancels the frame in the worker)."""
    global _cancel_requested
    _cancel_requested = True


def frame_range(scene) -> list[int]:
    return list(range(scene.frame_start, scene.frame_end + 1, max(1, scene.frame_step)))


class _Ready:
    """A worker-request stand-in for pixels that need no worker (a node with no
    style at this frame passes its input on)."""

    fraction = 1.0

    def __init__(self, value: Any):
        self.value = value

    def done(self) -> bool:
        return True

    def wait(self) -> Any:
        return self.value

    def cancel(self) -> None:
        pass


class NodeFrameTask:
    """One frame through the compositor's Pastiche Stylize nodes, like
    render_hooks.FrameTask: start() renders pass 1 and submits each node's
    input, done() polls, finish() composites pass 2 and writes the frame."""

    def __init__(self, scene, frame: int, path: str, keep_original: bool):
        self.scene_name = scene.name  # looked up again in finish(): no stale reference
        self.frame = frame
        self.path = path
        self.kept: tuple[str, str] | None = None  # (unstylized file, its temporary name)
        if keep_original:
            original = frame_files.unstylized_path(path)
            self.kept = (original, frame_files.temp_path_for(original, "-render"))
        self.requests: dict[str, Any] = {}  # node uid -> worker request (or _Ready)

    def done(self) -> bool:
        return all(request.done() for request in self.requests.values())

    @property
    def fraction(self) -> float:
        requests = list(self.requests.values())
        return sum(j.fraction for j in requests) / len(requests) if requests else 0.0

    def cancel(self) -> None:
        for request in self.requests.values():
            request.cancel()

    def start(self) -> FrameOutcome | None:
        scene = bpy.data.scenes[self.scene_name]
        if self.kept:
            os.makedirs(os.path.dirname(self.kept[0]), exist_ok=True)
        try:
            captured = compositor_node.capture_frame(scene, self.kept[1] if self.kept else None)
            options = render_hooks.frame_options(scene)
            for node, pixels, mask in captured:
                weights = node.weights(scene)
                strength, regions = compositor_node.mask_request(mask, weights or {}, float(node.strength),
                                                                 node.name)
                if weights is None or (regions is None and strength <= 0.0):
                    self.requests[node.uid] = _Ready(pixels)  # no style at this frame (or no mask)
                    continue
                opts = dict(options, strength=strength, brush_size=float(node.brush_size),
                            detail=float(node.detail))
                if regions is not None:
                    opts["regions"] = regions
                self.requests[node.uid] = render_hooks.submit_pixels(
                    pixels, weights, colour_space="linear", premultiplied=True, **opts)
        except Exception as exc:
            self.cancel()
            return self._failed(exc)
        return None

    def finish(self) -> FrameOutcome:
        scene = bpy.data.scenes[self.scene_name]
        try:
            try:
                stylized = {uid: request.wait() for uid, request in self.requests.items()}
            except worker_client.WorkerError as exc:
                self.cancel()  # the other nodes' requests too
                return self._cancelled() if exc.kind == "Cancelled" else self._failed(exc)
            try:
                if scene.frame_current != self.frame:  # the UI may have moved meanwhile
                    scene.frame_set(self.frame)
                with render_hooks.suspended():
                    compositor_node.composite_stylized(scene, stylized)
            except Exception as exc:
                return self._failed(exc)
            with frame_files.atomic_write(self.path) as tmp:
                bpy.data.images["Render Result"].save_render(tmp, scene=scene)
            if self.kept:
                os.replace(self.kept[1], self.kept[0])
            else:
                render_hooks.remove_stale_original(self.path)
            if all(isinstance(request, _Ready) for request in self.requests.values()):
                # No node had a style at this frame: the same pass-through as the scene's.
                return FrameOutcome(self.frame, self.path, True, render_hooks.PASS_THROUGH_MESSAGE,
                                    self.kept[0] if self.kept else None, passed_through=True)
            return FrameOutcome(self.frame, self.path, True, original=self.kept[0] if self.kept else None)
        finally:
            self._remove_temp()

    def abandon(self) -> FrameOutcome:
        self.cancel()
        self._remove_temp()
        return self._cancelled()

    def _remove_temp(self) -> None:
        if self.kept and os.path.exists(self.kept[1]):
            os.remove(self.kept[1])

    def _failed(self, exc: Exception) -> FrameOutcome:
        message = f"frame {self.frame} was not stylized ({exc})"
        if self.kept and os.path.exists(self.kept[1]):
            os.replace(self.kept[1], self.kept[0])
            return FrameOutcome(self.frame, self.path, False,
                                f"{message}; its unstylized render is in {self.kept[0]}", self.kept[0])
        return FrameOutcome(self.frame, self.path, False, message)

    def _cancelled(self) -> FrameOutcome:
        original = None
        if self.kept and os.path.exists(self.kept[1]):
            os.replace(self.kept[1], self.kept[0])
            original = self.kept[0]
        where = f"; its unstylized render is in {original}" if original else ""
        return FrameOutcome(self.frame, self.path, False, f"frame {self.frame} was cancelled{where}",
                            original, cancelled=True)


FrameWork = render_hooks.FrameTask | NodeFrameTask


def begin_frame(scene, frame: int, keep_original: bool,
                temporal: temporal_render.TemporalRun | None = None) -> FrameOutcome | FrameWork:
    """Render one frame and hand it to the worker. Returns the outcome when it
    is known at once, else the task to poll (done()) and finish(). With
    ``temporal``, the frame goes with its Vector pass (render/temporal.py)."""
    scene.frame_set(frame)
    path = bpy.path.abspath(scene.render.frame_path(frame=frame))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    task: FrameWork
    with render_hooks.suspended():
        if compositor.stylize_nodes(scene):
            task = NodeFrameTask(scene, frame, path, keep_original)
        else:
            job = render_hooks.make_job(scene, frame, keep_original)
            rendered = frame_files.temp_path_for(path, "-render")
            region_render.clear_capture(scene)
            if temporal is not None:
                vector = temporal.render(scene)
                bpy.data.images["Render Result"].save_render(rendered, scene=scene)
                region_render.take_capture(scene, job.regions)
                task = temporal.frame_task(job, rendered, vector)
            else:
                bpy.ops.render.render(write_still=False)
                bpy.data.images["Render Result"].save_render(rendered, scene=scene)
                region_render.take_capture(scene, job.regions)
                task = render_hooks.FrameTask(job, source=rendered)
        outcome = task.start()
    return task if outcome is None else outcome


class AnimationRun:
    """Where one Render Stylized Animation stands: the frames, the frame in
    the worker, the outcomes so far."""

    def __init__(self, scene, keep_original: bool):
        self.frames = frame_range(scene)
        self.keep_original = keep_original
        self.overwrite = bool(scene.render.use_overwrite)  # off: frames that exist are skipped
        self.index = 0                       # frames finished (ok or not)
        self.outcomes: list[FrameOutcome] = []
        self.task: FrameWork | None = None   # the frame in the worker
        self.started = time.monotonic()
        self.preflight_error: str | None = None
        # Style regions: the Cryptomatte capture in place before the first render.
        region_render.sync_capture(scene)
        problem = render_hooks.regions_problem(scene)
        if problem:
            raise render_hooks.PasticheRenderError(problem)
        # Before frame 1: the worker starts and loads the model (temporal mode
        # also checks the frame size), so those failures cost no render.
        self.preflight: worker_client.Request | None = render_hooks.submit_preflight(
            scene, temporal=render_hooks.temporal_enabled(scene))
        # Temporal coherence: renders and primes the frames before the range first.
        self.temporal: temporal_render.TemporalRun | None = None
        if render_hooks.temporal_enabled(scene):
            self.temporal = temporal_render.TemporalRun(scene, self.frames[0])

    def step(self, scene, wait: bool) -> bool:
        """Move on: finish the frame in the worker once it answered (or wait
        for it when ``wait``), else render the next frame and submit it.
        Returns False when the run is over (all done, a failure, a cancel)."""
        if self.preflight is not None:
            if not wait and not self.preflight.done():
                return True
            problem = render_hooks.preflight_problem(self.preflight)
            self.preflight = None
            if problem:
                self.preflight_error = problem
                self._mark_all_failed(scene, f"not rendered: {problem}")
                return False
        if self.task is None:
            if _cancel_requested or self.index >= len(self.frames):
                return False
            frame = self.frames[self.index]
            path = bpy.path.abspath(scene.render.frame_path(frame=frame))
            if not self.overwrite and os.path.exists(path):
                return self._record(FrameOutcome(frame, path, True, "exists and Overwrite is off: "
                                                 "not rendered", skipped=True))
            if self.temporal is not None:
                if self.temporal.next_frame != frame:
                    self.temporal.restart_at(frame)  # frames were skipped: prime again before this one
                if self.temporal.to_prime:
                    self.temporal.prime_next(scene)  # one frame before the range per step
                    return True
                self.temporal.next_frame = frame + 1
            started = begin_frame(scene, frame, self.keep_original, self.temporal)
            if isinstance(started, FrameOutcome):
                return self._record(started)
            self.task = started
            if not wait:
                return True
        if not wait and not self.task.done():
            return True
        task, self.task = self.task, None
        outcome = task.finish()
        assert outcome is not None  # the plain-render hooks are suspended while this renders
        return self._record(outcome)

    def cancel(self) -> None:
        """Esc: stop the frame in the worker (it is reported as cancelled)."""
        request_cancel()
        if self.task is not None:
            self.task.cancel()

    def abandon(self) -> None:
        """Settle a frame still in the worker at once (the run ends abnormally)."""
        if self.task is not None:
            task, self.task = self.task, None
            self._record(task.abandon())

    def close(self) -> None:
        """The run is over: put the scene back (temporal mode's Vector capture)."""
        if self.temporal is not None:
            self.temporal.close()
            self.temporal = None

    def _mark_all_failed(self, scene, why: str) -> None:
        """Nothing could be rendered: every frame of the range goes in the marker."""
        by_folder: dict[str, dict[int, str]] = {}
        for frame in self.frames:
            folder = os.path.dirname(bpy.path.abspath(scene.render.frame_path(frame=frame)))
            by_folder.setdefault(folder, {})[frame] = why
        for folder, failed in by_folder.items():
            try:
                failure_marker.update_marker(folder, failed)
            except OSError as exc:
                render_hooks.report(f"ERROR: cannot write {failure_marker.marker_path(folder)}: {exc}")

    def _record(self, outcome: FrameOutcome) -> bool:
        self.outcomes.append(outcome)
        self.index += 1
        render_hooks.record_in_marker(outcome)
        if outcome.passed_through:
            render_hooks.report(f"frame {outcome.frame} NOT stylized, {outcome.message}")
        elif outcome.skipped:
            render_hooks.report(f"frame {outcome.frame} skipped: {outcome.path} {outcome.message}")
        elif outcome.ok:
            render_hooks.report(f"frame {outcome.frame} ({self.index}/{len(self.frames)}), "
                                f"{_eta(self.started, self.index, len(self.frames) - self.index)}")
        else:
            render_hooks.report(f"ERROR: {outcome.message}")
        return outcome.ok and self.index < len(self.frames) and not _cancel_requested

    @property
    def current_frame(self) -> int:
        return self.frames[min(self.index, len(self.frames) - 1)]

    def progress_line(self) -> str:
        """For the status bar: what happens now, frames done, ETA."""
        now = (f"stylizing frame {self.current_frame} ({self.task.fraction * 100:.0f}%)"
               if self.task is not None else f"frame {self.current_frame}")
        if self.task is None and self.temporal is not None and self.temporal.to_prime:
            now = f"priming from frame {self.temporal.to_prime[0]}"
        return (f"{now}, {self.index}/{len(self.frames)} done, "
                f"{_eta(self.started, self.index, len(self.frames) - self.index)}")


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
    nodes = compositor.stylize_nodes(scene)
    if not nodes or any(node.use_scene_weights for node in nodes):  # the scene's mix is used
        problem = render_hooks.style_problem(scene)
        if problem:
            return problem
    problem = region_render.scene_problem(scene, installed=False)  # the run installs the capture
    if problem:
        return problem
    if render_hooks.temporal_enabled(scene):
        return temporal_render.scene_problem(scene)
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

    _run: AnimationRun | None = None
    _timer: Any = None

    # -- shared ---------------------------------------------------------------------
    def _start(self, context) -> AnimationRun | None:
        global _cancel_requested
        _cancel_requested = False
        scene = context.scene
        problem = check_scene(scene)
        if problem:
            self.report({"ERROR"}, problem)
            return None
        if not self.properties.is_property_set("keep_original"):
            self.keep_original = render_hooks.keep_original_setting(scene)
        self.frame_before = scene.frame_current
        try:
            run = AnimationRun(scene, self.keep_original)
        except (render_hooks.PasticheRenderError, worker_client.WorkerError) as exc:
            self.report({"ERROR"}, str(exc))
            return None
        folder = os.path.dirname(bpy.path.abspath(scene.render.frame_path(frame=run.frames[0])))
        frame_files.sweep_stale_temps(folder)
        return run

    def _render_failed(self, context, run: AnimationRun, exc: Exception) -> set[str]:
        """A render error (not a stylizing one): report it, keep Blender usable."""
        run.abandon()
        run.close()
        self.report({"ERROR"}, f"Pastiche: render failed at frame {run.current_frame}: {exc}")
        context.scene.frame_set(self.frame_before)
        return {"CANCELLED"}

    def _finish(self, context, run: AnimationRun) -> set[str]:
        run.close()
        context.scene.frame_set(self.frame_before)
        done = [o for o in run.outcomes if o.ok]
        failed = [o for o in run.outcomes if not o.ok and not o.cancelled]
        elapsed = time.monotonic() - run.started
        render_hooks.report(render_hooks.summary(run.outcomes))
        if run.preflight_error:
            self.report({"ERROR"}, f"Pastiche: nothing rendered, {run.preflight_error}")
            return {"CANCELLED"}
        if failed:
            self.report({"ERROR"}, f"Pastiche: stopped at frame {failed[0].frame}: {failed[0].message}; "
                                   f"{len(done)} frame(s) finished")
            return {"CANCELLED"}
        if len(done) < len(run.frames):
            self.report({"WARNING"}, f"Pastiche: cancelled after {len(done)} of {len(run.frames)} "
                                     f"frame(s); every written frame is complete")
            return {"CANCELLED"}
        passed = [o for o in done if o.passed_through]
        where = os.path.dirname(done[-1].path) if done else "-"
        if passed:
            self.report({"WARNING"}, f"Pastiche: {render_hooks.summary(run.outcomes)}, in {elapsed:.1f} s, "
                                     f"written to {where}")
            return {"FINISHED"}
        self.report({"INFO"}, f"Pastiche: {render_hooks.summary(run.outcomes)} in {elapsed:.1f} s, "
                              f"written to {where}")
        return {"FINISHED"}

    # -- synchronous (scripts, background) ---------------------------------------------
    def execute(self, context):
        run = self._start(context)
        if run is None:
            return {"CANCELLED"}
        try:
            while run.step(context.scene, wait=True):
                pass
        except Exception as exc:
            return self._render_failed(context, run, exc)
        return self._finish(context, run)

    # -- modal (UI): never waits on the worker -------------------------------------------
    def invoke(self, context, event):
        if bpy.app.background or context.window is None:
            return self.execute(context)
        run = self._start(context)
        if run is None:
            return {"CANCELLED"}
        self._run = run
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.05, window=context.window)
        wm.progress_begin(0, len(run.frames))
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        run = self._run
        assert run is not None
        if event.type == "ESC" and event.value == "PRESS":
            run.cancel()  # the frame in the worker stops now; the next tick ends the run
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            more = run.step(context.scene, wait=False)
        except Exception as exc:
            self._end_modal(context)
            return self._render_failed(context, run, exc)
        context.window_manager.progress_update(run.index)
        if not more:
            return self._end_modal(context, run)
        if context.workspace is not None:
            context.workspace.status_text_set(f"Pastiche: {run.progress_line()} (Esc to cancel)")
        return {"RUNNING_MODAL"}

    def _end_modal(self, context, run: AnimationRun | None = None) -> set[str]:
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)
        self._run = None
        return self._finish(context, run) if run is not None else {"CANCELLED"}


def draw_render_menu(self, context):
    self.layout.separator()
    self.layout.operator("pastiche.stylize_render", icon="RENDER_RESULT")
    self.layout.operator(PASTICHE_OT_render_animation.bl_idname, icon="RENDER_ANIMATION")
