"""No silent failures (issue #13, the add-on's half), through real headless bpy
with the faults injected for real: a worker frozen with SIGSTOP, a model file
corrupted on disk, a worker Python without torch, a movie output format, a
temporal frame above the untiled limit, all-zero style weights. Each gives a
named error or a counted pass-through, before frame 1 where it can be known
there, and the failure marker / exit status a render farm reads.
docs/reliability.md lists them."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import bpy
import numpy as np
import pytest

from blender_pastiche import registry
from blender_pastiche.io import failure_marker
from blender_pastiche.io.model_header import read_model_header
from blender_pastiche.operators import render_animation, stylize
from blender_pastiche.props import scene as properties
from blender_pastiche.render import hooks as render_hooks
from blender_pastiche.support import core_files
from blender_pastiche.ui import panels
from blender_pastiche.worker import client as worker_client
from blender_pastiche.worker import config as worker_config

from . import scenes
from .test_addon_panel import Recorder

pytestmark = pytest.mark.blender


def _scene(scene, outdir, model, frames=(1, 2)):
    """A 32 x 24 Cycles scene writing 8-bit PNG frames to outdir, on ``model``."""
    scenes.build_scene(scene, str(outdir), "PNG", "8", size=32)
    scene.frame_start, scene.frame_end = frames[0], frames[-1]
    settings = scene.pastiche
    settings.model_source = "FILE"
    settings.model_path = str(model)
    settings.device = "CPU"
    return settings


@pytest.fixture
def render_count():
    """Frames Blender rendered (render_pre), to prove a failure came before frame 1."""
    frames: list[int] = []

    def count(scene, *_):
        frames.append(scene.frame_current)

    bpy.app.handlers.render_pre.append(count)
    yield frames
    bpy.app.handlers.render_pre.remove(count)


@pytest.fixture
def worker_config_of():
    """Run the add-on's worker with a given WorkerConfig; the preferences' again afterwards."""

    def use(config: worker_client.WorkerConfig) -> None:
        worker_client.restart()
        worker_client.set_config_provider(lambda: config)

    yield use
    worker_client.restart()
    worker_client.set_config_provider(worker_config.from_preferences)


def _png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- frames that were never stylized ----------------------------------------------------


def test_a_new_file_has_the_bundled_models_sliders_and_titles(clean_scene):
    header = read_model_header(core_files.default_model_path())
    settings = clean_scene.pastiche
    assert settings.model_source == "BUNDLED"
    assert [it.name for it in settings.styles] == list(header.styles)  # no Reload Styles needed
    weights = render_hooks.frame_weights(clean_scene)
    assert weights is not None and weights[header.styles[0]] == 1.0  # a style, not pass-through
    assert settings.styles[0].label == "The Starry Night"  # the painting's title labels the slider
    # Enabling the add-on in a running session: the timer register() sets up does the same.
    settings.styles.clear()
    properties.sync_all_scenes_soon()
    assert len(settings.styles) == len(header.styles)


def test_slider_labels_are_the_paintings_titles_or_the_names(clean_scene, tmp_path):
    from ..model_factory import write_randomized_model

    model = write_randomized_model(tmp_path / "m.safetensors", ("a", "b"), 0,
                                   credits={"a": {"title": "Wheat Field"}, "b": {"artist": "x"}})
    clean_scene.pastiche.model_source = "FILE"
    clean_scene.pastiche.model_path = str(model)
    calls: list = []
    panels.draw_settings(Recorder(calls), bpy.context)
    labels = [text for name, target, text in calls if name == "prop" and target == "weight"]
    assert labels == ["Wheat Field", "b"]


def test_all_zero_weights_pass_through_counted_on_every_path(clean_scene, tiny_model, tmp_path, capfd):
    settings = _scene(clean_scene, tmp_path, tiny_model)
    for item in settings.styles:
        item.weight = 0.0
    # Plain render (blender -b -a): counted, reported, not a failure.
    settings.enabled = True
    bpy.ops.render.render(animation=True)
    assert [(o.frame, o.ok, o.passed_through) for o in render_hooks.STATE.outcomes] == [
        (1, True, True), (2, True, True)]
    out = capfd.readouterr().out
    assert "frame 1 NOT stylized, no style at this frame" in out
    assert "0 frame(s) stylized, 2 passed through unstylized (no style at frame(s) 1, 2), 0 failed" in out
    assert failure_marker.read_marker(str(tmp_path)) == {}
    # Render Stylized Animation: the same count (a warning, not an error).
    settings.enabled = False
    assert bpy.ops.pastiche.render_animation() == {"FINISHED"}
    assert "2 passed through unstylized" in capfd.readouterr().out
    # The compositor node with its own all-zero weights: the same pass-through, no longer a failure.
    scenes.add_compositor(clean_scene, with_node=True)
    node = render_hooks.compositor.stylize_nodes(clean_scene)[0]
    node.use_scene_weights = False
    for item in node.style_weights:
        item.weight = 0.0
    assert node.weights(clean_scene) is None
    assert bpy.ops.pastiche.render_animation() == {"FINISHED"}
    assert "0 frame(s) stylized, 2 passed through unstylized" in capfd.readouterr().out
    assert _png(tmp_path / "frame_0001.png") and _png(tmp_path / "frame_0002.png")


# -- hangs and checks before frame 1 ------------------------------------------------------


def test_a_frozen_worker_fails_its_frame_in_bounded_time_and_the_render_goes_on(
        clean_scene, tiny_model, tmp_path, worker_config_of):
    import signal

    timeout = 2.0
    worker_config_of(worker_client.WorkerConfig(response_timeout=timeout))
    settings = _scene(clean_scene, tmp_path, tiny_model, frames=(1, 2, 3))
    settings.enabled = True
    frozen: dict = {}

    def freeze(scene, *_):  # runs before Pastiche's render_write handler
        if scene.frame_current == 2:
            frozen["pid"] = worker_client.get_client().pid
            frozen["at"] = time.monotonic()
            os.kill(frozen["pid"], signal.SIGSTOP)

    def stylized(scene, *_):
        if scene.frame_current == 2:
            frozen["failed_after"] = time.monotonic() - frozen["at"]

    bpy.app.handlers.render_write.insert(0, freeze)
    bpy.app.handlers.render_write.append(stylized)
    try:
        bpy.ops.render.render(animation=True)
    finally:
        bpy.app.handlers.render_write.remove(freeze)
        bpy.app.handlers.render_write.remove(stylized)
    outcomes = render_hooks.STATE.outcomes
    assert [o.ok for o in outcomes] == [True, False, True]
    assert "stopped responding for 2 s and was killed" in outcomes[1].message
    assert timeout <= frozen["failed_after"] < timeout + 2.0  # the documented bound
    assert worker_client.wait_for_exit(frozen["pid"])
    marker = failure_marker.read_marker(str(tmp_path))
    assert list(marker) == [2] and "stopped responding" in marker[2]
    assert not (tmp_path / "frame_0002.png").exists()  # set aside, not looking stylized
    assert (tmp_path / "unstylized" / "frame_0002.png").exists()


def test_a_corrupt_model_fails_the_render_before_frame_1(clean_scene, tiny_model, tmp_path, render_count):
    corrupt = tmp_path / "model" / "tiny.safetensors"
    corrupt.parent.mkdir()
    data = tiny_model.read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])  # the header reads, the weights don't
    out = tmp_path / "out"
    settings = _scene(clean_scene, out, corrupt)
    assert settings.styles  # the sliders came from the header
    with pytest.raises(RuntimeError, match="nothing rendered, the worker can't stylize.*ModelFileError"):
        bpy.ops.pastiche.render_animation()
    assert render_count == []
    assert set(failure_marker.read_marker(str(out))) == {1, 2}
    # The plain-render path checks before frame 1 too: every frame is failed and set aside.
    settings.enabled = True
    bpy.ops.render.render(animation=True)
    assert "ModelFileError" in render_hooks.STATE.refusal
    assert [o.ok for o in render_hooks.STATE.outcomes] == [False, False]
    assert not (out / "frame_0001.png").exists() and (out / "unstylized" / "frame_0001.png").exists()


@pytest.fixture(scope="module")
def python_without_torch(tmp_path_factory):
    """A real Python environment without torch (or numpy): a bare venv."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    assert subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode != 0
    return python


