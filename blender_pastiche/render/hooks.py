"""Stylized frames from plain renders: Ctrl+F12, `blender -b file.blend -a` and
stills written by scripts (`bpy.ops.render.render(write_still=True)`).

When Pastiche is enabled on a scene, a render_write handler takes each frame
file Blender has just written, stylizes it with the weights of that frame and
replaces it atomically (the unstylized frame goes to unstylized/ when asked).
Render farms (Flamenco, Deadline, plain `blender -b -a`) need nothing extra.

Threading: in background mode handlers run on the main thread and each frame
is stylized right there, synchronously. In the UI they run on the render
thread, where bpy data must not change, so the handler only queues the
frame (path, weights, options: plain values read there) and a main-thread
timer hands it to the worker and polls it (FrameTask), so the interface
never waits while a frame is stylized. Cancelling the render (Esc) cancels
the frames still waiting; they are moved to unstylized/, leaving a gap.

The per-frame work (FrameTask: start, poll, finish) is shared with the
Render Stylized Animation operator (animation.py), so every path yields the
same pixels; stylize_frame_file() runs it synchronously.
"""

from __future__ import annotations

import collections
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import bpy
import numpy as np
from bpy.app.handlers import persistent

from ..io import failure_marker, frame_files, pixels
from ..props import scene as properties
from ..worker import client as worker_client
from . import compositor
from . import regions as region_render

# -- what a frame needs ------------------------------------------------------------


@dataclass
class FrameJob:
    """Everything needed to stylize one written frame, as plain values."""
    frame: int
    path: str                       # the frame file in the output sequence
    weights: dict[str, float] | None  # None: no style at this frame, keep it as rendered
    options: dict                   # Stylizer options (strength, preserve_color, tile...)
    encoding: frame_files.FrameEncoding
    has_alpha: bool
    keep_original: bool
    # The frame's style regions (regions.py), None without any; the scene's
    # mix (``weights``) is the base where their masks leave room.
    regions: region_render.FrameRegions | None = None
    # A still (render(write_still=True)), not a frame of the output sequence: it
    # has no line in the sequence's failure marker.
    still: bool = False
    # The file as Blender wrote it (render_write); if it changed before the job
    # starts, another job has it (a newer render, or an older job that read it).
    written_signature: frame_files.FileSignature | None = None
    # Which render wrote it (HookState.render): a refusal of a later render is not its.
    render: int = 0


@dataclass
class FrameOutcome:
    frame: int
    path: str
    ok: bool
    message: str = ""
    original: str | None = None     # where the unstylized frame is, if kept or moved aside
    cancelled: bool = False         # stopped by the user, not a failure
    passed_through: bool = False    # no style at this frame: written as rendered, on purpose
    skipped: bool = False           # not rendered: the file exists and Overwrite is off
    superseded: bool = False        # rendered again before it was stylized: the newer job does it


# Why the render hooks refuse temporal mode (render/temporal.py needs the operator).
HANDLER_PATH_MESSAGE = (
    "Temporal Coherence renders the frames before the range to prime each render, which a "
    "plain render (Ctrl+F12, blender -b -a) can't do: use Render > Render Stylized Animation "
    "(on a farm: blender -b file.blend -s START -e END --python-expr "
    "\"import bpy; bpy.ops.pastiche.render_animation()\")")


class PasticheRenderError(Exception):
    """A render can't be stylized (no style, unsupported output...)."""


# Exit status of `blender -b file.blend -a` (or -f) when a frame was not stylized.
EXIT_FAILED_FRAMES = 3


# -- the add-on's interfaces (props/scene.py, worker/client.py) -----------------------


def scene_settings(scene):
    settings = getattr(scene, "pastiche", None)
    if settings is None:
        raise PasticheRenderError("the Pastiche add-on's scene settings are not registered")
    return settings


def hooks_enabled(scene) -> bool:
    """True when plain renders of this scene should produce stylized frames."""
    settings = getattr(scene, "pastiche", None)
    return bool(settings is not None and getattr(settings, "enabled", False))


def frame_weights(scene) -> dict[str, float] | None:
    """The normalized style weights at the scene's current frame (keyframes
    evaluated); None when every weight is zero there: the frame stays unstylized."""
    weights = properties.effective_weights(scene)
    return dict(weights) if weights else None


