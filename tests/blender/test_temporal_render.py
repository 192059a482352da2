"""Temporal coherence through real Blender (issue #8, add-on side).

A short Cycles animation (64 x 48, 2 samples) of a ball moving across a lit
backdrop, stylized by Render Stylized Animation with Temporal Coherence on:

- frames 1-6 in one run and as two farm chunks (4-6, then 1-3 on a fresh
  worker) are bit-identical, because every run primes the frame before it;
- a worker restarted in the middle of a run is primed again from the frames
  the add-on kept, and the frames stay bit-identical;
- temporal frames differ from per-frame ones and flicker less;
- the Vector pass is read raw and top-down, with Blender's sign convention;
- the scene is put back afterwards; the render-handler path refuses the mode
  with a message that names the operator.
"""

from __future__ import annotations

import os

import bpy
import numpy as np
import pytest

from blender_pastiche.operators import render_animation as animation
from blender_pastiche.props import scene as properties
from blender_pastiche.render import hooks as render_hooks
from blender_pastiche.render import temporal as temporal_render
from blender_pastiche.support import compat
from blender_pastiche.worker import client as worker_client

OpenEXR = pytest.importorskip("OpenEXR")

from . import scenes  # noqa: E402  (needs OpenEXR, checked above)

pytestmark = pytest.mark.blender
FRAMES = range(1, 7)


def read_exr(path) -> np.ndarray:
    with OpenEXR.File(str(path)) as f:
        channels = f.channels()
        if set("XYZW") <= set(channels):  # 4.5 writes the Vector pass as X, Y, Z, W
            return np.stack([np.asarray(channels[c].pixels, np.float32) for c in "XYZW"], axis=-1)
        return np.asarray(next(iter(channels.values())).pixels, dtype=np.float32)


def build(scene, outdir, model, temporal=True):
    """scenes.build_scene's ball and camera, plus a backdrop, moving fast."""
    scenes.build_scene(scene, str(outdir))
    scene.render.film_transparent = False
    scenes.add_backdrop(scene, (0.3, 0.5, 0.7))
    ball = bpy.data.objects["ball"]
    ball.animation_data_clear()
    for frame, x in ((0, -1.5), (7, 1.5)):
        ball.location = (x, 0.0, 0.1 * x)
        ball.keyframe_insert("location", frame=frame)
    scenes.setup_pastiche(scene, str(model), keep_original=False)
    scene.frame_start, scene.frame_end = FRAMES[0], FRAMES[-1]
    scene.pastiche.temporal = temporal


def assert_compositor_put_back(scene) -> None:
    """The scene composites as before the run (it had no compositor) and none of
    the run's nodes are left (4.5: in scene.node_tree, which stays; 5.0: a group)."""
    assert compat.compositor_tree(scene) is None
    assert not [n for n in bpy.data.node_groups if n.name.startswith(temporal_render.NODE_PREFIX)]
    if compat.IS_4X:
        assert not [n for n in scene.node_tree.nodes if n.name.startswith(temporal_render.NODE_PREFIX)]
        assert not [n.name for n in scene.node_tree.nodes if n.mute]


def render_range(scene, outdir, start, end) -> set[str]:
    scene.render.filepath = os.path.join(str(outdir), "frame_")
    scene.frame_start, scene.frame_end = start, end
    return bpy.ops.pastiche.render_animation()


@pytest.fixture
def requests(monkeypatch):
    """Every temporal request the add-on sends, as (kind, frame)."""
    sent: list[tuple[str, int | None]] = []
    real = temporal_render.submit

    def watch(kind, fields, **kwargs):
        sent.append((kind, fields.get("frame")))
        return real(kind, fields, **kwargs)

    monkeypatch.setattr(temporal_render, "submit", watch)
    return sent


def frames(folder) -> list[np.ndarray]:
    return [read_exr(folder / f"frame_{f:04d}.exr") for f in FRAMES]


