"""Temporal coherence for Render Stylized Animation (the add-on side).

With ``scene.pastiche.temporal`` on, every frame goes to the worker as a
``temporal_stylize`` request together with its Vector pass, and the worker
blends in the previous frame's stylization along the true motion
(core/temporal/coherence.py, core/ipc/temporal_requests.py). What this module adds:

- VectorCapture: for the run, a Render Layers and a File Output node in the
  scene's compositor write the Vector pass of every render to a temporary
  single-layer float EXR (a multilayer File Output wrote only its first input
  in bpy 5.0.1); read() gives it top-down, like every array in the add-on.
  Everything is put back when the run ends.
- TemporalRun: before the first frame of EVERY run (a whole render or a farm
  chunk started with -s N: they can't be told apart) it renders the
  ``history`` frames before the range without writing them and primes the
  worker with them, oldest first. The worker's state is a function of those
  frames alone, so the frames don't depend on where a farm splits the range.
- TemporalRequest: one frame's request. When the worker refuses it because it
  lost the state (it was restarted), the frames before it are primed again
  from the copies kept here, and the frame is sent once more.

A frame with no style (all weights zero) is written as rendered and acts as
a cut: the next frame starts afresh (``first``), in a chunk as in a whole run.

The render-handler path (Ctrl+F12, ``blender -b -a``) can't render the
priming frames from inside a render, so temporal mode needs the operator
(render_hooks refuses it with HANDLER_PATH_MESSAGE).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import bpy
import numpy as np

from ..io import pixels
from ..props import scene as properties
from ..support import compat
from ..worker import client as worker_client
from . import compositor, passes
from . import hooks as render_hooks
from . import regions as region_render

VECTOR_ROWS = "top_down"  # the add-on's arrays run top-down (pixels.py)
NODE_PREFIX = ".Pastiche Vector"


# -- what the scene must allow ---------------------------------------------------------


def motion_blur_blocks_vectors(scene) -> bool:
    """Cycles writes no Vector pass while motion blur is on."""
    return scene.render.engine == "CYCLES" and bool(scene.render.use_motion_blur)


def scene_problem(scene) -> str | None:
    """Why temporal mode can't render this scene, or None."""
    if scene.render.engine == "BLENDER_WORKBENCH":
        return "Temporal Coherence needs a Vector pass, which Workbench doesn't render: use Cycles or EEVEE"
    if motion_blur_blocks_vectors(scene):
        return ("Temporal Coherence needs the Vector pass, which Cycles doesn't write with motion blur "
                "on: turn off Motion Blur (Render Properties) or Temporal Coherence")
    if scene.frame_step != 1:
        return (f"Temporal Coherence blends each frame with the one before it, so it needs a frame "
                f"step of 1 (it is {scene.frame_step})")
    if compositor.stylize_nodes(scene):
        return ("Temporal Coherence stylizes whole frames; it does not work with a Pastiche Stylize "
                "node in the compositor: mute the node or turn Temporal Coherence off")
    if compat.compositor_tree(scene) is not None and not scene.render.use_compositing:
        return ("Temporal Coherence reads the Vector pass through the compositor: turn on "
                "Compositing (Output Properties > Post Processing)")
    return None


# -- reading the Vector pass --------------------------------------------------------------