def test_a_worker_python_without_torch_fails_before_frame_1(
        clean_scene, tiny_model, tmp_path, render_count, worker_config_of, python_without_torch):
    worker_config_of(worker_client.WorkerConfig(python=str(python_without_torch)))
    _scene(clean_scene, tmp_path, tiny_model)
    with pytest.raises(RuntimeError, match="nothing rendered.*MissingDependency.*cannot import"):
        bpy.ops.pastiche.render_animation()
    assert render_count == []
    assert not (tmp_path / "frame_0001.png").exists()


def test_temporal_frames_above_the_untiled_limit_fail_before_frame_1(
        clean_scene, tiny_model, tmp_path, render_count):
    settings = _scene(clean_scene, tmp_path, tiny_model)
    settings.temporal = True
    clean_scene.render.resolution_x = clean_scene.render.resolution_y = 3200  # 10.2 MP, above 4K
    with pytest.raises(RuntimeError, match="nothing rendered.*3200 x 3200 is above the untiled limit"):
        bpy.ops.pastiche.render_animation()
    assert render_count == []
    assert properties.vector_view_layer(clean_scene).use_pass_vector  # the checkbox's doing, kept


# -- renders: what a farm and the UI are told ---------------------------------------------


def _set_movie_output(scene) -> None:
    settings = scene.render.image_settings
    if hasattr(settings, "media_type"):  # 5.0
        settings.media_type = "VIDEO"
    else:  # 4.5
        settings.file_format = "FFMPEG"