def temporal_enabled(scene) -> bool:
    """True when the scene asks for temporal coherence (render/temporal.py)."""
    settings = getattr(scene, "pastiche", None)
    return bool(settings is not None and getattr(settings, "temporal", False))


def style_problem(scene) -> str | None:
    """Why the scene has no styles to mix (its model's styles never loaded or
    can't be read), or None. All weights at zero is not a problem: that is
    "no style", and frames pass through (counted and reported)."""
    settings = scene_settings(scene)
    if any(item.available for item in settings.styles):
        return None
    why = settings.model_error or "the model's style list is not loaded (Reload Styles in the Pastiche panel)"
    return f"the scene has no Pastiche styles: {why}"


def keep_original_setting(scene) -> bool:
    return bool(scene_settings(scene).keep_original)


def frame_options(scene) -> dict:
    options = dict(properties.stylize_options(scene))
    # The frame's file format decides these, not the scene settings.
    options.pop("colour_space", None)
    options.pop("premultiplied", None)
    return options


def render_size(scene) -> tuple[int, int]:
    """The output frames' width and height in pixels."""
    r = scene.render
    return (int(r.resolution_x * r.resolution_percentage / 100),
            int(r.resolution_y * r.resolution_percentage / 100))


def submit_preflight(scene, temporal: bool = False) -> worker_client.Request:
    """Before frame 1: start the worker, load the model (and, for temporal
    mode, check the frame size against its untiled limit), so a worker Python
    without torch, a corrupt model or a too-large temporal frame fails the
    render before anything is rendered, not after the first frame."""
    options = frame_options(scene)
    fields = {k: options[k] for k in ("model", "device", "precision")}
    if not fields["model"]:
        raise PasticheRenderError("no model chosen: pick a model file in the Pastiche panel")
    if not temporal:
        return worker_client.submit("load", fields)
    width, height = render_size(scene)
    return worker_client.submit("temporal_check", dict(fields, width=width, height=height))


def preflight_problem(request: worker_client.Request) -> str | None:
    """Why the worker can't stylize this render (from a finished preflight), or None."""
    try:
        request.wait()
    except worker_client.WorkerError as exc:
        return f"the worker can't stylize this render: {exc}"
    return None


def submit_pixels(image: np.ndarray, weights: dict[str, float], **options) -> worker_client.Request:
    """Hand pixels to the worker process (all torch work happens there); the
    job's wait() gives the stylized array."""
    return worker_client.submit_stylize(image, weights, **options)


# -- the frame's encoding --------------------------------------------------------


def output_encoding(scene) -> frame_files.FrameEncoding:
    """The encoding of the scene's output frames; FrameFormatError if unsupported."""
    s = scene.render.image_settings
    return frame_files.frame_encoding(s.file_format, s.color_depth, getattr(s, "media_type", "IMAGE"))


