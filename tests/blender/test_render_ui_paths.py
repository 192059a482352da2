"""The UI paths of stylized rendering, driven by hand (headless Blender has no
event loop): the render hooks' timer and the Render Stylized Animation run
submit a frame to the worker and return at once, finish it only once the
worker has answered, and give the same frames as the synchronous path.

Worker jobs are wrapped in a gate the test opens, so "the worker has not
answered yet" is a state the test controls rather than a race."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time

import bpy
import numpy as np
import pytest
from PIL import Image

from blender_pastiche.operators import render_animation as animation
from blender_pastiche.render import hooks as render_hooks
from blender_pastiche.worker import client as worker_client

from . import scenes

pytestmark = pytest.mark.blender


class Gated:
    """A real worker job that reports done() only once the gate is open."""

    def __init__(self, job, gate: dict):
        self.job, self.gate = job, gate

    @property
    def fraction(self):
        return self.job.fraction

    def done(self):
        return self.gate["open"] and self.job.done()

    def wait(self):
        return self.job.wait()

    def cancel(self):
        self.gate["open"] = True  # a cancelled job answers at once
        self.job.cancel()


@pytest.fixture
def gate(monkeypatch):
    state = {"open": False, "submitted": [], "jobs": []}
    real = render_hooks.submit_pixels

    def submit(pixels, weights, **options):
        job = Gated(real(pixels, weights, **options), state)
        state["submitted"].append(weights)
        state["jobs"].append(job)
        return job

    monkeypatch.setattr(render_hooks, "submit_pixels", submit)
    return state


@pytest.fixture
def hook_state():
    def reset():
        state = render_hooks.STATE
        state.active, state.current, state.refusal, state.preflight = False, None, "", None
        state.queue.clear()
        state.rendering.clear()

    reset()
    render_hooks.STATE.outcomes.clear()
    yield render_hooks.STATE
    reset()
    if bpy.app.timers.is_registered(render_hooks._drain_queue):
        bpy.app.timers.unregister(render_hooks._drain_queue)


@contextlib.contextmanager
def frozen_worker():
    """The running worker, stopped (SIGSTOP) so a job sent to it stays running until
    Esc (else a fast machine finishes it first and there is nothing left to stop).
    Whatever happens, it is released afterwards: a frozen worker would hang later tests."""
    worker_client.submit("ping").wait(60)
    pid = worker_client.get_client().pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def wait_until_running(job, timeout: float = 60) -> None:
    """Until the worker holds ``job`` (cancelling a job still in the client's queue
    only drops it, without stopping the worker)."""
    deadline = time.monotonic() + timeout
    while job.state != "running":
        assert time.monotonic() < deadline, job.state
        time.sleep(0.005)


def _png_scene(scene, model, outdir):
    scenes.setup_pastiche(scene, str(model), keep_original=True)
    s = scene.render.image_settings
    s.file_format, s.color_mode, s.color_depth = "PNG", "RGBA", "8"
    scene.render.filepath = os.path.join(outdir, "frame_")


def _write_frame(path, seed):
    rgba = np.random.default_rng(seed).integers(0, 256, (24, 32, 4), dtype=np.uint8)
    rgba[..., 3] = np.maximum(rgba[..., 3], 40)
    Image.fromarray(rgba, "RGBA").save(path)


def _read(path):
    return np.asarray(Image.open(path).convert("RGBA"), dtype=np.float32) / 255.0


def _frame_images():
    return [i.name for i in bpy.data.images if i.name.startswith(".Pastiche frame")]


def _drain_until_idle(timeout=120.0):
    deadline = time.monotonic() + timeout
    while (wait := render_hooks._drain_queue()) == render_hooks.POLL:
        assert time.monotonic() < deadline, "the frames never finished"
        time.sleep(0.02)
    return wait


def test_hooks_timer_submits_then_finishes_by_polling(clean_scene, tiny_model, tmp_path, gate, hook_state):
    out, ref = tmp_path / "out", tmp_path / "ref"
    out.mkdir()
    ref.mkdir()
    _png_scene(clean_scene, tiny_model, str(out))
    jobs = []
    for frame in (5, 6):
        clean_scene.frame_set(frame)
        _write_frame(out / f"frame_{frame:04d}.png", seed=frame)
        shutil.copy(out / f"frame_{frame:04d}.png", ref / f"frame_{frame:04d}.png")
        jobs.append(render_hooks.make_job(clean_scene, frame))  # what render_write reads
    originals = {f: _read(out / f"frame_{f:04d}.png") for f in (5, 6)}

    hook_state.active = True  # a render is running
    for job in jobs:
        render_hooks.queue_frame(job)
    assert bpy.app.timers.is_registered(render_hooks._drain_queue)

    # First tick: frame 5 goes to the worker, nothing is written yet.
    assert render_hooks._drain_queue() == render_hooks.POLL
    assert hook_state.current is not None and hook_state.current.job.frame == 5
    assert len(gate["submitted"]) == 1 and len(hook_state.queue) == 1
    # The worker really finishes, but until the job says done the tick only polls.
    gate["jobs"][0].job.wait(120)
    for _ in range(3):
        assert render_hooks._drain_queue() == render_hooks.POLL
    np.testing.assert_array_equal(_read(out / "frame_0005.png"), originals[5])
    assert hook_state.outcomes == [] and len(gate["submitted"]) == 1

    # Answered: frame 5 is written and frame 6 submitted in the same tick.
    gate["open"] = True
    assert render_hooks._drain_queue() == render_hooks.POLL
    assert [o.frame for o in hook_state.outcomes] == [5] and hook_state.current.job.frame == 6
    assert _drain_until_idle() == render_hooks.IDLE_POLL  # the render still runs: keep looking
    hook_state.active = False
    assert render_hooks._drain_queue() is None

    assert [(o.frame, o.ok) for o in hook_state.outcomes] == [(5, True), (6, True)]
    assert gate["submitted"] == [job.weights for job in jobs]
    # The same frames as the synchronous (background) path.
    for job in jobs:
        sync_job = render_hooks.FrameJob(**{**vars(job), "path": str(ref / os.path.basename(job.path))})
        assert render_hooks.stylize_frame_file(sync_job).ok
        name = os.path.basename(job.path)
        got = _read(out / name)
        np.testing.assert_array_equal(got, _read(ref / name))
        assert np.abs(got - originals[job.frame]).max() > 0.05
        np.testing.assert_array_equal(_read(out / "unstylized" / name), originals[job.frame])
    assert _frame_images() == []
    assert sorted(os.listdir(out)) == ["frame_0005.png", "frame_0006.png", "unstylized"]


def _job_as_render_write_makes_it(scene, frame):
    job = render_hooks.make_job(scene, frame)
    job.written_signature = render_hooks.frame_files.file_signature(job.path)
    job.render = render_hooks.STATE.render
    return job


def test_a_refused_new_render_leaves_the_last_renders_waiting_frames_alone(
        clean_scene, tiny_model, tmp_path, gate, hook_state):
    _png_scene(clean_scene, tiny_model, str(tmp_path))
    clean_scene.pastiche.keep_original = False
    for frame in (5, 6):
        clean_scene.frame_set(frame)
        _write_frame(tmp_path / f"frame_{frame:04d}.png", seed=frame)
        render_hooks.queue_frame(_job_as_render_write_makes_it(clean_scene, frame))
    hook_state.active = True
    assert render_hooks._drain_queue() == render_hooks.POLL  # frame 5 in the worker, 6 waits
    # The artist renders again (another output range) and that render is refused.
    hook_state.render += 1
    render_hooks.refuse("a problem of the new render")
    clean_scene.frame_set(7)
    _write_frame(tmp_path / "frame_0007.png", seed=7)
    render_hooks.queue_frame(_job_as_render_write_makes_it(clean_scene, 7))
    gate["open"] = True
    _drain_until_idle()
    got = sorted((o.frame, o.ok) for o in hook_state.outcomes)
    assert got == [(5, True), (6, True), (7, False)]
    assert "a problem of the new render" in next(o.message for o in hook_state.outcomes if o.frame == 7)
    assert sorted(os.listdir(tmp_path / "unstylized")) == ["frame_0007.png"]


def _rerender(path, seed):
    """What Blender does when it renders the frame again: a new picture in the file."""
    tmp = path.with_name("rerender.png")
    _write_frame(tmp, seed=seed)
    os.replace(tmp, path)
    return _read(path)


def _stylized_once(scene, frame, picture, folder):
    """``picture`` through the synchronous path, as a reference."""
    folder.mkdir(exist_ok=True)
    ref = folder / f"frame_{frame:04d}.png"
    Image.fromarray(np.round(picture * 255).astype(np.uint8), "RGBA").save(ref)
    scene.frame_set(frame)
    job = render_hooks.make_job(scene, frame)
    assert render_hooks.stylize_frame_file(render_hooks.FrameJob(**{**vars(job), "path": str(ref)})).ok
    return _read(ref)


def test_a_new_render_overtaking_the_stylizing_gets_each_file_stylized_once(
        clean_scene, tiny_model, tmp_path, gate, hook_state):
    """In the UI the stylizing can lag behind the render; when the artist renders
    again meanwhile, each frame file ends up as the newest render stylized once:
    never the older render's result over the newer picture, never stylized twice."""
    _png_scene(clean_scene, tiny_model, str(tmp_path))
    clean_scene.pastiche.keep_original = False
    path5, path6 = tmp_path / "frame_0005.png", tmp_path / "frame_0006.png"
    for frame, path, seed in ((5, path5, 1), (6, path6, 2)):
        clean_scene.frame_set(frame)
        _write_frame(path, seed=seed)
        render_hooks.queue_frame(_job_as_render_write_makes_it(clean_scene, frame))
    before = path5.read_bytes()
    hook_state.active = True
    assert render_hooks._drain_queue() == render_hooks.POLL  # frame 5 is in the worker, 6 waits
    # A new render reaches frame 5 (render_pre) just as the worker answers: nothing is written.
    hook_state.rendering.add(str(path5))
    gate["open"] = True
    gate["jobs"][0].job.wait(120)
    for _ in range(3):
        assert render_hooks._drain_queue() == render_hooks.POLL
    assert path5.read_bytes() == before and hook_state.outcomes == []
    # It writes frame 5 (render_post, render_write), then frame 6.
    newer = {5: _rerender(path5, 11)}
    hook_state.rendering.clear()
    clean_scene.frame_set(5)
    render_hooks.queue_frame(_job_as_render_write_makes_it(clean_scene, 5))
    newer[6] = _rerender(path6, 12)
    clean_scene.frame_set(6)
    render_hooks.queue_frame(_job_as_render_write_makes_it(clean_scene, 6))
    _drain_until_idle()
    hook_state.active = False
    render_hooks._drain_queue()
    got = [(o.frame, o.ok, o.superseded) for o in hook_state.outcomes]
    assert got == [(5, True, True), (6, True, True), (5, True, False), (6, True, False)]
    assert len(gate["submitted"]) == 3  # the older frame 6 was never sent: its file had changed
    for frame, path in ((5, path5), (6, path6)):
        np.testing.assert_array_equal(_read(path), _stylized_once(clean_scene, frame, newer[frame],
                                                                  tmp_path / "ref"))
    assert "2 rendered again before they were stylized" in render_hooks.summary(hook_state.outcomes)
    from blender_pastiche.io import failure_marker
    assert failure_marker.read_marker(str(tmp_path)) == {}