def test_movie_output_is_refused_with_a_panel_warning_and_a_marker(clean_scene, tiny_model, tmp_path):
    settings = _scene(clean_scene, tmp_path, tiny_model)
    settings.enabled = True
    _set_movie_output(clean_scene)
    calls: list = []
    panels.draw_settings(Recorder(calls), bpy.context)
    labels = [text for name, _, text in calls if name == "label"]
    assert "Stylize Renders: frames will NOT be stylized" in labels
    assert any(text and "image sequences, not movie files" in text for text in labels)
    # What the handlers do with it: every frame reported failed and listed.
    render_hooks.on_render_init(clean_scene)
    assert "movie files" in render_hooks.STATE.refusal
    clean_scene.frame_set(1)
    render_hooks.on_render_pre(clean_scene)
    movie = bpy.path.abspath(clean_scene.render.frame_path(frame=1))
    with open(movie, "wb") as f:  # what Blender writes: the movie file, one frame longer
        f.write(b"a movie")
    render_hooks.on_render_post(clean_scene)
    render_hooks.on_render_write(clean_scene)
    render_hooks.on_render_complete(clean_scene)
    assert [(o.frame, o.ok) for o in render_hooks.STATE.outcomes] == [(1, False)]
    assert "movie files" in failure_marker.read_marker(str(tmp_path))[1]
    assert open(movie, "rb").read() == b"a movie"  # a movie file is left alone
    with pytest.raises(RuntimeError, match="movie files"):
        bpy.ops.pastiche.render_animation()


def test_blender_b_a_exits_non_zero_when_a_frame_failed(tmp_path):
    """`blender -b file.blend -a` with a worker that freezes at frame 6: frames 5 and
    7 are stylized, frame 6 is listed in the marker, the process exits with 3."""
    from .test_render_animation import render

    model = scenes.make_tiny_model(str(tmp_path / "tiny.safetensors"))
    out = tmp_path / "out"
    out.mkdir()
    started = time.monotonic()
    report = render("hooks", out, model, freeze_at=6, response_timeout=2, render_anim_argv=True,
                    expect_failure=True)
    assert time.monotonic() - started < 200
    assert report["returncode"] == render_hooks.EXIT_FAILED_FRAMES, report["log"]
    assert "2 frame(s) stylized, 1 failed (frame(s) 6)" in report["log"]
    marker = failure_marker.read_marker(str(out))
    assert list(marker) == [6] and "stopped responding for 2 s" in marker[6]
    assert (out / "frame_0005.exr").exists() and (out / "frame_0007.exr").exists()
    assert not (out / "frame_0006.exr").exists()


def test_command_line_render_is_only_blenders_own_render_arguments(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["blender", "-b", "shot.blend", "-a"])
    assert render_hooks.command_line_render()
    monkeypatch.setattr(sys, "argv", ["blender", "-b", "shot.blend", "--python", "x.py", "--", "-a"])
    assert not render_hooks.command_line_render()  # a script's own arguments don't count
    monkeypatch.setattr(sys, "argv", ["pytest", "tests"])
    assert not render_hooks.command_line_render()


# -- Blender behaviour ----------------------------------------------------------------------


def test_stylize_render_works_after_a_scripted_render(clean_scene, tiny_model, tmp_path):
    _scene(clean_scene, tmp_path, tiny_model)
    bpy.ops.render.render()
    assert not bpy.data.images["Render Result"].has_data  # Blender's quirk (blender-facts.md)
    assert bpy.ops.pastiche.stylize_render() == {"FINISHED"}
    assert tuple(bpy.data.images["Render Result (Pastiche)"].size) == (32, 24)