class FrameTask:
    """One frame through the worker without waiting on it.

    start() reads the frame and submits it; done() says whether the worker has
    answered; finish() writes the stylized frame to job.path atomically (it
    waits if called before done()). The UI calls done() from a timer or a modal
    operator between the two; background mode calls them in a row.

    source: the unstylized frame file (default: job.path itself, as Blender
    wrote it). The unstylized frame ends up in unstylized/ when
    job.keep_original is set; when stylizing fails it is moved there too, so
    the output sequence has a gap (that a re-run fills) rather than a frame
    that looks stylized but isn't.
    """

    def __init__(self, job: FrameJob, source: str | None = None):
        self.job = job
        self.source = source or job.path
        # A worker_client.Request, or anything with its done/fraction/cancel/wait
        # (temporal_render.TemporalRequest).
        self.request: Any = None
        # The loaded frame image, by name: it is looked up again in finish()
        # (a reference could go stale if the UI undoes or loads meanwhile).
        self._image_name: str | None = None
        self.coverage: np.ndarray | None = None  # the style regions' map (start() reads it)
        # The source file as start() read it: finish() writes nothing if it changed since.
        self._read_signature: frame_files.FileSignature | None = None

    # -- polling ---------------------------------------------------------------------
    def done(self) -> bool:
        return (self.request is None or self.request.done()) and not being_rendered(self.job.path)

    @property
    def fraction(self) -> float:
        return self.request.fraction if self.request is not None else 0.0

    def cancel(self) -> None:
        """Stop the worker's job; finish() then reports the frame as cancelled."""
        if self.request is not None:
            self.request.cancel()

    def abandon(self) -> FrameOutcome:
        """Cancel and settle the frame now, without waiting for the worker."""
        self.cancel()
        self._release_image()
        return self._cancelled()

    # -- the two ends ------------------------------------------------------------------
    def start(self) -> FrameOutcome | None:
        """Submit the frame to the worker. Returns the outcome at once when no
        worker job is needed (no style at this frame, a missing or unreadable
        file, a job the worker client refused); else None: poll done()."""
        job, source = self.job, self.source
        if not os.path.isfile(source):
            return FrameOutcome(job.frame, job.path, False, f"frame file {source} was not written")
        self._read_signature = frame_files.file_signature(source)
        if job.written_signature is not None and self._read_signature != job.written_signature:
            return superseded(job)  # rendered again (or taken by an older job) since it was written
        if job.weights is None and job.regions is None:
            return _pass_through(job, source)
        try:
            image, frame = pixels.load_frame(source, job.encoding)
        except Exception as exc:  # unreadable file: report, keep what is there
            if job.regions is not None:
                job.regions.discard()
            return FrameOutcome(job.frame, job.path, False, f"cannot read {source}: {exc}")
        image.name = f".Pastiche frame {job.frame}"  # leading dot: hidden from image lists
        self._image_name = image.name
        rgb = frame if job.has_alpha else frame[..., :3]
        try:
            if job.regions is not None:
                try:
                    self.coverage = job.regions.coverage(rgb.shape[:2])
                finally:
                    job.regions.discard()
            self.request = self._submit(rgb)
        except Exception as exc:
            self._release_image()
            return self._failed(exc)
        return None

    def finish(self) -> FrameOutcome | None:
        """Write the stylized frame (waits for the worker if it has not answered).
        None (UI only): a render is writing this frame's file again right now;
        call again once it is done (done() says when)."""
        job, source = self.job, self.source
        if self.request is None:
            raise RuntimeError("FrameTask.finish() before a successful start()")
        release = True
        try:
            try:
                out = self.request.wait()
            except worker_client.WorkerError as exc:
                return self._cancelled() if exc.kind == "Cancelled" else self._failed(exc)
            if frame_files.file_signature(source) != self._read_signature:
                # Rendered again meanwhile (a new render of the same output while this
                # one was in the worker): this result is of the older picture.
                return superseded(job)
            if being_rendered(job.path):
                release = False
                return None
            if not job.has_alpha:
                out = np.concatenate([out, np.ones_like(out[..., :1])], axis=2)
            image = self._image()
            original = None
            if job.keep_original and source == job.path:
                original = frame_files.keep_copy_of_original(job.path)
            try:
                with frame_files.atomic_write(job.path) as tmp:
                    pixels.save_frame(image, out, tmp, job.encoding)
                    # A last look before the replace: a render of this file may have
                    # begun while saving (Blender rewrites its file in place).
                    if being_rendered(job.path):
                        raise _NotNow
                    if frame_files.file_signature(source) != self._read_signature:
                        raise _Superseded
            except _NotNow:
                release = False
                return None
            except _Superseded:
                return superseded(job)
            if source != job.path:
                if job.keep_original:
                    original = frame_files.move_aside(job.path, source)
                else:
                    os.remove(source)
            if original is None:
                remove_stale_original(job.path)
            return FrameOutcome(job.frame, job.path, True, original=original)
        finally:
            if release:
                self._release_image()

    # -- helpers -----------------------------------------------------------------------
    def _submit(self, rgb: np.ndarray) -> Any:
        """Hand the frame's pixels to the worker (temporal mode sends more)."""
        job = self.job
        weights, options = request_mix(job)
        if job.regions is not None:
            options["regions"] = job.regions.request(self.coverage)
        return submit_pixels(rgb, weights, colour_space=job.encoding.colour_space,
                             premultiplied=job.encoding.premultiplied, **options)

    def _image(self):
        """The frame's image datablock, loaded again if it went away meanwhile."""
        image = bpy.data.images.get(self._image_name or "")
        if image is None:
            image, _ = pixels.load_frame(self.source, self.job.encoding)
            self._image_name = image.name
        return image

    def _release_image(self) -> None:
        image = bpy.data.images.get(self._image_name or "")
        if image is not None:
            bpy.data.images.remove(image)
        self._image_name = None

    def _failed(self, exc: Exception) -> FrameOutcome:
        moved = frame_files.move_aside(self.job.path, self.source)
        return FrameOutcome(self.job.frame, self.job.path, False,
                            f"frame {self.job.frame} was not stylized ({exc}); its unstylized "
                            f"render is in {moved}", moved)

    def _cancelled(self) -> FrameOutcome:
        return cancel_frame(self.job, self.source)