def test_a_render_that_does_not_rewrite_the_file_only_delays_its_frame(
        clean_scene, tiny_model, tmp_path, gate, hook_state):
    """A still render of the same output path may write the frame's file or not:
    the frame waits while it renders, then is written as usual if its file is unchanged."""
    _png_scene(clean_scene, tiny_model, str(tmp_path))
    clean_scene.pastiche.keep_original = False
    path5 = tmp_path / "frame_0005.png"
    clean_scene.frame_set(5)
    _write_frame(path5, seed=1)
    picture = _read(path5)
    render_hooks.queue_frame(_job_as_render_write_makes_it(clean_scene, 5))
    hook_state.active = True
    assert render_hooks._drain_queue() == render_hooks.POLL
    hook_state.rendering.add(str(path5))
    gate["open"] = True
    gate["jobs"][0].job.wait(120)
    assert render_hooks._drain_queue() == render_hooks.POLL and hook_state.outcomes == []
    hook_state.rendering.clear()  # render_post: it wrote another file
    # The next render begins while the result is being saved: it is not put in place yet.
    real_save = render_hooks.pixels.save_frame

    def save_while_a_render_begins(*args, **kwargs):
        real_save(*args, **kwargs)
        hook_state.rendering.add(str(path5))

    render_hooks.pixels.save_frame = save_while_a_render_begins
    try:
        assert render_hooks._drain_queue() == render_hooks.POLL
    finally:
        render_hooks.pixels.save_frame = real_save
    np.testing.assert_array_equal(_read(path5), picture)
    assert hook_state.outcomes == [] and not [n for n in os.listdir(tmp_path) if "pastiche-tmp" in n]
    hook_state.rendering.clear()  # that one did not write it either
    _drain_until_idle()
    assert [(o.frame, o.ok, o.superseded) for o in hook_state.outcomes] == [(5, True, False)]
    np.testing.assert_array_equal(_read(path5), _stylized_once(clean_scene, 5, picture, tmp_path / "ref"))