def test_a_scripted_still_render_is_stylized_where_blender_wrote_it(clean_scene, tiny_model, tmp_path):
    """render(write_still=True) writes the output path itself (its extension made the
    format's, path templates expanded), not a numbered frame: the hook stylizes that
    file. An earlier animation's frames, kept originals and failure marker lines of the
    same output path are left alone, and a still whose name can't be worked out is
    reported with nothing touched."""
    from blender_pastiche.io import pixels as frame_pixels

    settings = _scene(clean_scene, tmp_path, tiny_model)
    settings.enabled = True
    settings.keep_original = True
    # An animation first, to a path template: {resolution_x} is 32 here.
    clean_scene.render.filepath = str(tmp_path / "{resolution_x}_shot_")
    bpy.ops.render.render(animation=True)
    assert [(o.frame, o.ok, os.path.basename(o.path)) for o in render_hooks.STATE.outcomes] == [
        (1, True, "32_shot_0001.png"), (2, True, "32_shot_0002.png")]
    kept = {p: p.read_bytes() for p in (tmp_path / "32_shot_0001.png", tmp_path / "unstylized" / "32_shot_0001.png")}
    failure_marker.update_marker(str(tmp_path), {2: "an earlier failure of frame 2"})
    # Then a still of the same output path, at frame 1 (and one at frame 2).
    for frame in (1, 2):
        clean_scene.frame_set(frame)
        bpy.ops.render.render(write_still=True)
        still = tmp_path / "32_shot_.png"
        assert [(o.frame, o.ok, o.path) for o in render_hooks.STATE.outcomes] == [(frame, True, str(still))]
    assert {p: p.read_bytes() for p in kept} == kept  # the animation's frame and its original
    assert failure_marker.read_marker(str(tmp_path)) == {2: "an earlier failure of frame 2"}
    original = tmp_path / "unstylized" / "32_shot_.png"
    assert _png(still) and _png(original)
    encoding = render_hooks.output_encoding(clean_scene)
    styled = frame_pixels.load_frame(str(still), encoding)[1]
    plain = frame_pixels.load_frame(str(original), encoding)[1]
    assert styled.shape == plain.shape == (24, 32, 4)
    assert np.abs(styled[..., :3] - plain[..., :3]).mean() > 0.02  # stylized, not the render
    # The format's extension replaces another image extension (PNG: still.jpg -> still.png).
    clean_scene.render.filepath = str(tmp_path / "still.jpg")
    bpy.ops.render.render(write_still=True)
    assert [(o.ok, o.path) for o in render_hooks.STATE.outcomes] == [(True, str(tmp_path / "still.png"))]
    # A template with # signs: Blender keeps the #, which Python can't expand: reported, untouched.
    clean_scene.render.filepath = str(tmp_path / "{resolution_x}_####")
    bpy.ops.render.render(write_still=True)
    ((outcome,),) = [render_hooks.STATE.outcomes]
    assert not outcome.ok and "found no file this render wrote" in outcome.message
    assert not (tmp_path / "unstylized" / "32_####.png").exists()
    assert failure_marker.read_marker(str(tmp_path)) == {2: "an earlier failure of frame 2"}
    # The same when the render is refused (temporal mode needs the operator): no marker line.
    settings.temporal = True
    bpy.ops.render.render(write_still=True)
    ((outcome,),) = [render_hooks.STATE.outcomes]
    assert not outcome.ok and "Temporal Coherence" in outcome.message
    assert failure_marker.read_marker(str(tmp_path)) == {2: "an earlier failure of frame 2"}


def test_overwrite_off_skips_existing_frames_and_stale_unstylized_frames_go(clean_scene, tiny_model, tmp_path):
    _scene(clean_scene, tmp_path, tiny_model)
    (tmp_path / "frame_0001.png").write_bytes(b"the user's frame")
    (tmp_path / "unstylized").mkdir()
    (tmp_path / "unstylized" / "frame_0002.png").write_bytes(b"from an earlier run")
    clean_scene.render.use_overwrite = False
    assert bpy.ops.pastiche.render_animation() == {"FINISHED"}
    assert (tmp_path / "frame_0001.png").read_bytes() == b"the user's frame"  # untouched
    assert _png(tmp_path / "frame_0002.png")
    assert not (tmp_path / "unstylized" / "frame_0002.png").exists()  # no longer its original


# -- conventions -------------------------------------------------------------------------------


def test_stylize_operators_are_in_menus_so_f3_finds_them(addon):
    calls: list = []
    owner = type("MenuOwner", (), {"layout": Recorder(calls)})()
    stylize.draw_image_menu(owner, bpy.context)
    render_animation.draw_render_menu(owner, bpy.context)
    ops = {target for name, target, _ in calls if name == "operator"}
    assert {"pastiche.stylize_image", "pastiche.stylize_render", "pastiche.render_animation"} <= ops
    assert ("IMAGE_MT_image", stylize.draw_image_menu) in registry.MENUS
    assert stylize.draw_image_menu in bpy.types.IMAGE_MT_image.draw._draw_funcs
    assert render_animation.draw_render_menu in bpy.types.TOPBAR_MT_render.draw._draw_funcs


def test_swatches_say_when_they_are_done(clean_scene, tiny_model, capfd):
    clean_scene.pastiche.model_source = "FILE"
    clean_scene.pastiche.model_path = str(tiny_model)
    clean_scene.pastiche.device = "CPU"
    assert bpy.ops.pastiche.make_swatches(size=32) == {"FINISHED"}
    assert "Pastiche: made 2 style swatch(es) at 32 px" in capfd.readouterr().out