class _NotNow(Exception):
    """The frame's file is being rendered again: write the result later."""


class _Superseded(Exception):
    """The frame's file was rendered again: this result is of the older picture."""


def being_rendered(path: str) -> bool:
    """True while a render is writing ``path`` (render_pre to render_post)."""
    return path in STATE.rendering


def superseded(job: FrameJob) -> FrameOutcome:
    return FrameOutcome(job.frame, job.path, True, "rendered again before it was stylized: the newer "
                        "render is stylized instead", superseded=True)


def request_mix(job: FrameJob) -> tuple[dict[str, float], dict]:
    """The weights and options to send for a frame that is stylized. With
    regions but no scene style at this frame, the rest of the frame stays as
    rendered: the base gets strength 0 (its mix, then, is never seen)."""
    options = dict(job.options)
    if job.weights is not None:
        return job.weights, options
    assert job.regions is not None  # start() passes no-style frames through
    options["strength"] = 0.0
    return dict(job.regions.rows[0].mix), options


def cancel_frame(job: FrameJob, source: str | None = None) -> FrameOutcome:
    """A frame the user cancelled: a frame Blender wrote into the output is
    moved to unstylized/ (it must not look finished); a render of our own is
    kept there only when asked, else deleted."""
    source = source or job.path
    original = None
    if os.path.isfile(source):
        if source == job.path or job.keep_original:
            original = frame_files.move_aside(job.path, source)
        else:
            os.remove(source)
    where = f"; its unstylized render is in {original}" if original else ""
    return FrameOutcome(job.frame, job.path, False, f"frame {job.frame} was cancelled{where}",
                        original, cancelled=True)


def stylize_frame_file(job: FrameJob, source: str | None = None) -> FrameOutcome:
    """Stylize one frame and write it to job.path atomically, waiting for the
    worker (background mode, scripts); see FrameTask."""
    task = FrameTask(job, source)
    outcome = task.start() or task.finish()
    assert outcome is not None  # no render is writing the file now: this runs after render_write
    return outcome


PASS_THROUGH_MESSAGE = "no style at this frame (every weight is zero): written as rendered"


def remove_stale_original(frame_path: str) -> None:
    """A frame just written without keeping its original: an unstylized copy
    from an earlier run no longer belongs to it."""
    stale = frame_files.unstylized_path(frame_path)
    if os.path.isfile(stale):
        os.remove(stale)


def _pass_through(job: FrameJob, source: str) -> FrameOutcome:
    """No style at this frame: the frame stays as rendered (and is kept too, so
    unstylized/ always holds the whole sequence). Counted as passed through."""
    original = None
    if job.keep_original:
        original = frame_files.keep_copy_of_original(job.path, source)
    if source != job.path:
        os.replace(source, job.path)
    if original is None:
        remove_stale_original(job.path)
    return FrameOutcome(job.frame, job.path, True, PASS_THROUGH_MESSAGE, original, passed_through=True)


def summary(outcomes: list[FrameOutcome]) -> str:
    """One line for the log and the status bar: what became of the frames."""
    stylized = [o for o in outcomes if o.ok and not o.passed_through and not o.skipped and not o.superseded]
    again = [o.frame for o in outcomes if o.superseded]
    passed = [o.frame for o in outcomes if o.passed_through]
    skipped = [o.frame for o in outcomes if o.skipped]
    failed = [o.frame for o in outcomes if not o.ok]
    parts = [f"{len(stylized)} frame(s) stylized"]
    if passed:
        parts.append(f"{len(passed)} passed through unstylized (no style at frame(s) {_frames(passed)})")
    if skipped:
        parts.append(f"{len(skipped)} skipped (exist, Overwrite off: {_frames(skipped)})")
    if again:
        parts.append(f"{len(again)} rendered again before they were stylized (frame(s) {_frames(again)}: "
                     "the newer renders are stylized)")
    parts.append(f"{len(failed)} failed" + (f" (frame(s) {_frames(failed)})" if failed else ""))
    return ", ".join(parts)