def test_render_cancel_drops_waiting_frames_into_unstylized(clean_scene, tiny_model, tmp_path, gate,
                                                            hook_state):
    _png_scene(clean_scene, tiny_model, str(tmp_path))
    clean_scene.pastiche.keep_original = False
    for frame in (5, 6):
        clean_scene.frame_set(frame)
        _write_frame(tmp_path / f"frame_{frame:04d}.png", seed=frame)
        render_hooks.queue_frame(render_hooks.make_job(clean_scene, frame))
    with frozen_worker():
        hook_state.active = True
        assert render_hooks._drain_queue() == render_hooks.POLL  # frame 5 in the worker
        wait_until_running(gate["jobs"][0].job)
        render_hooks.on_render_cancel(clean_scene)  # Esc on the render (its handler, any thread)
        assert render_hooks._drain_queue() is None
        outcomes = [(o.frame, o.ok, o.cancelled) for o in hook_state.outcomes]
        assert outcomes == [(5, False, True), (6, False, True)]
        # No unstylized frame is left looking finished in the output: both wait in unstylized/.
        # The failure marker lists them for whoever checks the render.
        assert sorted(os.listdir(tmp_path)) == ["pastiche-failed-frames.txt", "unstylized"]
        from blender_pastiche.io import failure_marker
        assert sorted(failure_marker.read_marker(str(tmp_path))) == [5, 6]
        assert sorted(os.listdir(tmp_path / "unstylized")) == ["frame_0005.png", "frame_0006.png"]
        assert _frame_images() == []
        with pytest.raises(worker_client.WorkerError) as err:
            gate["jobs"][0].job.wait(60)
        assert err.value.kind == "Cancelled"  # the worker's job was stopped too
        assert worker_client.get_client().pid is None  # ... by stopping the frozen worker