def test_chunked_and_unchunked_renders_give_the_same_frames(clean_scene, tiny_model, tmp_path, requests):
    scene = clean_scene
    build(scene, tmp_path, tiny_model)
    assert properties.vector_view_layer(scene).use_pass_vector  # the checkbox turned it on
    whole, chunks, per_frame = tmp_path / "whole", tmp_path / "chunks", tmp_path / "per_frame"

    assert render_range(scene, whole, 1, 6) == {"FINISHED"}
    assert ("temporal_prime", 0) in requests
    assert [f for k, f in requests if k == "temporal_stylize"] == list(FRAMES)
    requests.clear()
    # A farm: the second chunk first, on a worker holding the whole run's state...
    assert render_range(scene, chunks, 4, 6) == {"FINISHED"}
    # ...then the first chunk on a fresh worker (another farm node).
    worker_client.restart()
    assert render_range(scene, chunks, 1, 3) == {"FINISHED"}
    primes = [f for k, f in requests if k == "temporal_prime"]
    assert primes == [3, 0]  # each chunk primed the frame before it
    assert sorted(os.listdir(chunks)) == [f"frame_{f:04d}.exr" for f in FRAMES]
    for f, a, b in zip(FRAMES, frames(whole), frames(chunks), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"frame {f} depends on where the chunk started")

    # The scene is as it was: no capture nodes, no compositor made for the run.
    assert_compositor_put_back(scene)
    assert not [n for n in bpy.data.node_groups if n.name.startswith(temporal_render.NODE_PREFIX)]

    # Per-frame mode on the same scene: different frames, and more flicker.
    scene.pastiche.temporal = False
    assert render_range(scene, per_frame, 1, 6) == {"FINISHED"}
    temporal, plain = frames(whole), frames(per_frame)
    for f, t, p in zip(FRAMES, temporal, plain, strict=True):
        assert np.abs(t - p).max() > 0.02, f"frame {f}: temporal mode changed nothing"

    def flicker(seq):
        return float(np.mean([np.abs(b - a).mean() for a, b in zip(seq[:-1], seq[1:], strict=True)]))

    assert flicker(temporal) < flicker(plain)


def test_a_restarted_worker_is_primed_again(clean_scene, tiny_model, tmp_path, requests):
    scene = clean_scene
    build(scene, tmp_path, tiny_model)
    assert render_range(scene, tmp_path / "whole", 1, 6) == {"FINISHED"}
    requests.clear()

    def restart_worker(s, *_):
        if s.frame_current == 4:  # frame 3 is finished; its state dies with the worker
            worker_client.restart()

    bpy.app.handlers.render_post.append(restart_worker)
    try:
        assert render_range(scene, tmp_path / "restarted", 1, 6) == {"FINISHED"}
    finally:
        bpy.app.handlers.render_post.remove(restart_worker)
    # Frame 4 was refused by the fresh worker, frame 3 primed again from the kept copy.
    assert requests == [("temporal_reset", None), ("temporal_prime", 0)] + [
        ("temporal_stylize", f) for f in (1, 2, 3, 4)] + [("temporal_prime", 3), ("temporal_stylize", 4)] + [
        ("temporal_stylize", f) for f in (5, 6)]
    for f, a, b in zip(FRAMES, frames(tmp_path / "whole"), frames(tmp_path / "restarted"), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"frame {f}")


def test_vector_pass_is_read_raw_and_top_down(clean_scene, tiny_model, tmp_path):
    scene = clean_scene
    build(scene, tmp_path, tiny_model)
    scene.frame_set(3)
    capture = temporal_render.VectorCapture(scene)
    capture.install()
    try:
        capture.clear()
        bpy.ops.render.render(write_still=False)
        vector = capture.read()
        (file,) = os.listdir(capture.folder)
        np.testing.assert_array_equal(vector, read_exr(os.path.join(capture.folder, file)))
    finally:
        capture.remove()
    assert vector.shape == (48, 64, 4)
    # The ball moves right (+x) and up: xy = previous - current position, so x < 0
    # on the ball; the backdrop stands still.
    moving = np.abs(vector[..., 0]) > 0.5
    assert 0.02 < moving.mean() < 0.5
    assert (vector[moving, 0] < 0).all()
    assert (vector[moving, 1] < 0).all()  # y up in Blender's pass: moving up -> previous is lower
    assert np.abs(vector[~moving, :2]).max() < 0.5
    # zw = current - next position: also negative on the ball. (4.5's image loader
    # would have made w 1.0 everywhere; the add-on reads the file raw.)
    assert (vector[moving, 2] < 0).all()
    assert (vector[moving, 3] < 0).all()
    assert not os.path.exists(capture.folder)
    assert_compositor_put_back(scene)