def _frames(frames: list[int]) -> str:
    return ", ".join(str(f) for f in frames[:12]) + (", ..." if len(frames) > 12 else "")


def record_in_marker(outcome: FrameOutcome) -> None:
    """Keep the output folder's failure marker up to date (io/failure_marker.py)."""
    folder = os.path.dirname(outcome.path)
    try:
        if outcome.ok:
            failure_marker.update_marker(folder, {}, [outcome.frame])
        else:
            failure_marker.update_marker(folder, {outcome.frame: outcome.message})
    except OSError as exc:
        report(f"ERROR: cannot update {failure_marker.marker_path(folder)}: {exc}")


def still_path(scene) -> str | None:
    """Where render(write_still=True) writes this scene's still (no frame number);
    None when that can't be told (a path template together with # signs)."""
    r = scene.render
    output = bpy.path.abspath(r.filepath)
    if "{" in output:
        # Blender expands path templates ({resolution_x}...) in stills as in frame
        # paths, which only frame_path() does from Python: undo its frame number.
        if "#" in os.path.basename(output):
            return None
        frame = scene.frame_current
        numbered = bpy.path.abspath(r.frame_path(frame=frame))
        ext = r.file_extension if r.use_file_extension else ""
        stem = numbered[:len(numbered) - len(ext)] if ext and numbered.endswith(ext) else numbered
        digits = f"{frame:04d}"
        if not stem.endswith(digits):
            return None
        output = stem[:-len(digits)]
    return frame_files.still_path(output, r.image_settings.file_format, r.file_extension,
                                  r.use_file_extension)


def written_output(scene, frame: int) -> tuple[str | None, bool]:
    """(the file this render_write is about, whether it is a still): the frame's
    file when the render wrote it since render_pre, else the still when it wrote
    that; (None, False) when it wrote neither, and then nothing may be touched."""
    frame_file = bpy.path.abspath(scene.render.frame_path(frame=frame))
    changed = frame_files.written_file(STATE.before_write)
    if changed is None:
        return None, False
    return changed, changed != frame_file


def make_job(scene, frame: int, keep_original: bool | None = None, path: str | None = None) -> FrameJob:
    """Read everything a frame needs from the scene at its current frame;
    ``path``: the file to stylize (default: the frame's file in the sequence)."""
    if keep_original is None:
        keep_original = keep_original_setting(scene)
    problem = style_problem(scene)
    if problem:
        raise PasticheRenderError(problem)
    try:
        regions = region_render.frame_regions(scene)
    except region_render.RegionError as exc:
        raise PasticheRenderError(str(exc)) from None
    return FrameJob(
        frame=frame,
        path=path or bpy.path.abspath(scene.render.frame_path(frame=frame)),
        weights=frame_weights(scene),
        options=frame_options(scene),
        encoding=output_encoding(scene),
        has_alpha=scene.render.image_settings.color_mode == "RGBA",
        keep_original=keep_original,
        regions=regions,
    )


def regions_problem(scene, installed: bool = True) -> str | None:
    """Why this scene's style regions can't be rendered now, or None
    (regions.py; also each enabled row's own problem at the current frame)."""
    problem = region_render.scene_problem(scene, installed)
    if problem:
        return problem
    try:
        region_render.frame_regions(scene)
    except region_render.RegionError as exc:
        return str(exc)
    return None


# -- the handler path ----------------------------------------------------------------


POLL = 0.05          # s between looks at the frame in the worker (UI timer)
IDLE_POLL = 0.25     # s between looks at the queue while a render runs