class VectorCapture:
    """Writes each render's Vector pass to a temporary EXR while installed
    (passes.PassCapture), for one run; remove() puts the scene back."""

    def __init__(self, scene):
        self.scene_name = scene.name
        self.folder = tempfile.mkdtemp(prefix="pastiche-vector-")
        self._layer_name = properties.vector_view_layer(scene).name
        self._capture = passes.PassCapture(NODE_PREFIX, self.folder, self._layer_name, ["Vector"],
                                           "vector_")
        self._made_tree: Any = None
        self._restore: dict[str, Any] = {}

    @property
    def scene(self):
        return bpy.data.scenes[self.scene_name]

    def install(self) -> None:
        scene = self.scene
        layer = scene.view_layers[self._layer_name]
        self._restore["use_pass_vector"] = layer.use_pass_vector
        layer.use_pass_vector = True
        self._capture.install(self._tree(scene))

    def _tree(self, scene):
        """The compositor to add the nodes to; a pass-through one if the scene has none."""
        tree = compat.compositor_tree(scene)
        if tree is not None:
            return tree
        self._restore["use_compositing"] = scene.render.use_compositing
        scene.render.use_compositing = True
        self._made_tree = compat.TemporaryCompositor(scene, f"{NODE_PREFIX} Compositor", self._layer_name)
        return self._made_tree.tree

    def clear(self) -> None:
        """Before a render: no file of an earlier frame may be mistaken for this one's."""
        self._capture.clear()

    def read(self) -> np.ndarray:
        """The last render's Vector pass: H x W x 4 float32, rows top-down."""
        # Read raw, not through Blender's image loader: the 4th channel (motion
        # to the next frame) is data, and 4.5 writes X, Y, Z, W, whose W the
        # loader replaces with 1.
        try:
            return passes.read_pass(self._capture.latest("Vector"))
        except passes.CaptureError as e:
            raise render_hooks.PasticheRenderError(str(e)) from e

    def remove(self) -> None:
        """Put the scene back as it was and delete the files."""
        scene = bpy.data.scenes.get(self.scene_name)
        if scene is not None:
            self._capture.remove_nodes(compat.compositor_tree(scene))
            if self._made_tree is not None:
                self._made_tree.remove(scene)
            if "use_compositing" in self._restore:
                scene.render.use_compositing = self._restore["use_compositing"]
            layer = scene.view_layers.get(self._layer_name)
            if layer is not None and "use_pass_vector" in self._restore:
                layer.use_pass_vector = self._restore["use_pass_vector"]
        self._made_tree = None
        self._capture.delete_folder()


# -- the worker requests -------------------------------------------------------------------


@dataclass
class SentFrame:
    """A frame handed to the worker, kept so it can be primed again."""
    frame: int
    input: str                      # .npy of the pixels as sent
    vector: str                     # .npy of its Vector pass
    weights: dict[str, float]
    colour_space: str
    premultiplied: bool
    first: bool                     # nothing before it (the frame before has no style)
    brush_size: float = 1.0         # this frame's (animatable): primes and frames alike
    detail: float = 0.0
    regions: dict | None = None     # the worker's "regions" field (its coverage .npy kept here)
    strength: float | None = None   # None: the run's; 0 when only the regions have a style


def submit(kind: str, fields: dict, **kwargs: Any) -> worker_client.Request:
    """One worker request (tests wrap this to watch the requests)."""
    return worker_client.submit(kind, fields, **kwargs)


class TemporalRequest:
    """One frame's temporal_stylize, behind the prime requests queued before
    it; quacks like worker_client.Request (done, fraction, cancel, wait). A refusal
    because the worker lost the state (restarted) primes the frames before
    it again and sends the frame once more."""

    def __init__(self, run: TemporalRun, sent: SentFrame, output: str, before: list):
        self.run = run
        self.sent = sent
        self.output = output
        self.before = before     # prime requests this frame depends on
        self.retried = False
        self.request = self._submit()

    def _submit(self) -> worker_client.Request:
        strength = self.run.strength if self.sent.strength is None else self.sent.strength
        fields = dict(self.run.request_fields(self.sent), output={"path": self.output},
                      strength=strength, preserve_color=self.run.preserve_color)

        def finish(result: dict) -> np.ndarray:
            return np.load(result["output"]["path"], allow_pickle=False)

        def cleanup() -> None:
            if os.path.exists(self.output):
                os.remove(self.output)

        return submit("temporal_stylize", fields, finish=finish, cleanup=cleanup)

    def _refused(self) -> bool:
        err = self.request.error
        return err is not None and err.kind == "RequestError" and "temporal_prime" in err.message

    def done(self) -> bool:
        if not self.request.done():
            return False
        if self._refused() and not self.retried:
            self.retried = True
            self.run.reprimed += 1
            window = self.run.window(self.sent.frame)
            render_hooks.report(f"the worker lost the temporal state before frame {self.sent.frame}: "
                                f"priming frame(s) {[s.frame for s in window]} again")
            self.before = self.run.submit_primes(window)
            self.request = self._submit()
            return False
        return True

    @property
    def fraction(self) -> float:
        return self.request.fraction

    def cancel(self) -> None:
        for request in [*self.before, self.request]:
            request.cancel()

    def wait(self) -> np.ndarray:
        while not self.done():
            try:
                self.request.wait()
            except worker_client.WorkerError:
                pass  # done() looks at it
        try:
            return self.request.wait()
        except worker_client.WorkerError as exc:
            # A refused frame after a failed prime: the prime's error says why.
            primed = next((j.error for j in self.before if j.error is not None), None)
            if primed is not None and exc.kind != "Cancelled" and primed.kind != "Cancelled":
                raise primed from None
            raise