def test_scenes_temporal_mode_cannot_render(clean_scene, tiny_model, tmp_path):
    scene = clean_scene
    build(scene, tmp_path, tiny_model)
    assert animation.check_scene(scene) is None
    scene.render.use_motion_blur = True
    assert "motion blur" in animation.check_scene(scene)
    with pytest.raises(RuntimeError, match="Motion Blur"):
        bpy.ops.pastiche.render_animation()
    scene.render.use_motion_blur = False
    scene.frame_step = 2
    assert "frame step of 1" in animation.check_scene(scene)
    scene.frame_step = 1
    scene.render.engine = "BLENDER_WORKBENCH"
    assert "Workbench" in animation.check_scene(scene)
    assert not os.path.exists(tmp_path / "frame_0001.exr")


def test_plain_renders_refuse_temporal_mode_and_say_why(clean_scene, tiny_model, tmp_path, capsys):
    scene = clean_scene
    build(scene, tmp_path, tiny_model)
    scene.pastiche.enabled = True
    scene.frame_start, scene.frame_end = 1, 1
    bpy.ops.render.render(animation=True)
    assert "Render Stylized Animation" in render_hooks.STATE.refusal
    assert [(o.frame, o.ok) for o in render_hooks.STATE.outcomes] == [(1, False)]
    assert "frames will NOT be stylized" in capsys.readouterr().out
    # Not left looking stylized: set aside, and listed in the failure marker.
    assert not os.path.exists(tmp_path / "frame_0001.exr")
    assert os.path.exists(tmp_path / "unstylized" / "frame_0001.exr")
    from blender_pastiche.io import failure_marker
    assert "Render Stylized Animation" in failure_marker.read_marker(str(tmp_path))[1]


def test_ui_run_polls_the_worker_and_gives_the_same_frames(clean_scene, tiny_model, tmp_path, requests):
    import time

    scene = clean_scene
    build(scene, tmp_path, tiny_model)
    assert render_range(scene, tmp_path / "whole", 1, 6) == {"FINISHED"}
    scene.render.filepath = os.path.join(str(tmp_path / "ui"), "frame_")
    os.makedirs(tmp_path / "ui")
    animation._cancel_requested = False
    run = animation.AnimationRun(scene, keep_original=False)
    polls, deadline = 0, time.monotonic() + 120
    try:
        assert run.step(scene, wait=False) and run.task is None  # frame 0 rendered, its prime queued
        assert "priming" in run.progress_line() or run.temporal.to_prime == []
        while run.step(scene, wait=False):  # the modal operator's timer ticks
            assert time.monotonic() < deadline
            polls += run.task is not None and not run.task.done()
            time.sleep(0.01)
    finally:
        run.close()
    assert [o.ok for o in run.outcomes] == [True] * 6
    assert polls > 0  # ticks returned while the worker was still busy
    for f, a, b in zip(FRAMES, frames(tmp_path / "whole"), frames(tmp_path / "ui"), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"frame {f}")
    assert_compositor_put_back(scene)


def test_a_frame_with_no_style_is_a_cut_in_chunks_too(clean_scene, tiny_model, tmp_path, requests):
    scene = clean_scene
    build(scene, tmp_path, tiny_model)
    for frame, a in ((2, 1.0), (3, 0.0), (4, 1.0)):  # no style at frame 3
        for item in scene.pastiche.styles:
            item.weight = a if item.name == "a" else 0.0
            item.keyframe_insert("weight", frame=frame)
    whole, chunks = tmp_path / "whole", tmp_path / "chunks"
    assert render_range(scene, whole, 1, 6) == {"FINISHED"}
    requests.clear()
    assert render_range(scene, chunks, 4, 6) == {"FINISHED"}
    assert not [f for k, f in requests if k == "temporal_prime"]  # frame 3 has nothing to prime
    assert render_range(scene, chunks, 1, 3) == {"FINISHED"}
    for f, a, b in zip(FRAMES, frames(whole), frames(chunks), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"frame {f}")
    # Frame 3 is as rendered: the same as a plain render without Pastiche.
    scene.pastiche.temporal = False
    scene.frame_set(3)
    bpy.ops.render.render()
    bpy.data.images["Render Result"].save_render(str(tmp_path / "plain.exr"), scene=scene)
    np.testing.assert_array_equal(read_exr(whole / "frame_0003.exr"), read_exr(tmp_path / "plain.exr"))