@dataclass
class HookState:
    active: bool = False
    suspended: int = 0      # > 0 while Pastiche's own operators render (they stylize themselves)
    queue: collections.deque = field(default_factory=collections.deque)  # FrameJobs (UI)
    current: FrameTask | None = None  # the frame in the worker now (UI)
    cancel_pending: bool = False      # the render was cancelled: drop what still waits (UI)
    outcomes: list[FrameOutcome] = field(default_factory=list)
    refusal: str = ""       # why the current render is not stylized, if it isn't
    preflight: Any = None   # the worker job checking model and worker before frame 1 (UI)
    # The frame's file and the still's, with their file signatures at render_pre:
    # render_write can't tell a still (write_still=True) from an animation frame
    # other than by what was written, and a file that did not change is not ours.
    before_write: dict[str, frame_files.FileSignature | None] = field(default_factory=dict)
    # The files the frame rendering now may write (set on the render thread): jobs
    # for them wait, so a result of an older render never lands on a newer one.
    rendering: set = field(default_factory=set)
    render: int = 0         # counts renders (render_init), to tell their frames apart


STATE = HookState()


class suspended:
    """Context manager: plain-render hooks stay off inside (for our own operators)."""

    def __enter__(self):
        STATE.suspended += 1

    def __exit__(self, *exc):
        STATE.suspended -= 1


def report(message: str) -> None:
    # Background renders (farms) have only the log; the UI also shows it in the status bar.
    print(f"Pastiche: {message}", flush=True)


def compositor_has_stylize_node(scene) -> bool:
    return bool(compositor.stylize_nodes(scene))


@persistent
def on_render_init(scene, *_):
    STATE.active = False
    STATE.cancel_pending = False
    STATE.refusal = ""
    STATE.preflight = None
    STATE.render += 1
    if not STATE.queue and STATE.current is None:
        # (Frames of an earlier render still being stylized (UI) stay in the count:
        # the summary comes once all are settled.)
        STATE.outcomes.clear()
    if STATE.suspended or not hooks_enabled(scene):
        return
    try:
        output_encoding(scene)
        if temporal_enabled(scene):
            raise PasticheRenderError(HANDLER_PATH_MESSAGE)
        if compositor_has_stylize_node(scene):
            raise PasticheRenderError(
                "this scene's compositor holds a Pastiche Stylize node: use Render > Render "
                "Stylized Animation (or bpy.ops.pastiche.render_animation() on a farm) to run it")
        problem = style_problem(scene) or regions_problem(scene)
        if problem:
            raise PasticheRenderError(problem)
        preflight = submit_preflight(scene)
    except (frame_files.FrameFormatError, PasticheRenderError, worker_client.WorkerError) as exc:
        refuse(str(exc))
    else:
        if bpy.app.background:
            # Background mode waits here, before frame 1 is rendered.
            problem = preflight_problem(preflight)
            if problem:
                refuse(problem)
        else:
            STATE.preflight = preflight  # the UI's timer looks at it before the first frame
    folder = os.path.dirname(bpy.path.abspath(scene.render.frame_path(frame=scene.frame_start)))
    frame_files.sweep_stale_temps(folder)
    STATE.active = True


def refuse(why: str) -> None:
    """This render's frames will not be stylized: each is reported as failed
    (and set aside, so none looks stylized), in the log and the marker."""
    STATE.refusal = why
    report(f"ERROR: frames will NOT be stylized: {why}")


@persistent
def on_render_pre(scene, *_):
    # Plain file checks only: in the UI this runs on the render thread.
    STATE.before_write.clear()
    STATE.rendering.clear()
    if STATE.active and not STATE.suspended:
        # At render_pre frame_current is already the frame about to render.
        for path in (bpy.path.abspath(scene.render.frame_path(frame=scene.frame_current)), still_path(scene)):
            if path is not None:
                STATE.rendering.add(path)
                STATE.before_write[path] = frame_files.file_signature(path)


@persistent
def on_render_post(scene, *_):
    # The frame's file is written by now (render_write comes next).
    STATE.rendering.clear()