class TemporalFrameTask(render_hooks.FrameTask):
    """render_hooks.FrameTask that sends the frame with its Vector pass."""

    def __init__(self, job: render_hooks.FrameJob, source: str, run: TemporalRun, vector: np.ndarray):
        super().__init__(job, source)
        self.run = run
        self.vector: np.ndarray | None = vector

    def _submit(self, rgb: np.ndarray) -> Any:
        vector, self.vector = self.vector, None
        assert vector is not None
        return self.run.submit_frame(self.job, rgb, vector, self.coverage)


class TemporalRun:
    """The temporal side of one Render Stylized Animation run."""

    def __init__(self, scene, first_frame: int):
        settings = scene.pastiche
        self.history = int(settings.temporal_history)
        if not 1 <= self.history <= properties.MAX_HISTORY:
            raise render_hooks.PasticheRenderError(
                f"the temporal history must be 1 to {properties.MAX_HISTORY} frames, not {self.history}")
        problem = scene_problem(scene)
        if problem:
            raise render_hooks.PasticheRenderError(problem)
        options = render_hooks.frame_options(scene)
        self.load_fields = {k: options[k] for k in ("model", "device", "precision")}
        if not self.load_fields["model"]:
            raise render_hooks.PasticheRenderError("no model chosen: pick a model file in the Pastiche panel")
        self.strength = float(options["strength"])
        self.preserve_color = bool(options["preserve_color"])
        self.to_prime = list(range(first_frame - self.history, first_frame))
        self.next_frame = first_frame     # the frame the primed state leads to
        self.folder = tempfile.mkdtemp(prefix="pastiche-temporal-")
        self.kept: list[SentFrame] = []   # the last frames sent, oldest first
        self.pending: list = []           # prime requests the next frame depends on
        self.reprimed = 0                 # how often the worker had to be primed again
        self._files = 0
        self.capture = VectorCapture(scene)
        try:
            self.capture.install()
        except Exception:
            self.capture.remove()
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        # Nothing the worker holds from another run counts.
        self.pending.append(submit("temporal_reset", {}))

    # -- rendering ---------------------------------------------------------------------
    def render(self, scene) -> np.ndarray:
        """Render the current frame (not written); return its Vector pass."""
        self.capture.clear()
        bpy.ops.render.render(write_still=False)
        return self.capture.read()

    def prime_next(self, scene) -> None:
        """Render the next frame before the range and prime the worker with it."""
        frame = self.to_prime.pop(0)
        scene.frame_set(frame)
        job = render_hooks.make_job(scene, frame, keep_original=False)
        with render_hooks.suspended():
            region_render.clear_capture(scene)
            vector = self.render(scene)
            rendered = os.path.join(self.folder, f"prime-{frame}{os.path.splitext(job.path)[1]}")
            bpy.data.images["Render Result"].save_render(rendered, scene=scene)
            region_render.take_capture(scene, job.regions)
        try:
            image, frame_pixels = pixels.load_frame(rendered, job.encoding)
            bpy.data.images.remove(image)
        finally:
            os.remove(rendered)
        coverage = None
        if job.regions is not None:
            try:
                coverage = job.regions.coverage(frame_pixels.shape[:2])
            except region_render.RegionError as exc:
                raise render_hooks.PasticheRenderError(f"priming frame {frame}: {exc}") from None
            finally:
                job.regions.discard()
        if job.weights is None and job.regions is None:
            return  # no style at this frame: a cut, nothing to prime
        rgb = frame_pixels if job.has_alpha else frame_pixels[..., :3]
        sent = self._keep(job, rgb, vector, coverage)
        self.pending.extend(self.submit_primes([sent]))

    def restart_at(self, frame: int) -> None:
        """The run jumps to ``frame`` (frames in between were skipped): prime
        the ``history`` frames before it again, as at the start of a run."""
        self.to_prime = list(range(frame - self.history, frame))
        self.next_frame = frame

    def frame_task(self, job: render_hooks.FrameJob, rendered: str, vector: np.ndarray):
        return TemporalFrameTask(job, rendered, self, vector)

    # -- requests ----------------------------------------------------------------------
    def request_fields(self, sent: SentFrame) -> dict:
        fields = {**self.load_fields, "frame": sent.frame, "input": {"path": sent.input},
                  "vector": {"path": sent.vector}, "weights": dict(sent.weights),
                  "colour_space": sent.colour_space, "premultiplied": sent.premultiplied,
                  "vector_rows": VECTOR_ROWS, "history": self.history, "first": sent.first,
                  "brush_size": sent.brush_size, "detail": sent.detail}
        if sent.regions is not None:
            fields["regions"] = sent.regions  # this frame's own masks: they follow the objects
        return fields

    def submit_primes(self, frames: list[SentFrame]) -> list:
        return [submit("temporal_prime", self.request_fields(s)) for s in frames]

    def submit_frame(self, job: render_hooks.FrameJob, rgb: np.ndarray, vector: np.ndarray,
                     coverage: np.ndarray | None = None) -> TemporalRequest:
        sent = self._keep(job, rgb, vector, coverage)
        before, self.pending = self.pending, []
        return TemporalRequest(self, sent, self._path("out"), before)

    def window(self, frame: int) -> list[SentFrame]:
        """The kept frames to prime before ``frame``, oldest first: the
        consecutive frames up to frame-1, at most ``history``, from the last
        one that starts afresh."""
        by_frame = {sent.frame: sent for sent in self.kept}
        out: list[SentFrame] = []
        for f in range(frame - 1, frame - 1 - self.history, -1):
            sent = by_frame.get(f)
            if sent is None:
                break
            out.insert(0, sent)
            if sent.first:
                break
        return out

    def _keep(self, job: render_hooks.FrameJob, rgb: np.ndarray, vector: np.ndarray,
              coverage: np.ndarray | None = None) -> SentFrame:
        scene = bpy.data.scenes[self.capture.scene_name]
        # A cut before this frame: the frame before had no style at all.
        first = (properties.effective_weights(scene, job.frame - 1) is None
                 and not (job.regions is not None and region_render.enabled_at(scene, job.frame - 1)))
        src, vec = self._path("in"), self._path("vector")
        np.save(src, np.ascontiguousarray(rgb, dtype=np.float32), allow_pickle=False)
        np.save(vec, np.ascontiguousarray(vector, dtype=np.float32), allow_pickle=False)
        weights, options = render_hooks.request_mix(job)
        regions = None
        if job.regions is not None:
            assert coverage is not None
            cov = self._path("regions")
            np.save(cov, np.ascontiguousarray(coverage, dtype=np.float32), allow_pickle=False)
            regions = job.regions.request({"path": cov})
        sent = SentFrame(job.frame, src, vec, dict(weights), job.encoding.colour_space,
                         job.encoding.premultiplied, first, float(job.options.get("brush_size", 1.0)),
                         float(job.options.get("detail", 0.0)), regions,
                         None if job.weights is not None else float(options["strength"]))
        self.kept.append(sent)
        # The frame being sent and the history before it are needed to prime again.
        while len(self.kept) > self.history + 1:
            old = self.kept.pop(0)
            for p in (old.input, old.vector, (old.regions or {}).get("coverage", {}).get("path", "")):
                if p and os.path.exists(p):
                    os.remove(p)
        return sent

    def _path(self, tag: str) -> str:
        self._files += 1
        return os.path.join(self.folder, f"{tag}-{self._files}.npy")

    def close(self) -> None:
        """Put the scene back and delete the files (the worker may keep its state)."""
        for request in self.pending:
            request.cancel()
        self.pending = []
        self.capture.remove()
        shutil.rmtree(self.folder, ignore_errors=True)