def test_panel_shows_the_option_and_what_it_needs(clean_scene, tiny_model, tmp_path):
    from blender_pastiche.ui import panels

    from .test_addon_panel import Recorder

    scene = clean_scene
    build(scene, tmp_path, tiny_model, temporal=False)

    def labels():
        calls: list = []
        panels.draw_settings(Recorder(calls), bpy.context)
        return calls, [text for name, _, text in calls if name == "label"]

    calls, texts = labels()
    assert ("prop", "temporal", None) in calls and ("prop", "temporal_history", None) in calls
    assert not any("Render Stylized Animation only" in t for t in texts)
    scene.pastiche.temporal = True
    scene.pastiche.enabled = True
    scene.render.use_motion_blur = True
    _, texts = labels()
    assert any("Motion Blur" in t for t in texts)
    assert any("Render Stylized Animation only" in t for t in texts)
    assert any("Ctrl+F12" in t for t in texts)


def test_a_failed_prime_fails_the_frame_with_its_own_message(clean_scene, tiny_model, tmp_path, monkeypatch):
    scene = clean_scene
    build(scene, tmp_path, tiny_model)
    real = temporal_render.submit

    def broken_prime(kind, fields, **kwargs):
        if kind == "temporal_prime":
            fields = dict(fields, input={"path": str(tmp_path / "gone.npy")})
        return real(kind, fields, **kwargs)

    monkeypatch.setattr(temporal_render, "submit", broken_prime)
    with pytest.raises(RuntimeError, match="pixel file not found"):
        render_range(scene, tmp_path / "out", 1, 2)
    # The frame's render went to unstylized/, nothing unstylized looks finished in the output.
    assert not os.path.exists(tmp_path / "out" / "frame_0001.exr")
    assert os.path.exists(tmp_path / "out" / "unstylized" / "frame_0001.exr")
    assert not os.path.exists(tmp_path / "out" / "frame_0002.exr")
    assert_compositor_put_back(scene)


def test_history_limit_is_the_cores(clean_scene):
    from pastiche_core.temporal.coherence import MAX_HISTORY

    assert properties.MAX_HISTORY == MAX_HISTORY
    assert clean_scene.pastiche.bl_rna.properties["temporal_history"].hard_max == MAX_HISTORY


def test_overwrite_off_skips_a_frame_and_primes_again_after_the_gap(clean_scene, tiny_model, tmp_path,
                                                                     requests):
    """Render Stylized Animation with Overwrite off (issue #13): an existing frame
    is left alone, and the frame after the gap is primed again, so it is the
    frame a whole run makes."""
    import shutil

    scene = clean_scene
    build(scene, tmp_path, tiny_model)
    whole, gap = tmp_path / "whole", tmp_path / "gap"
    assert render_range(scene, whole, 1, 4) == {"FINISHED"}
    gap.mkdir()
    shutil.copy(whole / "frame_0002.exr", gap / "frame_0002.exr")
    mtime = os.path.getmtime(gap / "frame_0002.exr")
    scene.render.use_overwrite = False
    requests.clear()
    try:
        assert render_range(scene, gap, 1, 4) == {"FINISHED"}
    finally:
        scene.render.use_overwrite = True
    assert os.path.getmtime(gap / "frame_0002.exr") == mtime  # skipped, untouched
    assert [f for k, f in requests if k == "temporal_stylize"] == [1, 3, 4]
    assert ("temporal_prime", 2) in requests  # the frame before the gap's end, rendered again to prime
    for f in (1, 3, 4):
        np.testing.assert_array_equal(read_exr(gap / f"frame_{f:04d}.exr"), read_exr(whole / f"frame_{f:04d}.exr"))