@persistent
def on_render_write(scene, *_):
    frame = scene.frame_current
    STATE.rendering.clear()
    if not STATE.active or STATE.suspended:
        # Not ours to stylize: the regions' capture files of this frame are not needed.
        region_render.drop_capture(scene, frame)
        return
    path, still = written_output(scene, frame)
    if path is None and not STATE.refusal:
        # Most likely a still whose name Pastiche can't work out: report it, touch nothing.
        region_render.drop_capture(scene, frame)
        looked = " or ".join(STATE.before_write) or "its output path"
        _finish(FrameOutcome(frame, bpy.path.abspath(scene.render.frame_path(frame=frame)), False,
                             f"frame {frame} was not stylized: Pastiche found no file this render wrote "
                             f"(it looked at {looked}); nothing was changed"), in_sequence=False)
        return
    try:
        if STATE.refusal:
            raise PasticheRenderError(STATE.refusal)
        assert path is not None
        job = make_job(scene, frame, path=path)
        job.still = still
        job.written_signature = frame_files.file_signature(path)
        job.render = STATE.render
        # The Cryptomatte files this frame's render wrote (read by FrameTask.start).
        region_render.find_capture(scene, job.regions, frame, still)
    except (frame_files.FrameFormatError, PasticheRenderError, region_render.RegionError) as exc:
        region_render.drop_capture(scene, frame)
        _finish(_refused_frame(path, frame, str(exc), scene), in_sequence=path is not None and not still)
        return
    if bpy.app.background:
        _finish(stylize_frame_file(job), job)
    else:
        queue_frame(job)


def _refused_frame(path: str | None, frame: int, why: str, scene) -> FrameOutcome:
    """A frame Blender wrote (to ``path``; None: no file this render wrote) that
    Pastiche can't stylize: moved out of an image sequence into unstylized/ (a
    movie file is left alone)."""
    moved = None
    if path is None:
        path = bpy.path.abspath(scene.render.frame_path(frame=frame))
        return FrameOutcome(frame, path, False, f"frame {frame} was not stylized ({why})")
    try:
        output_encoding(scene)
        if os.path.isfile(path):
            moved = frame_files.move_aside(path)
    except frame_files.FrameFormatError:
        pass
    where = f"; its unstylized render is in {moved}" if moved else ""
    return FrameOutcome(frame, path, False, f"frame {frame} was not stylized ({why}){where}", moved)


def queue_frame(job: FrameJob) -> None:
    """UI: leave the frame to the main-thread timer (safe from the render thread:
    only append; a waiting job for the same file, overtaken by a new render of it,
    sees at start() that the file changed since it was written, and gives way)."""
    STATE.queue.append(job)
    if not bpy.app.timers.is_registered(_drain_queue):
        bpy.app.timers.register(_drain_queue, first_interval=POLL)


def _finish(outcome: FrameOutcome, job: FrameJob | None = None, in_sequence: bool = True) -> None:
    """Settle a frame: counted, reported and, for a frame of the output sequence
    (not a still), kept in the folder's failure marker."""
    STATE.outcomes.append(outcome)
    if in_sequence and not outcome.superseded and not (job is not None and job.still):
        record_in_marker(outcome)
    if outcome.passed_through or outcome.superseded:
        report(f"frame {outcome.frame} NOT stylized, {outcome.message}: {outcome.path}")
    elif outcome.ok:
        report(f"stylized frame {outcome.frame}: {outcome.path}")
    else:
        report(f"ERROR: {outcome.message}")


def _drain_queue() -> float | None:
    """Main-thread timer (UI only): one frame at a time goes to the worker and
    is polled; each call returns at once, so the interface stays responsive
    while a frame is stylized. Returns when to be called again (None: stop)."""
    if STATE.cancel_pending:
        _drop_waiting_frames()
    if STATE.preflight is not None:
        if not STATE.preflight.done():
            _status("Pastiche: starting the worker and loading the model")
            return POLL
        problem = preflight_problem(STATE.preflight)
        STATE.preflight = None
        if problem:
            refuse(problem)
    if STATE.refusal:
        # This render's frames queued before the check answered; an earlier render's
        # frames still waiting are not refused with it.
        earlier: collections.deque = collections.deque()
        while STATE.queue:
            job = STATE.queue.popleft()
            if job.render == STATE.render:
                _finish(_set_aside_refused(job, STATE.refusal), job)
            else:
                earlier.append(job)
        STATE.queue.extendleft(reversed(earlier))
    task = STATE.current
    if task is not None:
        if not task.done():
            _status(f"Pastiche: stylizing frame {task.job.frame} ({task.fraction * 100:.0f}%), "
                    f"{len(STATE.queue)} waiting")
            return POLL
        outcome = _guarded(task.job, task.finish)
        if outcome is None:  # its file is being rendered again right now
            return POLL
        STATE.current = None
        _finish(outcome, task.job)
    while STATE.queue and STATE.current is None:
        if being_rendered(STATE.queue[0].path):
            break  # rendered again right now: it gives way at start() once that is written
        task = FrameTask(STATE.queue.popleft())
        outcome = _guarded(task.job, task.start)
        if outcome is None:
            STATE.current = task
        else:  # no worker needed (no style at this frame, unreadable file...)
            _finish(outcome, task.job)
    if STATE.current is not None:
        return POLL
    _status(None)
    if STATE.active:
        return IDLE_POLL
    if STATE.outcomes:
        report(summary(STATE.outcomes))  # the render is over and its last frame settled
    return None