def test_animation_run_steps_without_waiting_and_esc_cancels(clean_scene, tiny_model, tmp_path, gate):
    from pastiche_core import Stylizer

    scenes.build_scene(clean_scene, str(tmp_path), "PNG", "8", size=32)
    _png_scene(clean_scene, tiny_model, str(tmp_path))
    animation._cancel_requested = False
    run = animation.AnimationRun(clean_scene, keep_original=True)
    assert run.frames == [5, 6, 7]

    # The first ticks wait for the worker's check (model loaded) without rendering.
    deadline = time.monotonic() + 120
    while not run.preflight.done():
        assert run.step(clean_scene, wait=False) is True and run.task is None
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # A tick renders frame 5 and submits it; the next ticks only poll.
    assert run.step(clean_scene, wait=False) is True
    assert run.task is not None and run.index == 0 and len(gate["submitted"]) == 1
    gate["jobs"][0].job.wait(120)
    assert run.step(clean_scene, wait=False) is True
    assert run.index == 0 and not (tmp_path / "frame_0005.png").exists()
    assert "stylizing frame 5" in run.progress_line()

    gate["open"] = True
    assert run.step(clean_scene, wait=False) is True  # frame 5 written
    assert [o.ok for o in run.outcomes] == [True] and run.task is None
    gate["open"] = False
    with frozen_worker():
        assert run.step(clean_scene, wait=False) is True  # frame 6 rendered, in the worker
        assert run.task is not None and len(gate["submitted"]) == 2
        wait_until_running(gate["jobs"][1].job)
        run.cancel()  # Esc: the worker stops the job; the ticks see it settle
        deadline = time.monotonic() + 60
        while run.step(clean_scene, wait=False):
            assert time.monotonic() < deadline and len(run.outcomes) == 1
            time.sleep(0.02)
    assert [(o.frame, o.ok, o.cancelled) for o in run.outcomes] == [(5, True, False), (6, False, True)]
    assert len(gate["submitted"]) == 2  # frame 7 never started
    files = sorted(os.path.relpath(os.path.join(d, f), tmp_path) for d, _, fs in os.walk(tmp_path)
                   for f in fs)
    assert files == ["frame_0005.png", "pastiche-failed-frames.txt", "unstylized/frame_0005.png",
                     "unstylized/frame_0006.png"]  # the cancelled frame 6 is listed as not done

    # Frame 5 is the core's stylization of the kept render at that frame's mix.
    original = _read(tmp_path / "unstylized" / "frame_0005.png")
    expected = Stylizer(tiny_model, device="cpu").stylize(
        original, scenes.expected_weights(5), colour_space="srgb", premultiplied=False)
    np.testing.assert_allclose(_read(tmp_path / "frame_0005.png"), expected, atol=2.5 / 255)
    assert _frame_images() == []
    animation._cancel_requested = False