def _guarded(job: FrameJob, step):
    """Run a FrameTask step from the timer; an unexpected error (a full disk...)
    is reported as that frame's failure instead of stopping the timer."""
    try:
        return step()
    except Exception as exc:
        return FrameOutcome(job.frame, job.path, False, f"frame {job.frame}: {type(exc).__name__}: {exc}")


def _drop_waiting_frames() -> None:
    """After Esc on the render: stop the frame in the worker and set aside the
    written frames that were still waiting (a re-run fills the gap)."""
    STATE.cancel_pending = False
    if STATE.current is not None:
        _finish(STATE.current.abandon(), STATE.current.job)
        STATE.current = None
    while STATE.queue:
        job = STATE.queue.popleft()
        _finish(cancel_frame(job), job)


def _status(text: str | None) -> None:
    """The status bar of every window (the UI has no other place for a timer's progress)."""
    wm = bpy.context.window_manager
    for window in getattr(wm, "windows", ()):
        workspace = getattr(window, "workspace", None)
        if workspace is not None:
            workspace.status_text_set(text)


def _set_aside_refused(job: FrameJob, why: str) -> FrameOutcome:
    moved = frame_files.move_aside(job.path) if os.path.isfile(job.path) else None
    where = f"; its unstylized render is in {moved}" if moved else ""
    return FrameOutcome(job.frame, job.path, False, f"frame {job.frame} was not stylized ({why}){where}",
                        moved)


def command_line_render() -> bool:
    """True in `blender -b file.blend -a` (or -f N): Blender's own arguments,
    before any "--", ask for a render. Scripts that render (bpy as a module,
    --python) are not ended by Pastiche; they read STATE.outcomes or the marker."""
    if not bpy.app.background:
        return False
    args = sys.argv[:sys.argv.index("--")] if "--" in sys.argv else sys.argv
    return any(a in ("-a", "--render-anim", "-f", "--render-frame") for a in args[1:])


@persistent
def on_render_complete(scene, *_):
    STATE.rendering.clear()
    if not STATE.active:
        return
    STATE.active = False
    if bpy.app.background:
        failed = [o for o in STATE.outcomes if not o.ok]
        report(summary(STATE.outcomes))
        if failed and command_line_render():
            folder = os.path.dirname(failed[0].path)
            report(f"exiting with status {EXIT_FAILED_FRAMES}: {len(failed)} frame(s) not stylized "
                   f"(the log above names each; frames of the sequence are listed in "
                   f"{failure_marker.marker_path(folder)})")
            exit_blender(EXIT_FAILED_FRAMES)


def exit_blender(status: int) -> None:
    """End Blender now with ``status``. Every frame file and the marker are
    written by now. Not sys.exit(): bpy 4.5 hangs at exit while the add-on is
    registered, and the handler runs inside the render. So: stop the worker,
    flush the log, and leave without Blender's own clean-up."""
    worker_client.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


@persistent
def on_render_cancel(scene, *_):
    STATE.rendering.clear()
    if not STATE.active:
        return
    # Handlers run on the render thread in the UI: the timer does the work.
    STATE.cancel_pending = True
    on_render_complete(scene)


HANDLERS = (
    ("render_init", on_render_init),
    ("render_pre", on_render_pre),
    ("render_post", on_render_post),
    ("render_write", on_render_write),
    ("render_complete", on_render_complete),
    ("render_cancel", on_render_cancel),
)
def stop() -> None:
    """Stop the queue timer and set aside frames still waiting (at unregister)."""
    if bpy.app.timers.is_registered(_drain_queue):
        bpy.app.timers.unregister(_drain_queue)
    _drop_waiting_frames()
